"""A holder's status after a round or a run, one word for every report.

* ``ok`` — no rule acted;
* ``cured`` — a rule acted and cash or capital brought the holder back without a trade;
* ``forced`` — the holder traded to comply (or traded and is still short of compliance);
* ``liquidated`` — it sold its whole book;
* ``insolvent`` — its equity fell to zero or below: liquidated, the shortfall its lender's;
* ``solver_failed`` — its minimal-cost problem had no solution the solvers could find.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    CURED = "cured"
    FORCED = "forced"
    LIQUIDATED = "liquidated"
    INSOLVENT = "insolvent"
    SOLVER_FAILED = "solver_failed"


#: The statuses of a holder that did not have to trade.
NOT_FORCED = (Status.OK, Status.CURED)

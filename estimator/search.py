"""The settings of a survival search (:mod:`estimator.survival`), checked when they are made."""

from __future__ import annotations

import dataclasses

from estimator.bounds import finite_problem
from estimator.errors import InputError, Problem

MIN_TOLERANCE = 1e-12
MAX_MULTIPLE = 1_000.0  # a thousand times the scenario: well past any price falling to zero
MAX_GRID = 10_000  # grid points: one one-round evaluation each


@dataclasses.dataclass(frozen=True)
class Search:
    """Search settings: the largest multiple ``M``, grid points ``K`` and relative tolerance."""

    max_multiple: float = 3.0
    grid: int = 24
    tolerance: float = 1e-3
    cure_doublings: int = 10

    def __post_init__(self) -> None:
        problems = [
            _option(name, why)
            for name, why in (
                ("max_multiple", finite_problem(self.max_multiple, 0, MAX_MULTIPLE, open_low=True)),
                ("grid", finite_problem(self.grid, 1, MAX_GRID)),
                ("tolerance", finite_problem(self.tolerance, MIN_TOLERANCE, 1, open_high=True)),
            )
            if why is not None
        ]
        if problems:
            raise InputError(problems)


def _option(name: str, why: str) -> Problem:
    return Problem("options", why, field=name)

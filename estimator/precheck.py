"""Books that break their own rules before any shock.

A holder whose rule is already past its trigger level on the market as given — a leverage
above its limit, a short whose account cash leaves out the sale proceeds and so shows a margin
call — would be forced by any scenario, the calm one included: its flow is the input's, not the
shock's. :func:`breaches` finds every such (holder, rule) on the pre-shock book with the rules'
own trigger expressions (``triggered()``: ``lhs − bound > noise`` at the trigger level, on the
book as it stands, before outflows and cures), and :func:`warn` reports them.
"""

from __future__ import annotations

import polars as pl

from estimator import keys
from estimator.errors import InputWarnings, Problem
from estimator.mandates import Mandate
from estimator.report import money
from estimator.rounds import frames
from rules import Book, Level

#: Holders named one by one in the warnings; the rest are counted.
LISTED = 10


def breaches(
    assets: pl.DataFrame,
    holders: pl.DataFrame,
    positions: pl.DataFrame,
    mandates: dict[str, Mandate],
) -> pl.DataFrame:
    """Per (holder, rule) past its trigger on the book as given (ids, assets unshocked):
    ``holder_id``, ``rule``, ``metric`` (the rule's reported metric) and ``breach`` (how far,
    in currency, ``lhs − bound`` at the trigger level); a holder with ``E ≤ 0`` has the rule
    ``equity`` (``metric`` = E), unless it holds and owes nothing. Sorted by holder and rule."""
    codes = keys.Keys.of(holders, assets)
    assets, holders, positions = (codes.encode(f) for f in (assets, holders, positions))
    opened = frames.open_round(assets, holders, positions, mandates)
    pos, book = opened.pos, opened.book
    equity = pl.col(Book.EQUITY)
    solvent = equity > 0
    empty = (equity == 0) & (pl.col(Book.GROSS_EXPOSURE) == 0)  # nothing held, nothing owed
    found = [
        book.filter(~solvent & ~empty).select(
            "holder_id", rule=pl.lit("equity"), metric=Book.EQUITY, breach=-pl.col(Book.EQUITY)
        )
    ]
    for name, (pos_part, book_part) in frames.by_mandate(pos, book, set(mandates)).items():
        mandate = mandates[name]
        book_m = (
            frames.rule_frames(pos_part, book_part, mandate, assets)[1]
            if frames.position_rules(mandate) and pos_part is not None
            else book_part
        )
        for rule in mandate.rules:
            found.append(
                book_m.filter(solvent & rule.triggered()).select(
                    "holder_id",
                    rule=pl.lit(rule.kind),
                    metric=rule.metric().cast(pl.Float64),
                    breach=rule.breach(Level.TRIGGER),
                )
            )
    return codes.decode(pl.concat(found).sort("holder_id", "rule"))


def warn(found: pl.DataFrame, label: str, warnings: InputWarnings) -> None:
    """One warning per holder in ``found`` (:func:`breaches`), the first :data:`LISTED`
    named with their rules, metrics and breaches, the rest counted."""
    if found.is_empty():
        return
    named = found["holder_id"].unique(maintain_order=True)
    listed = found.filter(pl.col("holder_id").is_in(named.head(LISTED).implode()))
    for (holder_id,), rows in listed.group_by("holder_id", maintain_order=True):
        what = "; ".join(
            f"{rule} (metric {metric:.4g}, {money(breach)} past its trigger)"
            for rule, metric, breach in rows.select("rule", "metric", "breach").iter_rows()
        )
        warnings.add(
            Problem(label, f"holder {holder_id} breaks its rules before any shock: {what}")
        )
    if named.len() > LISTED:
        more = named.len() - LISTED
        warnings.add(Problem(label, f"{more} more holder(s) break their rules before any shock"))

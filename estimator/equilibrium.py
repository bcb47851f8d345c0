"""Equilibrium mode: prices at which the forced trades of the pre-episode books cause themselves.

With ``P₀`` the prices after the scenario's shocks and ``x`` the books as the scenario leaves
them, let ``q(P)`` be the net quantity per asset that every rule requires of ``x`` marked to
prices ``P`` (:func:`estimator.rounds.evaluate_round` on ``x`` at ``P``; futures settle
``q·m·(P − P₀)`` to cash), and ``I(q)`` the prices that cumulative impact gives for a net flow
``q`` from ``P₀`` (:func:`estimator.impact.prices_after`). An equilibrium is a fixed point ::

    P* = T(P*),    T(P) = I(q(P)).

If every rule restores exactly to its trigger level, the trades required at ``P`` do not depend
on the path to ``P`` (no hysteresis), and if lower prices never require less selling, ``T`` is
monotone: ``P ≤ P'`` ⇒ ``T(P) ≤ T(P')`` asset by asset. Tarski's theorem then orders the fixed
points, and two iterations find the extreme ones:

* the **least** (least impact, highest prices): ``P⁰ = P₀`` (no impact), ``P^{k+1} = T(P^k)``,
  a non-increasing sequence;
* the **greatest** (greatest impact, lowest prices): ``P⁰ = I(q_all)`` with ``q_all`` every
  long position of every holder that can be forced sold outright (no required trade sells more),
  ``P^{k+1} = T(P^k)``, a non-decreasing sequence.

Both stop when no price moves by more than ``tolerance`` (relative) from one iteration to the
next; where they end apart (beyond ``10³ × tolerance``) the book has **multiple equilibria** —
the selling can settle at a mild outcome or at a severe one. The iterations check monotonicity
as they go: a step against its sequence's direction means the conditions do not hold (e.g. a
rule that buys as prices fall), and the run falls back to rounds. Trades are valued at ``P*``
(no execution cost), and impact must be cumulative (per-round compounding is path-dependent).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from estimator import book as bk
from estimator import impact as im
from estimator.errors import EquilibriumError
from estimator.impact import Impact
from estimator.mandates import Execution, Mandate
from estimator.rounds import RoundResult, evaluate_round
from estimator.solve import ProblemCache

#: Prices that end further apart than this many tolerances are distinct equilibria.
DISTINCT = 1e3


@dataclass(frozen=True)
class FixedPoint:
    prices: pl.DataFrame  # asset_id, price
    quantity: pl.DataFrame  # asset_id, net_quantity required at those prices
    iterations: int
    converged: bool


@dataclass(frozen=True)
class Equilibrium:
    least: FixedPoint  # from no impact: the highest prices
    greatest: FixedPoint  # from everything sold: the lowest prices
    required: RoundResult  # the trades required at the least fixed point
    multiple: bool

    def table(self, assets: pl.DataFrame) -> pl.DataFrame:
        """Per asset: ``P₀`` and both fixed points' prices and net quantities."""
        least, greatest = self.least, self.greatest
        return (
            assets.select("asset_id", price_0="price")
            .join(least.prices.rename({"price": "price_least"}), on="asset_id")
            .join(greatest.prices.rename({"price": "price_greatest"}), on="asset_id")
            .join(least.quantity.rename({"net_quantity": "quantity_least"}), on="asset_id")
            .join(greatest.quantity.rename({"net_quantity": "quantity_greatest"}), on="asset_id")
            .sort("asset_id")
        )


def conditions(
    holders: pl.DataFrame,
    mandates: dict[str, Mandate],
    impact: Impact,
    lender_losses: bool,
) -> list[str]:
    """Why equilibrium mode cannot be used on these books (empty: it can)."""
    reasons = []
    if impact.mode != "cumulative":
        reasons.append("impact mode is per_round (compounding is path-dependent)")
    if lender_losses:
        reasons.append("lender losses are booked round by round")
    used = set(holders["mandate"].drop_nulls())
    rules = [(n, r) for n, m in mandates.items() if n in used for r in m.rules]
    stateful = sorted(f"{n}: {r.kind}" for n, r in rules if r.state_columns or r.memory())
    loose = sorted(
        f"{n}: {r.kind}"
        for n, r in rules
        if not r.restores_to_trigger and not r.state_columns and not r.memory()
    )
    if stateful:
        reasons.append("rules that carry state from round to round (" + ", ".join(stateful) + ")")
    if loose:
        reasons.append("rules that restore beyond their trigger level (" + ", ".join(loose) + ")")
    return reasons


def equilibrium(
    assets: pl.DataFrame,
    holders: pl.DataFrame,
    positions: pl.DataFrame,
    mandates: dict[str, Mandate],
    impact: Impact,
    *,
    execution: Execution | None = None,
    cache: ProblemCache | None = None,
) -> Equilibrium:
    """The least and greatest fixed points of ``T`` (module docstring) for the shocked
    ``assets`` (``price`` is ``P₀``) and the books ``holders``/``positions``.

    Raises :class:`EquilibriumError` when an iteration is not monotone or does not converge
    within ``impact.max_iterations``."""
    base = assets.join(impact.parameters(assets), on="asset_id").with_columns(
        price_0=pl.col("price")
    )
    futures = assets.filter(pl.col("instrument") == "future").select(
        "asset_id", "multiplier", price_0=pl.col("price")
    )
    on_futures = positions.join(futures, on="asset_id", how="semi")  # few rows

    def required(prices: pl.DataFrame) -> RoundResult:
        marked = assets.drop("price").join(prices, on="asset_id").select(assets.columns)
        moves = futures.join(prices, on="asset_id").with_columns(
            dp=pl.col("price") - pl.col("price_0")
        )
        settled = bk.credit_variation_margin(holders, on_futures, moves)
        return evaluate_round(
            marked, settled, positions, mandates, execution=execution, cache=cache
        )

    def net(result: RoundResult) -> pl.DataFrame:
        flows = result.trades.group_by("asset_id").agg(net_quantity=pl.col("trade_quantity").sum())
        return (
            assets.select("asset_id")
            .join(flows, on="asset_id", how="left")
            .with_columns(pl.col("net_quantity").fill_null(0.0))
        )

    def prices_for(quantity: pl.DataFrame) -> pl.DataFrame:
        state = base.join(quantity, on="asset_id").with_columns(
            episode_quantity=pl.col("net_quantity"), round_quantity=pl.col("net_quantity")
        )
        return im.prices_after(state, "cumulative").select("asset_id", price="price_after")

    def iterate(start: pl.DataFrame, direction: int, label: str) -> tuple[FixedPoint, RoundResult]:
        prices = start
        for k in range(1, impact.max_iterations + 1):
            result = required(prices)
            quantity = net(result)
            after = prices_for(quantity)
            step = after.join(prices.rename({"price": "before"}), on="asset_id").select(
                change=(pl.col("price") - pl.col("before")) / pl.col("before")
            )["change"]
            if (direction * step < -impact.tolerance).any():
                raise EquilibriumError(
                    f"the {label} iteration is not monotone (a price moved against it at step "
                    f"{k}): trades do not grow as prices fall"
                )
            if step.abs().max() <= impact.tolerance:
                return FixedPoint(prices, quantity, k, True), result
            prices = after
        raise EquilibriumError(
            f"the {label} iteration did not converge in {impact.max_iterations} iterations"
        )

    least, at_least = iterate(assets.select("asset_id", "price"), -1, "least-impact")
    forceable = holders.filter(pl.col("mandate").is_not_null()).select("holder_id")
    everything = (
        positions.join(forceable, on="holder_id")
        .filter(pl.col("quantity") > 0)
        .group_by("asset_id")
        .agg(net_quantity=-pl.col("quantity").sum())
    )
    floor = prices_for(
        assets.select("asset_id")
        .join(everything, on="asset_id", how="left")
        .with_columns(pl.col("net_quantity").fill_null(0.0))
    )
    greatest, _ = iterate(floor, +1, "greatest-impact")
    gap = least.prices.join(greatest.prices.rename({"price": "g"}), on="asset_id").select(
        ((pl.col("price") - pl.col("g")).abs() / pl.col("price")).max()
    )
    multiple = float(gap.item() or 0.0) > DISTINCT * max(impact.tolerance, 1e-15)
    return Equilibrium(least, greatest, at_least, multiple)

"""Books that start a dated path where the funds' own estimates put them.

The census sizes a fund that targets volatility (``vol_target``) on the risk model: its book
``x`` has ``σ_p(x) = u·τ·E``, a drawn utilisation ``u`` of its target ``τ`` of equity ``E``.
A path's ``history`` (:mod:`estimator.path`) gives the days before the episode, and a fund
whose rule reads an estimator (``estimator``, :mod:`estimator.realised`) has followed its rule
through them: on its own estimate ``σ̂_p`` it holds the same utilisation of its target. Its
book at the start is therefore ``x′ = f·x`` with

    f = min(σ_p(x) / σ̂_p(x), c·E/G)        (c: the rule's ``gross_cap``, G = Σ|x|; none: no cap)

so that ``σ̂_p(x′) = σ_p(x)`` wherever the cap allows. Cash pays for the cash instruments'
difference, ``C′ = C − (f − 1)·Σ_{cash} q·m·P``; futures need none; equity is unchanged. A
calm half-year (``σ̂ < σ``) starts the funds more leveraged than the model would, as they
were before August 2024; a holder with several such rules is sized by the first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import polars as pl

from estimator import book as bk
from estimator import factor_vol, realised
from estimator.market import Market
from rules import Book, VolTarget
from rules.estimators import risk_column


def sized_to_estimates(
    market: Market,
    wanted: Mapping[str, realised.Estimate],
    before: pl.DataFrame,
    factors: pl.DataFrame | None = None,
) -> Market:
    """``market`` with every estimating vol-target holder's book scaled by ``f`` (above),
    its estimators' state ``before`` the scenario (:func:`estimator.realised.warmed`, on a
    path's history; ``factors``: the factor-level estimators',
    :func:`estimator.realised.warmed_factors`)."""
    sizing = _sizing(market)
    if sizing.is_empty():
        return market
    state = market.assets.join(before, on="asset_id", how="left", maintain_order="left")
    mine, theirs = realised.split(wanted)
    state = realised.with_scales(state, mine)
    if theirs:
        assert market.factors is not None and factors is not None
        scales = realised.factor_scales(factors, theirs)
        state = factor_vol.rows(state, market.factors, scales)
    book = bk.holder_book(bk.position_frame(market.positions, state), market.holders)
    estimated = pl.coalesce(
        *(
            pl.when(pl.col("key") == key).then(pl.col(risk_column(e)))
            for key, e in wanted.items()
            if risk_column(e) in book.columns
        ),
        pl.lit(None, dtype=pl.Float64),
    )
    ratio = pl.col(Book.RISK) / estimated
    cap = pl.col("cap") * pl.col(Book.EQUITY) / pl.col(Book.GROSS_EXPOSURE)
    factors = (
        book.join(sizing, on="mandate")
        .with_columns(ratio=ratio.fill_nan(None))
        .with_columns(  # (min_horizontal skips nulls: a holder without a ratio keeps its book)
            f=pl.when(
                pl.col("ratio").is_not_null()
                & pl.col("cap").is_not_null()
                & (pl.col(Book.GROSS_EXPOSURE) > 0)
            )
            .then(pl.min_horizontal("ratio", cap))
            .otherwise(pl.col("ratio"))
        )
        .filter(pl.col("f").is_not_null() & pl.col("f").is_finite() & (pl.col("f") > 0))
        .select("holder_id", "f")
    )
    if factors.is_empty():
        return market
    cash_value = (
        pl.col("quantity")
        * pl.col("multiplier").fill_null(1.0)
        * pl.col("price")
        * (pl.col("instrument") == "cash").cast(pl.Float64)
    )
    positions = market.positions.join(
        factors, on="holder_id", how="left", maintain_order="left"
    ).with_columns(f=pl.col("f").fill_null(1.0))
    bought = (
        positions.join(market.assets.select("asset_id", "price", "multiplier", "instrument"),
                       on="asset_id")
        .group_by("holder_id")
        .agg(paid=((pl.col("f") - 1) * cash_value).sum())
    )  # fmt: skip
    holders = (
        market.holders.join(bought, on="holder_id", how="left", maintain_order="left")
        .with_columns(cash=pl.col("cash") - pl.col("paid").fill_null(0.0))
        .select(market.holders.columns)
    )
    scaled = positions.with_columns(pl.col("quantity") * pl.col("f")).select(
        market.positions.columns
    )
    return dataclasses.replace(market, positions=scaled, holders=holders)


def _sizing(market: Market) -> pl.DataFrame:
    """``mandate``, ``key`` (its first estimating vol target's estimator) and ``cap`` (its
    gross cap, null for none), for the mandates that have one."""
    rows = []
    for name, mandate in market.mandates.items():
        rule = next(
            (r for r in mandate.rules if isinstance(r, VolTarget) and r.estimator is not None),
            None,
        )
        if rule is not None and rule.estimator is not None:
            rows.append({"mandate": name, "key": rule.estimator.key, "cap": rule.gross_cap})
    schema = {"mandate": pl.String, "key": pl.String, "cap": pl.Float64}
    return pl.DataFrame(rows, schema=schema)

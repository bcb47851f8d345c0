"""The options dealers' gamma: a profile per underlying, read by ``gamma_hedge``.

A profile is the dealers' net dollar gamma per 1% move ``g`` of an underlying at spot levels
``ℓ = S/S₀ − 1`` around its price before the scenario ``S₀`` (:mod:`rules.gamma_hedge` has the
math). A market may carry one (a ``dealer_gamma`` table: asset_id, level, gamma), and a
scenario may give its own for the day it starts (``[[dealer_gamma]]``, :class:`GammaProfile`):
dealers' books turn over with every expiry, so the census leaves them to the episodes (one
profile per underlying). Either
is joined to the assets as one column per knot (:func:`rules.gamma_hedge.profile_column`), up
to :data:`~rules.gamma_hedge.MAX_KNOTS` knots, a shorter profile padded with its last knot; a
scenario's profile replaces the market's for its underlying.

A holder under ``gamma_hedge`` holds a position in every underlying with a profile — none before
the scenario: a round pads its rows in at zero (:meth:`rules.gamma_hedge.GammaHedge.pads`).
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

import polars as pl
from pydantic import BaseModel, Field, model_validator

from estimator import contracts
from estimator.bounds import MAX_AMOUNT, MODEL_CONFIG
from estimator.errors import InputError, InputWarnings, Problem
from estimator.mandates import Mandate
from rules.gamma_hedge import MAX_KNOTS, PROFILE_COLUMNS, GammaHedge, profile_column

#: The asset column that marks an underlying with a profile.
HEDGED = profile_column("gamma", 0)
#: Every profile column, in order.
COLUMNS = PROFILE_COLUMNS


class GammaProfile(BaseModel):
    """The dealers' gamma on one underlying when a scenario starts, with its source."""

    model_config = MODEL_CONFIG

    asset_id: str = Field(min_length=1, description="the underlying")
    levels: list[Annotated[float, Field(gt=-1, le=10)]] = Field(
        min_length=1,
        max_length=MAX_KNOTS,
        description="spot levels relative to the price before the scenario, S/S₀ − 1",
    )
    gammas: list[Annotated[float, Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT)]] = Field(
        description="the dealers' net dollar gamma per 1% move at each level (positive: long)"
    )
    kind: Literal["estimate", "assumption"]
    date: str = Field(min_length=1, description="the date the figures describe")
    source: str = Field(min_length=1)
    note: str = ""

    @model_validator(mode="after")
    def _knots(self) -> Self:
        if len(self.gammas) != len(self.levels):
            raise ValueError("give one gamma per level")
        if len(set(self.levels)) != len(self.levels):
            raise ValueError("levels must differ")
        return self


def with_profiles(assets: pl.DataFrame, profiles: list[GammaProfile], label: str) -> pl.DataFrame:
    """``assets`` with the scenario's ``profiles`` in place of the market's for their
    underlyings (the profile columns added, null elsewhere, where the market has none)."""
    if not profiles:
        return assets
    unknown = {p.asset_id for p in profiles} - set(assets["asset_id"])
    if unknown:
        problems = [
            Problem(label, f"unknown asset {p.asset_id!r}", field=f"dealer_gamma.{i}.asset_id")
            for i, p in enumerate(profiles)
            if p.asset_id in unknown
        ]
        raise InputError(problems)
    rows = [(p.asset_id, lv, g) for p in profiles for lv, g in zip(p.levels, p.gammas, strict=True)]
    table = pl.DataFrame(rows, schema=["asset_id", "level", "gamma"], orient="row")
    if HEDGED not in assets.columns:
        assets = assets.with_columns(pl.lit(None, pl.Float64).alias(c) for c in COLUMNS)
    return assets.update(profile_columns(table), on="asset_id", how="left")


def warn_unhedged(
    assets: pl.DataFrame,
    holders: pl.DataFrame,
    mandates: dict[str, Mandate],
    warnings: InputWarnings,
    label: str,
    *,
    given: int = 0,
) -> None:
    """A warning where holders hedge dealers' gamma but no underlying has a profile (they
    hold nothing and do not trade), or where the scenario gives ``given`` profiles but no
    holder hedges them."""
    names = [n for n, m in mandates.items() if any(isinstance(r, GammaHedge) for r in m.rules)]
    hedgers = holders.filter(pl.col("mandate").is_in(names)).height
    if hedgers and (HEDGED not in assets.columns or assets[HEDGED].null_count() == assets.height):
        warnings.add(
            Problem(
                label,
                f"{hedgers} holder(s) hedge dealers' gamma, but neither the market nor the "
                "scenario gives a dealer_gamma profile: they do not trade",
            )
        )
    if given and not hedgers:
        warnings.add(
            Problem(
                label,
                f"the scenario gives {given} dealer_gamma profile(s), but no holder of the "
                "market hedges dealers' gamma (a gamma_hedge mandate): nobody trades on them",
                field="dealer_gamma",
            )
        )


def check_profile(table: pl.DataFrame, assets: pl.DataFrame, label: str) -> list[Problem]:
    """Rows naming an unknown asset, and underlyings with more than ``MAX_KNOTS`` knots."""
    problems = [
        Problem(label, f"asset {a!r} is not in the asset table", line, "asset_id")
        for line, a in table.join(assets, on="asset_id", how="anti")
        .select(contracts.LINE, "asset_id")
        .head(20)
        .iter_rows()
    ]
    counts = table.group_by("asset_id").agg(n=pl.len(), line=pl.col(contracts.LINE).max())
    for a, n, line in counts.filter(pl.col("n") > MAX_KNOTS).sort("asset_id").iter_rows():
        problems.append(
            Problem(label, f"asset {a!r} has {n} levels: at most {MAX_KNOTS}", line, "level")
        )
    return problems


def profile_columns(table: pl.DataFrame) -> pl.DataFrame:
    """One row per underlying: its knots in ascending level, ``MAX_KNOTS`` of them (the last
    repeated), as the asset columns :mod:`rules.gamma_hedge` reads."""
    knots = table.sort("asset_id", "level").with_columns(k=pl.int_range(pl.len()).over("asset_id"))
    last = knots.group_by("asset_id").agg(pl.col("level", "gamma").last(), n=pl.len())
    padding = last.with_columns(k=pl.int_ranges("n", MAX_KNOTS)).explode("k").drop("n")
    full = pl.concat(
        [knots.select("asset_id", "k", "level", "gamma"), padding.drop_nulls("k")],
        how="diagonal_relaxed",
    ).with_columns(pl.col("k").cast(pl.Int64))
    wide = full.pivot(on="k", index="asset_id", values=["level", "gamma"], sort_columns=True)
    return wide.rename(
        {
            f"{what}_{k}": profile_column(what, k)
            for what in ("level", "gamma")
            for k in range(MAX_KNOTS)
        }
    ).sort("asset_id")


def with_null_profiles(assets: pl.DataFrame, mandates: dict[str, Mandate]) -> pl.DataFrame:
    """``assets`` with null profile columns where a mandate hedges dealers' gamma and the
    market has no profile: a scenario may give one (:func:`with_profiles`)."""
    hedges = any(isinstance(r, GammaHedge) for m in mandates.values() for r in m.rules)
    if not hedges or HEDGED in assets.columns:
        return assets
    return assets.with_columns(pl.lit(None, pl.Float64).alias(c) for c in COLUMNS)


def check_hedgers(
    assets: pl.DataFrame,
    holders: pl.DataFrame,
    positions: pl.DataFrame,
    mandates: dict[str, Mandate],
    label: str,
) -> None:
    """An input error where a holder that hedges dealers' gamma holds an underlying with a
    profile before the scenario: its position there is its hedge, ``x = k·w·x*(ρ)``, which
    is none before the scenario (a holding would be sold as if it were a hedge)."""
    names = [n for n, m in mandates.items() if any(isinstance(r, GammaHedge) for r in m.rules)]
    if not names or HEDGED not in assets.columns:
        return
    underlyings = assets.filter(pl.col(HEDGED).is_not_null()).select("asset_id")
    held = (
        positions.filter(pl.col("quantity") != 0)
        .join(holders.filter(pl.col("mandate").is_in(names)).select("holder_id"), on="holder_id")
        .join(underlyings, on="asset_id")
        .sort("holder_id", "asset_id")
    )
    if held.is_empty():
        return
    raise InputError(
        [
            Problem(
                "positions",
                f"holder {h!r} hedges dealers' gamma and holds {a!r}, an underlying of the "
                f"dealers' gamma in {label}: its position there is its hedge, none before the "
                "scenario",
                field="asset_id",
            )
            for h, a in held.select("holder_id", "asset_id").head(20).iter_rows()
        ]
    )

"""The day clock of the cascade: liquidation horizons, grace periods, participation caps and
temporary impact.

Days ``d = 0, 1, …`` (day 0 is the day of the shocks) are the outer clock; the cascade's rounds
run within a day. Each round every rule states what it requires of the current books (the
trade ``u`` to full compliance); the day clock decides how much of it is done today.

**Pace.** A holder is first forced on day ``f``; it starts trading on ``s = f + delay`` (a grace
period, e.g. after a downgrade) and must be done by the deadline ``D = s + H − 1`` (``H`` its
liquidation horizon in days). On day ``d ≥ s``, with ``e`` what it has already traded today
and ``L = max(D − d + 1, 1)`` the days left, it trades ::

    a = (u + e) / L − e

per asset: today's share of everything it is now required to do (today's trades included),
less what it did today already. Without price moves the first round of the day trades
``u / L`` and later rounds nothing; a price move that raises the requirement by ``Δ`` adds
``Δ / L``. Past the deadline ``L = 1``: everything left, at once.

**Participation cap.** A holder trades at most ``ρ·ADV`` of an asset's value a day (``ρ`` its
participation): with ``v`` the value it has traded in the asset today (each round's trades at
that round's price ``P``, multiplier ``m``), ``|a| ≤ (ρ·ADV − |v|) / (P·m)``. What it cannot
trade today it is still required to trade tomorrow (the rules are evaluated on the books every
day): trades carry over. ``a`` keeps the sign of ``u`` and never exceeds it.

**Temporary impact** (cumulative mode). With ``I(Q)`` the impact model's ``Δp/p`` for the
episode's cumulative net flow, ``ΔI_d`` day ``d``'s increment of it, ``π`` the permanent
share and ``h`` the half-life in days, the price on day ``d`` is ::

    P_d = P₀ · (1 + π·I(Q_d) + (1 − π)·Σ_{d' ≤ d} ΔI_{d'} · 2^{−(d − d')/h})

— the temporary part decays overnight. ``π = 1`` (the default) is the cumulative model
without days. Once forced selling stops the price tends to ``P_∞ = P₀·(1 + π·I(Q))``: the
**expected rebound** is ``P_∞ / P_last − 1``.

Index changes trade on their ``effective_day``.
"""

from __future__ import annotations

import math
from typing import Self

import polars as pl
from pydantic import BaseModel, Field, model_validator

from estimator.bounds import MAX_DAYS, MODEL_CONFIG


class HolderSelector(BaseModel):
    """Which holders a day-clock entry applies to (every listed criterion must hold)."""

    model_config = MODEL_CONFIG

    all: bool = False
    holder_ids: list[str] = Field(default_factory=list)
    holder_types: list[str] = Field(default_factory=list)
    mandates: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not (self.all or self.holder_ids or self.holder_types or self.mandates):
            raise ValueError("select something: holder_ids, holder_types, mandates or all")
        return self

    def expr(self) -> pl.Expr:
        conds = [pl.lit(True)]
        if self.holder_ids:
            conds.append(pl.col("holder_id").is_in(self.holder_ids))
        if self.holder_types:
            conds.append(pl.col("holder_type").is_in(self.holder_types))
        if self.mandates:
            conds.append(pl.col("mandate").is_in(self.mandates))
        return pl.all_horizontal(conds).fill_null(False)


class Pace(BaseModel):
    """How fast the selected holders trade once forced."""

    model_config = MODEL_CONFIG

    select: HolderSelector
    horizon_days: int = Field(
        1, ge=1, le=MAX_DAYS, description="H: days to complete a forced trade"
    )
    delay_days: int = Field(0, ge=0, le=MAX_DAYS, description="grace period before trading starts")
    participation: float | None = Field(
        None, gt=0, le=100, description="ρ: at most this share of an asset's ADV per day"
    )


#: Relative size below which a paced trade is rounding residue and not done.
RESIDUE = 1e-12

#: Pace of holders no entry selects: everything on the day it is forced.
IMMEDIATE = {"pace_horizon": 1, "pace_delay": 0, "pace_participation": None}

#: Liquidation horizons by holder type, in trading days, after a scenario's own entries —
#: assumptions of a realistic order, not calibrations: brokers sell out a margin account the
#: day a call is not met; leveraged ETFs and volatility products rebalance at the close; index
#: funds trade on the effective date; vol-control funds smooth their exposure changes over
#: about a week and
#: risk-parity funds over a couple of weeks; hedge funds (multi-strategy ones too) deleverage
#: over days, and LDI funds meet collateral calls within days; bond funds and pensions
#: (fixed-weight and defined-benefit) rebalance over weeks.
TYPICAL_HORIZONS = {
    "margin_account": 1,
    "leveraged_etf": 1,
    "inverse_vol_etp": 1,
    "index_fund": 1,
    "vol_control_fund": 5,
    "risk_parity_fund": 10,
    "hedge_fund": 3,
    "multi_strategy_fund": 3,
    "ldi_fund": 3,
    "mutual_fund": 10,
    "open_end_bond_fund": 10,
    "ig_bond_fund": 10,
    "pension_fund": 20,
    "db_pension": 20,
}


class Days(BaseModel):
    """A scenario's day clock (``[days]``); absent, the cascade runs in rounds only."""

    model_config = MODEL_CONFIG

    max_days: int = Field(60, ge=1, le=MAX_DAYS, description="days simulated at most")
    permanent_share: float = Field(1.0, ge=0, le=1, description="π: share of impact that stays")
    half_life_days: float = Field(
        1.0, gt=0, le=MAX_DAYS, description="h: half-life of the temporary part of impact, in days"
    )
    pace: list[Pace] = Field(
        default_factory=list, description="each holder takes the first entry that selects it"
    )
    typical_horizons: bool = Field(
        True, description="after the entries, the horizons of TYPICAL_HORIZONS by holder type"
    )

    @property
    def decay(self) -> float:
        """Overnight factor of the temporary impact: ``2^{−1/h}``."""
        return math.pow(2.0, -1.0 / self.half_life_days)

    def holder_pace(self, holders: pl.DataFrame) -> pl.DataFrame:
        """``holder_id`` with ``pace_horizon``, ``pace_delay`` and ``pace_participation``."""
        entries = list(self.pace)
        if self.typical_horizons:
            entries += [
                Pace(select=HolderSelector(holder_types=[kind]), horizon_days=days)
                for kind, days in TYPICAL_HORIZONS.items()
            ]
        columns = []
        for name, default in IMMEDIATE.items():
            dtype = pl.Float64 if name == "pace_participation" else pl.Int64
            value = pl.lit(default, dtype=dtype)
            field = {"pace_horizon": "horizon_days", "pace_delay": "delay_days"}.get(
                name, "participation"
            )
            for entry in reversed(entries):  # the first match is applied last
                given = pl.lit(getattr(entry, field), dtype=dtype)
                value = pl.when(entry.select.expr()).then(given).otherwise(value)
            columns.append(value.alias(name))
        return holders.select("holder_id", *columns)


def paced(
    required: pl.DataFrame, done_today: pl.DataFrame, schedule: pl.DataFrame, day: int
) -> pl.DataFrame:
    """Today's trades ``a`` (``trade_quantity``) from the required ``u`` (see the module
    docstring). ``required``: holder_id, asset_id, trade_quantity (``u``), unit_value
    (``P·m``), cap (``ρ·ADV``, null: none); ``done_today``: holder_id, asset_id, done (``e``,
    units), done_value (``v``); ``schedule``: holder_id, start, deadline."""
    u, e = pl.col("trade_quantity"), pl.col("done")
    left = (pl.col("deadline") - day + 1).clip(lower_bound=1)
    along = (((u + e) / left - e) * u.sign()).clip(lower_bound=0.0)  # the sign of u
    room = ((pl.col("cap") - pl.col("done_value").abs()) / pl.col("unit_value")).clip(0.0)
    allowed = pl.min_horizontal(along, u.abs(), room.fill_null(float("inf")))
    residue = allowed <= RESIDUE * (u.abs() + e.abs())  # (u + e)/L − e rounding, not a trade
    today = pl.when((pl.col("start") <= day) & ~residue).then(u.sign() * allowed)
    return (
        required.join(done_today, on=["holder_id", "asset_id"], how="left")
        .join(schedule, on="holder_id", how="left")
        .with_columns(pl.col("done", "done_value").fill_null(0.0))
        .select("holder_id", "asset_id", trade_quantity=today.otherwise(0.0))
    )

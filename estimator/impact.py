"""Price impact of forced flows: each asset's price change as a function of its net flow.

Notation, per asset: ``P₀`` the price at the start of the episode (after the scenario's shocks:
the price holders are first forced at), ``P`` the price at the start of a round, ``q`` a net
traded quantity (sales negative; contracts of multiplier ``m`` for futures), ``Q = |q|·m·P``
its value, ``s = sign(q)`` (selling pushes the price down, buying up), ``ADV`` the average
daily traded value, ``σ_d = σ / √252`` the daily volatility.

Models, chosen per asset by the scenario (``[[impact.models]]``, each with a selector):

* ``none``:        ``Δp/p = 0``;
* ``linear``:      ``Δp/p = s·ℓ·Q`` (``per = "value"``, ℓ per currency unit) or
  ``s·ℓ·Q / ADV`` (``per = "adv"``, ℓ per fraction of a day's volume);
* ``sqrt``:        ``Δp/p = s·κ·σ_d·√(Q / ADV)`` — the square-root law of metaorder impact
  (Tóth et al., "Anomalous price impact and the critical nature of liquidity", PRX 2011;
  κ of order one, as fitted across markets);
* ``exponential``: ``Δp/p = s·(1 − B/P)·(1 − exp(−Q/δ))`` with the floor ``B = b·P₀`` and
  ``δ = (1 − B/P₀)·c·ADV·√τ / σ_d`` fixed at ``P₀`` (Cont and Schaanning, "Fire sales, indirect
  contagion and systemic stress testing", 2017): selling drives the price towards, never
  below, ``B``: ``P⁺ = B + (P − B)·exp(−Q/δ)``.

Modes (``[impact] mode``):

* ``cumulative`` (default): the price is a function of the episode's cumulative net flow,
  ``P = P₀·(1 + Δp/p)`` at ``Q = |Σ_r q_r|·m·P₀`` with the model's current price ``P = P₀`` —
  splitting the same selling into more rounds does not move the final price (a metaorder);
* ``per_round``: each round's flow moves that round's price, compounding:
  ``P_{r+1} = P_r·(1 + Δp/p)`` at ``Q = |q_r|·m·P_r``, as round-by-round fire-sale models do.

A price change is floored at ``−(1 − 10⁻⁶)``: a linear or square-root model pushed beyond its
range leaves a tiny positive price, never zero or less.

Execution: a holder's own trades in a round are done at ``P_start + α·(P_end − P_start)``,
``α`` (``execution_point``) between the round's pre- and post-impact price: ``α = 0.5`` the mid
price, ``α = 1`` the post-impact price (the convention of Greenwood, Landier and Thesmar 2015,
whose losses are marked at the post-sale price).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, Field

from estimator.bounds import MAX_DAYS, MAX_ROUNDS, MODEL_CONFIG
from estimator.selectors import Selector

#: Lowest ``1 + Δp/p``: impact never takes a price to zero.
MIN_PRICE_RATIO = 1e-6
TRADING_DAYS = 252

_PARAMS = {
    "impact_model": pl.String,
    "impact_coefficient": pl.Float64,  # ℓ
    "impact_per_adv": pl.Boolean,
    "impact_kappa": pl.Float64,  # κ
    "impact_floor": pl.Float64,  # b = B / P₀
    "impact_c": pl.Float64,
    "impact_horizon_days": pl.Float64,  # τ
}


class _Model(BaseModel):
    model_config = MODEL_CONFIG

    select: Selector = Field(default_factory=lambda: Selector(all=True))

    def columns(self) -> dict[str, object]:
        """This model's parameter values, by column of :data:`_PARAMS`."""
        raise NotImplementedError


class NoImpact(_Model):
    model: Literal["none"] = "none"

    def columns(self) -> dict[str, object]:
        return {"impact_model": "none"}


class Linear(_Model):
    model: Literal["linear"] = "linear"
    coefficient: float = Field(ge=0, le=1e3, description="ℓ: price change per unit of flow")
    per: Literal["value", "adv"] = Field(
        "adv", description="flow in currency (value) or as a fraction of ADV (adv)"
    )

    def columns(self) -> dict[str, object]:
        return {
            "impact_model": "linear",
            "impact_coefficient": self.coefficient,
            "impact_per_adv": self.per == "adv",
        }


class SquareRoot(_Model):
    model: Literal["sqrt"] = "sqrt"
    kappa: float = Field(
        1.0, ge=0, le=100, description="κ: impact of one day's volume, in daily vols"
    )

    def columns(self) -> dict[str, object]:
        return {"impact_model": "sqrt", "impact_kappa": self.kappa}


class Exponential(_Model):
    model: Literal["exponential"] = "exponential"
    floor: float = Field(gt=0, lt=1, description="b: the price floor B as a share of P₀")
    c: float = Field(
        1.0, gt=0, le=1e4, description="market depth in days of ADV per unit of daily vol"
    )
    horizon_days: float = Field(
        1.0, gt=0, le=MAX_DAYS, description="τ: liquidation horizon in days"
    )

    def columns(self) -> dict[str, object]:
        return {
            "impact_model": "exponential",
            "impact_floor": self.floor,
            "impact_c": self.c,
            "impact_horizon_days": self.horizon_days,
        }


ImpactModel = Annotated[NoImpact | Linear | SquareRoot | Exponential, Field(discriminator="model")]


class Impact(BaseModel):
    """A scenario's price-impact settings (``[impact]``); no models means no impact."""

    model_config = MODEL_CONFIG

    method: Literal["rounds", "equilibrium"] = Field(
        "rounds",
        description="rounds of forced trades, or the fixed points of the pre-episode books "
        "(estimator/equilibrium.py; falls back to rounds where its conditions fail)",
    )
    mode: Literal["cumulative", "per_round"] = "cumulative"
    execution_point: float = Field(
        0.5, ge=0, le=1, description="α: trades execute at P_start + α·(P_end − P_start)"
    )
    max_rounds: int = Field(50, ge=1, le=MAX_ROUNDS, description="rounds of the cascade at most")
    tolerance: float = Field(
        1e-6,
        gt=0,
        lt=1,
        description="rounds: the cascade ends after a round that trades at most this share of "
        "the first round's value; equilibrium: when no price moves by more than this share",
    )
    max_iterations: int = Field(
        1000, ge=1, le=100 * MAX_ROUNDS, description="of each equilibrium search, at most"
    )
    models: list[ImpactModel] = Field(
        default_factory=list, description="each asset takes the first model that selects it"
    )

    def parameters(self, assets: pl.DataFrame) -> pl.DataFrame:
        """``asset_id`` and the impact parameters of every asset (model ``none`` where no
        entry selects it)."""
        columns = []
        for name, dtype in _PARAMS.items():
            value = pl.lit("none" if name == "impact_model" else None, dtype=dtype)
            for model in reversed(self.models):  # the first match is applied last
                given = pl.lit(model.columns().get(name), dtype=dtype)
                value = pl.when(model.select.expr()).then(given).otherwise(value)
            columns.append(value.alias(name))
        return assets.select("asset_id", *columns)


def relative_change(flow_value: pl.Expr, sign: pl.Expr, price: pl.Expr) -> pl.Expr:
    """``Δp/p`` of every model for a flow of value ``Q`` (``flow_value``), direction ``sign``
    (−1 selling, +1 buying) and current price ``P`` (``price``), on a frame with the columns of
    :meth:`Impact.parameters`, ``price_0`` (``P₀``), ``adv`` and ``vol``."""
    adv, daily_vol = pl.col("adv"), pl.col("vol") / np.sqrt(TRADING_DAYS)
    per_unit = pl.when(pl.col("impact_per_adv")).then(flow_value / adv).otherwise(flow_value)
    floor = pl.col("impact_floor") * pl.col("price_0")  # B
    depth = (  # δ = (1 − B/P₀)·c·ADV·√τ / σ_d
        (1 - pl.col("impact_floor"))
        * pl.col("impact_c")
        * adv
        * pl.col("impact_horizon_days").sqrt()
        / daily_vol
    )
    size = (
        pl.when(pl.col("impact_model") == "linear")
        .then(pl.col("impact_coefficient") * per_unit)
        .when(pl.col("impact_model") == "sqrt")
        .then(pl.col("impact_kappa") * daily_vol * (flow_value / adv).sqrt())
        .when(pl.col("impact_model") == "exponential")
        .then((1 - floor / price) * (1 - (-flow_value / depth).exp()))
        .otherwise(0.0)
    )
    return (sign * size).clip(lower_bound=MIN_PRICE_RATIO - 1)


def prices_after(state: pl.DataFrame, mode: Literal["cumulative", "per_round"]) -> pl.DataFrame:
    """``state`` with ``price_after``: the price once a round's flow has moved it.

    ``state`` has the parameter columns, ``price_0`` (``P₀``), ``price`` (``P``, start of
    the round), ``multiplier`` ``m``, ``adv``, ``vol`` and the net quantities
    ``round_quantity`` (this round's) and ``episode_quantity`` (cumulative, this round
    included); a flow's value is ``Q = |q|·m·P``.
    """
    if mode == "cumulative":
        q, base = pl.col("episode_quantity"), pl.col("price_0")
    else:
        q, base = pl.col("round_quantity"), pl.col("price")
    change = relative_change(q.abs() * pl.col("multiplier") * base, q.sign(), base)
    return state.with_columns(price_after=base * (1 + change))


def execution_price(start: pl.Expr, end: pl.Expr, alpha: float) -> pl.Expr:
    """``P_start + α·(P_end − P_start)``."""
    return start + alpha * (end - start)

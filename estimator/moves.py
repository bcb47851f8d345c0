"""Market shocks: what one shock does to the assets it selects (applied by
:mod:`estimator.shocks`), what a holder shock does to the holders it selects
(:func:`holder_columns`), and the arithmetic of a shock taken ``m`` times as far."""

from __future__ import annotations

from typing import ClassVar, Self

import polars as pl
from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from estimator.bounds import (
    MAX_RATE_CHANGE_BP,
    MAX_RETURN,
    MAX_SHOCK_MULTIPLIER,
    MAX_VOL,
    MODEL_CONFIG,
)
from estimator.errors import InputWarnings, Problem
from estimator.selectors import Selector
from rules import Book
from rules.ratings import SP_FITCH, accepted

#: Largest rating move of one shock, notches either way (the whole scale).
MAX_NOTCHES = len(SP_FITCH)


class Shock(BaseModel):
    model_config = MODEL_CONFIG

    select: Selector
    price_return: float | None = Field(None, gt=-1, le=MAX_RETURN, description="r: P ← P·(1 + r)")
    yield_change_bp: float | None = Field(
        None,
        ge=-MAX_RATE_CHANGE_BP,
        le=MAX_RATE_CHANGE_BP,
        description="Δy, bp: bonds repriced as bullets at y + Δy",
    )
    spread_change_bp: float | None = Field(
        None,
        ge=-MAX_RATE_CHANGE_BP,
        le=MAX_RATE_CHANGE_BP,
        description="Δs, bp: added to the yield change",
    )
    vol_multiplier: float | None = Field(
        None, ge=0, le=MAX_SHOCK_MULTIPLIER, description="k: σ ← max(k·σ + Δσ, 0)"
    )
    vol_change: float | None = Field(
        None, ge=-MAX_VOL, le=MAX_VOL, description="Δσ: σ ← max(k·σ + Δσ, 0)"
    )
    margin_rate_multiplier: float | None = Field(
        None, ge=0, le=MAX_SHOCK_MULTIPLIER, description="k: m ← clip(k·m + Δm, 0, 1)"
    )
    margin_rate_change: float | None = Field(
        None, ge=-1, le=1, description="Δm: m ← clip(k·m + Δm, 0, 1)"
    )
    margin_vol_elasticity: float | None = Field(
        None,
        ge=0,
        le=10,
        description="e: margin rates × (σ'/σ)^e with this shock's vol change σ → σ'",
    )
    rating_sp: str | None = Field(None, description="new S&P rating, e.g. BB+")
    rating_moodys: str | None = Field(None, description="new Moody's rating, e.g. Ba1")
    rating_fitch: str | None = Field(None, description="new Fitch rating, e.g. BB+")
    downgrade_notches: int | None = Field(
        None,
        ge=-MAX_NOTCHES,
        le=MAX_NOTCHES,
        description="move every agency rating n notches down its scale (negative: up)",
    )

    @field_validator("rating_sp", "rating_moodys", "rating_fitch")
    @classmethod
    def _known_rating(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and value not in accepted(info.field_name):
            raise ValueError(f"unknown rating {value!r} on the {info.field_name} scale")
        return value

    #: Fields that are not effects (a shock needs at least one effect).
    not_effects: ClassVar[frozenset[str]] = frozenset({"select"})

    @model_validator(mode="after")
    def _has_effect(self) -> Self:
        effects = self.model_dump(exclude=set(self.not_effects), exclude_none=True)
        if not effects:
            raise ValueError("a shock needs at least one effect (price_return, yield_change_bp, …)")
        if self.margin_vol_elasticity is not None and not self.moves_vol:
            raise ValueError(
                "margin_vol_elasticity needs a vol_multiplier or vol_change in the same shock"
            )
        return self

    @property
    def moves_vol(self) -> bool:
        return self.vol_multiplier is not None or self.vol_change is not None

    @property
    def rate_bp(self) -> float:
        return (self.yield_change_bp or 0.0) + (self.spread_change_bp or 0.0)

    def scaled_fields(self, m: Scale) -> dict[str, float | pl.Expr | None]:
        """The effects ``m`` times as large: returns, rate and vol changes times ``m``,
        multipliers ``k`` → ``max(1 + m(k − 1), 0)``; rating actions are events and stay whole.
        ``m`` is a number, or an expression: each asset's own multiple (:mod:`estimator.stack`).
        (``m·r`` must stay above −1: a price cannot fall by 100% or more.)"""
        return {
            "price_return": times(m, self.price_return),
            "yield_change_bp": times(m, self.yield_change_bp),
            "spread_change_bp": times(m, self.spread_change_bp),
            "vol_multiplier": multiplier(m, self.vol_multiplier),
            "vol_change": times(m, self.vol_change),
            "margin_rate_multiplier": multiplier(m, self.margin_rate_multiplier),
            "margin_rate_change": times(m, self.margin_rate_change),
        }

    def scaled(self, m: float) -> Shock:
        """The shock ``m`` times as large (:meth:`scaled_fields`)."""
        return self.model_copy(update=self.scaled_fields(m))


#: The holders' column of their liabilities' duration ``D_L``.
DURATION = "liability_duration"

#: The columns of what holder shocks do to a holder (:func:`holder_effects`): the extra
#: redemption rate, the margin multiplier, the share of the credit line left, the liabilities'
#: rate change and the non-tradables' growth — each with its value for a holder none selects.
REDEMPTION, MARGIN, CREDIT, DY, GROWN = (
    "hs.redemption",
    "hs.margin",
    "hs.credit",
    "hs.dy",
    "hs.grown",
)
NO_EFFECT = {REDEMPTION: 0.0, MARGIN: 1.0, CREDIT: 1.0, DY: 0.0, GROWN: 1.0}

#: A multiple of a scenario: one number, or an expression giving each row's own.
Scale = float | pl.Expr


def times(m: Scale, v: float | None) -> float | pl.Expr | None:
    return None if v is None else m * v


def clipped(x: float | pl.Expr, lower: float | None = None, upper: float | None = None) -> Scale:
    """``x`` clipped to ``[lower, upper]``, a number or an expression alike."""
    if isinstance(x, pl.Expr):
        return x.clip(lower, upper)
    if lower is not None:
        x = max(x, lower)
    return x if upper is None else min(x, upper)


def multiplier(m: Scale, k: float | None) -> float | pl.Expr | None:
    """``k → max(1 + m(k − 1), 0)``: the multiplier at ``m``, 1 at ``m = 0``."""
    return None if k is None else clipped(1 + m * (k - 1), lower=0.0)


class HolderShock(BaseModel):
    """Shocks to some holders rather than to prices: investors' redemptions, prime brokers'
    and clearing houses' margin calls by counterparty, lenders' credit-line cuts, a change in
    the discount rate of liabilities, and losses on holdings that do not trade (a bank's loan
    book, illiquid securities)."""

    #: The fields that select or date the shock rather than act.
    not_effects: ClassVar[frozenset[str]] = frozenset({"holder_types", "holder_ids"})

    model_config = MODEL_CONFIG

    holder_types: list[str] | None = Field(None, description="holder types it hits")
    holder_ids: list[str] | None = Field(None, description="holders it hits")
    redemption_rate: float | None = Field(
        None, gt=0, le=1, description="share of units redeemed, added to a redemption rule's"
    )
    margin_multiplier: float | None = Field(
        None,
        gt=0,
        le=MAX_SHOCK_MULTIPLIER,
        description="k: the holders' margin requirements × k (a broker's haircuts)",
    )
    credit_line_cut: float | None = Field(
        None, ge=0, le=1, description="share of the holders' undrawn credit lines withdrawn"
    )
    liability_rate_change_bp: float | None = Field(
        None,
        ge=-MAX_RATE_CHANGE_BP,
        le=MAX_RATE_CHANGE_BP,
        description="Δy, bp: change in the discount rate of the holders' liabilities",
    )
    non_tradable_return: float | None = Field(
        None,
        ge=-1,
        le=MAX_RETURN,
        description="r_N: the holders' non-tradable holdings N ← N·(1 + r_N)",
    )

    @model_validator(mode="after")
    def _selects_and_acts(self) -> Self:
        if not self.holder_types and not self.holder_ids:
            raise ValueError("a holder shock needs holder_types or holder_ids")
        if self.model_dump(exclude=set(self.not_effects), exclude_none=True) == {}:
            raise ValueError(
                "a holder shock needs an effect (redemption_rate, margin_multiplier, "
                "credit_line_cut, liability_rate_change_bp, non_tradable_return)"
            )
        return self

    def selected(self) -> pl.Expr:
        hit = pl.lit(False)
        if self.holder_types:
            hit = hit | pl.col("holder_type").is_in(self.holder_types)
        if self.holder_ids:
            hit = hit | pl.col("holder_id").is_in(self.holder_ids)
        return hit

    def scaled_fields(self, m: Scale) -> dict[str, float | pl.Expr | None]:
        """The effects ``m`` times as large: rates and cuts times ``m`` (at most 1),
        ``k → 1 + m(k − 1)``, the liabilities' rate change and the non-tradables' return times
        ``m``, at least −1 (all of them lost, no further). ``m`` is a number or an expression
        (each holder's own multiple)."""
        r_n = times(m, self.non_tradable_return)
        return {
            "redemption_rate": None
            if self.redemption_rate is None
            else clipped(m * self.redemption_rate, upper=1.0),
            "margin_multiplier": multiplier(m, self.margin_multiplier),
            "credit_line_cut": None
            if self.credit_line_cut is None
            else clipped(m * self.credit_line_cut, upper=1.0),
            "liability_rate_change_bp": times(m, self.liability_rate_change_bp),
            "non_tradable_return": None if r_n is None else clipped(r_n, lower=-1.0),
        }

    def scaled(self, m: float) -> HolderShock:
        """``m`` times as large (:meth:`scaled_fields`)."""
        return self.model_copy(update=self.scaled_fields(m))


def holder_effects(
    shocks: list[HolderShock],
    holders: pl.DataFrame,
    warnings: InputWarnings,
    label: str,
    fields: list[str],
    multiple: pl.Expr | None = None,
) -> dict[str, pl.Expr]:
    """What ``shocks`` do together to each holder, as expressions on the holder table keyed by
    :data:`NO_EFFECT`'s columns: the extra redemption rate (Σ rates), the margin multiplier
    (Π k), the share of the credit line left (Π(1 − cut)), the liabilities' rate change (Σ Δy
    in decimal) and the non-tradables' growth (Π(1 + r_N)); identity
    values for a holder no shock selects. A shock that selects nobody is a warning naming its
    field (``fields``, one per shock). With ``multiple`` (each holder's own multiple
    ``m > 0``) every shock is scaled by it (:meth:`HolderShock.scaled`)."""
    redemption, margin, credit, dy = pl.lit(0.0), pl.lit(1.0), pl.lit(1.0), pl.lit(0.0)
    grown = pl.lit(1.0)
    for i, shock in enumerate(shocks):
        hit = shock.selected()
        if not holders.select(hit.any()).item():
            warnings.add(Problem(label, "selects no holder", field=fields[i]))
        v = shock.scaled_fields(multiple) if multiple is not None else dict(shock)
        if v["redemption_rate"] is not None:
            redemption = redemption + pl.when(hit).then(v["redemption_rate"]).otherwise(0.0)
        if v["margin_multiplier"] is not None:
            margin = margin * pl.when(hit).then(v["margin_multiplier"]).otherwise(1.0)
        if v["credit_line_cut"] is not None:
            credit = credit * pl.when(hit).then(1 - v["credit_line_cut"]).otherwise(1.0)
        if v["liability_rate_change_bp"] is not None:
            bp = v["liability_rate_change_bp"]
            dy = dy + pl.when(hit).then(bp / 10_000).otherwise(0.0)
        if v["non_tradable_return"] is not None:
            grown = grown * pl.when(hit).then(1 + v["non_tradable_return"]).otherwise(1.0)
    return dict(zip(NO_EFFECT, (redemption, margin, credit, dy, grown), strict=True))


def holder_columns(
    shocks: list[HolderShock],
    holders: pl.DataFrame,
    warnings: InputWarnings,
    label: str,
    where: str = "holder_shocks",
    multiple: pl.Expr | None = None,
) -> dict[str, pl.Expr]:
    """The holder shocks as holder columns (:func:`holder_effects`): the redemption shock (the
    sum of the rates that select a holder, 0 for none), the margin multiplier (the product, 1
    for none), the credit line left (× Π(1 − cut)), the liabilities repriced by their duration
    ``D_L`` at the summed rate change, ``L·exp(−D_L·Σ Δy)``, and the non-tradable holdings
    compounded over the returns that select the holder, ``N·Π(1 + r_N)``."""
    fields = [f"{where}.{i}" for i in range(len(shocks))]
    e = holder_effects(shocks, holders, warnings, label, fields, multiple)
    return {
        Book.REDEMPTION_SHOCK: e[REDEMPTION],
        Book.MARGIN_MULTIPLIER: e[MARGIN],
        "credit_line": pl.col("credit_line") * e[CREDIT],
        Book.LIABILITIES: pl.col(Book.LIABILITIES) * (-pl.col(DURATION) * e[DY]).exp(),
        Book.NON_TRADABLE: pl.col(Book.NON_TRADABLE) * e[GROWN],
    }


def hit(holders: pl.DataFrame, effects: pl.DataFrame) -> pl.DataFrame:
    """``holders`` after the effects of holder shocks (``effects``: ``holder_id`` and the
    columns of :func:`holder_effects` for the holders hit): the redemption shock
    ``+ redemption``, the margin multiplier ``× margin``, the credit line ``× credit``, the
    liabilities ``× exp(−D_L·dy)`` and the non-tradable holdings ``× grown``."""
    return (
        holders.join(effects, on="holder_id", how="left")
        .with_columns(pl.col(c).fill_null(v) for c, v in NO_EFFECT.items())
        .with_columns(
            pl.col(Book.REDEMPTION_SHOCK) + pl.col(REDEMPTION),
            pl.col(Book.MARGIN_MULTIPLIER) * pl.col(MARGIN),
            pl.col("credit_line") * pl.col(CREDIT),
            pl.col(Book.LIABILITIES) * (-pl.col(DURATION) * pl.col(DY)).exp(),
            pl.col(Book.NON_TRADABLE) * pl.col(GROWN),
        )
        .drop(*NO_EFFECT)
    )

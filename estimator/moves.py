"""Market shocks: what one shock does to the assets it selects (applied by
:mod:`estimator.shocks`), and the arithmetic of a shock taken ``m`` times as far."""

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
from estimator.selectors import Selector
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

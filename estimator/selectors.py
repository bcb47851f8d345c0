"""Which assets a scenario entry (a shock, an impact model) applies to."""

from __future__ import annotations

from typing import Self

import polars as pl
from pydantic import BaseModel, Field, field_validator, model_validator

from estimator.bounds import MODEL_CONFIG
from rules.ratings import AGENCY_COLUMNS, accepted


class Selector(BaseModel):
    """Which assets a shock hits: every listed criterion must hold (lists match any entry)."""

    model_config = MODEL_CONFIG

    all: bool = False
    asset_ids: list[str] = Field(default_factory=list)
    asset_classes: list[str] = Field(default_factory=list)
    instruments: list[str] = Field(default_factory=list)
    ratings: list[str] = Field(default_factory=list, description="S&P/Fitch or Moody's, exact")

    @field_validator("ratings")
    @classmethod
    def _on_a_scale(cls, ratings: list[str]) -> list[str]:
        known = {r for column in AGENCY_COLUMNS for r in accepted(column)}
        unknown = [r for r in ratings if r not in known]
        if unknown:
            raise ValueError(
                f"not a rating on any agency's scale: {unknown} (S&P/Fitch AAA … C, SD, RD, D; "
                "Moody's Aaa … C; NR, WR)"
            )
        return ratings

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        given = [self.asset_ids, self.asset_classes, self.instruments, self.ratings]
        if not self.all and not any(given):
            raise ValueError(
                "select something: asset_ids, asset_classes, instruments, ratings or all"
            )
        return self

    def expr(self) -> pl.Expr:
        conds = [pl.lit(True)]
        if self.asset_ids:
            conds.append(pl.col("asset_id").is_in(self.asset_ids))
        if self.asset_classes:
            conds.append(pl.col("asset_class").is_in(self.asset_classes))
        if self.instruments:
            conds.append(pl.col("instrument").is_in(self.instruments))
        if self.ratings:
            rated = pl.any_horizontal(pl.col(c).is_in(self.ratings) for c in AGENCY_COLUMNS)
            conds.append(rated.fill_null(False))
        return pl.all_horizontal(conds)

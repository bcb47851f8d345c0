"""Which assets a scenario entry (a shock, an impact model) applies to."""

from __future__ import annotations

from typing import Self

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rules.ratings import AGENCY_COLUMNS


class Selector(BaseModel):
    """Which assets a shock hits: every listed criterion must hold (lists match any entry)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    all: bool = False
    asset_ids: list[str] = Field(default_factory=list)
    asset_classes: list[str] = Field(default_factory=list)
    instruments: list[str] = Field(default_factory=list)
    ratings: list[str] = Field(default_factory=list, description="S&P/Fitch or Moody's, exact")

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

"""Scenarios: named market shocks applied to the asset table, in file order, compounding.

A shock's effects on the selected assets (price returns, yield and spread changes, volatility and
margin changes, rating actions) are applied by :mod:`estimator.shocks`.

Holder shocks (``[[holder_shocks]]``) hit funding, not prices, for holders selected by type or
id: an extra redemption rate (added to a ``redemption`` rule's), a margin multiplier (the
holders' margin requirements × k: a broker raising its haircuts for a kind of client), a cut
of their undrawn credit lines, and a change in the discount rate of their liabilities.

Index changes (``[[index_changes]]``) delete a member, add an asset with a weight, or reweight a
member of one of the market's indices, effective on a day of the scenario
(:mod:`estimator.indices` has the arithmetic).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal, Self

import polars as pl
from pydantic import (
    BaseModel,
    Field,
    field_validator,
    model_validator,
)

from estimator import dates
from estimator.bounds import (
    MAX_DAYS,
    MODEL_CONFIG,
    repeated,
)
from estimator.days import Days
from estimator.errors import InputWarnings
from estimator.gamma import GammaProfile
from estimator.impact import Impact
from estimator.moves import HolderShock, Shock, holder_columns
from estimator.path import MarketPath, Schedule
from estimator.paths import DEFAULT_MARKET
from estimator.published import Published
from estimator.toml_files import load_toml
from estimator.trend import TrendStart
from rules import index_column


class IndexChange(BaseModel):
    """One index event: a deletion, an addition with its weight, or a new weight for a member."""

    model_config = MODEL_CONFIG

    index_id: str = Field(min_length=1)
    asset_id: str = Field(min_length=1)
    action: Literal["delete", "add", "reweight"]
    weight: float | None = Field(
        None, gt=0, le=1, description="new weight (add, reweight) at the scenario's prices"
    )
    effective_day: int = Field(
        0, ge=0, le=MAX_DAYS, description="trading day the change takes effect"
    )
    effective_date: dt.date | None = Field(
        None,
        description="on a dated path: the date the change takes effect; the index's funds trade "
        "at the close of the trading day before it",
    )

    @model_validator(mode="after")
    def _one_day(self) -> Self:
        if self.effective_date is not None and self.effective_day:
            raise ValueError("give effective_day or effective_date, not both")
        return self

    @model_validator(mode="after")
    def _weight_given(self) -> Self:
        if self.action == "delete" and self.weight is not None:
            raise ValueError("a deletion takes no weight (the member's new weight is 0)")
        if self.action != "delete" and self.weight is None:
            raise ValueError(f"{self.action} needs the new weight")
        return self


class Scenario(BaseModel):
    """A named set of shocks and index changes, and the market bundle it runs on."""

    model_config = MODEL_CONFIG

    name: str = Field(min_length=1)
    description: str = ""
    market: str = Field(DEFAULT_MARKET, description="bundle name shipped with the tool, or a path")
    shocks: list[Shock] = Field(default_factory=list)
    index_changes: list[IndexChange] = Field(default_factory=list)
    holder_shocks: list[HolderShock] = Field(
        default_factory=list,
        description="redemptions, margin multipliers and credit-line cuts by holder type or id",
    )
    dealer_gamma: list[GammaProfile] = Field(
        default_factory=list,
        description="the options dealers' gamma per underlying when the scenario starts "
        "(estimator/gamma.py), in place of the market's",
    )
    trend_start: list[TrendStart] = Field(
        default_factory=list,
        description="trailing returns of the selected assets when the scenario starts, for "
        "trend followers (estimator/trend.py)",
    )
    impact: Impact = Field(default_factory=Impact, description="price impact of the flows")
    lender_losses: bool = Field(
        False, description="book an insolvent holder's shortfall as its lender's loss"
    )
    days: Days | None = Field(
        None, description="the day clock: horizons, grace periods, caps, temporary impact"
    )
    path: MarketPath | None = Field(
        None, description="the market's moves on dated trading days (estimator/path.py)"
    )
    published: list[Published] = Field(
        default_factory=list,
        description="published figures of what happened, to set the estimate beside "
        "(estimator/published.py, `forced-flow backtest`)",
    )
    attribution: Literal["cascade", "glt"] = Field(
        "cascade",
        description="'glt' adds Greenwood, Landier and Thesmar's first-order measures of the "
        "pre-shock book (estimator/glt.py) to the cascade's own; it needs linear impact",
    )

    @field_validator("name")
    @classmethod
    def _a_folder_name(cls, name: str) -> str:
        """The name is the default report folder's (``reports/<name>``): one path part."""
        if name in (".", "..") or name.startswith(".") or any(c in name for c in "/\\\0"):
            raise ValueError(
                "a scenario's name is its report folder's: no '/', '\\' or leading '.'"
            )
        return name

    @model_validator(mode="before")
    @classmethod
    def _a_path_runs_on_days(cls, data: Any) -> Any:
        """A dated path runs on the day clock: its default ``[days]`` where none is given."""
        if isinstance(data, dict) and data.get("path") is not None and data.get("days") is None:
            return {**data, "days": {}}
        return data

    @property
    def cascades(self) -> bool:
        """Whether the scenario runs in rounds: prices move, or losses pass to lenders."""
        return bool(self.impact.models) or self.lender_losses or self.days is not None

    def scaled(self, m: float, *, events: bool = True) -> Scenario:
        """The scenario along its own direction, ``m`` times as far (:meth:`Shock.scaled`), in
        one round (:meth:`one_round`). Holder shocks scale as :meth:`HolderShock.scaled` and
        are dropped at ``m = 0``. Rating actions and index changes are events, applied whole
        for any ``m > 0`` and for ``m = 0`` with ``events`` (the events alone); ``m = 0``
        without ``events`` is the market as it is."""
        if m == 0 and not events:
            shocks, changes = [], []
        else:
            shocks, changes = [s.scaled(m) for s in self.shocks], list(self.index_changes)
        return self.one_round().model_copy(
            update={
                "shocks": shocks,
                "index_changes": changes,
                "holder_shocks": [h.scaled(m) for h in self.holder_shocks] if m > 0 else [],
            }
        )

    def compounded(self, schedule: Schedule) -> Scenario:
        """The one-shot version of a dated path: every day's moves, in date order, after the
        scenario's own shocks, compounding as shocks do, and every day's holder shocks after
        the scenario's; no path."""
        moves = [shock for day in sorted(schedule.shocks) for shock in schedule.shocks[day]]
        hits = [h for day in sorted(schedule.holder_shocks) for h in schedule.holder_shocks[day]]
        update = {
            "shocks": [*self.shocks, *moves],
            "holder_shocks": [*self.holder_shocks, *hits],
            "path": None,
        }
        return self.model_copy(update=update)

    def one_round(self) -> Scenario:
        """The same shocks in one round: no price impact, lender losses, day clock or path."""
        update = {"impact": Impact(), "lender_losses": False, "days": None, "path": None}
        return self.model_copy(update=update)

    def holder_columns(
        self,
        holders: pl.DataFrame,
        warnings: InputWarnings,
        label: str,
        multiple: pl.Expr | None = None,
    ) -> dict[str, pl.Expr]:
        """The scenario's holder shocks as holder columns (:func:`moves.holder_columns`)."""
        return holder_columns(
            self.holder_shocks, holders, warnings, label, "holder_shocks", multiple
        )

    @property
    def max_multiple(self) -> float:
        """The largest multiple the scenario's price returns allow: ``m·r > −1`` for each return
        ``r`` (∞ without falling prices). Non-tradables' returns do not bound it: scaled, they
        stop at −1 (:meth:`HolderShock.scaled`)."""
        falls = [-s.price_return for s in self.shocks if (s.price_return or 0.0) < 0]
        return 1 / max(falls) if falls else float("inf")

    @property
    def index_days(self) -> dict[str, int]:
        """The day each index's changes trade, by its weight-change column (the latest of its
        changes' ``effective_day``)."""
        out: dict[str, int] = {}
        for change in self.index_changes:
            column = index_column(change.index_id, "dw")
            out[column] = max(out.get(column, 0), change.effective_day)
        return out

    @model_validator(mode="after")
    def _temporary_impact_is_cumulative(self) -> Self:
        if (
            self.days is not None
            and self.days.permanent_share < 1
            and self.impact.mode != "cumulative"
        ):
            raise ValueError(
                "days.permanent_share < 1 (temporary impact) needs impact.mode = 'cumulative'"
            )
        return self

    @model_validator(mode="after")
    def _dates_need_a_path(self) -> Self:
        dated = [i for i, c in enumerate(self.index_changes) if c.effective_date is not None]
        if dated and self.path is None:
            raise ValueError(
                f"index_changes.{dated[0]}.effective_date needs a dated path ([path] start = …)"
            )
        if self.path is not None:
            for i in dated:
                day = self.index_changes[i].effective_date
                assert day is not None
                if day <= self.path.start:
                    raise ValueError(
                        f"index_changes.{i}.effective_date {day} must be after the path's start, "
                        f"{self.path.start}: its funds trade the trading day before"
                    )
                try:
                    dates.is_trading_day(self.path.calendar, day)
                except ValueError as exc:
                    raise ValueError(f"index_changes.{i}.effective_date: {exc}") from exc
        return self

    def dated_changes(self) -> list[IndexChange]:
        """The index changes with a date as the day they trade: the trading day before their
        ``effective_date``, counted in trading days from the path's start."""
        if self.path is None:
            return list(self.index_changes)
        out = []
        for change in self.index_changes:
            if change.effective_date is None:
                out.append(change)
                continue
            before = change.effective_date - dt.timedelta(days=1)
            days = dates.trading_days(self.path.calendar, self.path.start, before)
            update = {"effective_day": len(days) - 1, "effective_date": None}
            out.append(change.model_copy(update=update))
        return out

    @model_validator(mode="after")
    def _published_ids_unique(self) -> Self:
        twice = repeated(p.id for p in self.published)
        if twice:
            raise ValueError(f"published figures need distinct ids; repeated: {twice}")
        return self

    @model_validator(mode="after")
    def _one_profile_per_underlying(self) -> Self:
        twice = repeated(p.asset_id for p in self.dealer_gamma)
        if twice:
            raise ValueError(f"one dealer_gamma profile per underlying; repeated: {twice}")
        return self

    @model_validator(mode="after")
    def _one_change_per_member(self) -> Self:
        twice = repeated((c.index_id, c.asset_id) for c in self.index_changes)
        if twice:
            raise ValueError(f"at most one change per index member; repeated: {twice}")
        return self

    def changes_frame(self) -> pl.DataFrame:
        """The index changes as a frame, ``entry`` = position in the file."""
        schema = {
            "index_id": pl.String,
            "asset_id": pl.String,
            "action": pl.String,
            "weight": pl.Float64,
            "effective_day": pl.Int64,
        }
        rows = [c.model_dump() for c in self.index_changes]
        frame = (
            pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
        )
        return frame.with_row_index("entry").with_columns(pl.col("entry").cast(pl.Int64))


def load_scenario(path: Path) -> Scenario:
    return load_toml(path, Scenario)

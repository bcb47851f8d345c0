"""A scenario as a dated path: the market's moves day by day over an episode.

``[path]`` in a scenario gives day 0's date (``start``, a trading day), the exchange calendar
the days follow (:mod:`estimator.dates`), and moves on dates: inline (``[[path.moves]]``, a
shock with a ``date``) and/or from a long table (``file``, CSV or Parquet, relative to the
scenario file) with one row per ``date, target, field, value`` (and optionally ``source``,
where the number comes from, not read) — ``target`` an asset id or a
name from ``[path.targets]`` (a selector), ``field`` a shock's numeric field (``price_return``,
``yield_change_bp``, ``spread_change_bp``, ``vol_multiplier``, ``vol_change``,
``margin_rate_multiplier``, ``margin_rate_change``, ``margin_vol_elasticity``,
``downgrade_notches``). A date's moves on one target are one shock; moves of one date apply in
file order, inline moves before the table's. A ``history`` table (the same columns,
``price_return`` only, every trading day from a target's first date to the day before the
start) moves no price: it starts the funds' volatility estimators (:mod:`estimator.realised`)
and sizes the funds that target them (:mod:`estimator.warmup`). Holder shocks may be dated too
(``[[path.holder_shocks]]``, a holder shock with a ``date``): a redemption wave, a broker's
margin call.

Day 0's moves join the scenario's own shocks (applied before anything trades). The moves of a
later day ``d`` apply at its open (:func:`day_moves`): every price ``P`` moves to ``P·(1 + r)``
on top of the impact standing (``P₀`` of the impact model moves with it), bonds reprice at
their new yields, volatilities, risk-model rows, margin rates and ratings take their new
values, and the books are marked: holdings lose ``−Σ q·m·ΔP`` (booked as the path's loss,
``loss_path``), futures settle the move to cash as variation margin. A later day's holder
shocks apply at its open too: redemption rates add to the holders' (their funds pay the rise
in the next round), margin multipliers and credit-line cuts compound, liabilities reprice,
non-tradable holdings move (their loss booked as ``loss_path``). The episode runs through
its last date (``end``, by default the last move's) even on days no one is forced.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections import defaultdict
from collections.abc import Collection
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import polars as pl
from pydantic import BaseModel, Field, ValidationError, model_validator

from estimator import dates
from estimator.bounds import MAX_VOL, MODEL_CONFIG
from estimator.errors import InputError, Problem
from estimator.moves import HolderShock, Shock
from estimator.realised import RETURNS
from estimator.selectors import Selector
from estimator.tables import read_rows
from estimator.toml_files import validation_problems

#: The numeric fields of a shock a path table may move.
FIELDS = (
    "price_return",
    "yield_change_bp",
    "spread_change_bp",
    "vol_multiplier",
    "vol_change",
    "margin_rate_multiplier",
    "margin_rate_change",
    "margin_vol_elasticity",
    "downgrade_notches",
)
#: The columns of a path table, and the one it may add: where each row's number comes from.
COLUMNS = ("date", "target", "field", "value")
OPTIONAL = ("source",)


class Move(Shock):
    """A shock on a date of the path."""

    not_effects: ClassVar[frozenset[str]] = frozenset({"select", "date"})

    date: dt.date


class HolderMove(HolderShock):
    """A holder shock on a date of the path: a redemption wave, a broker's margin call, a
    lender's cut."""

    not_effects: ClassVar[frozenset[str]] = frozenset({"holder_types", "holder_ids", "date"})

    date: dt.date


class StartingVol(BaseModel):
    """``[[path.starting_vol]]``: where the days before an episode are not given, the level the
    funds' volatility estimators start from for some assets — ``σ₀`` annualised, in place of
    the risk model's — with its source and whether it is an estimate or an assumption."""

    model_config = MODEL_CONFIG

    select: Selector
    vol: float = Field(
        ge=1e-3, le=MAX_VOL, description="σ₀: the estimators' starting level (0.1% to 1000%)"
    )
    source: str = Field(min_length=1, description="where the level comes from")
    label: Literal["estimate", "assumption"] = Field(description="estimate or assumption")


class MarketPath(BaseModel):
    """``[path]``: the dates of an episode and the market's moves on them."""

    model_config = MODEL_CONFIG

    start: dt.date = Field(description="day 0's date: a trading day")
    calendar: dates.Calendar = Field("XNYS", description="the exchange calendar days follow")
    end: dt.date | None = Field(None, description="the last date (default: the last move's)")
    file: str | None = Field(
        None, description="a long table of moves (date, target, field, value), CSV or Parquet"
    )
    targets: dict[str, Selector] = Field(
        default_factory=dict, description="named selectors the table's target column may use"
    )
    history: str | None = Field(
        None,
        description="a long table of daily price returns before the start (same columns, field "
        "price_return): the funds' estimators start from them; no price moves",
    )
    starting_vol: list[StartingVol] = Field(
        default_factory=list,
        description="the estimators' starting levels σ₀ by selector (later entries win), "
        "where the risk model's would otherwise be used",
    )
    moves: list[Move] = Field(default_factory=list, description="moves on dates, inline")
    holder_shocks: list[HolderMove] = Field(
        default_factory=list,
        description="holder shocks on dates: redemption waves, margin calls, credit-line cuts",
    )

    @model_validator(mode="after")
    def _on_trading_days(self) -> Self:
        named = [("start", self.start)] + ([("end", self.end)] if self.end else [])
        named += [(f"moves.{i}.date", m.date) for i, m in enumerate(self.moves)]
        named += [(f"holder_shocks.{i}.date", h.date) for i, h in enumerate(self.holder_shocks)]
        for where, day in named:
            try:
                open_ = dates.is_trading_day(self.calendar, day)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from exc
            if not open_:
                raise ValueError(f"{where}: {day} is not a trading day on {self.calendar}")
            if day < self.start:
                raise ValueError(f"{where}: {day} is before the start, {self.start}")
            if self.end is not None and day > self.end:
                raise ValueError(f"{where}: {day} is after the end, {self.end}")
        return self


class Schedule(BaseModel):
    """A path resolved: its trading days in order (day ``d`` is ``days[d]``), the shocks of
    each day that has any, and its holder shocks by day."""

    model_config = MODEL_CONFIG

    calendar: dates.Calendar
    days: list[dt.date]
    shocks: dict[int, list[Shock]]
    holder_shocks: dict[int, list[HolderShock]] = Field(default_factory=dict)
    history: list[Move] = Field(default_factory=list, description="price returns before day 0")
    starting_vol: list[StartingVol] = Field(
        default_factory=list, description="the estimators' starting levels by selector"
    )


def schedule(
    path: MarketPath, folder: Path | None, assets: Collection[str] | None = None
) -> Schedule:
    """The path's days and each day's shocks, its table read from ``folder`` (the scenario
    file's; the working directory for a scenario given as an object), its targets checked
    against ``assets`` (the market's asset ids) where given."""
    moves = list(path.moves)
    if path.file is not None:
        moves += read_moves(Path(folder or ".") / path.file, path, assets)
    dated = [m.date for m in moves] + [h.date for h in path.holder_shocks]
    days = dates.trading_days(path.calendar, path.start, max([*dated, path.end or path.start]))
    index = {day: d for d, day in enumerate(days)}
    shocks: dict[int, list[Shock]] = defaultdict(list)
    for move in moves:
        shocks[index[move.date]].append(Shock(**move.model_dump(exclude={"date"})))
    holder_shocks: dict[int, list[HolderShock]] = defaultdict(list)
    for h in path.holder_shocks:
        holder_shocks[index[h.date]].append(HolderShock(**h.model_dump(exclude={"date"})))
    history = []
    if path.history is not None:
        history = read_moves(Path(folder or ".") / path.history, path, assets, history=True)
    return Schedule(
        calendar=path.calendar,
        days=days,
        shocks=dict(shocks),
        holder_shocks=dict(holder_shocks),
        history=history,
        starting_vol=path.starting_vol,
    )


def starting_vols(assets: pl.DataFrame, levels: list[StartingVol]) -> pl.DataFrame:
    """``asset_id`` and ``vol_start`` for the assets some entry of ``levels`` selects (the
    last such entry's ``vol``)."""
    schema = {"asset_id": pl.String, "vol_start": pl.Float64}
    if not levels:
        return pl.DataFrame(schema=schema)
    parts = [
        assets.filter(v.select.expr()).select("asset_id", order=pl.lit(k), vol_start=pl.lit(v.vol))
        for k, v in enumerate(levels)
    ]
    return (
        pl.concat(parts)
        .sort("order")
        .group_by("asset_id", maintain_order=True)
        .agg(pl.col("vol_start").last())
        .sort("asset_id")
        .cast(schema)  # type: ignore[arg-type]
    )


def history_returns(assets: pl.DataFrame, history: list[Move]) -> pl.DataFrame:
    """``asset_id`` × :data:`estimator.realised.RETURNS`: each asset's daily returns over the
    history's trading days, oldest first (two targets on one asset and day compound,
    ``(1 + r₁)(1 + r₂) − 1``; null on a day no target gives it), for the assets it covers."""
    schema = {"asset_id": pl.String, RETURNS: pl.List(pl.Float64)}
    days = sorted({m.date for m in history})
    if not days:
        return pl.DataFrame(schema=schema)
    index = {day: k for k, day in enumerate(days)}
    parts = [
        assets.filter(m.select.expr()).select(
            "asset_id", k=pl.lit(index[m.date]), growth=pl.lit(1 + (m.price_return or 0.0))
        )
        for m in history
    ]
    moved = pl.concat(parts).group_by("asset_id", "k").agg(pl.col("growth").product())
    grid = (
        moved.select("asset_id")
        .unique()
        .join(pl.DataFrame({"k": range(len(days))}, schema={"k": pl.Int32}), how="cross")
    )
    return (
        grid.join(moved.with_columns(pl.col("k").cast(pl.Int32)), on=["asset_id", "k"], how="left")
        .sort("asset_id", "k")
        .group_by("asset_id", maintain_order=True)
        .agg((pl.col("growth") - 1).alias(RETURNS))
    )


def read_moves(
    source: Path, path: MarketPath, assets: Collection[str] | None = None, *, history: bool = False
) -> list[Move]:
    """The moves of a path table, in its order (a date's moves on one target are one
    :class:`Move`); every problem names the file, its row and field. With ``assets``, a
    target that is neither a name of ``[path.targets]`` nor one of them is a problem too.
    A ``history`` table holds price returns of trading days before the start, every one from
    a target's first date to the day before the start."""
    label = str(source)
    rows = read_rows(source, COLUMNS, label, OPTIONAL)
    parsed = rows.with_columns(  # (a Parquet datetime reads as "YYYY-MM-DD hh:mm:ss")
        day=pl.col("date").str.strip_chars().str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False),
        number=pl.col("value").str.strip_chars().cast(pl.Float64, strict=False),
        field=pl.col("field").str.strip_chars(),
        target=pl.col("target").str.strip_chars(),
    )
    dated = parsed["day"].drop_nulls()
    first, last = path.start, max(dated.max() or path.start, path.start)
    if history:
        first, last = min(dated.min() or path.start, path.start), path.start
    try:
        open_ = dates.trading_days(path.calendar, first, last)
    except ValueError as exc:  # a date outside the calendars' years
        raise InputError([Problem(label, str(exc), field="date")]) from exc
    if history:
        open_ = [d for d in open_ if d < path.start]
    where = "before" if history else "from"
    fields = ("price_return",) if history else FIELDS
    checks = [
        (pl.col("day").is_null(), "date", "expected a date as YYYY-MM-DD"),
        (
            pl.col("day").is_not_null()
            & ~pl.col("day").is_in(pl.Series(open_, dtype=pl.Date).implode()),
            "date",
            f"not a trading day on {path.calendar} {where} the start, {path.start}",
        ),
        *_gaps(path.start, open_, history),
        (
            pl.col("day") > pl.lit(path.end or dt.date.max),
            "date",
            f"after the path's end, {path.end}",
        ),
        (pl.col("target").fill_null("") == "", "target", "a target is required"),
        (
            pl.lit(assets is not None)
            & (pl.col("target").fill_null("") != "")
            & ~pl.col("target").is_in([*path.targets, *(assets or ())]),
            "target",
            "unknown target: neither an asset id of the market nor a name of [path.targets]",
        ),
        (
            ~pl.col("field").is_in(fields).fill_null(False),
            "field",
            f"expected one of {', '.join(fields)}",
        ),
        (~pl.col("number").is_finite().fill_null(False), "value", "expected a finite number"),
        (
            pl.struct("day", "target", "field").is_duplicated() & pl.col("day").is_not_null(),
            "field",
            "given twice for this date and target",
        ),
    ]
    problems = [
        Problem(label, message, line, field)
        for bad, field, message in checks
        for (line,) in parsed.filter(bad).select("line").iter_rows()
    ]
    if problems:
        raise InputError(sorted(problems, key=lambda p: (p.row or 0, p.field or "")))
    moves = []
    groups = parsed.group_by("day", "target", maintain_order=True).agg("field", "number", "line")
    for day, target, fields, numbers, lines in groups.iter_rows():
        select = path.targets.get(target) or Selector(asset_ids=[target])
        values: dict[str, Any] = dict(zip(fields, numbers, strict=True))
        try:
            moves.append(Move(date=day, select=select, **values))
        except ValidationError as exc:
            at = dict(zip(fields, lines, strict=True))
            for p in validation_problems(exc, label):
                field = (p.field or "").split(".")[0]
                problems.append(Problem(label, p.message, at.get(field, lines[0]), field))
    if problems:
        raise InputError(problems)
    return moves


def _gaps(start: dt.date, open_: list[dt.date], history: bool) -> list[tuple[pl.Expr, str, str]]:
    """A history's check that each target gives every trading day from its first date to the
    day before ``start`` (``open_``, the trading days before it): a missing day is a gap."""
    if not history:
        return []
    index = (
        pl.col("day")
        .cast(pl.Int64)
        .replace_strict({d.toordinal() - 719163: i for i, d in enumerate(open_)}, default=None)
    )  # (days since 1970 → position among the trading days)
    days = pl.col("day").filter(index.is_not_null()).n_unique().over("target")
    return [
        (
            (index.min().over("target") + days != len(open_)) & pl.col("day").is_not_null(),
            "date",
            f"a gap: a target's history gives every trading day from its first date to the "
            f"day before the start, {start}",
        )
    ]


def with_dates(frame: pl.DataFrame, calendar: dates.Calendar, start: dt.date) -> pl.DataFrame:
    """``frame`` with ``date`` after its ``day`` column: day ``d`` is the ``d``-th trading day
    after ``start`` (days past a path's last date included)."""
    if "day" not in frame.columns:
        return frame
    days = day_dates(calendar, start, int(frame["day"].max() or 0))
    schema = {"day": frame.schema["day"], "date": pl.Date}
    table = pl.DataFrame({"day": range(len(days)), "date": days}, schema=schema)
    at = frame.columns.index("day") + 1
    out = frame.join(table, on="day", how="left", maintain_order="left")
    return out.select(*frame.columns[:at], "date", *frame.columns[at:])


def day_dates(calendar: dates.Calendar, start: dt.date, last: int) -> list[dt.date]:
    """The dates of days ``0 … last`` of an episode that starts on ``start``."""
    return dates.trading_days(calendar, start, dates.nth_trading_day(calendar, start, last))


def write_new(table: pl.DataFrame, out: Path) -> int:
    """Write a path table a tool made (``tools/path_from_*.py``) to ``out`` — never over a file
    that is there: the exit status, 0 written, 1 refused (said on stderr)."""
    if out.exists():
        print(f"{out} exists: not overwritten", file=sys.stderr)
        return 1
    table.write_csv(out)
    print(f"wrote {table.height} rows to {out}")
    return 0

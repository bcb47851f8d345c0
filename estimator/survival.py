"""Distance to forced selling (reverse stress): how far along a scenario each holder can go
before a rule forces it to trade, and the cash that would keep it off the chain.

Along a scenario's own direction the market at multiple ``m`` is :meth:`Scenario.scaled`:
returns, rate changes and holder shocks' rates times ``m``, vol, margin and holder margin
multipliers ``k → 1 + m(k − 1)``; rating actions and index changes are events, whole for any
``m > 0``. A dated path (:mod:`estimator.path`) is searched as its one-shot version, every
day's moves compounded into the shocks (:meth:`Scenario.compounded`): one-shot, so a fund
that estimates volatility from realised returns reads the risk model as the shocks leave it, as
on any one-shot scenario. A holder is *forced* at ``m``
when, in one round at those prices (no price impact), its status is neither ``ok`` nor ``cured``:
some rule makes it trade (or it is insolvent) after every cure it may draw.

* **First forcing multiple** ``m*``: where the holder is first forced on a grid of ``K``
  points over ``(0, M]``, refined by bisection within that cell to ``|hi − lo| ≤ tol·max(1, hi)``:
  ``lo`` is not forced, ``hi`` (reported) is. When being forced is monotone in ``m`` (as for a
  leverage or margin limit under a falling market) this is the smallest such ``m``; otherwise a
  forced window narrower than a grid cell can be stepped over. ``forced_when`` says which:
  ``already`` (forced before any shock, ``m* = 0``), ``events`` (forced by the scenario's rating
  actions and index changes alone, ``m* = 0``), ``moves`` (``m* > 0``), or null (not forced up
  to ``M``, or to the largest multiple the scenario's prices allow; ``m*`` null). The rules
  that force it at ``m*`` and the price of its largest position there (e.g. a concentrated
  margin account's margin-call price) are reported beside.
* **Cure cash** ``c*``: the smallest cash that, added to the holder's account now (before the
  scenario), leaves it not forced under the whole scenario (``m = 1``): 0 when it is not forced,
  null when no amount up to ``2¹⁰`` times its gross assets does (a rule cash cannot satisfy,
  such as an index change or re-levering). Cash added now also raises the equity before the
  scenario, from which drawdowns and flows are measured (``reference_equity`` where the holder
  has none of its own). Found by doubling, then bisection to a relative ``tol``; every
  holder's amount is searched at once, each on its own account.

Whether a holder is forced does not depend on how it would trade, so the search runs pro-rata.
Holders do not reach one another in such a round, so every evaluation puts many (holder,
multiple, cash) points in one round (:mod:`estimator.stack`): the whole grid at once, every
doubling at once, and three levels of every bracket's bisection tree at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import polars as pl

from estimator import book as bk
from estimator import path, stack
from estimator.errors import InputError, InputWarnings, Problem, RunError
from estimator.inputs import load_inputs, prepare
from estimator.mandates import Execution
from estimator.manifest import SurvivalManifest
from estimator.market import Market
from estimator.report import Format, canonical, write_reports
from estimator.rounds import evaluate_round
from estimator.scenario import Scenario
from estimator.search import Search
from estimator.shocks import apply_scenario
from estimator.status import NOT_FORCED

#: Below this a bisection would split floats finer than they are.
#: Columns of the survival table, in order.
COLUMNS = [
    "holder_id",
    "holder_type",
    "mandate",
    "status_at_scenario",
    "forced_multiple",
    "forced_when",
    "forced_by",
    "level_asset",
    "level_price_before",
    "level_price",
    "level_return",
    "cure_cash",
    "equity_pre",
]


class _Probe:
    """One-round evaluations of a market's holders along a scenario (pro-rata, no impact),
    many points to a round (:mod:`estimator.stack`)."""

    def __init__(
        self, spec: Scenario, market: Market, progress: Callable[[int], None] | None = None
    ) -> None:
        # one round without lender losses: a lender outside a subset of holders is no matter
        holders = market.holders
        if "lender" in holders.columns:
            holders = holders.with_columns(pl.lit(None, dtype=pl.String).alias("lender"))
        self.spec, self.market = spec, dataclasses.replace(market, holders=holders)
        self.count = 0  # one-round evaluations made
        self.points = 0  # (holder, multiple, cash) points they evaluated
        self.progress = progress  # told the evaluations made so far
        self.searched_to = 0.0  # the largest multiple the grid reached

    def shocked(self, wanted: pl.DataFrame) -> pl.DataFrame:
        """The assets ``wanted`` (multiple, asset_id) at their multiples (events included):
        (multiple, asset_id, price, …), all in one pass."""
        table = stack.copies(wanted[stack.MULTIPLE])
        held = wanted.join(table, on=stack.MULTIPLE).select(stack.COPY, "asset_id")
        market, spec = stack.stacked_assets(self.market, self.spec, table, held)
        shocked = apply_scenario(
            market.assets,
            spec,
            spec.name,
            InputWarnings(),
            market.index_weights,
            multiple=stack.MULTIPLE,
        )
        return shocked.with_columns(stack.base("asset_id"))

    def reaches(self, m: float) -> bool:
        """Whether the scenario at multiple ``m`` has prices (a rate shock that far may drive
        a bond's price to zero)."""
        spec = self.spec.scaled(m)
        try:
            apply_scenario(
                self.market.assets, spec, spec.name, InputWarnings(), self.market.index_weights
            )
        except InputError:
            return False
        return True

    def statuses(self, points: pl.DataFrame, *, events: bool = True) -> pl.DataFrame:
        """``points`` (holder_id, multiple, cash: :data:`estimator.stack.POINT_SCHEMA`) with
        forced, forced_by and status: each holder at its multiple of the scenario
        (:meth:`Scenario.scaled`) with its cash added to its account before the scenario, in
        one round. Without ``events`` the multiples are 0 and the market is as it is."""
        self.count += 1
        self.points += points.height
        if self.progress is not None:
            self.progress(self.count)
        market, spec = stack.stacked(self.market, self.spec, points, events=events)
        shocked, prepared = prepare(
            spec, market, spec.name, InputWarnings(), multiple=stack.MULTIPLE
        )
        result = evaluate_round(
            shocked, prepared, market.positions, market.mandates, execution=Execution.PRO_RATA
        )
        found = stack.points_of(
            result.holders.select(
                "holder_id",
                forced=~pl.col("status").is_in(NOT_FORCED),
                forced_by=pl.when(pl.col("status") == "insolvent")
                .then(pl.lit("insolvency"))
                .when(pl.col("binding_rules") != "")
                .then("binding_rules")
                .otherwise("triggered_rules"),
                status="status",
            )
        )
        out = (
            points.with_row_index("point")
            .join(found.drop("holder_id"), on="point", how="left")
            .sort("point")
            .drop("point")
        )
        if out["forced"].null_count():  # every point is a holder of the market
            raise RunError("a survival point was left out of its round")
        return out


def _at(ids: pl.Series, multiple: float | pl.Expr, cash: float | pl.Expr = 0.0) -> pl.DataFrame:
    """Points of holders ``ids`` at ``multiple`` with ``cash`` added."""
    return ids.to_frame("holder_id").select(
        "holder_id",
        pl.lit(multiple, dtype=pl.Float64).alias(stack.MULTIPLE),
        pl.lit(cash, dtype=pl.Float64).alias("cash"),
    )


def _narrow(brackets: pl.DataFrame, width: pl.Series) -> pl.Series:
    """Brackets (lo, hi) done: at most ``width`` wide, or too narrow for a float between."""
    lo, hi = brackets["lo"], brackets["hi"]
    mid = (lo + hi) / 2
    return (hi - lo <= width) | (mid <= lo) | (mid >= hi)


#: Levels of the bisection tree evaluated in one round: ``2^L − 1`` points per bracket.
TREE_LEVELS = 3


def _bisect(
    probe: _Probe,
    brackets: pl.DataFrame,
    width: pl.Expr,
    at: Callable[[pl.Expr], tuple[pl.Expr, pl.Expr]],
    *,
    up_when_forced: bool,
    each: bool = True,
) -> pl.DataFrame:
    """Brackets (holder_id, lo, hi, by) bisected until narrow (:func:`_narrow` at ``width``):
    at the midpoint ``x``, the holder's point ``at(x)`` (multiple, cash); forced there, the
    bracket keeps its upper half if ``up_when_forced`` (more cash needed), else its lower half
    (and ``by`` the rules that force it). ``each``: a bracket stops once narrow; otherwise
    every bracket is halved until all are narrow.

    Each round evaluates the next :data:`TREE_LEVELS` levels of every bracket's bisection tree
    at once — node ``i`` of interval ``(l, h)`` has midpoint ``(l + h)/2`` and children
    ``2i`` (lower half) and ``2i + 1`` — then walks each bracket down the tree: the brackets
    and the midpoints are those of one bisection step at a time, to the last bit."""
    done: list[pl.DataFrame] = []

    def settled(frame: pl.DataFrame) -> tuple[pl.DataFrame, bool]:
        narrow = _narrow(frame, frame.select(width).to_series())
        if not each:
            return frame, bool(narrow.all())
        done.append(frame.filter(narrow).select("holder_id", "lo", "hi", "by"))
        rest = frame.filter(~narrow)
        return rest, rest.is_empty()

    mid = (pl.col("lo") + pl.col("hi")) / 2
    while True:
        brackets, stop = settled(brackets)
        if stop:
            break
        level = brackets.select("holder_id", "lo", "hi", node=pl.lit(1, dtype=pl.Int64))
        tree = [level]
        for _ in range(TREE_LEVELS - 1):
            level = pl.concat(
                [
                    level.with_columns(hi=mid, node=2 * pl.col("node")),
                    level.with_columns(lo=mid, node=2 * pl.col("node") + 1),
                ]
            )
            tree.append(level)
        nodes = pl.concat(tree).select("holder_id", "node", x=mid)
        multiple, cash = at(pl.col("x"))
        now = probe.statuses(
            nodes.select("holder_id", multiple.alias(stack.MULTIPLE), cash.alias("cash"))
        )
        seen = nodes.hstack(now.select("forced", "forced_by"))
        lower = pl.col("forced") if not up_when_forced else ~pl.col("forced")
        brackets = brackets.with_columns(node=pl.lit(1, dtype=pl.Int64))
        for depth in range(TREE_LEVELS):
            if depth:
                brackets, stop = settled(brackets)
                if stop:
                    break
            brackets = brackets.join(seen, on=["holder_id", "node"]).select(
                "holder_id",
                lo=pl.when(lower).then("lo").otherwise("x"),
                hi=pl.when(lower).then("x").otherwise("hi"),
                by=pl.when(lower & pl.col("forced")).then("forced_by").otherwise("by"),
                node=2 * pl.col("node") + (~lower).cast(pl.Int64),
            )
        brackets = brackets.drop("node", strict=False)
        if stop:
            break
    return pl.concat(done) if each else brackets


def _first_forced(probe: _Probe, search: Search, ids: pl.Series) -> pl.DataFrame:
    """(holder_id, forced_multiple, forced_when, forced_by): before any shock, on the events
    alone, then on the grid (every point in one round) and by bisection of every bracket at
    once."""
    found, left = [], ids
    for when, events in (("already", False), ("events", True)):
        if left.is_empty():
            break
        now = probe.statuses(_at(left, 0.0), events=events)
        found.append(
            now.filter("forced").select(
                "holder_id",
                forced_multiple=pl.lit(0.0),
                forced_when=pl.lit(when),
                forced_by="forced_by",
            )
        )
        left = now.filter(~pl.col("forced"))["holder_id"]
    top = min(search.max_multiple, probe.spec.max_multiple * (1 - 1e-9))
    step = top / search.grid
    grid = [k * step for k in range(1, search.grid + 1)]
    # the grid stops at the first multiple without prices (a rate shock that far may drive a
    # bond's price to zero)
    reached = next((k for k, m in enumerate(grid) if not probe.reaches(m)), len(grid))
    grid = grid[:reached]
    probe.searched_to = grid[-1] if grid else 0.0
    schema = {"holder_id": pl.String, "lo": pl.Float64, "hi": pl.Float64, "by": pl.String}
    open_ = pl.DataFrame(schema=schema)
    if grid and not left.is_empty():
        points = left.to_frame("holder_id").join(pl.DataFrame({stack.MULTIPLE: grid}), how="cross")
        now = probe.statuses(points.with_columns(cash=pl.lit(0.0)))
        open_ = (  # the first grid point where each holder is forced
            now.filter("forced")
            .sort("holder_id", stack.MULTIPLE)
            .group_by("holder_id", maintain_order=True)
            .first()
            .select(
                "holder_id", lo=pl.col(stack.MULTIPLE) - step, hi=stack.MULTIPLE, by="forced_by"
            )
        )
    width = search.tolerance * pl.col("hi").clip(lower_bound=1)
    done = _bisect(probe, open_, width, lambda mid: (mid, pl.lit(0.0)), up_when_forced=False)
    refined = done.select(
        "holder_id", forced_multiple="hi", forced_when=pl.lit("moves"), forced_by="by"
    )
    return pl.concat([*found, refined])


def _cure(probe: _Probe, search: Search, forced: pl.DataFrame) -> pl.DataFrame:
    """(holder_id, cure_cash) for holders forced at ``m = 1`` (``forced``: holder_id and
    gross_assets): doubling from the gross assets (every doubling in one round), then
    bisection."""
    ids = forced["holder_id"]
    if ids.is_empty():
        return pl.DataFrame(schema={"holder_id": pl.String, "cure_cash": pl.Float64})
    doublings = pl.DataFrame({"doubling": range(search.cure_doublings + 1)})
    points = forced.join(doublings, how="cross").select(
        "holder_id",
        pl.lit(1.0).alias(stack.MULTIPLE),
        cash=pl.col("gross_assets").clip(1.0) * 2.0 ** pl.col("doubling").cast(pl.Float64),
    )
    now = probe.statuses(points).sort("holder_id", "cash")
    cured = (  # the first doubling that leaves each holder unforced: (lo, hi) = (half or 0, it)
        now.with_columns(lo=pl.col("cash").shift(1).over("holder_id").fill_null(0.0))
        .filter(~pl.col("forced"))
        .sort("holder_id", "cash")
        .group_by("holder_id", maintain_order=True)
        .first()
        .select("holder_id", "lo", hi="cash")
    )
    cured = _bisect(
        probe,
        cured.with_columns(by=pl.lit(None, dtype=pl.String)),
        search.tolerance * pl.col("hi"),
        lambda mid: (pl.lit(1.0), mid),
        up_when_forced=True,
        each=False,
    )
    return ids.to_frame().join(
        cured.select("holder_id", cure_cash="hi"), on="holder_id", how="left"
    )


def _levels(probe: _Probe, table: pl.DataFrame, before: pl.DataFrame) -> pl.DataFrame:
    """Each holder's largest position (by |exposure| before the scenario) and its price at the
    holder's first forcing multiple."""
    largest = (
        before.sort("holder_id", pl.col("exposure").abs(), descending=[False, True])
        .group_by("holder_id", maintain_order=True)
        .first()
        .select("holder_id", level_asset="asset_id", level_price_before="price")
    )
    out = table.join(largest, on="holder_id", how="left")
    wanted = out.filter(
        pl.col("forced_multiple").is_not_null() & pl.col("level_asset").is_not_null()
    )
    if wanted.is_empty():
        out = out.with_columns(level_price=pl.lit(None, dtype=pl.Float64))
    else:
        wanted = wanted.select(
            pl.col("forced_multiple").alias(stack.MULTIPLE), asset_id="level_asset"
        )
        prices = probe.shocked(wanted.unique()).select(
            forced_multiple=stack.MULTIPLE, level_asset="asset_id", level_price="price"
        )
        out = out.join(prices, on=["forced_multiple", "level_asset"], how="left")
    return out.with_columns(level_return=pl.col("level_price") / pl.col("level_price_before") - 1)


@dataclasses.dataclass(frozen=True)
class SurvivalResult:
    """The survival table (:data:`COLUMNS`, one row per holder) and how it was searched."""

    holders: pl.DataFrame
    scenario: Scenario
    market: str
    search: Search
    evaluations: int  # one-round evaluations the search made
    points: int  # the (holder, multiple, cash) points they evaluated
    searched_to: float  # the largest multiple searched: M, or less where prices would not allow

    @property
    def manifest(self) -> SurvivalManifest:
        return SurvivalManifest(
            scenario=self.scenario.name,
            market=self.market,
            search=dataclasses.asdict(self.search),
            evaluations=self.evaluations,
            points=self.points,
            searched_to=self.searched_to,
            holders=self.holders.height,
            forced_at_scenario=int((~self.holders["status_at_scenario"].is_in(NOT_FORCED)).sum()),
        )

    def write(self, out_dir: str | Path, fmt: Format = "csv") -> list[Path]:
        """``survival.csv`` (or ``.parquet``) and ``manifest.json`` in ``out_dir``."""
        return write_reports(Path(out_dir), {"survival": self.holders}, self.manifest, fmt)


def survival(
    scenario: str | Path | Scenario,
    market: str | Path | Market | None = None,
    *,
    search: Search | None = None,
    holder_id: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> SurvivalResult:
    """One row per holder (or only ``holder_id``): its status under the whole scenario, its
    first forcing multiple and the rules behind it, the price of its largest position there,
    and its cure cash — see the module docstring for the definitions. ``progress``, if given,
    is called before every one-round evaluation with the number made so far."""
    search = search or Search()
    spec, spec_path, market = load_inputs(scenario, market)
    if spec.path is not None:  # a dated path is searched as its one-shot version
        folder = spec_path.parent if spec_path is not None else None
        spec = spec.compounded(path.schedule(spec.path, folder))
    holders = market.holders
    if holder_id is not None:
        holders = holders.filter(pl.col("holder_id") == holder_id)
        if holders.is_empty():
            raise InputError([Problem("options", f"unknown holder {holder_id!r}", field="holder")])
    ids = holders["holder_id"]
    probe = _Probe(spec, market, progress)
    whole = probe.statuses(_at(ids, 1.0))
    before = bk.position_frame(market.positions, market.assets)
    book = bk.holder_book(before, market.holders).select(
        "holder_id", "gross_assets", equity_pre="equity"
    )
    first = _first_forced(probe, search, ids)
    forced = whole.filter("forced").join(book, on="holder_id")
    cure = _cure(probe, search, forced)
    table = (
        holders.select("holder_id", "holder_type", "mandate")
        .join(whole.select("holder_id", status_at_scenario="status"), on="holder_id")
        .join(first, on="holder_id", how="left")
        .join(cure, on="holder_id", how="left")
        .join(book.select("holder_id", "equity_pre"), on="holder_id")
        .with_columns(
            pl.when(pl.col("status_at_scenario").is_in(NOT_FORCED))
            .then(0.0)
            .otherwise("cure_cash")
            .alias("cure_cash")
        )
    )
    table = canonical(_levels(probe, table, before).select(COLUMNS).sort("holder_id"))
    return SurvivalResult(
        table, spec, market.name, search, probe.count, probe.points, probe.searched_to
    )


__all__ = ["COLUMNS", "Search", "SurvivalResult", "survival"]

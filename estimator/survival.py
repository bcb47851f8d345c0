"""Distance to forced selling (reverse stress): how far along a scenario each holder can go
before a rule forces it to trade, and the cash that would keep it off the chain.

Along a scenario's own direction the market at multiple ``m`` is :meth:`Scenario.scaled`:
returns, rate changes and holder shocks' rates times ``m``, vol, margin and holder margin
multipliers ``k → 1 + m(k − 1)``; rating actions and index changes are events, whole for any
``m > 0``. A holder is *forced* at ``m``
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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import polars as pl

from estimator import book as bk
from estimator.api import load_inputs, prepare
from estimator.errors import InputError, InputWarnings, Problem
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
    """One-round evaluations of a market's holders along a scenario (pro-rata, no impact)."""

    def __init__(
        self, spec: Scenario, market: Market, progress: Callable[[int], None] | None = None
    ) -> None:
        # one round without lender losses: a lender outside a subset of holders is no matter
        holders = market.holders
        if "lender" in holders.columns:
            holders = holders.with_columns(pl.lit(None, dtype=pl.String).alias("lender"))
        self.spec, self.market = spec, dataclasses.replace(market, holders=holders)
        self.count = 0
        self.progress = progress  # told the evaluations made so far
        self.searched_to = 0.0  # the largest multiple the grid reached

    def shocked(self, m: float) -> pl.DataFrame:
        """The asset table at multiple ``m`` (events included)."""
        spec = self.spec.scaled(m)
        return apply_scenario(
            self.market.assets, spec, spec.name, InputWarnings(), self.market.index_weights
        )

    def statuses(
        self,
        m: float,
        holder_ids: pl.Series,
        extra_cash: pl.DataFrame | None = None,
        *,
        events: bool = True,
    ) -> pl.DataFrame:
        """(holder_id, forced, forced_by, status) of ``holder_ids`` at multiple ``m``
        (:meth:`Scenario.scaled`), with ``extra_cash`` (holder_id, cash) added to their
        accounts before the scenario."""
        self.count += 1
        if self.progress is not None:
            self.progress(self.count)
        wanted = pl.col("holder_id").is_in(holder_ids.implode())
        holders = self.market.holders.filter(wanted)
        if extra_cash is not None:
            holders = (
                holders.join(extra_cash.rename({"cash": "_add"}), on="holder_id", how="left")
                .with_columns(pl.col("cash") + pl.col("_add").fill_null(0.0))
                .drop("_add")
            )
        part = dataclasses.replace(
            self.market, holders=holders, positions=self.market.positions.filter(wanted)
        )
        spec = self.spec.scaled(m, events=events)
        shocked, prepared = prepare(spec, part, spec.name, InputWarnings())
        result = evaluate_round(
            shocked, prepared, part.positions, part.mandates, execution=Execution.PRO_RATA
        )
        return result.holders.select(
            "holder_id",
            forced=~pl.col("status").is_in(NOT_FORCED),
            forced_by=pl.when(pl.col("status") == "insolvent")
            .then(pl.lit("insolvency"))
            .when(pl.col("binding_rules") != "")
            .then("binding_rules")
            .otherwise("triggered_rules"),
            status="status",
        )


def _narrow(brackets: pl.DataFrame, width: pl.Series) -> pl.Series:
    """Brackets (lo, hi) done: at most ``width`` wide, or too narrow for a float between."""
    lo, hi = brackets["lo"], brackets["hi"]
    mid = (lo + hi) / 2
    return (hi - lo <= width) | (mid <= lo) | (mid >= hi)


def _first_forced(probe: _Probe, search: Search, ids: pl.Series) -> pl.DataFrame:
    """(holder_id, forced_multiple, forced_when, forced_by): before any shock, on the events
    alone, then on a grid and by bisection per bracket."""
    found, left = [], ids
    for when, events in (("already", False), ("events", True)):
        if left.is_empty():
            break
        now = probe.statuses(0.0, left, events=events)
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
    brackets = []  # (holder_id, lo, hi, forced_by at hi)
    for k in range(1, search.grid + 1):
        if left.is_empty():
            break
        hi = k * step
        try:
            now = probe.statuses(hi, left)
        except InputError:  # e.g. a rate shock that far drives a bond's price to zero
            probe.searched_to = hi - step
            break
        probe.searched_to = hi
        hit = now.filter("forced")
        brackets.append(
            hit.select("holder_id", lo=pl.lit(hi - step), hi=pl.lit(hi), by="forced_by")
        )
        left = now.filter(~pl.col("forced"))["holder_id"]
    open_ = (
        pl.concat(brackets)
        if brackets
        else pl.DataFrame(
            schema={"holder_id": pl.String, "lo": pl.Float64, "hi": pl.Float64, "by": pl.String}
        )
    )
    done = []
    while not open_.is_empty():
        narrow = _narrow(open_, search.tolerance * open_["hi"].clip(lower_bound=1))
        done.append(open_.filter(narrow))
        open_ = open_.filter(~narrow).with_columns(mid=(pl.col("lo") + pl.col("hi")) / 2)
        parts = []
        for (mid,), group in open_.group_by("mid"):
            now = probe.statuses(mid, group["holder_id"])
            parts.append(
                group.join(now, on="holder_id").select(
                    "holder_id",
                    lo=pl.when("forced").then("lo").otherwise("mid"),
                    hi=pl.when("forced").then("mid").otherwise("hi"),
                    by=pl.when("forced").then("forced_by").otherwise("by"),
                )
            )
        open_ = pl.concat(parts) if parts else open_.select("holder_id", "lo", "hi", "by")
    refined = [
        d.select("holder_id", forced_multiple="hi", forced_when=pl.lit("moves"), forced_by="by")
        for d in done
    ]
    return pl.concat([*found, *refined])


def _cure(probe: _Probe, search: Search, forced: pl.DataFrame) -> pl.DataFrame:
    """(holder_id, cure_cash) for holders forced at ``m = 1`` (``forced``: holder_id and
    gross_assets): doubling from the gross assets, then bisection."""
    ids = forced["holder_id"]
    if ids.is_empty():
        return pl.DataFrame(schema={"holder_id": pl.String, "cure_cash": pl.Float64})
    span = forced.select("holder_id", lo=pl.lit(0.0), hi=pl.col("gross_assets").clip(1.0))
    cured = pl.DataFrame(schema={"holder_id": pl.String, "lo": pl.Float64, "hi": pl.Float64})
    for _ in range(search.cure_doublings + 1):
        now = probe.statuses(1.0, span["holder_id"], span.select("holder_id", cash="hi"))
        span = span.join(now, on="holder_id")
        cured = pl.concat([cured, span.filter(~pl.col("forced")).select("holder_id", "lo", "hi")])
        span = span.filter("forced").select("holder_id", lo="hi", hi=pl.col("hi") * 2)
        if span.is_empty():
            break
    while True:
        narrow = _narrow(cured, search.tolerance * cured["hi"])
        if narrow.all():
            break
        mid = cured.with_columns(cash=(pl.col("lo") + pl.col("hi")) / 2)
        now = probe.statuses(1.0, mid["holder_id"], mid.select("holder_id", "cash"))
        cured = mid.join(now, on="holder_id").select(
            "holder_id",
            lo=pl.when("forced").then("cash").otherwise("lo"),
            hi=pl.when("forced").then("hi").otherwise("cash"),
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
    prices = []
    for (m,), group in out.filter(pl.col("forced_multiple").is_not_null()).group_by(
        "forced_multiple"
    ):
        shocked = probe.shocked(float(m)).select(level_asset="asset_id", level_price="price")
        prices.append(group.select("holder_id", "level_asset").join(shocked, on="level_asset"))
    at = pl.concat(prices).drop("level_asset") if prices else None
    if at is None:
        out = out.with_columns(level_price=pl.lit(None, dtype=pl.Float64))
    else:
        out = out.join(at, on="holder_id", how="left")
    return out.with_columns(level_return=pl.col("level_price") / pl.col("level_price_before") - 1)


@dataclasses.dataclass(frozen=True)
class SurvivalResult:
    """The survival table (:data:`COLUMNS`, one row per holder) and how it was searched."""

    holders: pl.DataFrame
    scenario: Scenario
    market: str
    search: Search
    evaluations: int  # one-round evaluations the search made
    searched_to: float  # the largest multiple searched: M, or less where prices would not allow

    @property
    def manifest(self) -> SurvivalManifest:
        return SurvivalManifest(
            scenario=self.scenario.name,
            market=self.market,
            search=dataclasses.asdict(self.search),
            evaluations=self.evaluations,
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
    spec, _, market = load_inputs(scenario, market)
    holders = market.holders
    if holder_id is not None:
        holders = holders.filter(pl.col("holder_id") == holder_id)
        if holders.is_empty():
            raise InputError([Problem("options", f"unknown holder {holder_id!r}", field="holder")])
    ids = holders["holder_id"]
    probe = _Probe(spec, market, progress)
    whole = probe.statuses(1.0, ids)
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
    return SurvivalResult(table, spec, market.name, search, probe.count, probe.searched_to)


__all__ = ["COLUMNS", "Search", "SurvivalResult", "survival"]

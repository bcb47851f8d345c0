"""What the command line prints: summaries of a run, a survival search and a census.

Every view is a function from a result to rich renderables. User text (ids, names, types,
messages) is never read as rich markup, and numbers are never cut: numeric columns keep their
full width on a narrow or piped terminal and text columns wrap instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import polars as pl
from rich.console import RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from estimator.census import Census
from estimator.manifest import EquilibriumSummary
from estimator.outcome import RunResult
from estimator.published import CHANNELS, amount, misses, range_text
from estimator.report import absorbed, money
from estimator.status import NOT_FORCED, Status
from estimator.survival import SurvivalResult


def table(title: str, header: Sequence[str], rows: Iterable[Sequence[str]], text: int = 1) -> Table:
    """A table whose first ``text`` columns hold text (left-aligned, wrapped where space is
    short) and whose others hold numbers (right-aligned, never wrapped nor cut)."""
    rows = [list(r) for r in rows]
    widths = [max([len(r[i]) for r in rows] + [len(name)]) for i, name in enumerate(header)]
    widths = [min(w, 24) if i < text else w for i, w in enumerate(widths)]
    # the least width that shows every number whole: columns, their padding and borders
    grid = Table(title=Text(title), min_width=sum(widths) + 3 * len(widths) + 1)
    for i, (name, width) in enumerate(zip(header, widths, strict=True)):
        if i < text:  # as wide as an id or a type up to 24 letters, folded beyond
            grid.add_column(Text(name), overflow="fold", min_width=width)
        else:
            grid.add_column(Text(name), justify="right", no_wrap=True, min_width=width)
    for row in rows:
        grid.add_row(*(Text(cell) for cell in row))
    return grid


def _fixed_points(table: pl.DataFrame, settings: EquilibriumSummary | None) -> str:
    """One line on equilibrium mode: each fixed point's largest price fall from P₀."""
    falls = []
    for end in ("least", "greatest"):
        worst = (
            table.select("asset_id", change=pl.col(f"price_{end}") / pl.col("price_0") - 1)
            .sort("change", "asset_id")
            .row(0)
        )
        falls.append(
            f"{end}: largest fall {-100 * worst[1]:.2f}% ({escape(worst[0])})"
            if worst[1] < 0
            else f"{end}: no price falls"
        )
    kind = "two fixed points" if settings and settings.multiple_equilibria else "one fixed point"
    return f"Equilibrium ({kind}) — " + "; ".join(falls)


def headline(result: RunResult) -> str:
    """``name: net forced and systematic flow — equity −1.20bn, …``: the net forced and
    systematic flow per asset class (:func:`estimator.flows.headline`), and the lender losses
    where there are any."""
    net = result.manifest.flows.headline
    flow = ", ".join(f"{escape(c)} {money(v)}" for c, v in net.items()) or "none"
    line = f"[bold]{escape(result.scenario.name)}[/]: net forced and systematic flow — {flow}"
    lent = result.manifest.lender_losses
    return line + (f"; lender losses {money(lent)}" if lent > 0 else "")


def run_summary(result: RunResult, top: int) -> list[RenderableType]:
    """The headline totals, the assets under most pressure, holders by type, the cascade by
    round or day, statuses and cures."""
    parts: list[RenderableType] = [headline(result)]
    if result.flows is not None and not result.flows.is_empty():
        parts.append(
            table(
                "Flow by kind and asset class",
                ("kind", "asset class", "sold", "bought", "net"),
                (
                    (k, c, money(sold), money(bought), money(net))
                    for k, c, sold, bought, net in result.flows.iter_rows()
                ),
                text=2,
            )
        )
    ranked = result.assets.filter(pl.col("net_value") != 0).sort(
        ["pct_adv", "asset_id"], descending=[True, False]
    )
    parts.append(
        table(
            f"Top {top} assets by forced flow as % of ADV",
            ("asset", "class", "net flow", "% ADV", "absorbed in"),
            (
                (
                    r["asset_id"],
                    r["asset_class"],
                    money(r["net_value"]),
                    f"{r['pct_adv']:.1f}",
                    absorbed(r),
                )
                for r in ranked.head(top).iter_rows(named=True)
            ),
            text=2,
        )
    )
    by_type = (
        result.holders.group_by("holder_type")
        .agg(
            holders=pl.len(),
            accounts=pl.col("accounts").sum(),
            forced=(pl.col("status") != Status.OK).sum(),
            sold=pl.col("sold").sum(),
        )
        .sort("holder_type")
    )
    parts.append(
        table(
            "Holders by type",
            ("holder type", "holders", "accounts", "not ok", "sold"),
            (
                (
                    r["holder_type"],
                    str(r["holders"]),
                    f"{r['accounts']:,.0f}",
                    str(r["forced"]),
                    money(r["sold"]),
                )
                for r in by_type.iter_rows(named=True)
            ),
        )
    )
    cascade, days = result.manifest.cascade, result.manifest.days
    if days is not None and cascade is not None:  # a day clock runs a cascade
        state = "converged" if cascade.converged else "stopped at max_days"
        on = {r["day"]: f" ({r['date']})" for r in days.per_day if "date" in r}
        title = (
            f"Selling by day ({state}): peak day {days.peak_day}{on.get(days.peak_day, '')}, "
            f"capitulation {days.capitulation_day}{on.get(days.capitulation_day, '')}"
        )
        parts.append(_periods(title, "day", days.per_day, "holders_trading"))
    elif cascade is not None:
        state = "converged" if cascade.converged else "stopped at max_rounds"
        title = (
            f"Cascade: {cascade.rounds_traded} rounds ({state}), "
            f"amplification {cascade.amplification:.2f}"
        )
        parts.append(_periods(title, "round", cascade.rounds, "holders_forced"))
    if result.published is not None:
        parts += backtest_summary(result.published)
    if result.equilibrium is not None:
        parts.append(_fixed_points(result.equilibrium, result.manifest.equilibrium))
    statuses = ", ".join(f"{k}: {v}" for k, v in result.manifest.statuses.items())
    parts.append(f"Statuses — {escape(statuses)}")
    cures = result.manifest.cures
    if cures.drawn > 0 or cures.short > 0:
        parts.append(
            f"Cash drawn to cure: {money(cures.drawn)}; still short, left to forced "
            f"trades: {money(cures.short)}"
        )
    return parts


def _periods(title: str, period: str, rows: list[dict], holders: str) -> Table:
    dated = any("date" in r for r in rows)  # a dated path's days
    return table(
        title,
        (f"{period}, date" if dated else period, "sold", "bought", "holders", "newly forced"),
        (
            (
                f"{r[period]}  {r['date']}" if dated else str(r[period]),
                money(r["sell_value"]),
                money(r["buy_value"]),
                str(r[holders]),
                str(r["holders_newly_forced"]),
            )
            for r in rows
        ),
        text=0,
    )


def _multiple(row: dict) -> str:
    if row["forced_multiple"] is None:
        return "—"
    when = f" ({row['forced_when']})" if row["forced_when"] != "moves" else ""
    return f"{row['forced_multiple']:.3g}×{when}"


def survival_summary(result: SurvivalResult, top: int) -> list[RenderableType]:
    """How many holders the scenario forces, the cash that would keep the curable ones off,
    and the holders nearest to being forced."""
    h = result.holders
    forced = h.filter(~pl.col("status_at_scenario").is_in(NOT_FORCED))
    head = (
        f"[bold]{escape(result.scenario.name)}[/]: {forced.height} of {h.height} holders forced "
        f"by the scenario; cash that would keep the curable ones off: "
        f"{money(forced['cure_cash'].fill_null(0.0).sum())}"
    )
    ranked = h.sort(["forced_multiple", "holder_id"], nulls_last=True)
    rows = (
        (
            r["holder_id"],
            r["forced_by"] or "",
            _multiple(r),
            r["level_asset"] or "",
            "" if r["level_price"] is None else f"{r['level_price']:,.4g}",
            "—" if r["cure_cash"] is None else money(r["cure_cash"]),
        )
        for r in ranked.head(top).iter_rows(named=True)
    )
    grid = table(
        f"Nearest {top} holders to forced selling (multiple of the scenario)",
        ("holder", "forced by", "multiple", "level", "price", "cure cash"),
        rows,
        text=2,
    )
    return [head, grid]


def survival_story(row: dict, result: SurvivalResult) -> str:
    """One holder's survival in a few sentences (plain text, not markup)."""
    name, multiple = row["holder_id"], row["forced_multiple"]
    lines = [
        f"{name} ({row['holder_type']}, mandate {row['mandate']}) under "
        f"{result.scenario.name}: {row['status_at_scenario']}."
    ]
    if multiple is None:
        lines.append(f"Not forced up to {result.searched_to:.4g}× the scenario.")
    elif row["forced_when"] == "already":
        lines.append(f"Forced before any shock, by {row['forced_by']}.")
    elif row["forced_when"] == "events":
        lines.append(
            "Forced by the scenario's rating actions or index changes alone, "
            f"by {row['forced_by']}."
        )
    else:
        lines.append(
            f"First forced at {multiple:.4g}× the scenario, by {row['forced_by']}: its largest "
            f"position {row['level_asset']} at {row['level_price']:,.6g} "
            f"({row['level_return']:+.2%} from {row['level_price_before']:,.6g})."
        )
    cure = row["cure_cash"]
    if cure is None:
        lines.append("No cash added now keeps it from trading under the scenario.")
    elif cure > 0:
        lines.append(f"Cash that, added now, keeps it from any forced trade: {money(cure)}.")
    else:
        lines.append("It needs no cash: nothing forces it under the scenario.")
    return "\n".join(lines)


def census_summary(result: Census) -> list[RenderableType]:
    """Holders by type and holdings by asset class."""
    types = table(
        f"Holders by type — market '{result.market}'",
        ("holder type", "holders", "accounts", "total assets", "equity", "leverage", "liabilities"),
        (
            (
                r["holder_type"],
                str(r["holders"]),
                f"{r['accounts']:,.0f}",
                money(r["total_assets"]),
                money(r["equity"]),
                "—" if r["leverage"] is None else f"{r['leverage']:.2f}×",
                money(r["liabilities"]) if r["liabilities"] else "—",
            )
            for r in result.by_type.iter_rows(named=True)
        ),
    )
    classes = table(
        "Holdings by asset class",
        ("asset class", "assets", "holders", "long", "short", "gross", "ADV", "days"),
        (
            (
                r["asset_class"],
                str(r["assets"]),
                str(r["holders"]),
                money(r["long"]),
                money(r["short"]),
                money(r["gross"]),
                money(r["adv"]),
                f"{r['gross_adv_days']:.2f}",
            )
            for r in result.by_class.iter_rows(named=True)
        ),
    )
    if result.sources is None:
        return [types, classes]
    sources = table(
        f"Aggregates of {result.market} (as of {result.as_of}), with their sources",
        ("aggregate", "label", "date", "source", "value"),
        (
            (r["path"], r["kind"], r["date"], r["source"], f"{r['value']:.4g}")
            for r in result.sources.iter_rows(named=True)
        ),
        text=4,
    )
    return [types, classes, sources]


def backtest_summary(frame: pl.DataFrame) -> list[RenderableType]:
    """Published figures beside the estimates (a backtest's, with ``episode``, or one run's):
    estimate, published value or range, verdict and ratio; then the channels the census lacks
    that misses name, each with how many it helps explain."""
    episodes = "episode" in frame.columns
    rows = []
    for r in frame.iter_rows(named=True):
        published = range_text(r["low"], r["high"], r["flow"])
        rows.append(
            ((r["episode"],) if episodes else ())
            + (
                r["figure"],
                amount(r["estimate"], r["flow"]),
                published,
                r["verdict"],
                f"{r['ratio']:.2f}",
            )
        )
    counts = frame.group_by("verdict").len().sort("verdict")
    tally = ", ".join(f"{v}: {n}" for v, n in counts.iter_rows())
    header = ("figure", "estimate", "published", "verdict", "ratio")
    return [
        table(
            f"Estimates beside published figures ({tally})",
            (("episode",) if episodes else ()) + header,
            rows,
            text=2 if episodes else 1,
        ),
        *_channels_line(frame),
    ]


def _channels_line(frame: pl.DataFrame) -> list[RenderableType]:
    named = misses(frame)["missing"].str.split(";").explode()
    counts = Counter(c for c in named if c)
    if not counts:
        return []
    listed = ", ".join(f"{c} ({counts[c]})" for c in CHANNELS if c in counts)
    return [Text(f"Channels the census lacks, by the misses they help explain: {listed}")]

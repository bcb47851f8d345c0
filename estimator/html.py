"""One self-contained HTML file per run: the headline numbers, charts and the tables behind them.

The charts are Vega-Lite specifications (altair) rendered to static SVG by vl-convert when the
report is written, so the file has no script, fetches no font or library, and opens offline.
Charts: forced flows by asset class and by holder type (selling and buying), the assets with
the largest flow as a share of ADV, and — when the run has them — the cascade round by round,
the day charts of :mod:`estimator.day_charts` (flows, closes and the funds' volatility
estimates by day, with the capitulation day), and the chain of coercion (who pushed whom,
round by round).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import altair as alt
import polars as pl
import vl_convert

from estimator import day_charts
from estimator.day_charts import AMOUNT_AXIS as _SI
from estimator.published import html_table
from estimator.report import absorbed, money
from estimator.status import NOT_FORCED, Status

if TYPE_CHECKING:
    from estimator.outcome import RunResult

SELL, BUY = "#c0392b", "#2471a3"
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       margin: 2rem auto; max-width: 1100px; color: #222; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; margin-top: 2.2rem; }
.lede { color: #555; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 1rem; margin: 1.2rem 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.6rem 1rem; min-width: 9rem; }
.card b { display: block; font-size: 1.3rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.6rem 0; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 0.8rem 0; } figcaption { color: #555; font-size: 0.85rem; }
"""


def _svg(chart: alt.TopLevelMixin) -> str:
    return vl_convert.vegalite_to_svg(chart.to_json())


def _sell_buy(frame: pl.DataFrame, key: str, title: str) -> alt.Chart:
    """Horizontal bars of selling (negative) and buying per ``key``."""
    long = frame.group_by(key).agg(
        selling=-pl.col("sell_value").sum(), buying=pl.col("buy_value").sum()
    )
    long = long.unpivot(index=key, variable_name="side", value_name="value").sort(key, "side")
    order = frame.group_by(key).agg(pl.col("sell_value").sum()).sort("sell_value", key)[key]
    return (
        alt.Chart(long, title=title)
        .mark_bar()
        .encode(
            x=alt.X("value:Q", title="value (base currency)", axis=_SI),
            y=alt.Y(f"{key}:N", sort=list(reversed(order.to_list())), title=None),
            color=alt.Color(
                "side:N", scale=alt.Scale(domain=["selling", "buying"], range=[SELL, BUY])
            ),
        )
        .properties(width=700, height=alt.Step(18))
    )


def _top_assets(assets: pl.DataFrame, top: int) -> alt.Chart:
    rows = assets.sort("pct_adv", "asset_id", descending=[True, False]).head(top)
    return (
        alt.Chart(rows, title=f"Top {rows.height} assets by forced net flow, % of ADV")
        .mark_bar()
        .encode(
            x=alt.X("pct_adv:Q", title="% of ADV"),
            y=alt.Y("asset_id:N", sort="-x", title=None),
            color=alt.Color("asset_class:N", title="asset class"),
        )
        .properties(width=700, height=alt.Step(18))
    )


def _rounds(rounds: pl.DataFrame) -> alt.Chart:
    per_round = rounds.group_by("round").agg(
        selling=-pl.col("sell_value").sum(), buying=pl.col("buy_value").sum()
    )
    long = per_round.unpivot(index="round", variable_name="side", value_name="value").sort(
        "round", "side"
    )
    return (
        alt.Chart(long, title="The cascade, round by round")
        .mark_bar()
        .encode(
            x=alt.X("round:O", title="round", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("value:Q", title="value (base currency)", axis=_SI),
            color=alt.Color(
                "side:N", scale=alt.Scale(domain=["selling", "buying"], range=[SELL, BUY])
            ),
        )
        .properties(width=700, height=260)
    )


#: Pushes drawn in the chain of coercion: the largest by the loss they caused.
CHAIN_EDGES = 40


def _chain(chain: pl.DataFrame) -> alt.LayerChart:
    """Who pushed whom: an edge per (source, target) pair summed over assets — the
    :data:`CHAIN_EDGES` largest by the loss they caused, its width that loss — and holders
    placed by round: a target in the round it was pushed, a source in the round before."""
    chain = (
        chain.group_by("source_id", "target_id", "round")
        .agg(pl.col("contribution").sum())
        .sort("contribution", "source_id", "target_id", descending=[True, False, False])
        .head(CHAIN_EDGES)
    )
    targets = chain.select(holder="target_id", round="round")
    sources = chain.select(holder="source_id", round=pl.col("round") - 1)
    nodes = (
        pl.concat([targets, sources])
        .group_by("holder")
        .agg(pl.col("round").min())
        .sort("round", "holder")
        .with_columns(row=pl.col("holder").cum_count().over("round"))
    )
    place = nodes.select("holder", "round", "row")
    edges = (
        chain.join(place.rename({"holder": "source_id"}), on="source_id")
        .rename({"round_right": "x", "row": "y"})
        .join(place.rename({"holder": "target_id", "round": "x2", "row": "y2"}), on="target_id")
    )
    lines = (
        alt.Chart(edges, title="The chain of coercion: who pushed whom")
        .mark_rule(color="#888")
        .encode(
            x=alt.X(
                "x:Q",
                title="round first forced",
                axis=alt.Axis(tickMinStep=1, format="d"),
                scale=alt.Scale(domain=[0.5, float(place["round"].max()) + 0.8]),
            ),
            y=alt.Y("y:Q", axis=None),
            x2="x2:Q",
            y2="y2:Q",
            strokeWidth=alt.StrokeWidth(
                "contribution:Q", legend=None, scale=alt.Scale(range=[1, 6])
            ),
        )
    )
    dots = alt.Chart(place).mark_circle(size=120, color=SELL).encode(x="round:Q", y="row:Q")
    names = (
        alt.Chart(place).mark_text(align="left", dx=8).encode(x="round:Q", y="row:Q", text="holder")
    )
    height = max(260, 22 * int(place["row"].max() or 0))
    return (lines + dots + names).properties(width=700, height=height)


def _table(frame: pl.DataFrame, money_columns: tuple[str, ...] = ()) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    rows = []
    for row in frame.iter_rows(named=True):
        cells = []
        for col, value in row.items():
            if value is None:
                text = ""
            elif col in money_columns:
                text = money(float(value))
            elif isinstance(value, float):
                text = f"{value:,.4g}"
            else:
                text = str(value)
            cells.append(f"<td>{html.escape(text)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


#: Rows of a table shown in the report; the written CSV files hold them all.
TABLE_ROWS = 50


def _capped(frame: pl.DataFrame, written: str) -> str:
    """A line saying the table below shows only the largest rows, if it does."""
    if frame.height <= TABLE_ROWS:
        return ""
    return (
        f"<p class='lede'>The {TABLE_ROWS} largest of {frame.height}; "
        f"the {written} table written beside this report has them all.</p>"
    )


def render(result: RunResult, *, top: int = 15) -> str:
    """The report of ``result`` as one HTML document."""
    m = result.manifest
    totals, statuses = m.totals, m.statuses
    forced = sum(v for k, v in statuses.items() if k not in NOT_FORCED)
    net = m.flows.headline
    cards = [
        *((f"net forced + systematic, {c}", money(v)) for c, v in net.items()),
        (
            "all trades: sold / bought",
            f"{money(totals.sell_value)} / {money(totals.buy_value)}",
        ),
        ("holders forced", f"{forced} of {sum(statuses.values())}"),
        ("cash drawn to cure", money(m.cures.drawn)),
    ]
    accounts = result.holders["accounts"] if "accounts" in result.holders.columns else None
    if accounts is not None and (accounts > 1).any():  # rows that stand for many accounts
        hit = result.holders.filter(~pl.col("status").is_in(NOT_FORCED))["accounts"].sum()
        cards.insert(-1, ("accounts forced", f"{hit:,.0f} of {accounts.sum():,.0f}"))
    if m.lender_losses > 0:
        cards.append(("lender losses", money(m.lender_losses)))
    if m.cascade is not None:
        cards.append(("amplification", f"{m.cascade.amplification:.2f}×"))
    sections = [
        ("Forced flows by asset class", _sell_buy(result.summary, "asset_class", "By asset class")),
        ("Forced flows by holder type", _sell_buy(result.summary, "holder_type", "By holder type")),
        ("The most crowded assets", _top_assets(result.assets, top)),
    ]
    if result.rounds is not None and not result.rounds.is_empty():
        sections.append(("The cascade", _rounds(result.rounds)))
    day = m.days.capitulation_day if m.days is not None else None
    if result.daily is not None and not result.daily.is_empty():
        sections.append(("Day by day", day_charts.daily(result.daily, day)))
    if result.days is not None and not result.days.is_empty():
        sections.append(("Prices by day", day_charts.prices(result.days, day)))
    if result.volatility is not None and not result.volatility.is_empty():
        sections.append(
            ("Volatility as the funds estimate it", day_charts.volatility(result.volatility, day))
        )
    if result.chain is not None and not result.chain.is_empty():
        sections.append(("The chain of coercion", _chain(result.chain)))
    figures = "".join(
        f"<h2>{html.escape(title)}</h2><figure>{_svg(chart)}</figure>" for title, chart in sections
    )
    top_assets = result.assets.sort("pct_adv", "asset_id", descending=[True, False]).head(top)
    not_ok = (
        result.holders.filter(pl.col("status") != Status.OK)
        .select(
            "holder_id", "holder_type", "status", "triggered_rules", "sold", "bought", "shortfall"
        )
        .sort(pl.col("sold") + pl.col("bought"), "holder_id", descending=[True, False])
    )
    beside = (
        "<h2>Beside what happened</h2><p class='lede'>The scenario's published figures beside "
        "the run's estimate of the same quantity; ratio: estimate over the nearest end of the "
        "published range.</p>" + html_table(result.published)
        if result.published is not None
        else ""
    )
    kinds = (
        "<h2>Flow by kind</h2><p class='lede'>Forced (limits), systematic (vol targets, "
        "constant leverage) and policy (rebalancing, index tracking) trades per asset class; "
        "the headline is the net forced and systematic flow.</p>"
        + _table(result.flows, ("sell_value", "buy_value", "net_value"))
        if result.flows is not None
        else ""
    )
    tables = (
        beside
        + kinds
        + "<h2>Assets</h2><p class='lede'>Absorbed in: days of continuous trading at the "
        "participation rate, or, for index events in an asset with a closing auction, the "
        "demand as a multiple of a typical closing auction (the event day's auction grows to "
        "take it).</p>"
        + _table(
            top_assets.select(
                "asset_id",
                "asset_class",
                "sell_value",
                "buy_value",
                "net_value",
                "pct_adv",
                pl.Series("absorbed_in", [absorbed(r) for r in top_assets.iter_rows(named=True)]),
            ),
            ("sell_value", "buy_value", "net_value"),
        )
        + "<h2>Holders that had to act</h2>"
        + _capped(not_ok, "holders")
        + _table(not_ok.head(TABLE_ROWS), ("sold", "bought", "shortfall"))
    )
    if result.cures is not None and not result.cures.is_empty():
        cures = result.cures.sort(
            "need", "traded", "holder_id", "round", "rule",
            descending=[True, True, False, False, False], nulls_last=True,
        )  # fmt: skip
        tables += (
            "<h2>Cures: cash against forced trades</h2>"
            + _capped(cures, "cures")
            + _table(cures.head(TABLE_ROWS), ("need", "cured", "remaining", "traded"))
        )
    card_html = "".join(f"<div class='card'>{k}<b>{html.escape(v)}</b></div>" for k, v in cards)
    name = html.escape(result.scenario.name)
    description = html.escape(result.scenario.description)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>forced-flow: {name}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Forced flows — {name}</h1><p class='lede'>{description} Market "
        f"'{html.escape(m.market.name)}'.</p><div class='cards'>{card_html}</div>"
        f"{figures}{tables}</body></html>"
    )

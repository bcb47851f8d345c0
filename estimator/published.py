"""Published figures of what happened, and the run's estimate of the same quantity beside them.

An episode's scenario file lists ``[[published]]`` figures: what is measured (holder types,
asset classes, the flow kinds counted, sales / purchases / net sales / lender losses / sales as
a share of the holders' assets), the published value or range — the spread across published
estimates where there are several, never widened — and its source, date, address and a short
quote. :func:`estimate` measures the same quantity on a run, with ``u`` the values of the
selected holders' trades in the selected asset classes, taken by part in the selected flow
kinds (:func:`estimator.flows.parts`) — on a dated path, only the trades dated within the
figure's ``start`` and ``end`` where it gives them (a week's estimate is set beside that
week's trades; a run without dates counts all of its trades):

* ``sales`` ``S = Σ max(−u, 0)``; ``purchases`` ``B = Σ max(u, 0)``; ``net_sales`` ``S − B``;
* ``lender_losses`` ``Σ max(loss_lending, 0)`` over the selected holders;
* ``sales_share`` ``S / X₀``, ``X₀`` the selected holders' holdings of the selected classes
  before the shocks.

Amounts published in another currency are converted at the figure's ``fx`` (US dollars per
unit, with its own source). :func:`verdict` sets the estimate ``m`` beside the range
``[lo, hi]``: ``in`` when ``lo ≤ m ≤ hi``, else ``over`` or ``under``, with the ratio ``m / hi``
or ``m / lo``; a figure that is only an upper bound on the flow (``bound = "upper"``: a volume
downgraded, a position that could be sold) is ``in`` for any ``m ≤ hi``.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from typing import TYPE_CHECKING, Literal, Protocol, Self

import numpy as np
import polars as pl
from pydantic import BaseModel, Field, model_validator

from estimator.book import position_frame
from estimator.bounds import MAX_AMOUNT, MODEL_CONFIG
from estimator.flows import KINDS, parts
from estimator.report import money

if TYPE_CHECKING:
    from estimator.market import Market


class Tables(Protocol):
    """What a figure is estimated from: a run's holder, asset and trade tables
    (:class:`estimator.outcome.RunResult` has them)."""

    holders: pl.DataFrame
    assets: pl.DataFrame
    trades: pl.DataFrame


Flow = Literal["sales", "purchases", "net_sales", "lender_losses", "sales_share"]


#: Channels of forced flow the census does not have yet, by key: a figure names those that
#: explain its miss (``missing``), and the backtest counts the misses each explains.
CHANNELS = {
    "dated_path": "time: the episode as dated moves, realised volatility over the funds' "
    "lookbacks, rebalancing calendars and sales spread over days (here, one shock at once)",
    "central_bank": "central-bank purchases that absorb forced sales",
    "ldi_swaps": "LDI hedges in interest-rate swaps and their cash variation margin",
    "trend_followers": "trend followers (CTAs)",
    "vol_products": "VIX futures and leveraged or inverse volatility products",
    "dealer_hedging": "options dealers' delta hedging",
    "basis_trade": "relative-value funds' Treasury cash-futures basis trade",
    "money_market_funds": "money-market funds' liquidity rules and runs",
    "insurers": "insurers' capital charges by rating",
    "broker_forbearance": "prime brokers' discretion: margin calls waived or delayed before a "
    "client is wound down",
}
Channel = Literal[
    "dated_path",
    "central_bank",
    "ldi_swaps",
    "trend_followers",
    "vol_products",
    "dealer_hedging",
    "basis_trade",
    "money_market_funds",
    "insurers",
    "broker_forbearance",
]


class Published(BaseModel):
    """One published figure of an episode, with what it measures and where it was read."""

    model_config = MODEL_CONFIG

    id: str = Field(min_length=1, description="short key, unique in the episode")
    what: str = Field(min_length=1, description="what the figure measures, in words")
    holder_types: list[str] = Field(default_factory=list, description="empty: every holder")
    asset_classes: list[str] = Field(default_factory=list, description="empty: every class")
    flow_kinds: list[Literal["forced", "systematic", "policy"]] = Field(
        default_factory=lambda: list(KINDS), description="the flow kinds the figure counts"
    )
    flow: Flow
    low: float = Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT)
    high: float = Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT)
    bound: Literal["range", "upper"] = Field(
        "range", description="upper: the figure bounds the flow from above (a volume, a stock)"
    )
    currency: str = "USD"
    fx: float = Field(1.0, ge=1e-6, le=1e6, description="US dollars per unit of `currency`")
    fx_source: str = ""
    period: str = Field(min_length=1)
    start: dt.date | None = Field(
        None, description="on a dated path: count only trades on or after this date"
    )
    end: dt.date | None = Field(
        None, description="on a dated path: count only trades on or before this date"
    )
    source: str = Field(min_length=1)
    published: str = Field(min_length=1, description="publication date as given")
    url: str = Field(min_length=1)
    quote: str = Field(min_length=1)
    kind: Literal["estimate", "measured"]
    note: str = Field("", description="why the model misses, or what it lacks to compare")
    missing: list[Channel] = Field(
        default_factory=list, description="channels the census lacks that explain a miss"
    )

    @model_validator(mode="after")
    def _a_range(self) -> Self:
        if self.high < self.low:
            raise ValueError(f"high ({self.high:g}) is below low ({self.low:g})")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        if self.currency != "USD" and self.flow != "sales_share" and not self.fx_source:
            raise ValueError(f"a figure in {self.currency} needs fx and its fx_source")
        return self

    @property
    def range_usd(self) -> tuple[float, float]:
        """``(lo, hi)`` in US dollars (shares as they are)."""
        scale = 1.0 if self.flow == "sales_share" else self.fx
        return self.low * scale, self.high * scale


def _select(frame: pl.DataFrame, column: str, values: list[str]) -> pl.DataFrame:
    return frame.filter(pl.col(column).is_in(values)) if values else frame


def estimate(figure: Published, result: Tables, market: Market) -> float:
    """The run's value of ``figure``'s quantity (module docstring), holders and assets joined
    by id."""
    holders = _holders(figure, result)
    if figure.flow == "lender_losses":
        losses = result.holders.join(holders, on="holder_id", how="semi")
        if "loss_lending" not in losses.columns:  # a run without lender losses
            return 0.0
        return math.fsum(losses["loss_lending"].clip(lower_bound=0.0))
    u = _counted(figure, result)["trade_value"]
    sold, bought = math.fsum((-u).clip(lower_bound=0.0)), math.fsum(u.clip(lower_bound=0.0))
    return _quantity(figure, sold, bought, _held(figure, result, market))


def by_day(figures: list[Published], result: Tables, market: Market) -> pl.DataFrame:
    """On a dated run, per figure (in file order; not ``lender_losses``, which has no date) and
    trading date within its window on which a counted trade falls: ``estimate``, the figure's
    quantity over that day's trades alone, and ``cumulative``, over its window up to that day.
    Each of these quantities is a sum over trades (``sales_share`` with one denominator), so
    the days add up to :func:`estimate` and the last ``cumulative`` is it. Empty on a run
    without dates."""
    schema = {"figure": pl.String, "date": pl.Date, "estimate": pl.Float64,
              "cumulative": pl.Float64}  # fmt: skip
    if "date" not in result.trades.columns:
        return pl.DataFrame(schema=schema)
    rows = []
    for figure in figures:
        if figure.flow == "lender_losses":
            continue
        total = _held(figure, result, market)
        u = pl.col("trade_value")
        days = (
            _counted(figure, result)
            .group_by("date")
            .agg(sold=(-u).clip(lower_bound=0).sum(), bought=u.clip(lower_bound=0).sum())
            .sort("date")
        )
        for date, sold, bought in days.iter_rows():
            rows.append((figure.id, date, _quantity(figure, sold, bought, total)))
    table = pl.DataFrame(rows, schema=list(schema)[:3], orient="row")
    return table.with_columns(cumulative=pl.col("estimate").cum_sum().over("figure")).cast(
        schema  # type: ignore[arg-type]
    )


def _holders(figure: Published, result: Tables) -> pl.DataFrame:
    """``holder_id`` of the holders of the figure's types."""
    chosen = _select(result.holders.select("holder_id", "holder_type"), "holder_type",
                     figure.holder_types)  # fmt: skip
    return chosen.select("holder_id")


def _classes(figure: Published, result: Tables) -> pl.DataFrame:
    """``asset_id`` of the assets of the figure's classes."""
    chosen = _select(result.assets.select("asset_id", "asset_class"), "asset_class",
                     figure.asset_classes)  # fmt: skip
    return chosen.select("asset_id")


def _counted(figure: Published, result: Tables) -> pl.DataFrame:
    """The parts of the trades the figure counts (its holders, classes and flow kinds; on a
    dated run within its dates, with ``date``): ``trade_value`` u."""
    dated = "date" in result.trades.columns
    within = pl.lit(True)
    if dated and figure.start is not None:
        within = within & (pl.col("date") >= figure.start)
    if dated and figure.end is not None:
        within = within & (pl.col("date") <= figure.end)
    return (
        parts(result.trades, by=("date",) if dated else ())
        .filter(pl.col("flow_kind").is_in(figure.flow_kinds) & within)
        .join(_holders(figure, result), on="holder_id", how="semi")
        .join(_classes(figure, result), on="asset_id", how="semi")
    )


def _held(figure: Published, result: Tables, market: Market) -> float:
    """``X₀``: the figure's holders' holdings of its classes before the shocks (only
    ``sales_share`` reads it; 0 for the others)."""
    if figure.flow != "sales_share":
        return 0.0
    held = (
        position_frame(market.positions, market.assets)
        .join(_holders(figure, result), on="holder_id", how="semi")
        .join(_classes(figure, result), on="asset_id", how="semi")["exposure"]
    )
    return math.fsum(held.abs())


def _quantity(figure: Published, sold: float, bought: float, held: float) -> float:
    """The figure's quantity from the counted sales S and purchases B (and ``X₀``)."""
    if figure.flow == "sales":
        return sold
    if figure.flow == "purchases":
        return bought
    if figure.flow == "net_sales":
        return sold - bought
    return sold / held if held > 0 else 0.0


def verdict(value: float, low: float, high: float, bound: str = "range") -> tuple[str, float]:
    """``(in | over | under, ratio)`` of ``value`` against ``[low, high]`` (module docstring);
    the ratio is ``value / high`` over the range, ``value / low`` under it, 1 inside (0 where
    the end it is set against is 0, or so near it that the ratio is not a finite number)."""

    def ratio(end: float) -> float:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            r = float(np.float64(value) / np.float64(end)) if end != 0 else 0.0
        return r if math.isfinite(r) else 0.0

    if value > high:
        return "over", ratio(high)
    if bound == "upper" or value >= low:
        return "in", 1.0
    return "under", ratio(low)


#: The comparison table's columns, in order (:func:`compare`).
COLUMNS = [
    "figure",
    "what",
    "flow",
    "estimate",
    "low",
    "high",
    "verdict",
    "ratio",
    "kind",
    "source",
    "published",
    "url",
    "missing",
    "note",
]


#: The comparison table's column types.
SCHEMA = {
    c: pl.Float64 if c in ("estimate", "low", "high", "ratio") else pl.String for c in COLUMNS
}


def compare(figures: list[Published], result: Tables, market: Market) -> pl.DataFrame:
    """A row per figure (:data:`COLUMNS`, in file order): the run's estimate beside the
    published range in US dollars, the verdict and the ratio."""
    rows = []
    for figure in figures:
        value = estimate(figure, result, market)
        low, high = figure.range_usd
        call, ratio = verdict(value, low, high, figure.bound)
        rows.append(
            {
                "figure": figure.id,
                "what": figure.what,
                "flow": figure.flow + (" (upper bound)" if figure.bound == "upper" else ""),
                "estimate": value,
                "low": low,
                "high": high,
                "verdict": call,
                "ratio": ratio,
                "kind": figure.kind,
                "source": figure.source,
                "published": figure.published,
                "url": figure.url,
                "missing": ";".join(figure.missing),
                "note": figure.note,
            }
        )
    return pl.DataFrame(rows, schema=SCHEMA)


#: What a miss with no stated reason shows.
UNEXPLAINED = "(no reason stated)"


def misses(table: pl.DataFrame) -> pl.DataFrame:
    """The rows of a comparison table (:func:`compare`) whose estimate is out of range."""
    return table.filter(pl.col("verdict") != "in")


def amount(value: float, flow: str) -> str:
    """A figure's amount for people to read: a share in %, money otherwise."""
    return f"{100 * value:.1f}%" if flow.startswith("sales_share") else money(value)


def range_text(low: float, high: float, flow: str) -> str:
    """A published value or range for people to read: ``20.00bn – 30.00bn``."""
    if high == low:
        return amount(low, flow)
    return f"{amount(low, flow)} – {amount(high, flow)}"


def html_table(table: pl.DataFrame) -> str:
    """A comparison table (:func:`compare`, with an ``episode`` column or not) as HTML: the
    estimate beside the published range, verdict, ratio, source with links, and the reason
    an estimate may miss."""
    episodes = "episode" in table.columns
    heads = ["what was published", "flow", "estimate", "published", "verdict", "ratio"]
    heads = (["episode"] if episodes else []) + heads
    heads += ["source", "why it may miss", "channels missing"]
    rows = []
    for r in table.iter_rows(named=True):
        published = range_text(r["low"], r["high"], r["flow"])
        links = " ".join(
            f"<a href='{html.escape(u)}'>{i + 1}</a>" for i, u in enumerate(r["url"].split())
        )
        cells = [html.escape(r["episode"])] if episodes else []
        cells += [
            html.escape(r["what"]),
            html.escape(r["flow"]),
            amount(r["estimate"], r["flow"]),
            published,
            f"<b class='{r['verdict']}'>{r['verdict']}</b>",
            f"{r['ratio']:.2f}",
            f"{html.escape(r['source'])} ({html.escape(r['published'])}) {links}",
            html.escape(r["note"]) if r["note"] or r["verdict"] == "in" else UNEXPLAINED,
            html.escape(", ".join((r["missing"] or "").split(";"))),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in heads)
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"

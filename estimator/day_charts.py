"""The charts of a run on the day clock: sales and purchases by day and holder type, the
closes of the most sold assets, and the volatility the funds estimate for the assets they hold
— each with the capitulation day (the last with forced selling) marked. On a dated path the
x axis is the date, else the day number."""

from __future__ import annotations

import altair as alt
import polars as pl

#: The axis of amounts in the base currency: 500M, 1.2G.
AMOUNT_AXIS = alt.Axis(format="~s")


def _when(frame: pl.DataFrame) -> tuple[str, str]:
    """The x field of a day chart: the date on a dated path (as text, so that the trading
    days stand side by side), else the day number."""
    return ("date:O", "date") if "date" in frame.columns else ("day:O", "day")


def _dated_text(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its ``date`` as YYYY-MM-DD text, if it has one."""
    if "date" not in frame.columns:
        return frame
    return frame.with_columns(pl.col("date").cast(pl.String))


def _marked(chart: alt.Chart, frame: pl.DataFrame, capitulation: int | None) -> alt.Chart:
    """``chart`` with the capitulation day (the last with forced selling) marked."""
    if capitulation is None:
        return chart
    x, _ = _when(frame)
    mark = frame.filter(pl.col("day") == capitulation).select(*x.split(":")[:1]).unique()
    if mark.is_empty():
        return chart
    mark = mark.with_columns(label=pl.lit(f"capitulation: day {capitulation}"))
    rule = alt.Chart(mark).mark_rule(strokeDash=[4, 3]).encode(x=x)
    text = alt.Chart(mark).mark_text(align="right", dx=-4, dy=-100).encode(x=x, text="label")
    return chart + rule + text  # type: ignore[return-value]


def daily(daily: pl.DataFrame, capitulation: int | None) -> alt.Chart:
    """Sales (below zero) and purchases (above) by day, stacked by holder type."""
    daily = _dated_text(daily)
    keys = ["day", "date"] if "date" in daily.columns else ["day"]
    per = daily.group_by(*keys, "holder_type").agg(
        sold=-pl.col("sell_value").sum(), bought=pl.col("buy_value").sum()
    )
    long = per.unpivot(["sold", "bought"], index=[*keys, "holder_type"], variable_name="side")
    x, title = _when(daily)
    bars = (
        alt.Chart(long.filter(pl.col("value") != 0), title="Sales and purchases by day, by holder")
        .mark_bar()
        .encode(
            x=alt.X(x, title=title, axis=alt.Axis(labelAngle=-45)),
            y=alt.Y("value:Q", title="sold (−) and bought (+)", axis=AMOUNT_AXIS, stack="zero"),
            color=alt.Color("holder_type:N", title="holder type"),
            detail="side:N",
        )
        .properties(width=700, height=260)
    )
    return _marked(bars, daily, capitulation)


def _leading(frame: pl.DataFrame, score: pl.Expr, n: int) -> tuple[pl.Series, pl.DataFrame]:
    """The ``n`` assets with the highest ``score`` (an aggregate over an asset's rows; ties by
    id) and their rows, by asset and day."""
    top = (
        frame.group_by("asset_id")
        .agg(score.alias("_score"))
        .sort("_score", "asset_id", descending=[True, False])
        .head(n)["asset_id"]
    )
    return top, frame.filter(pl.col("asset_id").is_in(top.implode())).sort("asset_id", "day")


#: Assets whose closing prices the day chart draws: the most sold.
PRICE_LINES = 4


def prices(days: pl.DataFrame, capitulation: int | None) -> alt.Chart:
    """The closing price of the most sold assets on the days they traded (``days.csv`` has a
    row for an asset on a day it traded), as a share of its first such close."""
    days = _dated_text(days)
    top, rows = _leading(days, pl.col("sell_value").sum(), PRICE_LINES)
    rows = rows.with_columns(
        close=pl.col("price_close") / pl.col("price_close").first().over("asset_id")
    )
    x, title = _when(days)
    lines = (
        alt.Chart(
            rows,
            title=f"Closes of the {top.len()} most sold assets on days they traded (first = 1)",
        )
        .mark_line(point=True)
        .encode(
            x=alt.X(x, title=title, axis=alt.Axis(labelAngle=-45)),
            y=alt.Y("close:Q", title="close / first close", scale=alt.Scale(zero=False)),
            color=alt.Color("asset_id:N", title="asset"),
        )
        .properties(width=700, height=220)
    )
    return _marked(lines, days, capitulation)


#: Assets whose volatility estimates the day chart draws: the most volatile.
VOLATILITY_LINES = 4


def volatility(estimates: pl.DataFrame, capitulation: int | None) -> alt.Chart:
    """``σ̂`` by day as the funds' rules read it (``volatility.csv``: per day, asset held by a
    fund that estimates, and estimate), for the assets with the highest peak estimate: one
    colour per asset, one dash per estimate."""
    estimates = _dated_text(estimates)
    top, rows = _leading(estimates, pl.col("vol_estimate").max(), VOLATILITY_LINES)
    x, title = _when(estimates)
    lines = (
        alt.Chart(rows, title=f"Volatility estimates of the {top.len()} most volatile held assets")
        .mark_line()
        .encode(
            x=alt.X(x, title=title, axis=alt.Axis(labelAngle=-45)),
            y=alt.Y("vol_estimate:Q", title="σ̂, annualised", axis=alt.Axis(format="%")),
            color=alt.Color("asset_id:N", title="asset"),
            strokeDash=alt.StrokeDash("estimator:N", title="estimate"),
        )
        .properties(width=700, height=220)
    )
    return _marked(lines, estimates, capitulation)

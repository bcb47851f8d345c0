"""Every episode's estimate set beside what happened.

For each scenario with ``[[published]]`` figures (:mod:`estimator.published`), the scenario
is run on its market as a user runs it, and each figure's quantity is measured on the run and
set beside the published value or range: a row per figure, misses included, with the verdict
(``in``, ``over``, ``under``) and the ratio of the estimate to the nearest end of the range.
Beside them, each episode's whole flow by channel — holder type, asset class and flow kind
(:func:`estimator.flows.by_channel`) — shows which holders the estimate comes from.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from estimator import flows, published
from estimator.api import run
from estimator.inputs import load_inputs
from estimator.manifest import BacktestManifest
from estimator.paths import shipped_scenarios
from estimator.published import amount, range_text
from estimator.report import canonical, money, write_reports
from estimator.scenario import load_scenario

#: The backtest table's columns, in order: the episode, then :data:`published.COLUMNS`.
COLUMNS = ["episode", *published.COLUMNS]
#: The flow by channel's columns: the episode, then :data:`estimator.flows.CHANNEL_COLUMNS`.
CHANNEL_COLUMNS = ["episode", *flows.CHANNEL_COLUMNS]


def episodes() -> list[str]:
    """The shipped scenarios that list published figures, by name."""
    return [name for name, path in shipped_scenarios().items() if load_scenario(path).published]


@dataclass
class Backtest:
    """The backtest table (:data:`COLUMNS`, in episode and file order) and its manifest."""

    table: pl.DataFrame
    manifest: BacktestManifest
    #: The dated episodes' figures by date (:func:`estimator.published.by_day`, with episode).
    days: pl.DataFrame | None = None
    #: Each episode's flow by channel (:data:`CHANNEL_COLUMNS`).
    channels: pl.DataFrame | None = None

    def write(self, out_dir: str | Path) -> list[Path]:
        """``backtest.csv``, ``backtest_days.csv`` (dated episodes), ``backtest_channels.csv``,
        ``backtest.html`` and ``manifest.json`` into ``out_dir``."""
        days = {"backtest_days": self.days} if self.days is not None else {}
        channels = {"backtest_channels": self.channels} if self.channels is not None else {}
        return write_reports(
            Path(out_dir),
            {"backtest": self.table} | days | channels,
            self.manifest,
            texts={"backtest.html": page(self.table, self.channels)},
        )


def backtest(
    names: Sequence[str] | None = None, progress: Callable[[str], None] | None = None
) -> Backtest:
    """Run ``names`` (default: every :func:`episodes`) and set each published figure beside
    the run's estimate of it. ``progress`` is told each episode's name as it starts."""
    parts, dated, channels = [], [], []
    for name in names or episodes():
        if progress is not None:
            progress(name)
        spec, path, market = load_inputs(name, None)
        result = run(path if path is not None else spec, market)
        by_channel = flows.by_channel(result.trades, result.holders, market.assets)
        channels.append(by_channel.select(pl.lit(spec.name).alias("episode"), pl.all()))
        if result.published is not None:
            parts.append(result.published.select(pl.lit(spec.name).alias("episode"), pl.all()))
        if result.published_days is not None:
            dated.append(result.published_days.select(pl.lit(spec.name).alias("episode"), pl.all()))
    schema = {"episode": pl.String} | published.SCHEMA
    table = canonical(pl.concat(parts) if parts else pl.DataFrame(schema=schema))
    counts = dict(sorted(table.group_by("verdict").len().iter_rows()))
    missed = published.misses(table)
    manifest = BacktestManifest(
        episodes=list(dict.fromkeys(table["episode"])),
        figures=table.height,
        verdicts=counts,
        missing_channels=explained_by(table),
        unexplained=[
            f"{e}/{f}"
            for e, f, n in missed.select("episode", "figure", "note").iter_rows()
            if not n
        ],
    )
    return Backtest(
        table,
        manifest,
        canonical(pl.concat(dated)) if dated else None,
        canonical(pl.concat(channels)) if channels else None,
    )


def explained_by(table: pl.DataFrame) -> dict[str, list[str]]:
    """Per channel the census lacks (:data:`published.CHANNELS`, in that order), the misses
    (``episode/figure``) that name it as part of their reason."""
    named = published.misses(table).select(
        "episode", "figure", channel=pl.col("missing").str.split(";")
    )
    rows = named.explode("channel").filter(pl.col("channel") != "")
    return {
        c: [
            f"{e}/{f}"
            for e, f in rows.filter(pl.col("channel") == c).select("episode", "figure").iter_rows()
        ]
        for c in published.CHANNELS
        if c in set(rows["channel"])
    }


#: The README's backtest table sits between these lines.
README_START, README_END = "<!-- backtest:start -->", "<!-- backtest:end -->"


def markdown(table: pl.DataFrame) -> str:
    """The backtest as the README's Markdown table: a row per figure."""
    lines = [
        "| episode | figure | estimate | published | verdict | ratio | why it may miss "
        "| channels missing |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table.iter_rows(named=True):
        published_range = range_text(r["low"], r["high"], r["flow"])
        note = r["note"] if r["note"] or r["verdict"] == "in" else published.UNEXPLAINED
        note = note.replace("|", "\\|")
        channels = ", ".join(f"`{c}`" for c in (r["missing"] or "").split(";") if c)
        lines.append(
            f"| `{r['episode']}` | {r['figure']} ({r['flow']}) | "
            f"{amount(r['estimate'], r['flow'])} | {published_range} | {r['verdict']} | "
            f"{r['ratio']:.2f} | {note} | {channels} |"
        )
    named = explained_by(table)
    if named:
        lines += ["", "Channels the census does not have, and the misses they help explain:", ""]
        lines += [
            f"- `{c}` — {published.CHANNELS[c]}: {', '.join(figures)}"
            for c, figures in named.items()
        ]
    return "\n".join(lines) + "\n"


#: … and its table of the dated episodes' figures by day.
DAYS_START, DAYS_END = "<!-- backtest-days:start -->", "<!-- backtest-days:end -->"


#: Relative difference under which two days' amounts count as equal (the last bits of a sum
#: differ from one processor to another): the earliest of equal days is the peak.
TIE = 1e-9


def days_markdown(days: pl.DataFrame, table: pl.DataFrame) -> str:
    """The dated episodes' figures by day as a Markdown table, a row per figure with a dated
    flow: the days with a trade it counts, the first, the peak (the earliest day whose amount
    is within :data:`TIE` of the largest; its amount and share of the total), the day by which
    half of it had come (the cumulative estimate first at or past half the total, within
    :data:`TIE`; none when the total is not positive), the last, and the total beside the
    published range."""
    lines = [
        "| episode | figure | days | first | peak day (share) | half by | last | total "
        "| published |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ranges = {(r["episode"], r["figure"]): r for r in table.iter_rows(named=True)}
    for (episode, figure), group in days.group_by("episode", "figure", maintain_order=True):
        rows = group.sort("date")
        total = rows["cumulative"][-1]
        top = rows["estimate"].max()
        peak = rows.filter(pl.col("estimate") >= top - TIE * abs(top)).row(0, named=True)
        half_way = pl.col("cumulative") >= total / 2 * (1 - TIE)
        half = rows.filter(half_way)["date"][0] if total > 0 else None
        row = ranges[(episode, figure)]
        flow = row["flow"]
        share = f"{peak['estimate'] / total:.0%}" if total > 0 else "—"
        lines.append(
            f"| `{episode}` | {figure} | {rows.height} | {rows['date'][0]} | "
            f"{peak['date']}: {amount(peak['estimate'], flow)} ({share}) | {half or '—'} | "
            f"{rows['date'][-1]} | {amount(total, flow)} | "
            f"{range_text(row['low'], row['high'], flow)} |"
        )
    return "\n".join(lines) + "\n"


def with_table(readme: str, table: pl.DataFrame, days: pl.DataFrame | None = None) -> str:
    """``readme`` with the text between :data:`README_START` and :data:`README_END` replaced by
    :func:`markdown` of ``table``, and between :data:`DAYS_START` and :data:`DAYS_END` by
    :func:`days_markdown` of ``days`` where given."""
    head, rest = readme.split(README_START)
    _, tail = rest.split(README_END)
    readme = f"{head}{README_START}\n{markdown(table)}{README_END}{tail}"
    if days is None:
        return readme
    head, rest = readme.split(DAYS_START)
    _, tail = rest.split(DAYS_END)
    return f"{head}{DAYS_START}\n{days_markdown(days, table)}{DAYS_END}{tail}"


def page(table: pl.DataFrame, channels: pl.DataFrame | None = None) -> str:
    """The backtest as one self-contained HTML page (:func:`published.html_table`), with each
    episode's flow by channel where given."""
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:4px 6px;vertical-align:top;text-align:left}.in{color:#1a7f37}"
        ".over,.under{color:#b42318}"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>forced-flow backtest</title>"
        f"<style>{style}</style></head><body><h1>Estimates beside what happened</h1>"
        "<p>Each episode run on the census market; each published figure beside the estimate "
        "of the same quantity. Ratio: estimate over the nearest end of the published range.</p>"
        f"{published.html_table(table)}{_channels_html(table)}"
        f"{_flow_by_channel_html(channels)}</body></html>"
    )


def _flow_by_channel_html(channels: pl.DataFrame | None) -> str:
    """Each episode's flow by holder type, asset class and flow kind: sold, bought, net."""
    if channels is None or channels.is_empty():
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(r['episode'])}</td><td>{html.escape(r['holder_type'])}</td>"
        f"<td>{html.escape(r['asset_class'])}</td><td>{html.escape(r['flow_kind'])}</td>"
        f"<td>{money(r['sell_value'])}</td><td>{money(r['buy_value'])}</td>"
        f"<td>{money(r['net_value'])}</td></tr>"
        for r in channels.iter_rows(named=True)
    )
    return (
        "<h2>Each episode's flow by channel</h2><p>The whole estimate of each episode by holder "
        "type, asset class and flow kind: which holders it comes from.</p><table><tr>"
        "<th>episode</th><th>holder type</th><th>asset class</th><th>flow kind</th>"
        f"<th>sold</th><th>bought</th><th>net</th></tr>{rows}</table>"
    )


def _channels_html(table: pl.DataFrame) -> str:
    """The channels the census lacks, each with the misses it helps explain."""
    named = explained_by(table)
    if not named:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(c)}</td><td>{html.escape(published.CHANNELS[c])}</td>"
        f"<td>{html.escape(', '.join(figures))}</td></tr>"
        for c, figures in named.items()
    )
    return (
        "<h2>What the census does not have</h2><table><tr><th>channel</th><th>what</th>"
        f"<th>misses it helps explain</th></tr>{rows}</table>"
    )


def main() -> None:
    """Run the backtest, keep its tables as ``backtest/latest.csv``,
    ``backtest/latest_days.csv`` and ``backtest/latest_channels.csv`` and write the first two
    into the README (``make backtest-readme``)."""
    root = Path(__file__).resolve().parents[1]
    run = backtest()
    run.table.write_csv(root / "backtest" / "latest.csv")
    assert run.days is not None and run.channels is not None  # the shipped episodes
    run.days.write_csv(root / "backtest" / "latest_days.csv")
    run.channels.write_csv(root / "backtest" / "latest_channels.csv")
    readme = root / "README.md"
    text = with_table(readme.read_text(encoding="utf-8"), run.table, run.days)
    readme.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()

"""Every episode's estimate set beside what happened.

For each scenario with ``[[published]]`` figures (:mod:`estimator.published`), the scenario
is run on its market as a user runs it, and each figure's quantity is measured on the run and
set beside the published value or range: a row per figure, misses included, with the verdict
(``in``, ``over``, ``under``) and the ratio of the estimate to the nearest end of the range.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from estimator import published
from estimator.api import run
from estimator.inputs import load_inputs
from estimator.manifest import BacktestManifest
from estimator.paths import shipped_scenarios
from estimator.published import amount, range_text
from estimator.report import canonical, write_reports
from estimator.scenario import load_scenario

#: The backtest table's columns, in order: the episode, then :data:`published.COLUMNS`.
COLUMNS = ["episode", *published.COLUMNS]


def episodes() -> list[str]:
    """The shipped scenarios that list published figures, by name."""
    return [name for name, path in shipped_scenarios().items() if load_scenario(path).published]


@dataclass
class Backtest:
    """The backtest table (:data:`COLUMNS`, in episode and file order) and its manifest."""

    table: pl.DataFrame
    manifest: BacktestManifest

    def write(self, out_dir: str | Path) -> list[Path]:
        """``backtest.csv``, ``backtest.html`` and ``manifest.json`` into ``out_dir``."""
        return write_reports(
            Path(out_dir),
            {"backtest": self.table},
            self.manifest,
            texts={"backtest.html": page(self.table)},
        )


def backtest(
    names: Sequence[str] | None = None, progress: Callable[[str], None] | None = None
) -> Backtest:
    """Run ``names`` (default: every :func:`episodes`) and set each published figure beside
    the run's estimate of it. ``progress`` is told each episode's name as it starts."""
    parts = []
    for name in names or episodes():
        if progress is not None:
            progress(name)
        spec, path, market = load_inputs(name, None)
        result = run(path if path is not None else spec, market)
        if result.published is not None:
            parts.append(result.published.select(pl.lit(spec.name).alias("episode"), pl.all()))
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
    return Backtest(table, manifest)


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


def with_table(readme: str, table: pl.DataFrame) -> str:
    """``readme`` with the text between :data:`README_START` and :data:`README_END` replaced by
    :func:`markdown` of ``table``."""
    head, rest = readme.split(README_START)
    _, tail = rest.split(README_END)
    return f"{head}{README_START}\n{markdown(table)}{README_END}{tail}"


def page(table: pl.DataFrame) -> str:
    """The backtest as one self-contained HTML page (:func:`published.html_table`)."""
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
        f"{published.html_table(table)}{_channels_html(table)}</body></html>"
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
    """Run the backtest, keep its table as ``backtest/latest.csv`` and write it into the
    README (``make backtest-readme``)."""
    root = Path(__file__).resolve().parents[1]
    table = backtest().table
    table.write_csv(root / "backtest" / "latest.csv")
    readme = root / "README.md"
    readme.write_text(with_table(readme.read_text(encoding="utf-8"), table), encoding="utf-8")


if __name__ == "__main__":
    main()

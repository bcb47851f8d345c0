"""The HTML report: one self-contained file, its charts and its numbers."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import estimator
from estimator import html as html_module
from estimator.cli import app
from estimator.html import render
from estimator.report import money

#: What would make a browser fetch something: scripts, stylesheets, imports, remote URLs.
FETCHES = re.compile(
    r"<script|<link|<iframe|@import|url\(\s*['\"]?https?:|(src|href)\s*=\s*['\"]?(https?:)?//",
    re.IGNORECASE,
)


@pytest.fixture(scope="module")
def days_run() -> estimator.RunResult:
    return estimator.run("fire_sale_days")


def test_the_report_is_one_self_contained_file(days_run: estimator.RunResult) -> None:
    page = render(days_run)
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>")
    assert FETCHES.search(page) is None, FETCHES.search(page)
    assert len(page.encode()) < 3_000_000


@pytest.mark.parametrize("scenario", ["fire_sale_days", "archegos_2021", "small_crash"])
def test_no_page_shows_a_non_finite_number(scenario: str) -> None:
    """The page is drawn from the run's checked frames: no NaN or infinity anywhere in it,
    in a table cell or a chart's text."""
    page = render(estimator.run(scenario))
    text = re.sub(r"<[^>]+>", " ", page)  # what a reader sees, not the markup
    assert re.search(r"(?i)\b(nan|-?inf(inity)?)\b", text) is None


def test_every_chart_of_a_cascade_on_a_day_clock(days_run: estimator.RunResult) -> None:
    page = render(days_run)
    # by asset class, by holder type, crowded assets, rounds, days by holder type, prices by
    # day, chain of coercion
    assert page.count("<svg") == 7
    for title in ("The cascade", "Day by day", "Prices by day", "The chain of coercion"):
        assert f"<h2>{title}</h2>" in page
    day = days_run.manifest.dump()["days"]["capitulation_day"]
    assert f"capitulation: day {day}" in page
    for holder in set(days_run.chain["target_id"]) | set(days_run.chain["source_id"]):
        assert holder in page
    assert days_run.daily is not None
    for holder_type in set(days_run.daily["holder_type"]):  # the stacked day chart's legend
        assert holder_type in page


def test_the_headline_uses_the_runs_numbers() -> None:
    result = estimator.run("small_crash")
    page = render(result)
    assert money(result.manifest.dump()["totals"]["sell_value"]) in page
    assert page.count("<svg") == 3  # one round: no cascade, day or chain charts
    assert "LDI_POOLED" in page  # holders that had to act are tabled


def test_long_tables_show_their_largest_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    result = estimator.run("small_crash")
    acted = result.holders.filter(pl.col("status") != "ok").with_columns(
        traded=pl.col("sold") + pl.col("bought")
    )
    largest = acted.sort("traded", "holder_id", descending=[True, False])["holder_id"].to_list()
    monkeypatch.setattr(html_module, "TABLE_ROWS", 3)
    page = html_module.render(result)
    assert f"The 3 largest of {acted.height}; the holders table written beside" in page
    table = page.split("<h2>Holders that had to act</h2>")[1].split("</table>")[0]
    assert [h for h in largest if f"<td>{h}</td>" in table] == largest[:3]


@pytest.mark.parametrize("command", [["report", "small_crash"], ["run", "small_crash", "--html"]])
def test_commands_write_report_html(tmp_path: Path, command: list[str]) -> None:
    out = tmp_path / "r"
    result = CliRunner().invoke(app, [*command, "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text(encoding="utf-8")
    assert FETCHES.search(page) is None
    assert (out / "assets.csv").exists()


def test_the_page_is_the_same_bytes_run_after_run() -> None:
    """Charts are fed rows in a fixed order (keys, then side): group-bys give their groups in
    any order, and the drawing would follow it."""
    pages = {render(estimator.run("small_crash")) for _ in range(4)}
    assert len(pages) == 1

"""Published figures beside the estimate: each flow measured by hand on a two-holder market,
the verdicts and ratios, currencies, and the command on a shipped episode."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import get_args

import polars as pl
import pytest
from oracle_kit import two_sellers
from pydantic import ValidationError
from typer.testing import CliRunner

import estimator
from estimator import Scenario
from estimator.backtest import episodes
from estimator.cli import app
from estimator.html import render
from estimator.published import CHANNELS, Channel, Published, estimate, verdict

SOURCE = {
    "period": "a day",
    "source": "a hand-made figure",
    "published": "2026-01-01",
    "url": "https://example.org/figure",
    "quote": "made up for the test",
    "kind": "estimate",
}


def _figure(**fields: object) -> Published:
    return Published.model_validate({"id": "f", "what": "a flow", **SOURCE, **fields})


@pytest.fixture(scope="module")
def two() -> tuple[estimator.RunResult, estimator.Market]:
    """The vol-control fund "v" sells 2250 (systematic), the margin account "h" 2500 (forced);
    each held 100 at 50 before the shock (5000)."""
    return two_sellers()


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"flow": "sales", "holder_types": ["vc"]}, 2250.0),
        ({"flow": "sales"}, 4750.0),
        ({"flow": "sales", "flow_kinds": ["forced"]}, 2500.0),
        ({"flow": "purchases"}, 0.0),
        ({"flow": "net_sales", "asset_classes": ["equity"]}, 4750.0),
        ({"flow": "net_sales", "asset_classes": ["govt_bond"]}, 0.0),
        ({"flow": "sales_share", "holder_types": ["retail"]}, 2500.0 / 5000.0),
        ({"flow": "lender_losses"}, 0.0),
    ],
)
def test_each_flow_by_hand(two: tuple, fields: dict, expected: float) -> None:
    result, market = two
    figure = _figure(low=0.0, high=1.0, **fields)
    assert estimate(figure, result, market) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_verdicts_and_ratios() -> None:
    assert verdict(2250.0, 2000.0, 3000.0) == ("in", 1.0)
    assert verdict(2500.0, 3000.0, 4000.0) == ("under", pytest.approx(2500 / 3000))
    assert verdict(0.5, 0.2, 0.4) == ("over", pytest.approx(1.25))
    assert verdict(16.0, 150.0, 159.0, "upper") == ("in", 1.0)  # a bound from above only
    assert verdict(170.0, 150.0, 159.0, "upper") == ("over", pytest.approx(170 / 159))
    assert verdict(0.0, 0.0, 0.0) == ("in", 1.0)


def test_a_figure_in_another_currency_is_converted_at_its_own_rate() -> None:
    figure = _figure(flow="sales", low=2000.0, high=2400.0, currency="GBP", fx=1.25,
                     fx_source="a hand-made rate")  # fmt: skip
    assert figure.range_usd == (2500.0, 3000.0)
    with pytest.raises(ValidationError, match="needs fx and its fx_source"):
        _figure(flow="sales", low=1.0, high=1.0, currency="GBP", fx=1.25)
    with pytest.raises(ValidationError, match="below low"):
        _figure(flow="sales", low=2.0, high=1.0)
    with pytest.raises(ValidationError, match="distinct ids"):
        Scenario(name="s", published=[_figure(flow="sales", low=0, high=1)] * 2)


def test_the_command_on_one_episode(tmp_path: Path) -> None:
    # Tesla's addition: index funds buy the new member and sell as much of the others
    ran = CliRunner().invoke(app, ["backtest", "tesla_2020", "--out", str(tmp_path / "b")])
    assert ran.exit_code == 0, ran.output
    table = pl.read_csv(tmp_path / "b" / "backtest.csv")
    assert table["figure"].to_list() == ["index_purchases", "index_sales"]
    run = estimator.run("tesla_2020")
    index = run.trades.join(run.holders.select("holder_id", "holder_type"), on="holder_id")
    bought = index.filter(pl.col("holder_type") == "index_fund")["trade_value"].clip(0).sum()
    assert table["estimate"][0] == pytest.approx(bought, rel=1e-12)
    figures, channels = (tmp_path / "b" / "backtest.html").read_text().split("flow by channel")
    assert figures.count("<tr>") == 3  # a header and the two figures
    # the channels' table: a header and a row per channel of the file
    assert (
        channels.count("<tr>") == 1 + pl.read_csv(tmp_path / "b" / "backtest_channels.csv").height
    )
    assert "Estimates beside published figures" in ran.output


def test_the_baseline_covers_every_episode_with_two_figures_or_more() -> None:
    """backtest/baseline.csv is the first backtest, kept as it was: the seven episodes, each
    with at least two sourced figures and a verdict for every one."""
    baseline = pl.read_csv(Path(__file__).parents[1] / "backtest" / "baseline.csv")
    counts = dict(baseline.group_by("episode").len().iter_rows())
    assert sorted(counts) == sorted(
        ["march_2020", "volmageddon_2018", "aug_2024", "tesla_2020", "fallen_angels_2020",
         "archegos_2021", "gilt_2022"]
    )  # fmt: skip
    assert min(counts.values()) >= 2
    assert set(baseline["verdict"]) <= {"in", "over", "under"}
    assert baseline.select(pl.col("source", "url").str.len_chars().min()).row(0) > (0, 0)


ROOT = Path(__file__).parents[1]


def test_the_readme_table_is_the_latest_backtest() -> None:
    from estimator.backtest import (  # noqa: PLC0415
        DAYS_END,
        DAYS_START,
        README_END,
        README_START,
        days_markdown,
        markdown,
    )

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split(README_START)[1].split(README_END)[0]
    latest = pl.read_csv(ROOT / "backtest" / "latest.csv")
    assert block == "\n" + markdown(latest)
    assert list(dict.fromkeys(latest["episode"])) == episodes()  # every episode, in order
    block = readme.split(DAYS_START)[1].split(DAYS_END)[0]
    days = pl.read_csv(ROOT / "backtest" / "latest_days.csv", try_parse_dates=True)
    assert block == "\n" + days_markdown(days, latest)
    dated = {e for e in episodes() if e.endswith("_path")}
    assert set(days["episode"]) == dated  # every dated episode has its figures by day
    last = days.group_by("episode", "figure").agg(pl.col("cumulative").last())
    totals = last.join(latest, on=["episode", "figure"])  # the days add up to the total
    assert totals["cumulative"].to_list() == pytest.approx(totals["estimate"].to_list(), rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize(
    "episode",
    [pytest.param(e, marks=pytest.mark.episode) if e.endswith("_path") else e for e in episodes()],
)
def test_the_latest_backtest_is_what_the_episodes_give_now(episode: str) -> None:
    """Every episode run again (one test each, so that the workers share them): the
    estimates of backtest/latest.csv and, for a dated episode, its figures by day in
    backtest/latest_days.csv (``make backtest-readme`` rewrites both and the README's tables)."""
    from estimator.backtest import backtest  # noqa: PLC0415

    run = backtest([episode])
    now = run.table
    kept = pl.read_csv(ROOT / "backtest" / "latest.csv", schema=now.schema).filter(
        pl.col("episode") == episode
    )
    assert now.select("episode", "figure", "verdict").equals(
        kept.select("episode", "figure", "verdict")
    )
    assert now["estimate"].to_list() == pytest.approx(kept["estimate"].to_list(), rel=1e-9)
    days = pl.read_csv(ROOT / "backtest" / "latest_days.csv", try_parse_dates=True)
    days = days.filter(pl.col("episode") == episode)
    if days.is_empty():  # a one-shot episode
        assert run.days is None
        return
    assert run.days is not None
    assert run.days.select("figure", "date").equals(days.select("figure", "date"))
    assert run.days["estimate"].to_list() == pytest.approx(days["estimate"].to_list(), rel=1e-9)


def test_a_run_of_an_episode_carries_its_comparison(tmp_path: Path) -> None:
    run = estimator.run("tesla_2020")
    assert run.published is not None
    assert run.published["figure"].to_list() == ["index_purchases", "index_sales"]
    assert run.manifest.dump()["published"] == dict(
        sorted(run.published.group_by("verdict").len().iter_rows())
    )
    files = {p.name for p in run.write(tmp_path / "t", pages={"report.html": render(run)})}
    assert "published.csv" in files
    page = (tmp_path / "t" / "report.html").read_text()
    assert "Beside what happened" in page and "index_purchases" not in page  # shows `what`
    assert estimator.run("small_crash").published is None


def test_a_ratio_that_would_overflow_is_reported_as_zero() -> None:
    assert verdict(1e12, 1e-300, 1e-300) == ("over", 0.0)  # no infinity in a report
    with pytest.raises(ValidationError, match="fx"):
        _figure(flow="sales", low=1.0, high=1.0, currency="XYZ", fx=1e-300, fx_source="a rate")


def _row(episode: str, figure: str, verdict: str, missing: str, note: str) -> dict:
    return {c: None for c in published_columns()} | {
        "episode": episode, "figure": figure, "flow": "sales", "estimate": 2.0, "low": 1.0,
        "high": 1.0, "verdict": verdict, "ratio": 2.0, "missing": missing, "note": note,
    }  # fmt: skip


def published_columns() -> list[str]:
    from estimator.backtest import COLUMNS  # noqa: PLC0415

    return COLUMNS


def test_misses_name_the_channels_the_census_lacks() -> None:
    from estimator.backtest import explained_by, markdown  # noqa: PLC0415

    assert set(CHANNELS) == set(get_args(Channel))  # one vocabulary, described
    rows = [
        _row("e1", "a", "over", "central_bank;dated_path", "why a"),
        _row("e1", "b", "in", "trend_followers", "in range: not a miss"),
        _row("e2", "c", "under", "dated_path", ""),
    ]
    table = pl.DataFrame(rows).cast({"estimate": pl.Float64, "low": pl.Float64,
                                     "high": pl.Float64, "ratio": pl.Float64})  # fmt: skip
    assert explained_by(table) == {"dated_path": ["e1/a", "e2/c"], "central_bank": ["e1/a"]}
    text = markdown(table)
    assert "| why a | `central_bank`, `dated_path` |" in text
    assert "| (no reason stated) | `dated_path` |" in text  # a miss without its reason shows
    assert f"- `central_bank` — {CHANNELS['central_bank']}: e1/a" in text
    assert "trend_followers" not in text.split("Channels the census")[1]


def test_every_miss_of_the_latest_backtest_has_its_reason() -> None:
    latest = pl.read_csv(ROOT / "backtest" / "latest.csv")
    missed = latest.filter(pl.col("verdict") != "in")
    assert missed.height > 0
    assert missed["note"].str.len_chars().fill_null(0).min() > 20


def test_the_backtest_manifest_lists_what_explains_the_misses(tmp_path: Path) -> None:
    ran = CliRunner().invoke(app, ["backtest", "gilt_2022", "--out", str(tmp_path / "g")])
    assert ran.exit_code == 0, ran.output
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert manifest["unexplained"] == []
    assert manifest["missing_channels"] == {
        "central_bank": ["gilt_2022/ldi_gilt_sales"],
        "ldi_swaps": ["gilt_2022/ldi_gilt_sales", "gilt_2022/fire_sale_prevented"],
    }
    assert "Channels the census lacks, by the misses they help explain" in ran.output
    assert "What the census does not have" in (tmp_path / "g" / "backtest.html").read_text()


def test_every_figure_moved_since_the_baseline_is_in_the_readme_changes_table() -> None:
    """A figure whose estimate is not what the first backtest gave was moved by a change the
    README's "changes since the first backtest" table names, with the figure's latest value."""
    from estimator.published import amount  # noqa: PLC0415

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    changes = readme.split("**Changes since the first backtest.**")[1].split("\n\n")[1]
    assert changes.startswith("| census change |")
    key = ["episode", "figure"]
    before = pl.read_csv(ROOT / "backtest" / "baseline.csv").select(*key, before="estimate")
    now = pl.read_csv(ROOT / "backtest" / "latest.csv").join(before, on=key)
    moved = now.filter(
        (pl.col("estimate") - pl.col("before")).abs() > 1e-9 * pl.col("before").abs().clip(1.0)
    )
    assert moved.height > 0
    for episode, figure, flow, value in moved.select(*key, "flow", "estimate").iter_rows():
        rows = [line for line in changes.splitlines() if f"`{episode}` " in line and figure in line]
        assert rows, f"{episode}/{figure} moved but no change names it"
        assert f"→ {amount(value, flow)}" in rows[-1]  # the last change gives the latest value


def test_a_figure_by_day_in_the_readme_by_hand() -> None:
    """Sales of 10, 30, 30 (equal to the last bit) and 20 on four days: 90 in all; the peak is
    the earlier of the two 30s (33% of 90), half (45) has come by the third day (10 + 30 + 30
    = 70 ≥ 45; 40 after two). A total of zero has no half and no share."""
    from estimator.backtest import days_markdown  # noqa: PLC0415

    d = [dt.date(2020, 3, k) for k in (2, 3, 4, 5)]
    days = pl.DataFrame(
        {
            "episode": "e",
            "figure": ["f"] * 4 + ["z"],
            "date": [*d, d[0]],
            "estimate": [10.0, 30.0, 30.0 * (1 + 1e-15), 20.0, 0.0],
            "cumulative": [10.0, 40.0, 70.0, 90.0, 0.0],
        }
    )
    table = pl.DataFrame(
        {"episode": "e", "figure": ["f", "z"], "flow": "sales", "low": 50.0, "high": 100.0}
    )
    lines = days_markdown(days, table).splitlines()
    assert lines[2] == (
        "| `e` | f | 4 | 2020-03-02 | 2020-03-03: 30 (33%) | 2020-03-04 | 2020-03-05 | 90 "
        "| 50 – 100 |"
    )
    assert (
        lines[3]
        == "| `e` | z | 1 | 2020-03-02 | 2020-03-02: 0 (—) | — | 2020-03-02 | 0 | 50 – 100 |"
    )


def test_each_episode_s_flow_by_channel(tmp_path: Path) -> None:
    # Volmageddon's one day: the dealers' purchase of futures is their trade's value, and the
    # channels' net flows add up to every trade's
    from estimator.backtest import backtest  # noqa: PLC0415

    ran = backtest(["volmageddon_2018"])
    assert ran.channels is not None
    ran.write(tmp_path)
    channels = pl.read_csv(tmp_path / "backtest_channels.csv")
    run = estimator.run("volmageddon_2018")
    dealer = run.trades.filter(pl.col("holder_id") == "OD001")
    assert dealer["asset_id"].to_list() == ["ES_FUT"] and dealer["trade_value"][0] > 0
    row = channels.filter(pl.col("holder_type") == "options_dealer").row(0, named=True)
    assert (row["asset_class"], row["flow_kind"]) == ("equity_future", "systematic")
    assert row["buy_value"] == pytest.approx(dealer["trade_value"][0], rel=1e-12)
    assert row["sell_value"] == 0
    assert channels["net_value"].sum() == pytest.approx(run.trades["trade_value"].sum(), rel=1e-9)
    assert "flow by channel" in (tmp_path / "backtest.html").read_text()

"""The episodes as dated paths (``scenarios/march_2020_path.toml``,
``scenarios/volmageddon_2018_path.toml``): their tables against the sourced closes they were
written from, the tool that writes such tables, the daily flow report and published figures
counted over their own dates.

Oracles: the closes of named days as their sources give them (the 10-year yield 1.56% on 19
February and 0.70% on 31 March; the spreads and the VIX likewise), moves worked out by hand
from three closes, and a margin account's one sale on its date.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest
from test_path import dated, margin_market

import estimator
from estimator.path import read_moves, write_new
from estimator.paths import scenarios_dir
from estimator.published import Published, by_day, estimate
from estimator.scenario import Scenario, load_scenario

PATHS = scenarios_dir() / "paths"


def _tool() -> ModuleType:  # tools/ is not a package: the script loaded by its path
    path = Path(__file__).resolve().parents[1] / "tools" / "path_from_closes.py"
    spec = importlib.util.spec_from_file_location("path_from_closes", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


def _table() -> pl.DataFrame:
    return pl.read_csv(PATHS / "march_2020.csv", schema_overrides={"value": pl.Float64})


def _field(table: pl.DataFrame, target: str, field: str) -> pl.Series:
    return table.filter((pl.col("target") == target) & (pl.col("field") == field))["value"]


def test_the_table_meets_the_sourced_closes() -> None:
    """Summed or compounded from 19 February, each series' moves give its close of the last
    day: the 10-year yield 1.56% → 0.70% (−86bp), the IG spread 1.02% → 3.05% (+203bp), the
    HY spread 3.57% → 8.77% (+520bp), the VIX 14.38 → 53.54; equities −33.92% to 23 March."""
    table = _table()
    assert math.fsum(_field(table, "treasuries", "yield_change_bp")) == pytest.approx(-86, abs=1e-6)
    ig = _field(table, "investment_grade", "spread_change_bp")
    assert math.fsum(ig) == pytest.approx(203, abs=1e-6)
    assert math.fsum(_field(table, "high_yield", "spread_change_bp")) == pytest.approx(
        520, abs=1e-6
    )
    vix = math.prod(_field(table, "equities", "vol_multiplier"))
    assert vix == pytest.approx(53.54 / 14.38, rel=1e-12)
    to_23 = table.filter((pl.col("field") == "price_return") & (pl.col("date") <= "2020-03-23"))[
        "value"
    ]
    assert math.prod(1 + r for r in to_23) - 1 == pytest.approx(2237.40 / 3386.15 - 1, abs=5e-5)
    assert table["source"].str.len_chars().min() > 20  # every row names its source
    assert table.height == 29 * 5  # 29 trading days, five series


def test_volmageddon_meets_its_sourced_closes() -> None:
    """5 February 2018: the S&P 500 from 2,762.13 to 2,648.94 (−4.10%) and the VIX from 17.31
    to 37.32 (+115.6%); over the path the VIX goes from 11.08 (26 January) to 19.46."""
    table = pl.read_csv(
        PATHS / "volmageddon_2018.csv", schema_overrides={"value": pl.Float64}
    ).filter(pl.col("target") == "equities")
    day = table.filter(pl.col("date") == "2018-02-05")
    moves = dict(zip(day["field"], day["value"], strict=True))
    assert moves["price_return"] == pytest.approx(2648.94 / 2762.13 - 1, abs=5e-5)
    assert moves["vol_multiplier"] == pytest.approx(37.32 / 17.31, rel=1e-12)
    vix = math.prod(table.filter(pl.col("field") == "vol_multiplier")["value"])
    assert vix == pytest.approx(19.46 / 11.08, rel=1e-12)
    assert table.height == 15 * 2  # 15 trading days, two fields


def test_the_path_reads_and_its_dates_are_trading_days() -> None:
    spec = load_scenario(scenarios_dir() / "march_2020_path.toml")
    assert spec.path is not None
    moves = read_moves(PATHS / "march_2020.csv", spec.path)
    assert min(m.date for m in moves) == dt.date(2020, 2, 20)
    assert max(m.date for m in moves) == dt.date(2020, 3, 31)
    windows = {f.id: (f.start, f.end) for f in spec.published}
    assert windows["vol_targeting"] == (dt.date(2020, 2, 24), dt.date(2020, 2, 28))


def test_moves_from_closes_by_hand() -> None:
    """Closes 2.0, 2.5, 2.0 on Thursday 27, Friday 28 February and Monday 2 March 2020: as a
    difference ×100, +50 and −50; as a ratio 1.25 and 0.8; as a return +25% and −20%."""
    tool = _tool()
    closes = pl.DataFrame(
        {
            "date": ["2020-02-27", "2020-02-28", "2020-03-02"],
            "series": "S",
            "level": [2.0, 2.5, 2.0],
            "source": "a source",
        }
    )
    for how, unit, expected in [
        ("diff", 100.0, [50.0, -50.0]),
        ("ratio", 1.0, [1.25, 0.8]),
        ("return", 1.0, [0.25, -0.2]),
    ]:
        series = tool.Series("S", "t", "yield_change_bp", how, unit)
        rows = tool.moves(closes, [series], "XNYS")
        assert rows["date"].to_list() == ["2020-02-28", "2020-03-02"]
        assert rows["value"].to_list() == pytest.approx(expected, rel=1e-12)
        said = f"{how} × 100" if how == "diff" else how
        assert rows["source"][1] == f"a source; {said} of the closes of 2020-02-28 and 2020-03-02"
    gap = closes.filter(pl.col("date") != "2020-02-28")
    with pytest.raises(ValueError, match=r"missing trading days \[datetime.date\(2020, 2, 28\)\]"):
        tool.moves(gap, [tool.Series("S", "t", "yield_change_bp", "diff")], "XNYS")
    with pytest.raises(ValueError, match="more than one close"):
        tool.moves(
            pl.concat([closes, closes.head(1)]),
            [tool.Series("S", "t", "yield_change_bp", "diff")],
            "XNYS",
        )
    with pytest.raises(ValueError, match="SERIES:TARGET:FIELD:HOW"):
        tool.Series.parse("S:t:not_a_field:diff")
    with pytest.raises(ValueError, match="'diff' does not give vol_multiplier"):
        tool.Series.parse("VIX:t:vol_multiplier:diff")  # a VIX change is not a multiplier
    with pytest.raises(ValueError, match="not a field of daily closes"):
        tool.Series.parse("S:t:downgrade_notches:diff")
    assert tool.Series.parse("DGS10:t:price_return:diff:-0.07").unit == -0.07


def test_the_tool_tells_a_user_why_a_series_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    tool = _tool()
    args = ["path_from_closes.py", "closes.csv", "--series", "VIX:t:vol_multiplier:diff"]
    monkeypatch.setattr(sys, "argv", [*args, "--out", str(tmp_path / "out.csv")])
    with pytest.raises(SystemExit) as stopped:
        tool.main()
    assert stopped.value.code == 2
    assert "'diff' does not give vol_multiplier (it takes: ratio)" in capsys.readouterr().err


def test_a_path_tool_never_writes_over_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = pl.DataFrame({"date": ["2020-03-02"], "target": ["t"], "field": ["price_return"]})
    out = tmp_path / "moves.csv"
    out.write_text("kept\n", encoding="utf-8")
    assert write_new(table, out) == 1
    assert out.read_text(encoding="utf-8") == "kept\n"
    assert "exists: not overwritten" in capsys.readouterr().err
    fresh = tmp_path / "new.csv"
    assert write_new(table, fresh) == 0
    assert pl.read_csv(fresh).equals(table)


def test_the_daily_report_and_a_figure_over_its_own_dates() -> None:
    """The margin account of ``test_path`` sells 1,200 on Wednesday 4 March 2020 alone: the
    daily report has that one row, and a figure of its sales counts 1,200 over 4 March and
    nothing over 2–3 March."""
    market = margin_market()
    result = estimator.run(dated(("2020-03-02", -0.10), ("2020-03-04", -0.20)), market)
    daily = result.daily
    assert daily is not None and daily.height == 1
    row = daily.row(0, named=True)
    assert (row["day"], row["date"], row["flow_kind"]) == (2, dt.date(2020, 3, 4), "forced")
    assert (row["sell_value"], row["buy_value"]) == pytest.approx((1200.0, 0.0), rel=1e-12)

    def sales(start: str, end: str) -> float:
        figure = Published(
            id="f", what="sales", flow="sales", low=1.0, high=1.0, period="p", start=start,
            end=end, source="s", published="p", url="u", quote="q", kind="estimate",
        )  # fmt: skip
        return estimate(figure, result, market)

    assert sales("2020-03-04", "2020-03-04") == pytest.approx(1200.0, rel=1e-12)
    assert sales("2020-03-02", "2020-03-03") == 0.0
    with pytest.raises(ValueError, match="before start"):
        sales("2020-03-04", "2020-03-03")


def test_a_figure_day_by_day() -> None:
    """The margin account sells 1,200 on Wednesday 4 March (``test_path``); on Friday 6 March
    another −10% takes the price to 32.4: its 66⅔ shares are worth 2,160 on −1,800 of cash,
    AE = 360 < R = 540, and back to maintenance it keeps 360/0.25 = 1,440, selling 720. By
    day: sales 1,200 then 720 (cumulative 1,920, the figure's total), sales as a share of the
    5,000 held before the shocks 0.24 then 0.144; a figure over 2–4 March counts Wednesday
    only. A run without dates has no days."""
    market = margin_market()
    scenario = dated(("2020-03-02", -0.10), ("2020-03-04", -0.20), ("2020-03-06", -0.10))
    result = estimator.run(scenario, market)

    def figure(id_: str, flow: str, end: str = "2020-03-06") -> Published:
        return Published(
            id=id_, what="sales", flow=flow, low=1.0, high=1.0, period="p", start="2020-03-02",
            end=end, source="s", published="p", url="u", quote="q", kind="estimate",
        )  # fmt: skip

    figures = [figure("s", "sales"), figure("x", "sales_share"), figure("w", "sales", "2020-03-04")]
    days = by_day(figures, result, market)
    wed, fri = dt.date(2020, 3, 4), dt.date(2020, 3, 6)
    assert days.select("figure", "date").rows() == [("s", wed), ("s", fri), ("x", wed), ("x", fri),
                                                    ("w", wed)]  # fmt: skip
    assert days["estimate"].to_list() == pytest.approx([1200, 720, 0.24, 0.144, 1200], rel=1e-12)
    assert days["cumulative"].to_list() == pytest.approx([1200, 1920, 0.24, 0.384, 1200], rel=1e-12)
    assert estimate(figures[0], result, market) == pytest.approx(1920, rel=1e-12)
    shock = {"select": {"all": True}, "price_return": -0.3}
    one_shot = estimator.run(Scenario(name="o", shocks=[shock]), market)
    assert by_day(figures, one_shot, market).is_empty()


def test_the_daily_report_adds_up_to_the_flows() -> None:
    """Summed over days and holder types, daily.csv's sales and purchases are flows.csv's, kind
    by kind and class by class (the fire sale over days)."""
    result = estimator.run("fire_sale_days")
    assert result.daily is not None and result.flows is not None
    summed = result.daily.group_by("flow_kind", "asset_class").agg(
        pl.col("sell_value", "buy_value").sum()
    )
    flows = result.flows.select("flow_kind", "asset_class", "sell_value", "buy_value")
    joined = flows.join(summed, on=["flow_kind", "asset_class"], suffix="_daily", how="full")
    assert joined.height == flows.height and result.daily["day"].n_unique() > 1
    for side in ("sell_value", "buy_value"):
        assert joined[side].to_list() == pytest.approx(joined[f"{side}_daily"].to_list(), rel=1e-12)


def test_tesla_and_archegos_meet_their_sourced_closes() -> None:
    """The S&P 500 from 16 November to 18 December 2020, 3,626.91 → 3,709.41, and to 21
    December, 3,694.92; the VIX 22.45 → 25.16 (S&P Dow Jones Indices' and Cboe's closes). From
    19 March to 6 April 2021 ViacomCBS 97.35 → 44.35 (48.23 on 26 March) and Discovery 77.27 →
    43.38 (Yahoo Finance's closes)."""
    tesla = pl.read_csv(PATHS / "tesla_2020.csv", schema_overrides={"value": pl.Float64})
    returns = tesla.filter(pl.col("field") == "price_return")
    to_18 = returns.filter(pl.col("date") <= "2020-12-18")["value"]
    assert math.prod(1 + r for r in to_18) == pytest.approx(3709.41 / 3626.91, rel=1e-6)
    assert math.prod(1 + r for r in returns["value"]) == pytest.approx(3694.92 / 3626.91, rel=1e-6)
    vix = math.prod(_field(tesla, "equities", "vol_multiplier"))
    assert vix == pytest.approx(25.16 / 22.45, rel=1e-12)
    assert tesla.height == 24 * 2  # 24 trading days (Thanksgiving closed), two series
    archegos = pl.read_csv(PATHS / "archegos_2021.csv", schema_overrides={"value": pl.Float64})
    viacom = _field(archegos.filter(pl.col("date") <= "2021-03-26"), "viacom", "price_return")
    assert math.prod(1 + r for r in viacom) == pytest.approx(48.23 / 97.35, rel=1e-12)
    for target, ratio in (("viacom", 44.35 / 97.35), ("discovery", 43.38 / 77.27)):
        got = math.prod(1 + r for r in _field(archegos, target, "price_return"))
        assert got == pytest.approx(ratio, rel=1e-12)
    assert archegos.height == 11 * 2  # 11 trading days (Good Friday closed), two series


def test_the_gilt_path_meets_its_sourced_closes() -> None:
    """London trading days from 22 September to 14 October 2022 (17). The 10-year gilt's
    close 3.313% on 21 September, 4.501% on 27 September, 4.008% on 28 September and 4.323% on
    14 October: summed moves +118.8bp, then −49.3bp, +101.0bp in all. The 30-year's anchors
    3.77% (22 September), 5.00%, 3.92%, 3.82%, 4.07%, 4.72%, 4.77%, 4.54% and 4.78% are met on
    their days. The history's price returns are −0.11·Δy of the 10-year from 21 March (1.638%)
    to 21 September (3.313%): −0.18425 summed, over 125 London trading days (Easter, the May
    and June bank holidays, 29 August and 19 September closed)."""
    table = pl.read_csv(PATHS / "gilt_2022.csv", schema_overrides={"value": pl.Float64})
    ten = table.filter(pl.col("target") == "gilts_10y").sort("date")
    assert ten.height == 17 and ten["date"][0] == "2022-09-22"
    cum = dict(zip(ten["date"], ten["value"].cum_sum(), strict=True))
    assert cum["2022-09-27"] == pytest.approx(118.8, abs=1e-6)
    assert cum["2022-09-28"] == pytest.approx(118.8 - 49.3, abs=1e-6)
    assert cum["2022-10-14"] == pytest.approx(101.0, abs=1e-6)
    long = table.filter(pl.col("target") == "gilt_30y").sort("date")
    level = dict(zip(long["date"], 3.77 + long["value"].cum_sum() / 100, strict=True))
    anchors = {
        "2022-09-27": 5.00, "2022-09-28": 3.92, "2022-09-30": 3.82, "2022-10-04": 4.07,
        "2022-10-10": 4.72, "2022-10-11": 4.77, "2022-10-13": 4.54, "2022-10-14": 4.78,
    }  # fmt: skip
    for day, close in anchors.items():
        assert level[day] == pytest.approx(close, abs=1e-9), day
    assert long["date"][0] == "2022-09-23" and long.height == 16
    history = pl.read_csv(PATHS / "gilt_2022_history.csv", schema_overrides={"value": pl.Float64})
    assert history.height == 125 and set(history["target"]) == {"GILT_FUT"}
    assert (history["date"].min(), history["date"].max()) == ("2022-03-22", "2022-09-21")
    assert math.fsum(history["value"]) == pytest.approx(-0.11 * (3.313 - 1.638), abs=1e-9)


@pytest.mark.slow
@pytest.mark.episode
def test_tesla_is_bought_at_the_close_before_its_effective_date() -> None:
    """Effective 21 December, the addition trades at the close of Friday 18 December, and only
    then; the funds' indexed assets have grown with the index since 16 November, so they buy
    the one-shot run's amount times 3,709.41/3,626.91 (every stock moves with the index). The
    demand is read in the closing auction, |D|/(a·ADV); the defined-benefit pensions' small
    trades in the stock over the weeks stay in days."""
    path, once = estimator.run("tesla_2020_path"), estimator.run("tesla_2020")
    assert path.daily is not None
    funds = path.daily.filter(pl.col("holder_type") == "index_fund")
    assert set(funds.filter(pl.col("buy_value") > 0)["date"].cast(pl.String)) == {"2020-12-18"}

    def bought(run: estimator.RunResult) -> float:
        return run.assets.filter(pl.col("asset_id") == "EQ101")["auction_value"].item()

    assert bought(path) == pytest.approx(bought(once) * 3709.41 / 3626.91, rel=1e-6)
    row = path.assets.filter(pl.col("asset_id") == "EQ101").row(0, named=True)
    share = path_market_share("EQ101")
    trades = path.trades.filter(pl.col("asset_id") == "EQ101")
    funds = trades.filter(pl.col("holder_id").str.starts_with("IF"))["trade_value"].sum()
    others = trades.filter(~pl.col("holder_id").str.starts_with("IF"))["trade_value"].sum()
    assert row["auction_value"] == pytest.approx(funds, rel=1e-12) and others != 0
    assert row["lens"] == "auction+days"
    assert row["auction_multiple"] == pytest.approx(funds / (share * row["adv"]), rel=1e-12)
    assert row["days_to_absorb"] == pytest.approx(abs(others) / (0.2 * row["adv"]), rel=1e-9)


def path_market_share(asset_id: str) -> float:
    """The census's closing-auction share of ``asset_id``'s ADV (September 2020)."""
    assets = pl.read_csv(scenarios_dir() / "markets" / "census" / "2020-09" / "assets.csv")
    return assets.filter(pl.col("asset_id") == asset_id)["auction_share"].item()


@pytest.mark.slow
@pytest.mark.episode
def test_fallen_angels_leave_index_funds_at_the_month_end() -> None:
    """Cut on 25 March 2020, the two issues are sold by the funds held to an index from its
    month-end exit, 31 March, and not before; by the end those funds hold none of them (their
    sales equal, unit for unit, what the census's positions give them)."""
    result = estimator.run("fallen_angels_2020_path")
    census = scenarios_dir() / "markets" / "census" / "2019-12"
    indexed = pl.read_csv(census / "holders.csv").filter(pl.col("mandate") == "census_ig_only")
    angels = ["CB076", "CB088"]
    held = pl.read_csv(census / "positions.csv").filter(
        pl.col("holder_id").is_in(indexed["holder_id"].implode()) & pl.col("asset_id").is_in(angels)
    )
    sold = result.trades.filter(
        pl.col("holder_id").is_in(indexed["holder_id"].implode()) & pl.col("asset_id").is_in(angels)
    )
    assert held["quantity"].sum() > 0
    assert -sold["trade_quantity"].sum() == pytest.approx(held["quantity"].sum(), rel=1e-9)
    assert sold["date"].min() == dt.date(2020, 3, 31)

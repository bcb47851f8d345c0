"""Dated paths: the market's moves day by day (:mod:`estimator.path`).

Oracles: a margin account worked by hand over three trading days; a path whose moves all fall
on day 0 against the same shocks given as a one-shot scenario on the same day clock; the
path table's errors, each naming its file, row and field.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from oracle_kit import asset_frame, holder_frame
from typer.testing import CliRunner

import estimator
from estimator import dates
from estimator.cli import app
from estimator.errors import InputError
from estimator.mandates import Mandate
from estimator.path import MarketPath, read_moves, schedule
from estimator.paths import scenarios_dir
from estimator.scenario import Scenario

MARGIN = [{"kind": "margin", "maintenance_rate": 0.25}]


def margin_market() -> estimator.Market:
    """A margin account "h": 100 shares at 50 (5000) on −3000 of cash, AE = 2000."""
    pos = pl.DataFrame(
        [("h", "a", 100.0)], schema=["holder_id", "asset_id", "quantity"], orient="row"
    )
    return estimator.build_market(
        asset_frame([{"asset_id": "a", "price": 50.0}]),
        holder_frame([{"holder_id": "h", "cash": -3000.0}]),
        pos,
        {"m": Mandate(name="m", rules=MARGIN)},
    )


def dated(*moves: tuple[str, float]) -> Scenario:
    return Scenario(
        name="p",
        path={
            "start": "2020-03-02",
            "moves": [{"date": d, "select": {"all": True}, "price_return": r} for d, r in moves],
        },
    )


def test_a_margin_call_on_the_day_it_comes() -> None:
    """Monday 2 March 2020 −10%: price 45, value 4500, AE 1500 ≥ R = 0.25·4500 = 1125, not
    called. Wednesday 4 March −20%: price 36, value 3600, AE = 3600 − 3000 = 600 < R = 900:
    called, and back to maintenance it keeps AE/0.25 = 2400, selling 1200 (33⅓ shares), on
    that day. The path's own loss at Wednesday's open is −100·(36 − 45) = 900, beside the
    shock's 500 on day 0: 1400 in all."""
    result = estimator.run(dated(("2020-03-02", -0.10), ("2020-03-04", -0.20)), margin_market())
    trades = result.trades
    assert trades.height == 1
    row = trades.row(0, named=True)
    assert (row["day"], row["date"]) == (2, dt.date(2020, 3, 4))
    assert row["trade_value"] == pytest.approx(-1200.0, rel=1e-12)
    assert row["trade_quantity"] == pytest.approx(-100 / 3, rel=1e-12)
    h = result.holders.row(0, named=True)
    assert h["loss_direct"] == pytest.approx(1400.0, rel=1e-12)
    assert h["status"] == "forced"
    sheets = result.balance_sheets
    assert sheets["loss_path"].sum() == pytest.approx(900.0, rel=1e-12)
    assert result.manifest.path is not None
    assert result.manifest.path.moves_on == ["2020-03-02", "2020-03-04"]
    assert (result.manifest.path.start, result.manifest.path.end) == ("2020-03-02", "2020-03-04")


def test_a_quiet_day_does_not_end_the_episode() -> None:
    """Nothing is forced on days 0–3; the fall on Friday 6 March still comes."""
    result = estimator.run(dated(("2020-03-06", -0.30)), margin_market())
    assert result.trades["date"].to_list() == [dt.date(2020, 3, 6)]


def test_moves_on_day_zero_are_the_one_shot_scenario() -> None:
    """A path whose only moves fall on its first date trades exactly as those moves given as
    shocks, on the same day clock."""
    market = margin_market()
    path = estimator.run(dated(("2020-03-02", -0.35)), market)
    shot = estimator.run(
        Scenario(name="p", days={}, shocks=[{"select": {"all": True}, "price_return": -0.35}]),
        market,
    )
    assert not path.trades.is_empty()
    assert path.trades.drop("date").equals(shot.trades)
    assert path.holders.equals(shot.holders)


def test_dates_follow_the_calendar_and_inline_moves_are_checked() -> None:
    with pytest.raises(ValueError, match="not a trading day"):
        MarketPath(start="2020-04-10")  # Good Friday
    with pytest.raises(ValueError, match="before the start"):
        MarketPath(
            start="2020-03-02",
            moves=[{"date": "2020-02-28", "select": {"all": True}, "price_return": -0.1}],
        )
    s = schedule(MarketPath(start="2020-04-09", end="2020-04-14", calendar="XLON"), None)
    assert s.days == [dt.date(2020, 4, 9), dt.date(2020, 4, 14)]  # Good Friday, Easter Monday


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "moves.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_table_of_moves_with_named_targets(tmp_path: Path) -> None:
    path = MarketPath(start="2020-03-02", targets={"eq": {"asset_classes": ["equity"]}})
    source = write(
        tmp_path,
        "date,target,field,value\n"
        "2020-03-04,eq,price_return,-0.1\n"
        "2020-03-04,eq,vol_multiplier,1.5\n"
        "2020-03-05,X1,downgrade_notches,2\n",
    )
    moves = read_moves(source, path)
    assert [(m.date.day, m.price_return, m.vol_multiplier) for m in moves[:1]] == [(4, -0.1, 1.5)]
    assert moves[0].select.asset_classes == ["equity"]
    assert moves[1].select.asset_ids == ["X1"] and moves[1].downgrade_notches == 2
    frame = pl.read_csv(source)
    frame.write_parquet(tmp_path / "moves.parquet")
    assert read_moves(tmp_path / "moves.parquet", path) == moves


@pytest.mark.parametrize(
    ("row", "line", "field", "message"),
    [
        ("04/03/2020,a,price_return,-0.1", 2, "date", "YYYY-MM-DD"),
        ("2020-04-10,a,price_return,-0.1", 2, "date", "not a trading day"),
        ("2020-02-28,a,price_return,-0.1", 2, "date", "not a trading day"),
        ("2020-03-04,a,price_retrun,-0.1", 2, "field", "expected one of"),
        ("2020-03-04,a,price_return,lots", 2, "value", "finite number"),
        ("2020-03-04,a,price_return,nan", 2, "value", "finite number"),
        ("2020-03-04,a,price_return,-1.5", 2, "price_return", "greater than -1"),
        ("2020-03-04,,price_return,-0.1", 2, "target", "target is required"),
        ("2020-03-04,a,downgrade_notches,1.5", 2, "downgrade_notches", "integer"),
    ],
)
def test_bad_rows_name_their_line_and_field(
    tmp_path: Path, row: str, line: int, field: str, message: str
) -> None:
    source = write(tmp_path, f"date,target,field,value\n{row}\n")
    with pytest.raises(InputError) as caught:
        read_moves(source, MarketPath(start="2020-03-02"))
    problem = caught.value.problems[0]
    assert (problem.file, problem.row, problem.field) == (str(source), line, field)
    assert message in problem.message


def test_a_field_given_twice_and_missing_columns(tmp_path: Path) -> None:
    twice = write(
        tmp_path,
        "date,target,field,value\n2020-03-04,a,vol_change,0.1\n2020-03-04,a,vol_change,0.2\n",
    )
    with pytest.raises(InputError) as caught:
        read_moves(twice, MarketPath(start="2020-03-02"))
    assert [(p.row, p.field) for p in caught.value.problems] == [(2, "field"), (3, "field")]
    missing = write(tmp_path, "date,target,value\n2020-03-04,a,0.1\n")
    with pytest.raises(InputError) as caught:
        read_moves(missing, MarketPath(start="2020-03-02"))
    assert [p.field for p in caught.value.problems] == ["field"]


def test_the_cli_names_a_bad_path_file_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "moves.csv").write_text(
        "date,target,field,value\n2020-03-04,EQ_MEGA1,price_return,oops\n", encoding="utf-8"
    )
    spec = tmp_path / "s.toml"
    spec.write_text(
        'name = "s"\nmarket = "small"\n[path]\nstart = "2020-03-02"\nfile = "moves.csv"\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(out)])
    assert result.exit_code == 2
    assert "moves.csv, row 2, field 'value'" in result.output
    assert not out.exists()


def test_one_shot_reports_carry_no_dates() -> None:
    """A scenario without a path keeps its reports as they were: no date column, no path in
    the manifest."""
    shot = estimator.run(
        Scenario(name="s", days={}, shocks=[{"select": {"all": True}, "price_return": -0.35}]),
        margin_market(),
    )
    assert "date" not in shot.trades.columns
    assert "path" not in shot.manifest.dump()
    assert "loss_path" not in shot.balance_sheets.columns


def test_survival_searches_the_compounded_path() -> None:
    """−10% then −20% compound to −28%: the account's survival equals the one-shot's. Along
    the compound direction the price at multiple m is 50·(1 − 0.1m)(1 − 0.2m); the call comes
    at 100·P − 3000 = 0.25·100·P, P = 40: 0.02m² − 0.3m + 0.2 = 0, m* = (0.3 − √0.074)/0.04
    = 0.69926."""
    market = margin_market()
    path = estimator.survival(dated(("2020-03-02", -0.10), ("2020-03-04", -0.20)), market)
    shot = estimator.survival(
        Scenario(
            name="p",
            shocks=[
                {"select": {"all": True}, "price_return": -0.10},
                {"select": {"all": True}, "price_return": -0.20},
            ],
        ),
        market,
    )
    assert path.holders.equals(shot.holders)
    row = path.holders.row(0, named=True)
    assert row["status_at_scenario"] == "forced"
    assert row["forced_multiple"] == pytest.approx((0.3 - 0.074**0.5) / 0.04, abs=1e-3)


@pytest.mark.slow  # a fortnight of rounds on the small market: about 20 s
def test_the_shipped_week_runs_by_date() -> None:
    """small_crash_week: days are the XNYS trading days from Monday 2 March 2020; the day
    table and the manifest carry each day's date; nothing trades on a day before a move
    could force it (day 0 is the first move)."""
    result = estimator.run("small_crash_week")
    per_day = result.manifest.days.per_day
    assert per_day[0]["date"] == "2020-03-02"
    assert all(
        r["date"] == dt.date.fromisoformat("2020-03-02").isoformat() or r["day"] > 0
        for r in per_day
    )
    assert result.manifest.path.moves_on == ["2020-03-02", "2020-03-04", "2020-03-05", "2020-03-06"]
    assert result.manifest.path.end == "2020-03-13"
    dates_by_day = dict(zip(result.days["day"], result.days["date"], strict=True))
    assert dates_by_day[5] == dt.date(2020, 3, 9)  # the weekend skipped
    assert result.balance_sheets["loss_path"].sum() > 0  # the later falls cost the holders


def test_a_path_on_which_no_one_is_forced() -> None:
    """Small moves that force nobody: a report without trades, dated all the same."""
    result = estimator.run(dated(("2020-03-02", -0.01), ("2020-03-03", 0.01)), margin_market())
    assert result.trades.is_empty()
    assert result.manifest.path is not None and result.manifest.path.trading_days == 2
    assert result.manifest.days is not None and result.manifest.days.per_day == []


def test_the_march_2020_equity_path_meets_its_sourced_closes() -> None:
    """scenarios/paths/march_2020_sp500.csv (tools/path_from_series.py, S&P 500 daily closes)
    compounds from the 19 February 2020 close to the 23 March close as the closes quoted in
    march_2020.toml say: 2,237.40 / 3,386.15 − 1 = −33.92% (S&P Dow Jones Indices, via
    CNBC) — an independent source for the same two days; every row is a trading day of XNYS
    and carries its source."""
    table = scenarios_dir() / "paths" / "march_2020_sp500.csv"
    moves = read_moves(table, MarketPath(start="2020-02-19", targets={"equities": {"all": True}}))
    assert [m.date for m in moves] == dates_between("2020-02-20", "2020-03-31")
    to_23_march = [m.price_return for m in moves if m.date <= dt.date(2020, 3, 23)]
    compound = 1.0
    for r in to_23_march:
        compound *= 1 + r
    assert compound - 1 == pytest.approx(2237.40 / 3386.15 - 1, abs=1e-6)
    assert pl.read_csv(table)["source"].str.contains("S&P 500").all()


def dates_between(first: str, last: str) -> list[dt.date]:
    return dates.trading_days("XNYS", dt.date.fromisoformat(first), dt.date.fromisoformat(last))


def test_equilibrium_mode_on_a_path_runs_rounds_and_says_so() -> None:
    linear = {"model": "linear", "coefficient": 0.01, "select": {"all": True}}
    scenario = Scenario(
        name="p",
        impact={"method": "equilibrium", "models": [linear]},
        path=dated(("2020-03-02", -0.10), ("2020-03-04", -0.20)).path,
    )
    result = estimator.run(scenario, margin_market())
    assert result.trades["date"].to_list() == [dt.date(2020, 3, 4)]  # the later day still comes
    assert any("dated path runs in rounds" in w for w in result.manifest.warnings)


def test_moves_after_the_end_and_dates_beyond_the_calendars_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="after the end"):
        MarketPath(
            start="2020-03-02",
            end="2020-03-03",
            moves=[{"date": "2020-03-04", "select": {"all": True}, "price_return": -0.1}],
        )
    source = write(tmp_path, "date,target,field,value\n2020-03-04,a,price_return,-0.1\n")
    with pytest.raises(InputError) as caught:
        read_moves(source, MarketPath(start="2020-03-02", end="2020-03-03"))
    assert (caught.value.problems[0].row, caught.value.problems[0].field) == (2, "date")
    change = {"index_id": "X", "asset_id": "b", "action": "delete", "effective_date": "2040-01-03"}
    with pytest.raises(ValueError, match="outside the calendars"):
        Scenario(name="i", path={"start": "2020-03-02"}, index_changes=[change])


def test_a_parquet_table_with_datetimes(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "date": [dt.datetime(2020, 3, 4)],
            "target": ["a"],
            "field": ["price_return"],
            "value": [-0.1],
        }
    )
    frame.write_parquet(tmp_path / "m.parquet")
    (move,) = read_moves(tmp_path / "m.parquet", MarketPath(start="2020-03-02"))
    assert move.date == dt.date(2020, 3, 4)


def test_a_target_the_market_does_not_have_is_an_error(tmp_path: Path) -> None:
    """A typo in a table's target would leave its moves undone: against the market's asset ids
    it is an error naming the row; a name of [path.targets] is fine."""
    source = write(
        tmp_path,
        "date,target,field,value\n2020-03-04,eq,price_return,-0.1\n2020-03-04,EQ_MEGA9,price_return,-0.1\n",
    )
    path = MarketPath(start="2020-03-02", targets={"eq": {"all": True}})
    with pytest.raises(InputError) as caught:
        read_moves(source, path, ["EQ_MEGA1"])
    assert [(p.row, p.field) for p in caught.value.problems] == [(3, "target")]
    assert len(read_moves(source, path)) == 2  # without the market's ids, not checked

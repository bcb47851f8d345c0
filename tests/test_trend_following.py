"""``trend_following``: trend followers' targets and the trailing returns they read, by hand."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from oracle_kit import asset_frame, holder_frame

import estimator
from estimator import Mandate, Scenario, trend
from estimator.errors import InputWarnings
from rules.trend_following import trend_column

CTA = {"kind": "trend_following", "asset_classes": ["equity_future"], "position_vol": 0.1}


def _market(rule: dict | None = None, held: float = 0.5) -> estimator.Market:
    """Futures ES (100, ×10, σ 20%) and TY (50, ×10, σ 10%); a trend follower C with 1,000 of
    cash and ``held`` ES; a bond B it does not trade."""
    future = {"multiplier": 10.0, "instrument": "future", "asset_class": "equity_future"}
    return estimator.build_market(
        asset_frame(
            [
                {"asset_id": "ES", "price": 100.0, "vol": 0.2, **future},
                {"asset_id": "TY", "price": 50.0, "vol": 0.1, **future},
                {"asset_id": "B", "price": 10.0, "vol": 0.05, "asset_class": "govt_bond"},
            ]
        ),
        holder_frame([{"holder_id": "C", "cash": 1000.0, "mandate": "c"}]),
        pl.DataFrame({"holder_id": ["C", "C"], "asset_id": ["ES", "B"], "quantity": [held, 3.0]}),
        {"c": Mandate(name="c", rules=[{**CTA, "lookbacks": [21, 63], **(rule or {})}])},
    )


def _start(asset: str, **returns: float) -> dict:
    return {
        "select": {"asset_ids": [asset]},
        "returns": {int(k[1:]): r for k, r in returns.items()},
        "kind": "assumption",
        "date": "2026-01-02",
        "source": "a test",
    }


def _scenario(shocks: list[dict], starts: list[dict]) -> Scenario:
    return Scenario.model_validate({"name": "s", "shocks": shocks, "trend_start": starts})


def _path(folder: Path, returns: list[float], starts: list[dict] | None = None) -> Scenario:
    """A dated path from 5 January 2026: ES moves by ``returns``, one a day."""
    moves = folder / "moves.csv"
    rows = [f"2026-01-{5 + d:02d},es,price_return,{r},a test" for d, r in enumerate(returns)]
    moves.write_text("date,target,field,value,source\n" + "\n".join(rows) + "\n")
    path = {"start": "2026-01-05", "file": str(moves), "targets": {"es": {"asset_ids": ["ES"]}}}
    return Scenario.model_validate({"name": "s", "path": path, "trend_start": starts or []})


def _by_day(result: estimator.RunResult) -> dict[dt.date, float]:
    return dict(result.trades.group_by("date").agg(pl.col("trade_quantity").sum()).iter_rows())


def _trades(result: estimator.RunResult) -> dict[str, float]:
    return dict(result.trades.select("asset_id", "trade_quantity").iter_rows())


def test_a_turned_trend_closes_a_position_and_a_rising_trend_opens_one() -> None:
    # ES −5%: its one-month trend 1.02·0.95 − 1 = −3.1% turns, its three-month 1.08·0.95 − 1 =
    # +2.6% does not: s = (−1 + 1)/2 = 0, the 0.5 held are sold. TY's trends stay up: s = 1,
    # x* = E·b/σ = 1005·0.1/0.1 = 1005 (E = 1,000 of cash and 30 of bonds less ES's variation
    # margin 0.5·10·5), 2.01 contracts at 50 × 10. The bond is not the rule's.
    spec = _scenario(
        [{"select": {"asset_ids": ["ES"]}, "price_return": -0.05}],
        [_start("ES", d21=0.02, d63=0.08), _start("TY", d21=0.01, d63=0.02)],
    )
    assert _trades(estimator.run(spec, _market())) == pytest.approx(
        {"ES": -0.5, "TY": 2.01}, rel=1e-12
    )


def test_volatility_doubled_halves_the_book() -> None:
    # both trends up, σ ×2: x* = 1030·0.1·1/0.4 = 257.5, 0.2575 contracts at 100 × 10; held 0.5
    starts = [_start("ES", d21=0.02, d63=0.08)]
    spec = _scenario([{"select": {"asset_ids": ["ES"]}, "vol_multiplier": 2.0}], starts)
    assert _trades(estimator.run(spec, _market()))["ES"] == pytest.approx(-0.2425, rel=1e-12)
    # with a tolerance of 30% of equity (309) the gap of 242.5 is left alone
    calm = estimator.run(spec, _market({"tolerance": 0.3}))
    assert calm.trades.filter(pl.col("asset_id") == "ES").is_empty()


def test_with_no_known_trend_the_fall_sets_a_short() -> None:
    # without a trailing return the windows are empty: after a 5% fall every trend is down,
    # s = −1: short E·b/σ = 1005·0.1/0.2 = 502.5 of ES, −0.529 contracts at 95 × 10
    spec = _scenario([{"select": {"asset_ids": ["ES"]}, "price_return": -0.05}], [])
    got = _trades(estimator.run(spec, _market()))
    assert got["ES"] == pytest.approx(-1005 * 0.1 / 0.2 / 950 - 0.5, rel=1e-12)
    assert "TY" not in got  # no move, no trend, no position


def test_windows_by_hand() -> None:
    # a trailing return R over k days spread evenly: each day ln(1 + R)/k; a day with no move
    # drops one of them, R → (1 + R)^((k − 1)/k) − 1; a move r adds ln(1 + r)
    assets = asset_frame([{"asset_id": "X", "price": 100.0}]).with_columns(price_pre=100.0)
    mandate = Mandate(name="c", rules=[{**CTA, "asset_classes": ["equity"], "lookbacks": [4]}])
    begun = trend.with_windows(assets, {"c": mandate})
    start = trend.TrendStart.model_validate(_start("X", d4=0.1))
    opened = trend.opening(begun, [start], "s", InputWarnings())  # no move on day 0
    assert opened[trend_column(4)][0] == pytest.approx(1.1**0.75 - 1, rel=1e-12)
    moved = trend.advance(opened.with_columns(price=pl.lit(90.0)))
    assert moved[trend_column(4)][0] == pytest.approx(1.1**0.5 * 0.9 - 1, rel=1e-12)
    history = pl.DataFrame({"asset_id": ["X"], "r": [[0.01, None, -0.02, 0.03, 0.05]]})
    warmed = trend.warm(begun, history, "r")  # the last four days, a missing one unmoved
    assert warmed[trend_column(4)][0] == pytest.approx(0.98 * 1.03 * 1.05 - 1, rel=1e-12)


def test_a_dated_path_reads_each_day_s_trend(tmp_path: Path) -> None:
    # two days: ES +10% on day 1 turns both trends of an empty window up, s = 1
    # (x* = E₁·0.1/0.2 at 107.8 × 10), having sold on day 0 (−2%: s = −1, x* = −1030·0.1/0.2
    # at 98 × 10); E₁ is E₀ = 1030 (cash and bonds) with the short's variation margin
    result = estimator.run(_path(tmp_path, [-0.02, 0.1]), _market(held=0.0))
    by_day = _by_day(result)
    e0 = 1030.0  # nothing held before day 0: no variation margin
    assert by_day[dt.date(2026, 1, 5)] == pytest.approx(-e0 * 0.1 / 0.2 / 980, rel=1e-9)
    q0 = -e0 * 0.1 / 0.2 / 980
    e1 = e0 + q0 * 10 * (110 * 0.98 - 98)  # the day-1 move's variation margin
    after = e1 * 0.1 / 0.2 / (98 * 1.1 * 10)  # the trailing return 0.98·1.1 − 1 > 0: s = 1
    assert by_day[dt.date(2026, 1, 6)] == pytest.approx(after - q0, rel=1e-9)


def test_each_day_moves_the_windows_once(tmp_path: Path) -> None:
    # a month's trend of +5% at the start, no move on day 0, −3% on day 1: pushed once, the
    # trend is exp((19/21)·ln 1.05 + ln 0.97) − 1 = +1.4%; pushed twice, exp((18/21)·ln 1.05 +
    # 2·ln 0.97) − 1 = −1.9%: the follower stays long, sized to the day's equity, only if
    # each day moves the window once
    spec = _path(tmp_path, [0.0, -0.03], [_start("ES", d21=0.05)])
    market = _market({"lookbacks": [21]}, held=0.5)  # 0.5·100·10 = 500 = 1030·0.1/0.2 − 15
    by_day = _by_day(estimator.run(spec, market))
    e0 = 1030.0  # day 0: no move, no variation margin
    q0 = e0 * 0.1 / 0.2 / 1000  # day 0's target: long, 0.515 contracts
    assert by_day[dt.date(2026, 1, 5)] == pytest.approx(q0 - 0.5, rel=1e-9)
    e1 = e0 + q0 * 10 * (97 - 100)
    assert by_day[dt.date(2026, 1, 6)] == pytest.approx(e1 * 0.1 / 0.2 / 970 - q0, rel=1e-9)


def test_the_check_before_the_scenario_reads_its_trends() -> None:
    # 0.515 ES is the target of an up-trend (1030·0.1/0.2 = 515); with no trend it is a breach
    market = _market({"lookbacks": [21]}, held=0.515)
    up = _scenario([], [_start("ES", d21=0.05)])
    flat = _scenario([], [])

    def warned(spec: Scenario) -> bool:
        items = estimator.run(spec, market).warnings.items
        return any("breaks its rules" in w.message for w in items)

    assert not warned(up) and warned(flat)

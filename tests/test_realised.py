"""Realised volatility as funds estimate it (:mod:`rules.estimators`, :mod:`estimator.realised`).

Oracles: estimates worked by hand from the definitions (σ₀ = 16%, so a day's squared return in
the calm window is 0.0256/252), and a vol-control fund's trades from a plain-Python recursion of
its rule, price and cash, written out below without the engine.
"""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest
from oracle_kit import asset_frame, holder_frame
from pydantic import ValidationError

import estimator
from estimator import dates, realised
from estimator.mandates import Mandate
from estimator.scenario import Scenario
from rules import VolTarget
from rules.estimators import Ewma, Lookback, MaxOf, scale_column

S0 = 0.16  # σ₀: the asset's volatility before the scenario
START = dt.date(2020, 3, 2)


def one_asset(returns: list[float], estimator_: Lookback | Ewma | MaxOf) -> list[float]:
    """The estimate after each day's return, for one asset whose model vol stays σ₀."""
    wanted = {estimator_.key: estimator_}
    frame = pl.DataFrame({"asset_id": ["a"], "price_pre": [1.0], "vol_pre": [S0], "vol": [S0]})
    frame = realised.start(frame.with_columns(price=pl.lit(1.0)), wanted)
    out, price = [], 1.0
    for r in returns:
        price *= 1 + r
        frame = realised.update(frame.with_columns(price=pl.lit(price)), wanted)
        out.append(frame[scale_column(estimator_.key)].item() * S0)
    return out


def test_a_lookback_jumps_at_once_and_falls_off_a_cliff() -> None:
    """20 days, one −10% return then none: σ̂² = (19/20)·0.0256 + 12.6·0.01 = 0.15032 on the
    day (σ̂ = 0.38771); k quiet days later ((19 − k)/20)·0.0256 + 0.126; on the 20th the −10%
    leaves the window and σ̂ = 0."""
    got = one_asset([-0.10] + [0.0] * 20, Lookback(days=20))
    assert got[0] == pytest.approx(math.sqrt(0.15032), rel=1e-12)
    for k in range(1, 20):
        assert got[k] == pytest.approx(math.sqrt((19 - k) / 20 * 0.0256 + 0.126), rel=1e-12)
    assert got[20] == pytest.approx(0.0, abs=1e-15)


def test_an_ewma_climbs_over_several_days() -> None:
    """λ = 0.94, −4% a day: the daily variance v ← 0.94·v + 0.06·0.0016 from v₀ = 0.0256/252;
    by hand v₁ = 1.914921·10⁻⁴ (σ̂ = √(252·v) = 0.219672), v₂ = 2.760025·10⁻⁴ (0.263728),
    v₃ = 3.554424·10⁻⁴ (0.299285)."""
    got = one_asset([-0.04] * 3, Ewma(decay=0.94))
    assert got == pytest.approx([0.219672, 0.263728, 0.299285], rel=3e-6)


def test_the_max_of_two_windows_goes_up_fast_and_down_slowly() -> None:
    """5 and 20 days, one −10% then quiet: up with the 5-day window (σ̂₅² = 0.8·0.0256 + 0.504,
    σ̂ = 0.72394), and once the return has left it, down only as far as the 20-day one
    (day 5: ((19 − 5)/20)·0.0256 + 0.126, σ̂ = 0.37937)."""
    got = one_asset([-0.10] + [0.0] * 5, MaxOf(of=[Lookback(days=5), Lookback(days=20)]))
    assert got[0] == pytest.approx(math.sqrt(0.8 * 0.0256 + 0.504), rel=1e-12)
    assert got[5] == pytest.approx(math.sqrt(14 / 20 * 0.0256 + 0.126), rel=1e-12)


def test_a_lag_reads_the_estimate_of_days_before() -> None:
    fresh = one_asset([-0.10, 0.0, 0.0], Lookback(days=20))
    lagged = one_asset([-0.10, 0.0, 0.0], Lookback(days=20, lag_days=1))
    assert lagged == pytest.approx([S0, fresh[0], fresh[1]], rel=1e-12)


def test_estimators_are_checked() -> None:
    with pytest.raises(ValidationError, match="on the max"):
        MaxOf(of=[Lookback(days=5, lag_days=1), Lookback(days=20)])
    with pytest.raises(ValidationError):
        MaxOf(of=[Lookback(days=5)])
    with pytest.raises(ValidationError):
        Ewma(decay=1.0)
    with pytest.raises(ValidationError, match="same estimator"):
        Mandate(
            name="m",
            rules=[
                {"kind": "vol_target", "target": 0.1, "estimator": {"kind": "ewma", "decay": 0.9}},
                {"kind": "var_limit", "limit": 0.02},
            ],
        )


# --- a vol-control fund on a path ---------------------------------------------------------------


def fund_market(estimate: dict) -> estimator.Market:
    """A vol-control fund: 100 units of one asset at 100 (σ₀ = 16%), no cash, no debt; target
    20%, ±10% band, re-levers within a gross cap of 1."""
    rule = {
        "kind": "vol_target",
        "target": 0.2,
        "tolerance": 0.1,
        "gross_cap": 1.0,
        "relever": True,
        "estimator": estimate,
    }
    pos = pl.DataFrame(
        [("v", "a", 100.0)], schema=["holder_id", "asset_id", "quantity"], orient="row"
    )
    return estimator.build_market(
        asset_frame([{"asset_id": "a", "price": 100.0, "vol": S0}]),
        holder_frame([{"holder_id": "v"}]),
        pos,
        {"m": Mandate(name="m", rules=[rule])},
    )


def on_days(returns: list[float]) -> Scenario:
    days = dates.trading_days("XNYS", START, START + dt.timedelta(days=2 * len(returns) + 14))
    moves = [
        {"date": days[d].isoformat(), "select": {"all": True}, "price_return": r}
        for d, r in enumerate(returns)
        if r != 0.0
    ]
    return Scenario(
        name="p",
        path={
            "start": START.isoformat(),
            "end": days[len(returns) - 1].isoformat(),
            "moves": moves,
        },
    )


def recursion(returns: list[float], sigma: list[float]) -> dict[int, float]:
    """The fund by hand: each day the price moves, then if σ̂·x/E is above 22% the fund sells to
    20%, if below 18% it buys up to min(20%·E/σ̂, its gross cap E); trades by day."""
    q, price, cash, trades = 100.0, 100.0, 0.0, {}
    for day, (r, s) in enumerate(zip(returns, sigma, strict=True)):
        price *= 1 + r
        x = q * price
        equity = x + cash
        if s * x > 0.22 * equity:
            target = 0.2 * equity / s
        elif s * x < 0.18 * equity:
            target = min(0.2 * equity / s if s > 0 else math.inf, equity)
        else:
            continue
        if abs(target - x) <= 1e-9 * equity:  # already there (at its gross cap)
            continue
        trades[day] = target - x
        cash -= target - x
        q = target / price
    return trades


def test_a_vol_control_fund_cuts_on_the_day_and_relevers_at_the_cliff() -> None:
    """−10% on 2 March 2020, then +0.1% a day. With a 20-day lookback the estimate jumps to
    38.8% and the fund sells 9000·(1 − 0.2/0.38771) = 4357.37 that day; it stays inside its
    band while the −10% is in the window (σ/E falls from 19.9% to 18.3%) and buys everything
    back on day 20, 30 March, when the return leaves the window (σ̂ = √(252·20·10⁻⁶/20) =
    1.6%)."""
    returns = [-0.10] + [0.001] * 21
    sigma = one_asset(returns, Lookback(days=20))
    want = recursion(returns, sigma)
    assert sorted(want) == [0, 20]
    assert want[0] == pytest.approx(-9000 * (1 - 0.2 / math.sqrt(0.15032)), rel=1e-12)
    result = estimator.run(on_days(returns), fund_market({"kind": "lookback", "days": 20}))
    got = dict(zip(result.trades["day"], result.trades["trade_value"], strict=True))
    assert sorted(got) == [0, 20]
    assert result.trades["date"].to_list() == [START, dt.date(2020, 3, 30)]
    for day, value in want.items():
        assert got[day] == pytest.approx(value, rel=1e-9)


def test_an_ewma_fund_sells_over_several_days() -> None:
    """−4% a day for five days with an EWMA (λ = 0.94): the estimate climbs 22.0%, 26.4%, 29.9%,
    … and the fund sells on each day it crosses its band, not all on the first."""
    returns = [-0.04] * 5
    sigma = one_asset(returns, Ewma(decay=0.94))
    want = recursion(returns, sigma)
    assert len(want) >= 3
    result = estimator.run(on_days(returns), fund_market({"kind": "ewma", "decay": 0.94}))
    got = dict(zip(result.trades["day"], result.trades["trade_value"], strict=True))
    assert sorted(got) == sorted(want)
    for day, value in want.items():
        assert got[day] == pytest.approx(value, rel=1e-9)


def test_the_model_vol_still_drives_a_fund_without_an_estimator() -> None:
    """Without an estimator the rule reads the risk model, which a vol multiplier moves at once
    (the one-shot stress test): ×3 on a 16% asset is 48%, the fund sells 1 − 0.2/0.48 of it."""
    rule = VolTarget(target=0.2, tolerance=0.1)
    pos = pl.DataFrame(
        [("v", "a", 100.0)], schema=["holder_id", "asset_id", "quantity"], orient="row"
    )
    market = estimator.build_market(
        asset_frame([{"asset_id": "a", "price": 100.0, "vol": S0}]),
        holder_frame([{"holder_id": "v"}]),
        pos,
        {"m": Mandate(name="m", rules=[rule])},
    )
    shot = Scenario(name="s", shocks=[{"select": {"all": True}, "vol_multiplier": 3.0}])
    result = estimator.run(shot, market)
    assert result.trades["trade_value"].item() == pytest.approx(-10_000 * (1 - 0.2 / 0.48))


def test_min_cost_reads_the_estimate_too() -> None:
    """One asset leaves no choice: the least-cost sale is the pro-rata one, and it is the sale
    the estimate asks for (a solve on the model's 16% would find the fund inside its band)."""
    returns = [-0.10, 0.001]
    market = fund_market({"kind": "lookback", "days": 20})
    by_style = {
        style: estimator.run(on_days(returns), market, execution=style).trades
        for style in ("pro_rata", "min_cost")
    }
    assert by_style["min_cost"]["day"].to_list() == [0]
    assert by_style["min_cost"]["trade_value"].item() == pytest.approx(
        by_style["pro_rata"]["trade_value"].item(), rel=1e-6
    )


def test_the_max_of_two_ewmas() -> None:
    """S&P's risk-control form: the larger of EWMAs with λ = 0.94 and 0.97. After −4% the
    faster one is the larger: v = 0.94·v₀ + 0.06·0.0016 against 0.97·v₀ + 0.03·0.0016."""
    got = one_asset([-0.04], MaxOf(of=[Ewma(decay=0.94), Ewma(decay=0.97)]))
    v0 = S0**2 / 252
    fast, slow = 0.94 * v0 + 0.06 * 0.0016, 0.97 * v0 + 0.03 * 0.0016
    assert got[0] == pytest.approx(math.sqrt(252 * max(fast, slow)), rel=1e-12)


def test_an_estimate_needs_a_path() -> None:
    """An estimate needs days: on a one-shot scenario, and in the survival search (which takes
    a path as its one-shot version), the 20-day fund reads the risk model as the shocks leave
    it — a −10% fall without a vol multiplier keeps it at 16%, inside its band, where on a
    path the same fall puts its estimate at 38.8% and it sells."""
    market = fund_market({"kind": "lookback", "days": 20})
    scenario = on_days([-0.10])
    assert not estimator.run(scenario, market).trades.is_empty()
    assert estimator.survival(scenario, market).holders["status_at_scenario"].item() == "ok"
    shot = Scenario(name="s", shocks=[{"select": {"all": True}, "price_return": -0.10}])
    assert estimator.run(shot, market).trades.is_empty()

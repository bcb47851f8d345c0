"""Realised volatility as funds estimate it (:mod:`rules.estimators`, :mod:`estimator.realised`).

Oracles: estimates worked by hand from the definitions (σ₀ = 16%, so a day's squared return in
the calm window is 0.0256/252), and a vol-control fund's trades from a plain-Python recursion of
its rule, price and cash, written out below without the engine.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import polars as pl
import pytest
from oracle_kit import asset_frame, holder_frame
from pydantic import ValidationError

import estimator
from estimator import dates, realised
from estimator.html import render
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
    # volatility.csv: the estimate the fund read each day, by hand — k days after the −10%,
    # (19 − k) calm days, the −10% and k days of +0.1% in the window; on day 20 only the +0.1%s
    vols = result.volatility
    assert vols is not None
    assert vols["estimator"].unique().to_list() == ["lookback20"]
    assert vols["day"].to_list() == list(range(22))
    assert vols["date"][20] == dt.date(2020, 3, 30)
    by_hand = [math.sqrt((19 - k) / 20 * 0.0256 + 0.126 + 12.6e-6 * k) for k in range(20)]
    by_hand += [math.sqrt(252 * 20e-6 / 20), math.sqrt(252 * 20e-6 / 20)]
    assert vols["vol_estimate"].to_list() == pytest.approx(by_hand, rel=1e-9)
    assert set(vols["vol_model"]) == {S0}


def test_the_volatility_report_follows_what_estimating_funds_hold() -> None:
    """Two funds: ``v`` estimates (lookback) and holds ``a`` and ``c``, ``w`` reads the risk
    model and holds ``b`` and ``c``; a zero position is not held. The assets followed are those
    ``v`` holds: a and c."""
    estimating = Mandate(
        name="est",
        rules=[{"kind": "vol_target", "target": 0.2, "estimator": {"kind": "lookback", "days": 5}}],
    )
    plain = Mandate(name="plain", rules=[{"kind": "vol_target", "target": 0.2}])
    holders = pl.DataFrame({"holder_id": ["v", "w"], "mandate": ["est", "plain"]})
    positions = pl.DataFrame(
        {
            "holder_id": ["w", "v", "v", "w", "v"],
            "asset_id": ["b", "c", "a", "c", "d"],
            "quantity": [1.0, 2.0, 3.0, 4.0, 0.0],
        }
    )
    got = realised.watched(holders, positions, {"est": estimating, "plain": plain})
    assert got.to_list() == ["a", "c"]


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


def with_history(rows: list[tuple[str, float]], tmp: Path, returns: list[float]) -> Scenario:
    """``on_days(returns)`` with a history table of ``rows`` (date, the asset's return)."""
    table = tmp / "history.csv"
    lines = ["date,target,field,value"] + [f"{d},a,price_return,{r}" for d, r in rows]
    table.write_text("\n".join(lines) + "\n")
    path = on_days(returns).path
    assert path is not None
    return Scenario(name="p", path=path.model_copy(update={"history": str(table)}))


def relever(sigma_history: float, sigma_day0: float) -> float:
    """The 20%-target fund of :func:`fund_market` by hand after a history: sized to its
    estimate at the start, x₀ = 10000·f with f = min(0.16/σ̂_h, 1) (gross cap 1; the census
    held 16% on the model, 80% of its target); on day 0 (no move) its volatility σ̂₀·x₀ is
    below 18% of its equity, so it buys back up to min(0.2·10000/σ̂₀, 10000)."""
    x0 = 10_000 * min(S0 / sigma_history, 1.0)
    assert sigma_day0 * x0 < 0.18 * 10_000
    return min(0.2 * 10_000 / sigma_day0, 10_000) - x0


def test_a_history_starts_the_estimate_from_the_days_before(tmp_path: Path) -> None:
    """Three days before Monday 2 March 2020 — +1% on 26 February, −2% on the 27th, +3% on the
    28th: a 3-day window gives σ̂ = √(84·0.0014) = 34.29%, and the fund starts at 16/34.29 of
    its book. Day 0 is quiet: the window holds 0.0004, 0.0009 and 0, σ̂ = √(84·0.0013) =
    33.05%, and the fund buys back to its target. Without the history (σ₀ = 16% in a calm
    window) it holds."""
    rows = [("2020-02-26", 0.01), ("2020-02-27", -0.02), ("2020-02-28", 0.03)]
    market = fund_market({"kind": "lookback", "days": 3})
    result = estimator.run(with_history(rows, tmp_path, [0.0, 0.0]), market)
    want = relever(math.sqrt(84 * 0.0014), math.sqrt(84 * 0.0013))
    assert result.trades.filter(pl.col("day") == 0)["trade_value"].item() == pytest.approx(
        want, rel=1e-12
    )
    assert result.manifest.path is not None
    assert result.manifest.path.history == ["2020-02-26", "2020-02-28"]
    assert estimator.run(on_days([0.0, 0.0]), market).trades.is_empty()


def test_an_ewma_warms_on_its_history(tmp_path: Path) -> None:
    """λ = 0.94 over two days before the start, −5% then −5%: the daily variance
    v_h = 0.94·(0.94·v₀ + 0.06·0.0025) + 0.06·0.0025 (v₀ = 0.0256/252), the same recursion as
    if those days were the path's (checked against one_asset); day 0's quiet return leaves
    0.94·v_h."""
    v0 = S0**2 / 252
    v = 0.94 * (0.94 * v0 + 0.06 * 0.0025) + 0.06 * 0.0025
    assert one_asset([-0.05, -0.05, 0.0], Ewma(decay=0.94))[-1] == pytest.approx(
        math.sqrt(252 * 0.94 * v), rel=1e-12
    )
    rows = [("2020-02-27", -0.05), ("2020-02-28", -0.05)]
    market = fund_market({"kind": "ewma", "decay": 0.94})
    result = estimator.run(with_history(rows, tmp_path, [0.0]), market)
    want = relever(math.sqrt(252 * v), math.sqrt(252 * 0.94 * v))
    assert result.trades["trade_value"].item() == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("2020-02-26", 0.01), ("2020-02-28", 0.01)], "a gap"),  # the 27th is missing
        ([("2020-03-02", 0.01)], "before the start"),
        ([("2020-02-29", 0.01)], "not a trading day"),
    ],
)
def test_a_bad_history_names_its_row(
    rows: list[tuple[str, float]], message: str, tmp_path: Path
) -> None:
    with pytest.raises(estimator.InputError, match=message) as caught:
        estimator.run(
            with_history(rows, tmp_path, [0.0]), fund_market({"kind": "ewma", "decay": 0.94})
        )
    assert "history.csv" in str(caught.value)


def levered_fund(cap: float | None) -> estimator.Market:
    """100 units at 100 (σ = 16%), no cash: on the model σ_p = 1600, 80% of a 20% target of
    E = 10000; a 3-day lookback, no re-levering."""
    rule = {"kind": "vol_target", "target": 0.2, "tolerance": 0.1, "gross_cap": cap}
    rule["estimator"] = {"kind": "lookback", "days": 3}
    pos = pl.DataFrame({"holder_id": ["v"], "asset_id": ["a"], "quantity": [100.0]})
    return estimator.build_market(
        asset_frame([{"asset_id": "a", "price": 100.0, "vol": S0}]),
        holder_frame([{"holder_id": "v"}]),
        pos,
        {"m": Mandate(name="m", rules=[rule])},
    )


CALM = [("2020-02-26", 0.005), ("2020-02-27", -0.005), ("2020-02-28", 0.005)]
#: The history's estimate: √(84·3·0.000025) = 7.9373%.
CALM_SIGMA = math.sqrt(84 * 3 * 0.000025)


@pytest.mark.parametrize(("cap", "f"), [(None, S0 / CALM_SIGMA), (1.5, 1.5)])
def test_a_fund_starts_sized_to_its_estimate(cap: float | None, f: float) -> None:
    """Three calm days (σ̂ = 7.94% against the model's 16%): the fund held 80% of its target
    on its own estimate, so its book is f = 0.16/0.079373 = 2.0158 times the census's, cash
    paying 100·(f − 1)·100 — or, capped at 1.5 times equity, f = 1.5."""
    from estimator.path import Move, history_returns  # noqa: PLC0415
    from estimator.selectors import Selector  # noqa: PLC0415
    from estimator.warmup import sized_to_estimates  # noqa: PLC0415

    market = levered_fund(cap)
    moves = [
        Move(date=dt.date.fromisoformat(d), select=Selector(asset_ids=["a"]), price_return=r)
        for d, r in CALM
    ]
    wanted = realised.estimators(market.mandates["m"].rules)
    before = realised.warmed(market.assets, wanted, history_returns(market.assets, moves))
    sized = sized_to_estimates(market, wanted, before)
    assert sized.positions["quantity"].item() == pytest.approx(100 * f, rel=1e-12)
    assert sized.holders["cash"].item() == pytest.approx(-100 * (f - 1) * 100, rel=1e-12)


def test_the_sized_fund_sells_what_its_book_asks(tmp_path: Path) -> None:
    """After the calm history a quiet day 0 and −5% on day 1: the window holds 0.000025,
    0 and 0.0025, σ̂ = √(84·0.002525) = 46.05%. The fund holds q = 100·f units (f = 2.0158),
    cash −100·(f − 1)·100; at 95 its equity is 10000 − 5·q and it sells to 20% of it:
    0.2·E/σ̂ − 95·q — about three times what the census's own book would sell."""
    market = levered_fund(None)
    table = tmp_path / "history.csv"
    table.write_text(
        "date,target,field,value\n" + "".join(f"{d},a,price_return,{r}\n" for d, r in CALM)
    )
    path = on_days([0.0, -0.05]).path
    assert path is not None
    scenario = Scenario(name="p", path=path.model_copy(update={"history": str(table)}))
    result = estimator.run(scenario, market)
    q = 100 * S0 / CALM_SIGMA
    equity, sigma = 10_000 - 5 * q, math.sqrt(84 * 0.002525)
    want = 0.2 * equity / sigma - 95 * q
    got = result.trades.filter(pl.col("day") == 1)["trade_value"].item()
    assert got == pytest.approx(want, rel=1e-9)
    unsized = 0.2 * 9500 / sigma - 9500
    assert got < 2.5 * unsized < 0


def test_only_estimating_funds_are_sized() -> None:
    """Beside the sized fund, a fund on the risk model's σ (no estimator) and a holder of a
    futures book sized the same way keep or pay as the recipe says: the model fund's book and
    cash are untouched, the futures fund's quantity doubles (f = 2.0158) and its cash does not
    move (a future costs nothing to hold)."""
    from estimator.path import Move, history_returns  # noqa: PLC0415
    from estimator.selectors import Selector  # noqa: PLC0415
    from estimator.warmup import sized_to_estimates  # noqa: PLC0415

    estimating = {"kind": "vol_target", "target": 0.2, "estimator": {"kind": "lookback", "days": 3}}
    model = {"kind": "vol_target", "target": 0.2}
    assets = asset_frame(
        [
            {"asset_id": "a", "price": 100.0, "vol": S0},
            {"asset_id": "fut", "price": 100.0, "vol": S0, "instrument": "future",
             "multiplier": 1.0, "margin_rate": 0.1},
        ]
    )  # fmt: skip
    holders = holder_frame(
        [
            {"holder_id": "m", "mandate": "model", "cash": 0.0},
            {"holder_id": "v", "mandate": "est", "cash": 0.0},
            {"holder_id": "x", "mandate": "est", "cash": 10_000.0},
        ]
    )
    pos = pl.DataFrame(
        {"holder_id": ["m", "v", "x"], "asset_id": ["a", "a", "fut"], "quantity": [100.0] * 3}
    )
    mandates = {
        "model": Mandate(name="model", rules=[model]),
        "est": Mandate(name="est", rules=[estimating]),
    }
    market = estimator.build_market(assets, holders, pos, mandates)
    moves = [
        Move(date=dt.date.fromisoformat(d), select=Selector(all=True), price_return=r)
        for d, r in CALM
    ]
    wanted = realised.estimators(r for m in market.mandates.values() for r in m.rules)
    before = realised.warmed(market.assets, wanted, history_returns(market.assets, moves))
    sized = sized_to_estimates(market, wanted, before)
    f = S0 / CALM_SIGMA
    q = dict(zip(sized.positions["holder_id"], sized.positions["quantity"], strict=True))
    cash = dict(zip(sized.holders["holder_id"], sized.holders["cash"], strict=True))
    assert q["m"] == 100.0 and cash["m"] == 0.0
    assert q["v"] == pytest.approx(100 * f, rel=1e-12)
    assert cash["v"] == pytest.approx(-100 * (f - 1) * 100, rel=1e-12)
    assert q["x"] == pytest.approx(100 * f, rel=1e-12) and cash["x"] == 10_000.0


def test_the_report_draws_the_estimates_by_day() -> None:
    """The HTML report has the volatility chart (its estimate in the legend) beside the day
    charts, and a run without estimators has neither chart nor table."""
    returns = [-0.10] + [0.001] * 3
    result = estimator.run(on_days(returns), fund_market({"kind": "lookback", "days": 20}))
    page = render(result)
    assert "<h2>Volatility as the funds estimate it</h2>" in page
    assert "lookback20" in page
    plain = estimator.run("fire_sale_days")
    assert plain.volatility is None and "volatility" not in plain.tables()
    assert "Volatility as the funds" not in render(plain)


def test_a_lagged_estimate_is_logged_as_the_fund_reads_it() -> None:
    """With a one-day lag the fund reads yesterday's estimate: volatility.csv's σ̂ of day d is
    the unlagged σ̂ of day d − 1 (day 0: σ₀, the calm window's)."""
    returns = [-0.10] + [0.001] * 3
    fresh = estimator.run(on_days(returns), fund_market({"kind": "lookback", "days": 20}))
    late = estimator.run(
        on_days(returns), fund_market({"kind": "lookback", "days": 20, "lag_days": 1})
    )
    assert fresh.volatility is not None and late.volatility is not None
    assert late.volatility["estimator"].unique().to_list() == ["lookback20-lag1"]
    want = [S0, *fresh.volatility["vol_estimate"].to_list()[:-1]]
    assert late.volatility["vol_estimate"].to_list() == pytest.approx(want, rel=1e-12)


def test_no_estimates_are_logged_without_a_path(tmp_path: Path) -> None:
    """The same estimating fund on a one-shot scenario and on a day clock without dates reads
    the risk model: neither run has a volatility or by-day figures table, nor writes one."""
    market = fund_market({"kind": "lookback", "days": 20})
    shock = {"select": {"all": True}, "price_return": -0.10, "vol_multiplier": 3.0}
    shot = Scenario(name="s", shocks=[shock])
    clock = Scenario(name="d", shocks=[shock], days={"max_days": 3})
    for scenario in (shot, clock):
        result = estimator.run(scenario, market)
        assert result.volatility is None and result.published_days is None
        written = {p.name for p in result.write(tmp_path / scenario.name)}
        assert "volatility.csv" not in written and "published_days.csv" not in written
        assert not result.trades.is_empty()  # the fund did trade, on the model's σ


def test_a_starting_level_stands_for_the_days_before() -> None:
    """No history, but the path says realised volatility stood at 8% (the later of two entries
    wins over 30% for every asset): the 20-day window starts with 19 days of 0.0064/252, so
    after −10% on day 0 σ̂² = (19/20)·0.0064 + 12.6·0.01 = 0.13208 (σ̂ = 36.34%, where the
    model's σ₀ = 16% gives 38.77%); the manifest lists both levels with their labels."""
    scenario = on_days([-0.10, 0.0])
    assert scenario.path is not None
    levels = [
        {"select": {"all": True}, "vol": 0.30, "source": "a range", "label": "assumption"},
        {"select": {"asset_ids": ["a"]}, "vol": 0.08, "source": "a series", "label": "estimate"},
    ]
    path = scenario.path.model_dump(exclude_none=True) | {"starting_vol": levels}
    result = estimator.run(
        Scenario(name="p", path=path), fund_market({"kind": "lookback", "days": 20})
    )
    assert result.volatility is not None
    assert result.volatility["vol_estimate"][0] == pytest.approx(math.sqrt(0.13208), rel=1e-12)
    given = result.manifest.dump()["path"]["starting_vol"]
    assert [(v["vol"], v["label"]) for v in given] == [(0.30, "assumption"), (0.08, "estimate")]
    assert given[1]["select"] == {"asset_ids": ["a"]}
    with pytest.raises(ValidationError, match="vol"):
        Scenario(name="p", path=path | {"starting_vol": [levels[0] | {"vol": 0.0}]})
    with pytest.raises(ValidationError, match="label"):
        Scenario(name="p", path=path | {"starting_vol": [levels[0] | {"label": "guess"}]})


def test_a_starting_level_sizes_the_fund_as_a_history_would() -> None:
    """A starting level of 8% for the 3-day fund's asset, against the model's 16%: it held its
    utilisation on its own estimate, so it starts with f = 0.16/0.08 = 2 times the census's
    book, 200 units, on −10000 of cash; a quiet day 0 leaves σ̂ = √((2/3)·0.0064) = 6.53%,
    inside its band (σ/E = 6.53%·20000/10000 = 13.1% < 18%, but the fund does not re-lever),
    so it does not trade."""
    levels = [{"select": {"all": True}, "vol": 0.08, "source": "s", "label": "assumption"}]
    path = {"start": START.isoformat(), "end": START.isoformat(), "starting_vol": levels}
    result = estimator.run(Scenario(name="p", path=path), levered_fund(None))
    h = result.holders.row(0, named=True)
    assert h["gross_assets_before"] == pytest.approx(20_000.0, rel=1e-12)
    assert h["cash_before"] == pytest.approx(-10_000.0, rel=1e-12)
    assert result.trades.is_empty()

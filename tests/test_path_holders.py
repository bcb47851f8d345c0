"""Holder shocks on the dates of a path (``[[path.holder_shocks]]``): a broker's margin call,
a redemption wave and a loss on holdings that do not trade, each worked by hand on the day it
comes; on day 0 they are the scenario's own holder shocks; the one-shot version keeps them.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from oracle_kit import asset_frame, holder_frame

import estimator
from estimator.errors import InputError
from estimator.mandates import Mandate
from estimator.path import schedule
from estimator.scenario import Scenario

MARGIN = [{"kind": "margin", "maintenance_rate": 0.25}]


def market(rules: list[dict], cash: float, **columns: float) -> estimator.Market:
    """One holder "h" of type "fund": 100 of asset "a" at 50, with ``cash``."""
    pos = pl.DataFrame(
        [("h", "a", 100.0)], schema=["holder_id", "asset_id", "quantity"], orient="row"
    )
    return estimator.build_market(
        asset_frame([{"asset_id": "a", "price": 50.0}]),
        holder_frame([{"holder_id": "h", "cash": cash, "holder_type": "fund", **columns}]),
        pos,
        {"m": Mandate(name="m", rules=rules)},
    )


def on(date: str, **effect: float) -> Scenario:
    """A path from Monday 2 March 2020 to Friday 6 March with one holder shock on ``date``."""
    hit = {"date": date, "holder_types": ["fund"], **effect}
    return Scenario(
        name="p", path={"start": "2020-03-02", "end": "2020-03-06", "holder_shocks": [hit]}
    )


def test_a_brokers_margin_call_on_its_date() -> None:
    """A margin account (5000 of shares on −3000 of cash, AE = 2000, maintenance 25%) is not
    called until Wednesday 4 March, when its broker doubles margins: R = 0.5·5000 = 2500 >
    AE, and back to maintenance it keeps AE/0.5 = 4000 of shares, selling 1000 (20 shares),
    that day. Nothing moves prices, so no one loses anything."""
    result = estimator.run(on("2020-03-04", margin_multiplier=2.0), market(MARGIN, -3000.0))
    assert result.trades.height == 1
    row = result.trades.row(0, named=True)
    assert (row["day"], row["date"]) == (2, dt.date(2020, 3, 4))
    assert row["trade_quantity"] == pytest.approx(-20.0, rel=1e-12)
    assert result.holders.row(0, named=True)["loss_direct"] == pytest.approx(0.0, abs=1e-9)


def test_a_redemption_wave_on_its_date() -> None:
    """A fund with no cash (E = 5000) whose investors redeem 10% on Thursday 5 March pays
    0.1·5000 = 500 and sells 500 of its shares (10 shares) that day to keep its cash at 0."""
    rules = [{"kind": "redemption", "min_cash": 0.0}]
    result = estimator.run(on("2020-03-05", redemption_rate=0.1), market(rules, 0.0))
    assert result.trades["date"].to_list() == [dt.date(2020, 3, 5)]
    assert result.trades["trade_quantity"].sum() == pytest.approx(-10.0, rel=1e-12)


def test_a_loss_on_holdings_that_do_not_trade() -> None:
    """A holder with 4000 of loans and a leverage limit of 3 (5000 of shares on −6000 of
    cash: A = 9000, E = 3000, leverage 3) loses half its loans on Tuesday 3 March: the path's
    loss is 2000, E = 1000 and A = 7000; back to leverage 3 it sells s with
    (7000 − s)/1000 = 3, s = 4000 (80 shares)."""
    rules = [{"kind": "leverage", "max": 3.0}]
    held = market(rules, -6000.0, non_tradable=4000.0)
    result = estimator.run(on("2020-03-03", non_tradable_return=-0.5), held)
    assert result.trades["date"].to_list() == [dt.date(2020, 3, 3)]
    assert result.trades["trade_quantity"].sum() == pytest.approx(-80.0, rel=1e-9)
    assert result.balance_sheets["loss_path"].sum() == pytest.approx(2000.0, rel=1e-12)
    assert result.holders.row(0, named=True)["loss_direct"] == pytest.approx(2000.0, rel=1e-12)


def test_on_day_zero_they_are_the_scenarios_own() -> None:
    """A holder shock dated day 0 trades exactly as the same shock in ``[[holder_shocks]]``."""
    held = market(MARGIN, -3000.0)
    dated = estimator.run(on("2020-03-02", margin_multiplier=2.0), held)
    own = Scenario(
        name="p",
        path={"start": "2020-03-02", "end": "2020-03-06"},
        holder_shocks=[{"holder_types": ["fund"], "margin_multiplier": 2.0}],
    )
    assert not dated.trades.is_empty()
    assert dated.trades.equals(estimator.run(own, held).trades)


def test_the_one_shot_version_keeps_them_and_dates_are_checked() -> None:
    spec = on("2020-03-05", redemption_rate=0.1)
    assert spec.path is not None
    days = schedule(spec.path, None)
    assert days.holder_shocks[3][0].redemption_rate == 0.1
    one_shot = spec.compounded(days)
    assert one_shot.path is None
    assert [h.redemption_rate for h in one_shot.holder_shocks] == [0.1]
    with pytest.raises(ValueError, match=r"holder_shocks\.0\.date: 2020-03-07 is not a trading"):
        on("2020-03-07", redemption_rate=0.1)


def test_a_dated_holder_shock_selecting_no_one_is_a_warning() -> None:
    hit = {"date": "2020-03-04", "holder_types": ["bank"], "margin_multiplier": 2.0}
    spec = Scenario(name="p", path={"start": "2020-03-02", "holder_shocks": [hit]})
    result = estimator.run(spec, market(MARGIN, -3000.0))
    assert result.trades.is_empty()
    found = [w for w in result.warnings.items if "selects no holder" in w.message]
    assert found and "2020-03-04" in found[0].file and found[0].field == "path.holder_shocks.0"


def test_a_bad_dated_holder_shock_is_an_input_error() -> None:
    hit = {"date": "2020-03-04", "holder_types": ["fund"]}
    with pytest.raises((InputError, ValueError), match="needs an effect"):
        Scenario(name="p", path={"start": "2020-03-02", "holder_shocks": [hit]})


def test_a_paced_buffer_rebuild_goes_on_to_its_restore_level() -> None:
    """An open-ended fund (typical horizon 10 trading days) with 20m of cash and 80m of
    equities keeps 30% liquid and rebuilds to 40%: L = 20 < 0.3·100, and back to 0.4·A it sells
    d = 40 − 20 = 20m, 2m a day over the ten days from Monday 2 March 2020 — prices do not
    move, so the day's share (u + e)/L − e is (20 − 2d)/(10 − d) = 2 on day d. After the fifth
    day L = 30 is no longer below its trigger, yet the fund goes on to its restore level."""
    rule = {"kind": "liquidity_buffer", "share": 0.3, "restore_share": 0.4}
    pos = pl.DataFrame({"holder_id": ["h"], "asset_id": ["a"], "quantity": [80e6]})
    held = estimator.build_market(
        asset_frame([{"asset_id": "a", "price": 1.0}]),
        holder_frame([{"holder_id": "h", "cash": 20e6, "holder_type": "open_end_bond_fund"}]),
        pos,
        {"m": Mandate(name="m", rules=[rule])},
    )
    spec = Scenario(name="p", path={"start": "2020-03-02", "end": "2020-03-31"})
    sold = estimator.run(spec, held).trades
    assert sold["trade_value"].to_list() == pytest.approx([-2e6] * 10, rel=1e-9)
    assert (sold["date"].min(), sold["date"].max()) == (dt.date(2020, 3, 2), dt.date(2020, 3, 13))

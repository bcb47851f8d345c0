"""The day clock: paced liquidations, grace periods, participation caps, index effective days
and temporary impact, against hand-computed schedules."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle_kit import asset_frame, holder_frame

import estimator
from estimator import Mandate, Scenario
from estimator.api import RunResult
from estimator.explain import explain
from estimator.market import Market


def _market(adv: float = 1e9) -> Market:
    """X at 100; A: 10 units on 600 borrowed (leverage 2.5), limit 2 restored to 2: at 100 it
    must sell 1000 − 2·400 = 200, two units."""
    return estimator.build_market(
        asset_frame([{"asset_id": "X", "price": 100.0, "adv": adv}]),
        holder_frame([{"holder_id": "A", "cash": -600.0}]),
        pl.DataFrame({"holder_id": ["A"], "asset_id": "X", "quantity": [10.0]}),
        {"m": Mandate(name="m", rules=[{"kind": "leverage", "max": 2.0}])},
    )


def _run(pace: dict[str, Any], market: Market | None = None, **days: Any) -> RunResult:
    clock = {"pace": [{"select": {"all": True}, **pace}], **days}
    return estimator.run(Scenario(name="s", days=clock), market or _market())


def _units_by_day(result: RunResult) -> dict[int, float]:
    by_day = result.trades.group_by("day").agg(pl.col("trade_quantity").sum())
    return dict(by_day.sort("day").iter_rows())


def test_a_horizon_spreads_the_sale_evenly() -> None:
    # No impact: the price stays 100. Day 0: 2 units over 4 days, 0.5. Day 1: the books at 100
    # (9.5 units, cash −550, E = 400) require 950 − 800 = 150, 1.5 units, over 3 days: 0.5 —
    # and so on: 0.5 a day on days 0–3, then nothing is left.
    result = _run({"horizon_days": 4})
    assert _units_by_day(result) == pytest.approx({0: -0.5, 1: -0.5, 2: -0.5, 3: -0.5})
    days = result.manifest.dump()["days"]
    assert (days["capitulation_day"], days["days_traded"]) == (3, 4)
    assert days["peak_day"] in range(4)  # four equal days: any of them, to rounding
    assert days["peak_sell_value"] == pytest.approx(50.0)
    assert result.manifest.dump()["cascade"]["converged"] is True
    h = result.holders.row(0, named=True)
    assert (h["first_day"], h["last_day"], h["sold"]) == (0, 3, pytest.approx(200.0))


def test_a_participation_cap_carries_trades_over() -> None:
    # ADV 100 and ρ = 0.5: at most 0.5·100/100 = 0.5 units a day, though the horizon is one day
    result = _run({"participation": 0.5}, _market(adv=100.0))
    assert _units_by_day(result) == pytest.approx({0: -0.5, 1: -0.5, 2: -0.5, 3: -0.5})
    table = result.days
    assert table is not None
    assert table["pct_adv"].to_list() == pytest.approx([50.0] * 4)  # 50 of 100 a day
    assert table["cumulative_pct_adv"].to_list() == pytest.approx([50.0, 100.0, 150.0, 200.0])


def test_a_grace_period_delays_the_sale() -> None:
    result = _run({"delay_days": 2})
    assert _units_by_day(result) == pytest.approx({2: -2.0})
    h = result.holders.row(0, named=True)
    assert (h["first_day"], h["status"]) == (2, "forced")


def test_temporary_impact_decays_overnight() -> None:
    # Linear impact 1e-4 per unit of value on the cumulative flow; half of it permanent, the
    # temporary half halves overnight. Day 0 trades to the end (horizon 1): the close is
    # P₀·(1 + I) with I the day's impact (all of it counts on the day). Overnight the
    # temporary part (I/2) decays by half: the next open is P₀·(1 + I/2 + I/4); A, at its
    # limit at the close, is inside it at a higher price: nobody is forced, the episode ends
    # there. The rebound still to come is to P₀·(1 + I/2).
    impact = {"models": [{"model": "linear", "coefficient": 1e-4, "per": "value"}]}
    clock = {"permanent_share": 0.5, "half_life_days": 1.0}
    spec = Scenario(name="s", impact=impact, days=clock)
    result = estimator.run(spec, _market())
    assert result.days is not None and result.days["day"].to_list() == [0]
    close = result.days["price_close"].item()
    moved = close / 100 - 1
    assert moved < -0.02  # at least the first round's 2%
    x = result.assets.row(0, named=True)
    assert x["price_end"] == pytest.approx(100 * (1 + 0.75 * moved), rel=1e-12)
    assert x["price_rebound"] == pytest.approx(100 * (1 + 0.5 * moved), rel=1e-12)
    assert x["rebound"] == pytest.approx((1 + 0.5 * moved) / (1 + 0.75 * moved) - 1, rel=1e-9)
    # every loss is accounted for at the final price, the overnight rebound included
    h = result.holders.row(0, named=True)
    units = 10 + result.trades["trade_quantity"].sum()
    cash = -600 - (result.trades["trade_quantity"] * result.trades["execution_price"]).sum()
    assert 400 - (units * x["price_end"] + cash) == pytest.approx(h["loss_total"], rel=1e-9)


def _tracker_market() -> Market:
    """Index X: a .5, b .3, c .2 at price 1; ``h`` tracks it holding 60/20/20 (A = 100)."""
    mandate = Mandate(name="m", rules=[{"kind": "index_tracking", "index": "X"}])
    return estimator.build_market(
        asset_frame([{"asset_id": a, "price": 1.0} for a in "abc"]),
        holder_frame([{"holder_id": "h", "mandate": "m"}]),
        pl.DataFrame({"holder_id": "h", "asset_id": list("abc"), "quantity": [60.0, 20.0, 20.0]}),
        {"m": mandate},
        index_weights=pl.DataFrame(
            {"index_id": "X", "asset_id": list("abc"), "weight": [0.5, 0.3, 0.2]}
        ),
    )


def test_index_changes_trade_on_their_effective_day() -> None:
    # Index a .5, b .3, c .2; the tracker holds 60/20/20 (A = 100). Deleting c on day 2 gives
    # a .625, b .375: trades A·Δw = a +12.5, b +7.5, c −20, all on day 2.
    market = _tracker_market()
    change = {"index_id": "X", "asset_id": "c", "action": "delete", "effective_day": 2}
    spec = Scenario(name="s", index_changes=[change], days={"pace": []})
    result = estimator.run(spec, market)
    trades = {
        (d, a): v for d, a, v in result.trades.select("day", "asset_id", "trade_value").iter_rows()
    }
    assert trades == pytest.approx({(2, "a"): 12.5, (2, "b"): 7.5, (2, "c"): -20.0})
    assert not [w for w in result.warnings.items if "effective_day" in str(w)]


def test_the_first_matching_pace_applies_and_others_trade_at_once() -> None:
    market = estimator.build_market(
        asset_frame([{"asset_id": "X", "price": 100.0}]),
        holder_frame(
            [
                {"holder_id": "A", "cash": -600.0, "holder_type": "slow"},
                {"holder_id": "B", "cash": -600.0, "holder_type": "fast"},
            ]
        ),
        pl.DataFrame({"holder_id": ["A", "B"], "asset_id": "X", "quantity": [10.0, 10.0]}),
        {"m": Mandate(name="m", rules=[{"kind": "leverage", "max": 2.0}])},
    )
    pace = [
        {"select": {"holder_types": ["slow"]}, "horizon_days": 2},
        {"select": {"all": True}, "horizon_days": 5},  # not reached by A
    ]
    spec = Scenario(name="s", days={"pace": pace[:1]})
    result = estimator.run(spec, market)
    by = result.trades.group_by("holder_id", "day").agg(pl.col("trade_quantity").sum())
    got = {(h, d): q for h, d, q in by.iter_rows()}
    assert got == pytest.approx({("A", 0): -1.0, ("A", 1): -1.0, ("B", 0): -2.0})
    both = estimator.run(Scenario(name="s", days={"pace": pace}), market)
    assert set(both.trades.filter(pl.col("holder_id") == "A")["day"]) == {0, 1}


def test_days_report_and_manifest_are_written(tmp_path: Path) -> None:
    result = _run({"horizon_days": 2})
    written = {p.name for p in result.write(tmp_path)}
    assert {"days.csv", "rounds.csv"} <= written
    table = pl.read_csv(tmp_path / "days.csv")
    assert table["day"].to_list() == [0, 1]
    assert table["sell_value"].sum() == pytest.approx(200.0)


def test_temporary_impact_needs_cumulative_mode() -> None:
    with pytest.raises(ValueError, match="cumulative"):
        Scenario(
            name="s",
            impact={"mode": "per_round", "models": [{"model": "sqrt"}]},
            days={"permanent_share": 0.5},
        )


def test_a_started_sale_goes_on_to_the_restore_level() -> None:
    # Leverage 2.5 over a limit of 2.4, restored to 2.0: sell 1000 − 2·400 = 200 over two days.
    # Day 0 sells 100 (1 unit): 900 on 400 of equity is 2.25, back inside the trigger — but
    # the fund has started and goes on: day 1 sells the last 100, to 800/400 = 2.0.
    market = estimator.build_market(
        asset_frame([{"asset_id": "X", "price": 100.0}]),
        holder_frame([{"holder_id": "A", "cash": -600.0}]),
        pl.DataFrame({"holder_id": ["A"], "asset_id": "X", "quantity": [10.0]}),
        {"m": Mandate(name="m", rules=[{"kind": "leverage", "max": 2.4, "target": 2.0}])},
    )
    result = _run({"horizon_days": 2}, market)
    assert _units_by_day(result) == pytest.approx({0: -1.0, 1: -1.0})
    assert result.holders.row(0, named=True)["leverage_after"] == pytest.approx(2.0)


def test_explain_tells_the_days_of_each_trade() -> None:
    story = explain(_run({"horizon_days": 2}), "A")
    assert "day 0, round 1: X: -1 units" in story
    assert "day 1, round 2: X: -1 units" in story


def test_typical_horizons_apply_by_holder_type_unless_switched_off() -> None:
    # a pension (20 trading days by default) spreads its 2 units evenly: 0.1 a day
    market = estimator.build_market(
        asset_frame([{"asset_id": "X", "price": 100.0}]),
        holder_frame([{"holder_id": "A", "cash": -600.0, "holder_type": "pension_fund"}]),
        pl.DataFrame({"holder_id": ["A"], "asset_id": "X", "quantity": [10.0]}),
        {"m": Mandate(name="m", rules=[{"kind": "leverage", "max": 2.0}])},
    )
    spread = estimator.run(Scenario(name="s", days={}), market)
    assert _units_by_day(spread) == pytest.approx({d: -0.1 for d in range(20)})
    at_once = estimator.run(Scenario(name="s", days={"typical_horizons": False}), market)
    assert _units_by_day(at_once) == pytest.approx({0: -2.0})


@settings(max_examples=20)
@given(
    horizon=st.integers(1, 5),
    delay=st.integers(0, 3),
    participation=st.one_of(st.none(), st.floats(0.05, 2.0)),
)
def test_every_pace_sells_the_whole_requirement_within_its_limits(
    horizon: int, delay: int, participation: float | None
) -> None:
    # Without impact the requirement stays 2 units (200 at 100) however it is paced: all of it
    # is sold, nothing before the grace period ends, never more than ρ·ADV (ADV 100: ρ units)
    # a day. Evenly paced it sells 2/H a day for H days; when that exceeds the cap it sells ρ a
    # day instead (the rest carries over), ⌈2/ρ⌉ days in all.
    pace = {"horizon_days": horizon, "delay_days": delay, "participation": participation}
    result = _run(pace, _market(adv=100.0))
    by_day = _units_by_day(result)
    assert sum(by_day.values()) == pytest.approx(-2.0, rel=1e-9)
    days = horizon if participation is None else max(horizon, math.ceil(2 / participation - 1e-9))
    assert sorted(by_day) == list(range(delay, delay + days))
    if participation is not None:
        assert all(-q <= participation * (1 + 1e-9) for q in by_day.values())


# --- found in review: each case once went wrong ------------------------------------------------


def test_on_a_day_clock_the_attribution_identity_holds_with_a_new_position() -> None:
    # an index addition buys a position the tracker did not hold: the books must stay in
    # (holder, asset) order for the loss attribution; Σ systemicness = aggregate vulnerability
    mandates = {
        "m": Mandate(name="m", rules=[{"kind": "index_tracking", "index": "X"}]),
        "l": Mandate(name="l", rules=[{"kind": "leverage", "max": 5.0}]),
    }
    market = estimator.build_market(
        asset_frame([{"asset_id": a, "price": 1.0, "adv": 1e3} for a in "abc"]),
        holder_frame([{"holder_id": "h", "mandate": "m"}, {"holder_id": "z", "mandate": "l"}]),
        pl.DataFrame(
            {
                "holder_id": ["h", "h", "z", "z"],
                "asset_id": list("abac"),
                "quantity": [50.0] * 2 + [10.0] * 2,
            }
        ),
        mandates,
        index_weights=pl.DataFrame({"index_id": "X", "asset_id": list("ab"), "weight": [0.5, 0.5]}),
    )
    change = {"index_id": "X", "asset_id": "c", "action": "add", "weight": 0.2}
    impact = {"models": [{"model": "linear", "coefficient": 1e-4, "per": "value"}]}
    rounds = estimator.run(Scenario(name="s", index_changes=[change], impact=impact), market)
    days = estimator.run(
        Scenario(name="s", index_changes=[change], impact=impact, days={"pace": []}), market
    )
    for result in (rounds, days):
        info = result.manifest.dump()["cascade"]
        assert result.holders["cascade_systemicness"].sum() == pytest.approx(
            info["aggregate_vulnerability"], rel=1e-9
        )
    h = days.holders.filter(pl.col("holder_id") == "h").row(0, named=True)
    assert abs(h["loss_own_impact"]) <= abs(h["loss_impact"]) * (1 + 1e-9)


def test_an_index_change_is_traded_in_full_whatever_the_pace() -> None:
    market = _tracker_market()
    change = {"index_id": "X", "asset_id": "c", "action": "delete"}
    clock = {"pace": [{"select": {"all": True}, "horizon_days": 2, "participation": 0.01}]}
    result = estimator.run(Scenario(name="s", index_changes=[change], days=clock), market)
    values = dict(result.trades.select("asset_id", "trade_value").iter_rows())
    assert values == pytest.approx({"a": 12.5, "b": 7.5, "c": -20.0})  # as without a clock


def test_a_slow_seller_finishes_though_a_fast_one_dwarfs_it() -> None:
    # A sells 2bn on day 0; B, a pension, must sell 200 over 20 days: the episode goes on
    # until B has sold it all, however small next to the first day
    market = estimator.build_market(
        asset_frame([{"asset_id": "X", "price": 100.0}]),
        holder_frame(
            [
                {"holder_id": "A", "cash": -6e9, "holder_type": "margin_account"},
                {"holder_id": "B", "cash": -600.0, "holder_type": "pension_fund"},
            ]
        ),
        pl.DataFrame({"holder_id": ["A", "B"], "asset_id": "X", "quantity": [1e8, 10.0]}),
        {"m": Mandate(name="m", rules=[{"kind": "leverage", "max": 2.0}])},
    )
    result = estimator.run(Scenario(name="s", days={}), market)
    b = result.trades.filter(pl.col("holder_id") == "B")
    assert b["trade_value"].sum() == pytest.approx(-200.0)
    assert b["day"].max() == 19
    assert result.manifest.dump()["cascade"]["converged"] is True


def test_holders_in_a_grace_period_past_the_last_day_do_not_break_the_run() -> None:
    result = _run({"delay_days": 3}, max_days=2)
    assert result.trades.is_empty()
    assert result.manifest.dump()["cascade"]["converged"] is False
    assert result.holders.row(0, named=True)["equity_start"] == pytest.approx(400.0)


def test_an_impact_model_may_select_assets_by_id() -> None:
    linear = {"model": "linear", "coefficient": 1e-4, "per": "value"}
    impact = {"models": [linear | {"select": {"asset_ids": ["X"]}}]}
    result = estimator.run(Scenario(name="s", impact=impact | {"max_rounds": 1}), _market())
    assert result.assets["price_end"].item() == pytest.approx(98.0)  # 2 units: Q = 200


def test_pacing_alone_amplifies_nothing() -> None:
    result = _run({"horizon_days": 4})
    assert result.manifest.dump()["cascade"]["amplification"] == pytest.approx(1.0)

"""``redemption``: investors' outflows after losses, paid from cash down to a floor, then by
selling — against hand-computed oracles, in a cascade, and with a scenario's redemption shock."""

from __future__ import annotations

import math
from typing import Any

import polars as pl
import pytest
from oracle_kit import REL, asset_frame, everywhere, holder, holder_frame, run_case
from pydantic import ValidationError

import estimator
from estimator import Mandate, Scenario
from estimator.api import RunResult
from rules import Redemption

#: Hand-worked books of a few hundred currency units (conftest.hand_sized).
pytestmark = pytest.mark.usefixtures("hand_sized")

# One bond fund: 10 bonds at 100 and cash 50, E₀ = 1050. Prices −10%: x = 900, E = 950,
# ret = 950/1050 − 1 = −2/21. With β⁻ = 1.5, ρ* = 1.5·2/21 = 1/7 of the units, paid at
# E/(1 − 0) per unit: R = 950/7 = 135.714…; cash 50 − R = −85.714… must be raised.
RHO = 1 / 7
R = 950 / 7
E_AFTER = 950 - R


def _fund(rule: dict[str, Any], ret: float = -0.1, execution: str = "pro_rata") -> RunResult:
    return run_case(
        [{"asset_id": "bond", "price": 100.0, "asset_class": "corp_bond"}],
        [{"holder_id": "h", "cash": 50.0}],
        [("h", "bond", 10.0)],
        [{"kind": "redemption", "loss_sensitivity": 1.5, **rule}],
        everywhere(price_return=ret),
        execution,
    )


@pytest.mark.parametrize("execution", ["pro_rata", "min_cost"])
def test_outflow_after_a_loss_is_paid_from_cash_then_by_selling(execution: str) -> None:
    h = holder(_fund({}, execution=execution))
    assert h["status"] == "forced"
    assert math.isclose(h["redemption.redeemed_share"], RHO, rel_tol=REL)
    assert math.isclose(h["redemption.paid"], R, rel_tol=REL)
    assert math.isclose(h["equity_after"], E_AFTER, rel_tol=REL)
    # no cash floor: sell what cash lacks, R − 50
    assert math.isclose(h["sold"], R - 50, rel_tol=1e-6)
    assert math.isclose(h["cash_after"], 0.0, abs_tol=1e-6)


def test_cash_floor_is_rebuilt_to_its_restore_share() -> None:
    # restore C⁺ ≥ 10%·A⁺ with A⁺ = E⁺ (no debt): C⁺ = 81.43, a sale of 85.71 + 81.43
    h = holder(_fund({"min_cash": 0.05, "restore_cash": 0.1}))
    assert math.isclose(h["sold"], (R - 50) + 0.1 * E_AFTER, rel_tol=REL)
    assert math.isclose(h["redemption.metric_after"], 0.1, rel_tol=REL)


def test_outflow_within_the_cash_above_the_floor_sells_nothing() -> None:
    # cash 500 on 10 bonds: R = 1.5·(1 − 1400/1500)·1400 = 140 leaves 360 ≥ 5%·1260
    result = run_case(
        [{"asset_id": "bond", "price": 100.0}],
        [{"holder_id": "h", "cash": 500.0}],
        [("h", "bond", 10.0)],
        [{"kind": "redemption", "loss_sensitivity": 1.5, "min_cash": 0.05}],
        everywhere(price_return=-0.1),
    )
    h = holder(result)
    assert h["status"] == "ok" and h["sold"] == 0.0
    assert math.isclose(h["redemption.paid"], 1.5 * (1 - 1400 / 1500) * 1400, rel_tol=REL)
    assert math.isclose(h["cash_after"], 500 - 140, rel_tol=REL)


def test_gate_caps_the_outflow() -> None:
    h = holder(_fund({"gate": 0.1}))
    assert math.isclose(h["redemption.redeemed_share"], 0.1, rel_tol=REL)
    assert math.isclose(h["redemption.paid"], 95.0, rel_tol=REL)


def test_gains_slow_the_base_rate() -> None:
    # +10%: x = 1100, E = 1150, ret = 100/1050; ρ* = 0.2 − 0.5·ret
    h = holder(_fund({"base_rate": 0.2, "gain_sensitivity": 0.5}, ret=0.1))
    rho = 0.2 - 0.5 * (100 / 1050)
    assert math.isclose(h["redemption.redeemed_share"], rho, rel_tol=REL)
    assert math.isclose(h["redemption.paid"], rho * 1150, rel_tol=REL)


def test_scenario_redemption_shock_adds_to_the_rate_of_the_holder_type() -> None:
    mandate = Mandate(name="m", rules=[{"kind": "redemption", "loss_sensitivity": 1.5}], cure=[])
    market = estimator.build_market(
        asset_frame([{"asset_id": "bond", "price": 100.0}]),
        holder_frame(
            [
                {"holder_id": "h", "cash": 50.0, "holder_type": "credit_fund"},
                {"holder_id": "g", "cash": 50.0, "holder_type": "other_fund"},
            ]
        ),
        pl.DataFrame({"holder_id": ["h", "g"], "asset_id": "bond", "quantity": 10.0}),
        {"m": mandate},
    )
    spec = Scenario(
        name="s",
        shocks=everywhere(price_return=-0.1),
        holder_shocks=[
            {"holder_types": ["credit_fund"], "redemption_rate": 0.05},
            {"holder_types": ["nobody"], "redemption_rate": 0.5},
        ],
    )
    result = estimator.run(spec, market)
    h, g = (holder(result, i) for i in ("h", "g"))
    assert math.isclose(h["redemption.redeemed_share"], RHO + 0.05, rel_tol=REL)
    assert math.isclose(g["redemption.redeemed_share"], RHO, rel_tol=REL)
    assert any("holder_shocks.1" in str(w) for w in result.warnings.items)


def test_losses_in_one_round_raise_the_next_rounds_outflows() -> None:
    # the fund's sales move its bond's price (linear impact), its loss deepens, more units go
    result = run_case(
        [{"asset_id": "bond", "price": 100.0, "adv": 1000.0}],
        [{"holder_id": "h", "cash": 50.0}],
        [("h", "bond", 10.0)],
        [{"kind": "redemption", "loss_sensitivity": 1.5}],
        everywhere(price_return=-0.1),
        impact={"models": [{"model": "linear", "coefficient": 0.2}], "max_rounds": 20},
    )
    h = holder(result)
    assert h["rounds_forced"] >= 2
    assert h["redemption.paid"] > R
    # redemptions leave the unit value alone: after the round that paid last,
    # E⁺/(E₀(1 − ρ)) is the unit value its outflow was set at, and ρ = 1.5·(1 − that value)
    rho = h["redemption.redeemed_share"]
    unit = h["equity_after"] / (1050 * (1 - rho))
    assert math.isclose(rho, 1.5 * (1 - unit), rel_tol=1e-9)


def test_restore_below_floor_is_refused() -> None:
    with pytest.raises(ValidationError, match="restore_cash"):
        Mandate(name="m", rules=[{"kind": "redemption", "min_cash": 0.05, "restore_cash": 0.02}])


def test_holder_shock_needs_a_selector_and_an_effect() -> None:
    with pytest.raises(ValidationError, match="holder_types or holder_ids"):
        Scenario(name="s", holder_shocks=[{"redemption_rate": 0.1}])
    with pytest.raises(ValidationError, match="needs an effect"):
        Scenario(name="s", holder_shocks=[{"holder_types": ["fund"]}])


def test_a_fund_paying_from_cash_reports_its_outflows_over_the_whole_cascade() -> None:
    # F: 10 bonds at 100 and 500 cash, E₀ = 1500. −10%: E = 1400, ret = −1/15, ρ = 1/10, it
    # pays 140 from cash and is never forced. G, levered 5× against a 3× limit, sells into a
    # thin market; the price falls further, F's investors redeem more in later rounds, and the
    # report carries the whole amount, not the first round's 140.
    mandates = {
        "fund": Mandate(name="fund", rules=[{"kind": "redemption", "loss_sensitivity": 1.5}]),
        "lev": Mandate(name="lev", rules=[{"kind": "leverage", "max": 3.0}]),
    }
    market = estimator.build_market(
        asset_frame([{"asset_id": "bond", "price": 100.0, "adv": 1000.0}]),
        holder_frame(
            [
                {"holder_id": "F", "cash": 500.0, "mandate": "fund"},
                {"holder_id": "G", "cash": -800.0, "mandate": "lev"},
            ]
        ),
        pl.DataFrame({"holder_id": ["F", "G"], "asset_id": "bond", "quantity": 10.0}),
        mandates,
    )
    spec = Scenario(
        name="s",
        shocks=everywhere(price_return=-0.1),
        impact={"models": [{"model": "linear", "coefficient": 0.2}], "max_rounds": 10},
    )
    f = holder(estimator.run(spec, market), "F")
    assert f["status"] == "ok" and f["sold"] == 0.0
    assert f["redemption.paid"] > 140.0 + 1.0
    assert f["redemption.redeemed_share"] > 0.1


def test_cure_fills_the_floor_from_below_zero_cash() -> None:
    # after paying R cash is 50 − R = −85.71, G = 900: the floor at 10% needs C + k ≥ 0 and
    # (1 − 0.1)(C + k) ≥ 0.1·900, so k = 100 + 85.71 from the reserve, and nothing is sold
    result = run_case(
        [{"asset_id": "bond", "price": 100.0}],
        [{"holder_id": "h", "cash": 50.0, "cash_reserve": 1000.0}],
        [("h", "bond", 10.0)],
        [{"kind": "redemption", "loss_sensitivity": 1.5, "min_cash": 0.05, "restore_cash": 0.1}],
        everywhere(price_return=-0.1),
    )
    h = holder(result)
    assert h["status"] == "cured" and h["sold"] == 0.0
    assert math.isclose(h["cure_reserve"], 100 + (R - 50), rel_tol=REL)
    assert math.isclose(h["redemption.metric_after"], 0.1, rel_tol=REL)


@pytest.mark.parametrize(("reserve", "called"), [(100.0, 0.0), (200.0, 100.0), (150.0, 50.0)])
def test_capital_brought_in_is_not_a_return_to_investors(reserve: float, called: float) -> None:
    # E = 1100 of which 100 came from the reserve (200 → 100) or from investors' capital calls,
    # or 50 of each; E₀ = 1050, ρ = 0.1: the unit is worth (1100 − 100)/(1050·0.9) = 1.0582
    # (not 1.164), and ρ* = 0.1 − 0.5·0.0582
    rule = Redemption(base_rate=0.1, gain_sensitivity=0.5)
    book = pl.DataFrame(
        {
            "equity": [1100.0],
            "equity_pre": [1050.0],
            "cash_reserve": [reserve],
            "cash_reserve_pre": [200.0],
            "capital_called": [called],
            "redemption.redeemed_share": [0.1],
            "redemption_shock": [0.0],
        }
    )
    unit = 1000 / (1050 * 0.9)
    got = book.select(rule.redeemed_target()).item()
    assert math.isclose(got, 0.1 - 0.5 * (unit - 1), rel_tol=REL)


# --- the waterfall: most liquid first -----------------------------------------------------------

LADDER = [
    {"asset_id": "g", "asset_class": "govt_bond", "price": 100.0, "half_spread_bps": 1.0},
    {"asset_id": "c1", "asset_class": "corp_bond", "price": 100.0, "half_spread_bps": 20.0},
    {"asset_id": "c2", "asset_class": "corp_bond", "price": 100.0, "half_spread_bps": 20.0},
]
WATERFALL = {"kind": "redemption", "min_cash": 0.05, "sale": "waterfall"}


def _ladder(
    govt: float, rule: dict[str, Any], execution: str = "pro_rata", **holder: float
) -> RunResult:
    return run_case(
        LADDER,
        [{"holder_id": "h", "cash": 0.0, **holder}],
        [("h", "g", govt), ("h", "c1", 3.0), ("h", "c2", 3.0)],
        [rule],
        everywhere(price_return=0.0),
        execution,
    )


def _values(result: RunResult) -> dict[str, float]:
    return dict(zip(result.trades["asset_id"], result.trades["trade_value"], strict=True))


@pytest.mark.parametrize("execution", ["pro_rata", "min_cost"])
def test_waterfall_sells_the_most_liquid_holding_first(execution: str) -> None:
    # G = 1,000 (government 400 at 1bp, corporates 300 + 300 at 20bp), no cash, floor 5%:
    # d = 0.05·(1000 + 0 + 0) − 0 = 50, all of it government bonds. The slice would sell 5% of
    # every holding (20, 15, 15).
    result = _ladder(4.0, WATERFALL, execution)
    assert _values(result) == pytest.approx({"g": -50.0}, rel=1e-6)
    assert holder(result)["redemption.metric_after"] == pytest.approx(0.05, rel=1e-6)
    slice_ = _ladder(4.0, WATERFALL | {"sale": "slice"})
    assert _values(slice_) == pytest.approx({"g": -20.0, "c1": -15.0, "c2": -15.0}, rel=1e-9)


def test_waterfall_spills_into_the_next_tier_pro_rata() -> None:
    # Government 30 only: G = 630, d = 31.5: all 30 of it, then 1.5 shared by the corporates,
    # which tie on spread and ADV (one tier): 0.75 each.
    result = _ladder(0.3, WATERFALL)
    assert _values(result) == pytest.approx({"g": -30.0, "c1": -0.75, "c2": -0.75}, rel=1e-9)


def test_waterfall_ranks_equal_spreads_by_volume() -> None:
    # c2 trades ten times c1's volume: it goes first at equal spreads. G = 630, d = 31.5.
    assets = [LADDER[0], LADDER[1] | {"adv": 1e8}, LADDER[2] | {"adv": 1e9}]
    result = run_case(
        assets,
        [{"holder_id": "h", "cash": 0.0}],
        [("h", "g", 0.3), ("h", "c1", 3.0), ("h", "c2", 3.0)],
        [WATERFALL],
        everywhere(price_return=0.0),
    )
    assert _values(result) == pytest.approx({"g": -30.0, "c2": -1.5}, rel=1e-9)


def test_waterfall_pays_redemptions_after_the_reserve() -> None:
    # Holdings 1,000, cash 50: E = 1,050; 10% redeemed: 105 paid, C = −55. The cure needs
    # k = 0.05·1000/0.95 + 55 = 107.6; the reserve has 30: C = −25. The waterfall sells
    # d = 0.05·(1000 − 25) + 25 = 73.75 of government bonds: C⁺ = 48.75 = 5% of A⁺ = 975.
    result = _ladder(4.0, WATERFALL | {"base_rate": 0.1}, cash=50.0, cash_reserve=30.0)
    assert _values(result) == pytest.approx({"g": -73.75}, rel=1e-9)
    h = holder(result)
    assert h["cure_reserve"] == pytest.approx(30.0, rel=1e-12)
    assert h["redemption.paid"] == pytest.approx(105.0, rel=1e-12)
    assert h["redemption.metric_after"] == pytest.approx(0.05, rel=1e-9)


def test_waterfall_that_cannot_restore_the_floor_sells_all_it_can() -> None:
    # Non-tradable 10,000 and borrowing 600: d = 0.05·(1000 + 10000 − 600) + 600 = 1,120 >
    # 1,000 to sell: everything goes, and cash ends at 400 < 5% of 10,400.
    result = _ladder(4.0, WATERFALL, cash=-600.0, non_tradable=10_000.0)
    assert _values(result) == pytest.approx({"g": -400.0, "c1": -300.0, "c2": -300.0}, rel=1e-9)
    h = holder(result)
    assert not h["compliant"]
    assert h["shortfall"] == pytest.approx(0.05 * 10_400 - 400, rel=1e-9)

"""Funding shocks by holder — a broker's margin multiplier, credit lines withdrawn — and margins
that rise with volatility, against hand-computed oracles."""

from __future__ import annotations

import math

import polars as pl
import pytest
from oracle_kit import (
    REL,
    asset_frame,
    everywhere,
    holder,
    holder_frame,
    run_case,
    trade_quantities,
)
from pydantic import ValidationError

import estimator
from estimator import Mandate, Scenario
from estimator.api import RunResult
from estimator.paths import resolve_scenario
from estimator.scenario import HolderShock
from estimator.shocks import apply_scenario

# 100 shares at 50 on cash −3000: X = 5000, AE = 2000; 25% maintenance: R = 1250.
MARGIN = [{"kind": "margin", "maintenance_rate": 0.25}]


def _account(shocks: list[dict], holder_shocks: list[dict], **holder_columns: float) -> RunResult:
    return run_case(
        [{"asset_id": "a", "price": 50.0}],
        [{"holder_id": "h", "cash": -3000.0, "holder_type": "hedge_fund", **holder_columns}],
        [("h", "a", 100.0)],
        MARGIN,
        shocks,
        holder_shocks=holder_shocks,
    )


def test_broker_doubling_margins_calls_the_account_without_a_price_move() -> None:
    # k = 2: R = 2500 > AE = 2000; back to maintenance f = 2000/2500: sell 20 shares
    result = _account([], [{"holder_types": ["hedge_fund"], "margin_multiplier": 2.0}])
    h = holder(result)
    assert h["status"] == "forced"
    assert math.isclose(trade_quantities(result)["a"], -20.0, rel_tol=REL)
    # a multiplier for another kind of client changes nothing
    calm = _account([], [{"holder_types": ["retail"], "margin_multiplier": 2.0}])
    assert holder(calm)["status"] == "ok"


def test_credit_line_cut_leaves_less_to_cure_a_call() -> None:
    # −25%: X = 3750, AE = 750, R = 937.5: a need of 187.5. A line of 1000 cures it all; cut by
    # 90% to 100 it cures 100, AE = 850, and the rest is sold: f = 850/937.5, (1 − f)·3750 = 350
    shocks = everywhere(price_return=-0.25)
    whole = holder(_account(shocks, [], credit_line=1000.0))
    assert whole["status"] == "cured"
    assert math.isclose(whole["cure_credit"], 187.5, rel_tol=REL)
    cut = holder(
        _account(
            shocks,
            [{"holder_ids": ["h"], "credit_line_cut": 0.9}],
            credit_line=1000.0,
        )
    )
    assert cut["status"] == "forced"
    assert math.isclose(cut["cure_credit"], 100.0, rel_tol=REL)
    assert math.isclose(cut["sold"], 350.0, rel_tol=1e-9)


@pytest.mark.parametrize(
    ("elasticity", "rate"), [(1.0, 0.4), (0.5, 0.2 * math.sqrt(2)), (0.0, 0.2)]
)
def test_margin_rates_follow_the_shocks_vol_change(elasticity: float, rate: float) -> None:
    assets = asset_frame(
        [
            {"asset_id": "a", "price": 50.0, "vol": 0.2, "margin_rate": 0.2},
            {"asset_id": "b", "price": 50.0, "vol": 0.2, "margin_rate": 0.2},
        ]
    )
    spec = Scenario(
        name="s",
        shocks=[
            {
                "select": {"asset_ids": ["a"]},
                "vol_multiplier": 2.0,
                "margin_vol_elasticity": elasticity,
            }
        ],
    )
    market = estimator.build_market(
        assets,
        holder_frame([{"holder_id": "h"}]),
        pl.DataFrame({"holder_id": ["h"], "asset_id": ["a"], "quantity": [1.0]}),
        {"m": Mandate(name="m", rules=MARGIN)},
    )
    shocked = apply_scenario(market.assets, spec)
    rates = dict(zip(shocked["asset_id"], shocked["margin_rate"], strict=True))
    assert math.isclose(rates["a"], rate, rel_tol=REL)
    assert rates["b"] == 0.2


def test_margin_vol_elasticity_needs_a_vol_change_in_its_shock() -> None:
    with pytest.raises(ValidationError, match="vol_multiplier or vol_change"):
        Scenario(name="s", shocks=[{"select": {"all": True}, "margin_vol_elasticity": 1.0}])


def test_holder_shock_scaled_by_hand() -> None:
    shock = HolderShock(
        holder_types=["x"], redemption_rate=0.1, margin_multiplier=2.0, credit_line_cut=0.9
    )
    half = shock.scaled(0.5)
    assert (half.redemption_rate, half.margin_multiplier, half.credit_line_cut) == (
        0.05,
        1.5,
        0.45,
    )
    assert shock.scaled(3.0).credit_line_cut == 1.0


def test_small_crash_names_its_holder_shock() -> None:
    spec = estimator.load_scenario(resolve_scenario("small_crash"))
    assert spec.holder_shocks and spec.holder_shocks[0].redemption_rate == 0.03

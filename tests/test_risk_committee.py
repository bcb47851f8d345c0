"""Risk-committee rules: ``var_limit`` and ``stop_loss``, against hand-computed oracles."""

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
from estimator import InputError, Mandate
from estimator.api import RunResult
from estimator.rounds import evaluate_round
from rules import VarLimit

#: Φ⁻¹(0.99) and Φ⁻¹(0.95) from a normal table, to ten places.
Z99, Z95 = 2.3263478740, 1.6448536270

# --- var_limit -----------------------------------------------------------------------------------
# One asset: x = 10 × 100 = 1000 on cash 0, E = 1000. Its vol 0.2 doubles to 0.4: σ = 400.
# 99% one-day VaR = z·σ·√(1/252) = 2.32635 × 400 / 15.8745 = 58.62, 5.862% of E.
VAR_99_1D = Z99 * 400 / math.sqrt(252)


def _var_case(rule: dict[str, object], execution: str = "pro_rata") -> RunResult:
    return run_case(
        [{"asset_id": "a", "price": 100.0, "vol": 0.2}],
        [{"holder_id": "h"}],
        [("h", "a", 10.0)],
        [{"kind": "var_limit", **rule}],
        everywhere(vol_multiplier=2.0),
        execution,
    )


def test_var_constant_is_the_normal_quantile_over_root_time() -> None:
    rule = VarLimit(limit=0.02)
    assert math.isclose(rule.var_per_vol, Z99 / math.sqrt(252), rel_tol=1e-10)
    ten_day = VarLimit(limit=0.02, confidence=0.95, horizon_days=10)
    assert math.isclose(ten_day.var_per_vol, Z95 * math.sqrt(10 / 252), rel_tol=1e-10)


@pytest.mark.parametrize("execution", ["pro_rata", "min_cost"])
def test_var_limit_scales_the_book_to_the_limit(execution: str) -> None:
    # limit 2% of E = 20: f = 20 / 58.62, sell (1 − f) × 10 units
    result = _var_case({"limit": 0.02}, execution)
    h = holder(result)
    assert h["status"] == "forced"
    f = 20.0 / VAR_99_1D
    assert math.isclose(trade_quantities(result)["a"], -(1 - f) * 10.0, rel_tol=1e-6)
    assert math.isclose(h["var_limit.metric_after"], 0.02, rel_tol=1e-6)


def test_var_limit_restores_below_the_limit() -> None:
    # acts past 5% (58.62 > 50), restores to 4%: f = 40 / 58.62
    result = _var_case({"limit": 0.05, "restore": 0.04})
    f = 40.0 / VAR_99_1D
    assert math.isclose(trade_quantities(result)["a"], -(1 - f) * 10.0, rel_tol=REL)


def test_var_limit_within_tolerance_does_not_act() -> None:
    # 5.5% × 1.1 = 6.05% > 5.862%: inside the tolerance
    h = holder(_var_case({"limit": 0.055, "tolerance": 0.1}))
    assert h["status"] == "ok"
    assert h["sold"] == 0.0
    assert math.isclose(h["var_limit.metric_after"], VAR_99_1D / 1000, rel_tol=REL)


def test_var_limit_restore_above_limit_is_refused() -> None:
    with pytest.raises(ValidationError, match="restore"):
        Mandate(name="m", rules=[{"kind": "var_limit", "limit": 0.02, "restore": 0.03}])


# --- stop_loss -----------------------------------------------------------------------------------
# 10 × 100 = 1000 on cash −500: E₀ = 500, G₀ = 1000.


def _stop_case(ret: float, rule: dict[str, object], **holder_columns: float) -> RunResult:
    return run_case(
        [{"asset_id": "a", "price": 100.0}],
        [{"holder_id": "h", "cash": -500.0, **holder_columns}],
        [("h", "a", 10.0)],
        [{"kind": "stop_loss", **rule}],
        everywhere(price_return=ret),
    )


@pytest.mark.parametrize("execution", ["pro_rata", "min_cost"])
def test_stop_loss_cuts_gross_to_half_its_level_before(execution: str) -> None:
    # −6%: x = 940, E = 440, D = 12% > 10% → Σ|x⁺| ≤ ½ × 1000 = 500: sell 440 of value,
    # (1 − 500/940) × 10 units
    result = run_case(
        [{"asset_id": "a", "price": 100.0}],
        [{"holder_id": "h", "cash": -500.0}],
        [("h", "a", 10.0)],
        [{"kind": "stop_loss", "threshold": 0.1, "cut": 0.5}],
        everywhere(price_return=-0.06),
        execution,
    )
    h = holder(result)
    assert h["status"] == "forced"
    assert math.isclose(h["stop_loss.metric_after"], 0.12, rel_tol=REL)
    assert math.isclose(h["sold"], 440.0, rel_tol=1e-6)
    assert math.isclose(trade_quantities(result)["a"], -(1 - 500 / 940) * 10, rel_tol=1e-6)


def test_stop_loss_drawdown_at_or_below_threshold_does_not_act() -> None:
    # −10% on cash −600: E₀ = 400, E = 300, D = 25% exactly — not beyond a 25% stop
    result = run_case(
        [{"asset_id": "a", "price": 100.0}],
        [{"holder_id": "h", "cash": -600.0}],
        [("h", "a", 10.0)],
        [{"kind": "stop_loss", "threshold": 0.25, "cut": 0.5}],
        everywhere(price_return=-0.10),
    )
    h = holder(result)
    assert h["status"] == "ok"
    assert h["stop_loss.metric_after"] == 0.25
    assert h["triggered_rules"] == ""


def test_stop_loss_at_its_threshold_up_to_an_ulp_does_not_act() -> None:
    # 10 × 100 on cash −600: E₀ = 400. −12%: E = 280, D = 1 − 280/400 = 0.3, which floats
    # make 0.30000000000000004 — at a 30% stop, not beyond it
    result = run_case(
        [{"asset_id": "a", "price": 100.0}],
        [{"holder_id": "h", "cash": -600.0}],
        [("h", "a", 10.0)],
        [{"kind": "stop_loss", "threshold": 0.3, "cut": 0.5}],
        everywhere(price_return=-0.12),
    )
    assert holder(result)["status"] == "ok"
    assert holder(result)["sold"] == 0.0


def test_stop_loss_reads_the_holders_reference_equity() -> None:
    # high-water mark 600: −6% gives E = 440, D = 1 − 440/600 = 26.7% > 25% (from E₀ = 500
    # it would be 12%, inside the stop)
    assert holder(_stop_case(-0.06, {"threshold": 0.25, "cut": 0.5}))["status"] == "ok"
    result = _stop_case(-0.06, {"threshold": 0.25, "cut": 0.5}, reference_equity=600.0)
    h = holder(result)
    assert h["status"] == "forced"
    assert math.isclose(h["stop_loss.metric_after"], 1 - 440 / 600, rel_tol=REL)
    assert math.isclose(h["sold"], 440.0, rel_tol=REL)


def test_stop_loss_does_not_cut_a_book_prices_already_shrank() -> None:
    # cut 10%: bound 900. −15%: x = 850 ≤ 900 although D = 1 − 350/500 = 30%
    h = holder(_stop_case(-0.15, {"threshold": 0.1, "cut": 0.1}))
    assert h["status"] == "ok"
    assert h["sold"] == 0.0
    # −6%: x = 940 > 900 → f = 900/940, sell 40
    assert math.isclose(holder(_stop_case(-0.06, {"threshold": 0.1, "cut": 0.1}))["sold"], 40.0)


def test_stop_loss_cuts_once_in_a_cascade() -> None:
    # with price impact the cascade runs more rounds; the stop's bound is fixed by the book
    # before the scenario, so its one cut leaves gross at ½ × G₀ = 500 at most after any round
    result = run_case(
        [{"asset_id": "a", "price": 100.0, "adv": 1e4}, {"asset_id": "b", "price": 100.0}],
        [{"holder_id": "h", "cash": -500.0}, {"holder_id": "g", "cash": -500.0}],
        [("h", "a", 10.0), ("g", "a", 5.0), ("g", "b", 5.0)],
        [{"kind": "stop_loss", "threshold": 0.1, "cut": 0.5}],
        everywhere(price_return=-0.06),
        impact={"models": [{"model": "linear", "coefficient": 1.0}], "max_rounds": 5},
    )
    moved = result.assets.filter(pl.col("asset_id") == "a")["price_change"].item()
    assert moved < -0.06 - 1e-3  # beyond the shock: the sales pushed a down, a second round ran
    h = holder(result)
    assert h["status"] == "forced"
    assert h["rounds_forced"] == 1
    assert math.isclose(h["sold"], 440.0, rel_tol=1e-9)  # the first round's cut, at −6%


def test_a_round_on_holders_without_their_book_before_the_scenario_is_a_clear_error() -> None:
    market = estimator.build_market(
        asset_frame([{"asset_id": "a", "price": 100.0}]),
        holder_frame([{"holder_id": "h", "cash": -500.0}]),
        pl.DataFrame({"holder_id": ["h"], "asset_id": ["a"], "quantity": [10.0]}),
        {"m": Mandate(name="m", rules=[{"kind": "stop_loss", "threshold": 0.1, "cut": 0.5}])},
    )
    with pytest.raises(InputError, match="gross_exposure_pre"):
        evaluate_round(market.assets, market.holders, market.positions, market.mandates)

"""``funding_ratio`` oracles: a pension that rebalances while funded and de-risks below a
funding-ratio trigger, and liabilities repriced by a discount-rate shock, by hand."""

from __future__ import annotations

import math
from typing import Any

import polars as pl
import pytest
from oracle_kit import holder, run_case

from estimator import Mandate, Scenario
from estimator.api import RunResult
from estimator.errors import InputWarnings

EXECUTIONS = ["pro_rata", "min_cost"]
ASSETS = [
    {"asset_id": "eq", "price": 10.0},
    {"asset_id": "bd", "asset_class": "govt_bond", "price": 10.0, "duration": 8.0},
]
RULE = {
    "kind": "funding_ratio",
    "weights": {"equity": 0.6, "govt_bond": 0.4},
    "derisked_weights": {"equity": 0.3, "govt_bond": 0.7},
    "trigger": 0.9,
    "band": 0.05,
}
EQUITIES_DOWN_20 = [{"select": {"asset_ids": ["eq"]}, "price_return": -0.2}]


def _pension(
    liability_bp: float | None, execution: str = "pro_rata", rule: dict[str, Any] = RULE
) -> RunResult:
    # 60 of equities, 40 of bonds, no cash: V = 100 against liabilities of 95 (duration 10).
    shocks = (
        [{"holder_types": ["pension"], "liability_rate_change_bp": liability_bp}]
        if liability_bp is not None
        else None
    )
    return run_case(
        ASSETS,
        [
            {
                "holder_id": "h",
                "holder_type": "pension",
                "liabilities": 95.0,
                "liability_duration": 10.0,
            }
        ],
        [("h", "eq", 6.0), ("h", "bd", 4.0)],
        [rule],
        EQUITIES_DOWN_20,
        execution,
        holder_shocks=shocks,
    )


def _traded(result: RunResult) -> dict[str, float]:
    return dict(zip(result.trades["asset_id"], result.trades["trade_value"], strict=True))


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_funded_above_the_trigger_it_rebalances_against_the_fall(execution: str) -> None:
    # Equities 48, V = 88, FR = 88/95 = 0.926 ≥ 0.9: the normal 60/40 policy. Equity weight
    # 54.5% is outside its 5% band: back to 0.6·88 = 52.8, buying 4.8 and selling 4.8 of bonds.
    result = _pension(None, execution)
    assert _traded(result) == pytest.approx({"eq": 4.8, "bd": -4.8}, rel=1e-6)
    assert math.isclose(holder(result)["funding_ratio.metric_before"], 88 / 95, rel_tol=1e-12)


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_below_the_trigger_it_sells_into_the_fall(execution: str) -> None:
    # Discount rates −30bp: L = 95·exp(10·0.003) = 97.893, FR = 88/97.893 = 0.899 < 0.9: the
    # de-risked 30/70 policy. Equities 48 → 26.4 (sell 21.6), bonds 40 → 61.6 (buy 21.6).
    result = _pension(-30.0, execution)
    assert _traded(result) == pytest.approx({"eq": -21.6, "bd": 21.6}, rel=1e-6)
    h = holder(result)
    assert math.isclose(h["funding_ratio.metric_before"], 88 / (95 * math.exp(0.03)), rel_tol=1e-12)
    assert h["compliant"]


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_a_deferring_pension_de_risks_part_of_the_way(execution: str) -> None:
    # As above, with 40% of the rebalance deferred: equities to 26.4 + 0.4·(48 − 26.4) = 35.04
    # (sell 12.96), bonds to 61.6 − 0.4·21.6 = 52.96 (buy 12.96); compliant with the decision.
    result = _pension(-30.0, execution, RULE | {"defer": 0.4})
    assert _traded(result) == pytest.approx({"eq": -12.96, "bd": 12.96}, rel=1e-6)
    assert holder(result)["compliant"]


def test_rising_rates_lower_liabilities_and_keep_the_policy() -> None:
    # +30bp: L = 95·exp(−0.03) = 92.19, FR = 0.955: still the normal policy.
    result = _pension(30.0)
    assert _traded(result) == pytest.approx({"eq": 4.8, "bd": -4.8}, rel=1e-6)
    assert math.isclose(
        holder(result)["funding_ratio.metric_before"], 88 / (95 * math.exp(-0.03)), rel_tol=1e-12
    )


def test_without_liabilities_the_normal_policy_holds() -> None:
    result = run_case(
        ASSETS,
        [{"holder_id": "h"}],
        [("h", "eq", 6.0), ("h", "bd", 4.0)],
        [RULE],
        EQUITIES_DOWN_20,
    )
    assert _traded(result) == pytest.approx({"eq": 4.8, "bd": -4.8}, rel=1e-6)
    assert holder(result)["funding_ratio.metric_before"] is None


def test_liability_shocks_add_up_and_scale() -> None:
    # Two shocks on the holder: −20bp and −10bp → L = 95·exp(10·0.003), as one of −30bp; the
    # scenario at half its size moves it by −15bp.
    two = [
        {"holder_ids": ["h"], "liability_rate_change_bp": -20.0},
        {"holder_types": ["pension"], "liability_rate_change_bp": -10.0},
    ]
    spec = Scenario(name="s", shocks=EQUITIES_DOWN_20, holder_shocks=two)
    holders = pl.DataFrame(
        {
            "holder_id": ["h", "x"],
            "holder_type": ["pension", "other"],
            "credit_line": [0.0, 0.0],
            "liabilities": [95.0, 50.0],
            "liability_duration": [10.0, 10.0],
        }
    )

    def liabilities(scenario: Scenario) -> list[float]:
        cols = scenario.holder_columns(holders, InputWarnings(), "s")
        return holders.select(cols["liabilities"])["liabilities"].to_list()

    assert liabilities(spec) == pytest.approx([95 * math.exp(0.03), 50.0], rel=1e-12)
    assert liabilities(spec.scaled(0.5)) == pytest.approx([95 * math.exp(0.015), 50.0], rel=1e-12)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("derisked_weights", {"equity": 0.7, "govt_bond": 0.7}, "sum to 1.4"),
        ("derisked_weights", {"equity": 1.5}, "between 0 and 1"),
        ("trigger", 0.0, "greater than 0"),
    ],
)
def test_bad_policies_are_rejected(field: str, value: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Mandate(name="m", rules=[RULE | {field: value}])

"""Initial margin as a rate — Reg T's 50%, per asset or per rule — beside the ratio form,
against hand-worked accounts."""

from __future__ import annotations

import math

import pytest
from oracle_kit import REL, holder, run_case, trade_quantities
from pydantic import ValidationError

from rules import Margin

pytestmark = pytest.mark.usefixtures("hand_sized")


def _long(rule: dict) -> dict[str, float]:
    # 100 at 50 bought with 50% down: X = 5000, cash −2500. −40%: X = 3000, AE = 500,
    # R = 0.25·3000 = 750 > 500
    result = run_case(
        [{"asset_id": "a", "price": 50.0}],
        [{"holder_id": "h", "cash": -2500.0}],
        [("h", "a", 100.0)],
        [{"kind": "margin", "maintenance_rate": 0.25} | rule],
        [{"select": {"all": True}, "price_return": -0.4}],
    )
    assert holder(result)["status"] == "forced"
    return trade_quantities(result)


def test_reg_t_long_back_to_initial_or_maintenance() -> None:
    # to initial: 0.5·(3000 − s) = 500, s = 2000 (66⅔ shares at 30); to maintenance:
    # 0.25·(3000 − s) = 500, s = 1000
    reg_t = _long({"restore": "initial", "initial_rate": 0.5})
    assert math.isclose(reg_t["a"], -2000 / 30, rel_tol=REL)
    ratio = _long({"restore": "initial", "initial_ratio": 2.0})  # 2 × 25%: the same 50%
    assert math.isclose(ratio["a"], -2000 / 30, rel_tol=REL)
    assert math.isclose(_long({"initial_rate": 0.5})["a"], -1000 / 30, rel_tol=REL)


def test_reg_t_short_whose_proceeds_are_cash() -> None:
    # short 100 at 50: proceeds 5000 plus a 50% deposit of 2500 in cash: AE = 2500. +40%:
    # x = −7000, AE = 500, R = 0.3·7000 = 2100 > 500; back to Reg T's initial 50% (the 150%
    # of the short's value less its proceeds): 0.5·(7000 − b) = 500, b = 6000 at 70
    result = run_case(
        [{"asset_id": "a", "price": 50.0}],
        [{"holder_id": "h", "cash": 7500.0}],
        [("h", "a", -100.0)],
        [{"kind": "margin", "maintenance_rate": 0.3, "restore": "initial", "initial_rate": 0.5}],
        [{"select": {"all": True}, "price_return": 0.4}],
    )
    assert math.isclose(trade_quantities(result)["a"], 6000 / 70, rel_tol=REL)


ASSETS = [  # a: its own initial rate 50%; b: its own maintenance rate 30%; c: neither
    {"asset_id": "a", "price": 10.0, "initial_margin_rate": 0.5},
    {"asset_id": "b", "price": 10.0, "margin_rate": 0.3},
    {"asset_id": "c", "price": 10.0},
]


def _three(rule: dict, execution: str = "pro_rata") -> tuple[dict, dict[str, float]]:
    # 600 + 400 + 200 on cash −800: AE = 400. −20%: X = 480, 320, 160, AE = 160;
    # R = 0.25·480 + 0.3·320 + 0.25·160 = 256 > 160
    result = run_case(
        ASSETS,
        [{"holder_id": "h", "cash": -800.0}],
        [("h", "a", 60.0), ("h", "b", 40.0), ("h", "c", 20.0)],
        [{"kind": "margin", "maintenance_rate": 0.25, "restore": "initial"} | rule],
        [{"select": {"all": True}, "price_return": -0.2}],
        execution=execution,
    )
    return holder(result), trade_quantities(result)


@pytest.mark.parametrize(
    ("rule", "initial"),
    [
        # ratio 1.5: I = 0.5·480 + 1.5·0.3·320 + 1.5·0.25·160 = 240 + 144 + 60
        ({"initial_ratio": 1.5}, 444.0),
        # rate 60% where the asset has none: I = 0.5·480 + 0.6·(320 + 160)
        ({"initial_rate": 0.6}, 528.0),
    ],
)
def test_per_asset_initial_rates_with_the_rules_fallback(rule: dict, initial: float) -> None:
    h, sold = _three(rule)
    f = 160 / initial  # pro-rata: I is homogeneous
    for asset, q in (("a", 60.0), ("b", 40.0), ("c", 20.0)):
        assert math.isclose(sold[asset], -(1 - f) * q, rel_tol=REL)
    # min-cost meets the same initial requirement, marked by hand from its trades
    h, sold = _three(rule, "min_cost")
    assert h["status"] == "forced" and h["compliant"]
    iota = {"a": 0.5} | (
        {"b": 0.6, "c": 0.6} if "initial_rate" in rule else {"b": 0.45, "c": 0.375}
    )
    held = {"a": 60.0, "b": 40.0, "c": 20.0}
    left = {k: (q + sold.get(k, 0.0)) * 8.0 for k, q in held.items()}  # at 10 × (1 − 20%)
    assert sum(iota[k] * v for k, v in left.items()) <= 160 * (1 + 1e-6)


def test_rates_are_checked() -> None:
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ValidationError, match="initial_rate"):
            Margin(initial_rate=bad)


def test_an_initial_rate_below_maintenance_still_restores_maintenance() -> None:
    # a haircut shock triples the maintenance rate to 75%, above the asset's initial 50%:
    # 100 at 50 on −2500 (AE = 2500), R = 0.75·5000 = 3750 > AE. Back to "initial" is back to
    # max(I, R) ≤ AE: 0.75·X⁺ ≤ 2500, sell 5000 − 3333⅓, 33⅓ shares
    shocked = run_case(
        [{"asset_id": "a", "price": 50.0, "margin_rate": 0.25, "initial_margin_rate": 0.5}],
        [{"holder_id": "h", "cash": -2500.0}],
        [("h", "a", 100.0)],
        [{"kind": "margin", "restore": "initial"}],
        [{"select": {"all": True}, "margin_rate_multiplier": 3.0}],
    )
    assert math.isclose(trade_quantities(shocked)["a"], -100 / 3, rel_tol=REL)
    # a rule whose initial rate (20%) is below its maintenance rate (25%): 100 at 50 on −4000,
    # AE = 1000 < R = 1250; back to maintenance, 0.25·X⁺ ≤ 1000: sell 1000, 20 shares
    low = run_case(
        [{"asset_id": "a", "price": 50.0}],
        [{"holder_id": "h", "cash": -4000.0}],
        [("h", "a", 100.0)],
        [{"kind": "margin", "restore": "initial", "initial_rate": 0.2}],
        [],
        execution="min_cost",
    )
    h = holder(low)
    assert h["compliant"] and h["margin.metric_after"] >= -1e-6
    assert math.isclose(trade_quantities(low)["a"], -20.0, rel_tol=1e-6)

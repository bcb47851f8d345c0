"""Leverage under its two measures — balance sheet (L⁺ + N + max(C, 0))/E and exposure
(Σ|x| + N)/E — on a cash-collateralised futures fund, a long/short book and a long book on
borrowed cash, against hand-worked books."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracle_kit import future, holder, run_case, trade_quantities

from estimator import RunResult

pytestmark = pytest.mark.usefixtures("hand_sized")


def _futures_fund(rules: list[dict], price_return: float = 0.0) -> RunResult:
    """A 2× futures fund: equity 100 held as cash, futures of notional 200 (2 at 100 × 1)."""
    shocks = [{"select": {"all": True}, "price_return": price_return}] if price_return else []
    return run_case(
        [future("fut", 100.0, 1.0)], [{"holder_id": "h", "cash": 100.0}], [("h", "fut", 2.0)],
        rules, shocks,
    )  # fmt: skip


def test_a_2x_futures_fund_is_1_on_its_balance_sheet_and_2_by_exposure() -> None:
    for measure, level in (("balance_sheet", 1.0), ("exposure", 2.0)):
        h = holder(_futures_fund([{"kind": "leverage", "max": 2.0, "measure": measure}]))
        assert h["status"] == "ok"
        assert math.isclose(h["leverage.metric_before"], level, rel_tol=1e-12)
    assert math.isclose(h["leverage_before"], 3.0, rel_tol=1e-12)  # the accounting's A/E


def test_targeting_exposure_rebalances_a_futures_fund_and_the_balance_sheet_does_not() -> None:
    # −10%: variation margin −20, E = 80, G = 180: 2.25 against L₀ = 2 → G = 160: sell 20 of
    # notional at 90, 2/9 of a contract.
    # On the balance sheet A = C = 80 = E: still 1.0, L₀ = 1.0, nothing to do.
    rule = {"kind": "leverage", "mode": "targeting"}
    result = _futures_fund([rule | {"measure": "exposure"}], -0.1)
    assert trade_quantities(result)["fut"] == pytest.approx(-2 / 9, rel=1e-12)
    assert math.isclose(holder(result)["leverage.metric_after"], 2.0, rel_tol=1e-12)
    assert holder(_futures_fund([rule], -0.1))["status"] == "ok"


def _long_short(measure: str, execution: str = "pro_rata") -> RunResult:
    """Longs 130, a short of 60 whose proceeds are cash: E = 100, C = 30."""
    return run_case(
        [{"asset_id": "L", "price": 1.0}, {"asset_id": "S", "price": 1.0}],
        [{"holder_id": "h", "cash": 30.0}],
        [("h", "L", 130.0), ("h", "S", -60.0)],
        [{"kind": "leverage", "max": 1.5, "measure": measure}],
        [],
        execution=execution,
    )


def test_long_short_book_by_hand() -> None:
    # balance sheet: A = 130 + 30 = 160, 1.6 > 1.5. Scaled by f, cash 30 + (1 − f)·70 stays
    # positive: A(f) = 100 + 60f = 150 at f = 5/6 — sell 130/6 of L, buy back 10 of S.
    bs = _long_short("balance_sheet")
    assert math.isclose(holder(bs)["leverage.metric_before"], 1.6, rel_tol=1e-12)
    got = trade_quantities(bs)
    assert (got["L"], got["S"]) == pytest.approx((-130 / 6, 10.0), rel=1e-12)
    assert math.isclose(holder(bs)["leverage.metric_after"], 1.5, rel_tol=1e-12)
    # exposure: G = 190, 1.9 > 1.5; 190·f = 150 at f = 15/19
    ex = _long_short("exposure")
    assert math.isclose(holder(ex)["leverage.metric_before"], 1.9, rel_tol=1e-12)
    got = trade_quantities(ex)
    assert (got["L"], got["S"]) == pytest.approx((-130 * 4 / 19, 60 * 4 / 19), rel=1e-12)


@pytest.mark.parametrize("measure", ["balance_sheet", "exposure"])
def test_min_cost_meets_either_measure(measure: str) -> None:
    h = holder(_long_short(measure, "min_cost"))
    assert h["status"] == "forced" and h["compliant"]
    assert h["leverage.metric_after"] <= 1.5 * (1 + 1e-6)
    assert h["leverage.metric_after"] >= 1.5 * (1 - 1e-4)  # no more than it must


@given(
    held=st.lists(st.floats(1.0, 1e3), min_size=1, max_size=4),
    borrowed=st.floats(0.05, 0.95),
    non_tradable=st.floats(0.0, 500.0),
)
def test_a_long_book_on_borrowed_cash_reads_the_same_under_both(
    held: list[float], borrowed: float, non_tradable: float
) -> None:
    """Long cash holdings, non-tradables and borrowing (C ≤ 0): L⁺ = G and max(C, 0) = 0."""
    assets = [{"asset_id": f"a{i}", "price": 1.0} for i in range(len(held))]
    positions = [("h", f"a{i}", q) for i, q in enumerate(held)]
    cash = -borrowed * sum(held)
    levels = []
    for measure in ("balance_sheet", "exposure"):
        result = run_case(
            assets,
            [{"holder_id": "h", "cash": cash, "non_tradable": non_tradable}],
            positions,
            [{"kind": "leverage", "max": 1000.0, "measure": measure}],
            [],
        )
        levels.append(holder(result)["leverage.metric_before"])
    expected = (sum(held) + non_tradable) / (sum(held) + non_tradable + cash)
    assert levels == pytest.approx([expected, expected], rel=1e-12)


@pytest.mark.parametrize("execution", ["pro_rata", "min_cost"])
def test_a_futures_fund_within_its_balance_sheet_limit_leaves_the_vol_target_to_act(
    execution: str,
) -> None:
    # σ = 0.2·200 = 40 on E = 100: 40% against a 30% target, f = 0.75: sell half a contract.
    # Its balance-sheet leverage (1.0, whatever it holds in futures) is far inside 5 and must
    # not bind: no scale of the futures changes it.
    result = run_case(
        [future("fut", 100.0, 1.0) | {"vol": 0.2}],
        [{"holder_id": "h", "cash": 100.0}],
        [("h", "fut", 2.0)],
        [{"kind": "vol_target", "target": 0.3}, {"kind": "leverage", "max": 5.0}],
        [],
        execution=execution,
    )
    h = holder(result)
    assert (h["status"], h["binding_rules"]) == ("forced", "vol_target")
    assert trade_quantities(result)["fut"] == pytest.approx(-0.5, rel=1e-6)

"""``liquidity_buffer`` oracles, each sale worked out by hand in the comments."""

from __future__ import annotations

import math
from typing import Any

import polars as pl
import pytest
from oracle_kit import holder, run_case

from estimator.api import RunResult

EXECUTIONS = ["pro_rata", "min_cost"]

#: Two equities and a government bond, all at price 100.
ASSETS = [
    {"asset_id": "e1", "price": 100.0},
    {"asset_id": "e2", "price": 100.0},
    {"asset_id": "g", "asset_class": "govt_bond", "price": 100.0, "duration": 8.0},
]


def _sold(result: RunResult, holder_id: str = "h") -> dict[str, float]:
    t = result.trades.filter(pl.col("holder_id") == holder_id)
    return dict(zip(t["asset_id"], -t["trade_value"], strict=True))


def _govt_falls(by: float) -> list[dict[str, Any]]:
    return [{"select": {"asset_ids": ["g"]}, "price_return": -by}]


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_a_loss_on_the_liquid_sleeve_sells_illiquid_holdings(execution: str) -> None:
    # e1 600, e2 300, g 100, cash 0: A = 1000, L = 100 = 10%·A, at the buffer.
    # g falls 30%: A = 970, L = 70 < 97. Cash ≥ 0, so A is unchanged by the sale:
    # d = s·A − L = 97 − 70 = 27, pro-rata 27·600/900 = 18 of e1 and 9 of e2.
    result = run_case(
        ASSETS,
        [{"holder_id": "h"}],
        [("h", "e1", 6.0), ("h", "e2", 3.0), ("h", "g", 1.0)],
        [{"kind": "liquidity_buffer", "share": 0.1}],
        _govt_falls(0.3),
        execution,
    )
    sold = _sold(result)
    assert "g" not in sold
    assert math.isclose(sum(sold.values()), 27.0, rel_tol=1e-6)
    if execution == "pro_rata":
        assert sold == pytest.approx({"e1": 18.0, "e2": 9.0}, rel=1e-9)
    h = holder(result)
    assert h["status"] == "forced" and h["compliant"]
    assert math.isclose(h["liquidity_buffer.metric_before"], 70 / 970, rel_tol=1e-12)
    assert math.isclose(h["liquidity_buffer.metric_after"], 0.1, rel_tol=1e-6)


def test_min_cost_sells_the_cheaper_illiquid_holding_first() -> None:
    # Same book; e2 has the narrower spread, so the 27 come from e2 (300 held) alone.
    assets = [
        ASSETS[0] | {"half_spread_bps": 50.0},
        ASSETS[1] | {"half_spread_bps": 5.0},
        ASSETS[2],
    ]
    result = run_case(
        assets,
        [{"holder_id": "h"}],
        [("h", "e1", 6.0), ("h", "e2", 3.0), ("h", "g", 1.0)],
        [{"kind": "liquidity_buffer", "share": 0.1}],
        _govt_falls(0.3),
        "min_cost",
    )
    sold = _sold(result)
    assert sold["e2"] == pytest.approx(27.0, rel=1e-3)
    assert sold.get("e1", 0.0) == pytest.approx(0.0, abs=0.05)


@pytest.mark.parametrize(
    ("cash", "equity", "govt", "expected"),
    [
        # e1 1000, g 50, borrowing 200: A = 1050, L = 50 < 105. Repaying all the way would take
        # (s·A₀ − L)/s = (105 − 50)/0.1 = 550 > 200, so cash ends positive:
        # d = s·(A₀ + C) − L − C = 0.1·850 − 50 + 200 = 235 → A⁺ = 765 + 50 + 35 = 850, L⁺ = 85.
        (-200.0, 10.0, 0.5, 235.0),
        # e1 3000, g 250, borrowing 2000: A₀ = 3250, (325 − 250)/0.1 = 750 ≤ 2000: every unit
        # sold repays debt, A⁺ = 2250 + 250 = 2500, L⁺ = 250 = 10% ✓.
        (-2000.0, 30.0, 2.5, 750.0),
    ],
)
def test_sales_that_repay_borrowing_shrink_total_assets(
    cash: float, equity: float, govt: float, expected: float
) -> None:
    result = run_case(
        ASSETS,
        [{"holder_id": "h", "cash": cash}],
        [("h", "e1", equity), ("h", "g", govt)],
        [{"kind": "liquidity_buffer", "share": 0.1}],
        _govt_falls(0.0),
    )
    assert _sold(result) == pytest.approx({"e1": expected}, rel=1e-9)
    assert math.isclose(holder(result)["liquidity_buffer.metric_after"], 0.1, rel_tol=1e-9)


def test_restore_share_rebuilds_above_the_trigger() -> None:
    # As the first case with s_r = 12%: d = 0.12·970 − 70 = 46.4.
    result = run_case(
        ASSETS,
        [{"holder_id": "h"}],
        [("h", "e1", 6.0), ("h", "e2", 3.0), ("h", "g", 1.0)],
        [{"kind": "liquidity_buffer", "share": 0.1, "restore_share": 0.12}],
        _govt_falls(0.3),
    )
    assert math.isclose(sum(_sold(result).values()), 46.4, rel_tol=1e-9)


def test_at_the_buffer_nothing_is_sold() -> None:
    result = run_case(
        ASSETS,
        [{"holder_id": "h"}],
        [("h", "e1", 6.0), ("h", "e2", 3.0), ("h", "g", 1.0)],
        [{"kind": "liquidity_buffer", "share": 0.1}],
        _govt_falls(0.0),
    )
    assert result.trades.is_empty()
    assert holder(result)["status"] == "ok"


def test_liquid_classes_are_the_mandates() -> None:
    # With equities counted liquid too, L = A: nothing to do however far g falls.
    result = run_case(
        ASSETS,
        [{"holder_id": "h"}],
        [("h", "e1", 6.0), ("h", "e2", 3.0), ("h", "g", 1.0)],
        [{"kind": "liquidity_buffer", "share": 0.5, "liquid_classes": ["equity", "govt_bond"]}],
        _govt_falls(0.5),
    )
    assert result.trades.is_empty()


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_a_buffer_out_of_reach_sells_every_illiquid_holding(execution: str) -> None:
    # Non-tradable 5000 counts as illiquid: e1 500, g 10, cash 0: A = 5510, L = 10 < 551.
    # Selling all of e1: A = 5510, L = 510 < 551 — not compliant, short by 41.
    result = run_case(
        ASSETS,
        [{"holder_id": "h", "non_tradable": 5000.0}],
        [("h", "e1", 5.0), ("h", "g", 0.1)],
        [{"kind": "liquidity_buffer", "share": 0.1}],
        _govt_falls(0.0),
        execution,
    )
    assert _sold(result) == pytest.approx({"e1": 500.0}, rel=1e-9)
    h = holder(result)
    assert h["status"] == "forced" and not h["compliant"]
    assert math.isclose(h["shortfall"], 41.0, rel_tol=1e-9)


def test_redemptions_paid_from_cash_are_rebuilt_by_selling_equities() -> None:
    # e1 600, e2 300, g 60, cash 40: A = 1000, L = 100. 3% of the units redeemed at par:
    # 30 paid from cash → C = 10, A = 970, L = 70: d = 0.1·970 − 70 = 27 (18 of e1, 9 of e2).
    result = run_case(
        ASSETS,
        [{"holder_id": "h", "cash": 40.0}],
        [("h", "e1", 6.0), ("h", "e2", 3.0), ("h", "g", 0.6)],
        [
            {"kind": "redemption", "base_rate": 0.03},
            {"kind": "liquidity_buffer", "share": 0.1},
        ],
        _govt_falls(0.0),
    )
    assert _sold(result) == pytest.approx({"e1": 18.0, "e2": 9.0}, rel=1e-9)
    assert math.isclose(holder(result)["redemption.paid"], 30.0, rel_tol=1e-12)


def test_restore_below_the_trigger_is_rejected() -> None:
    with pytest.raises(ValueError, match="restore_share"):
        run_case(
            ASSETS,
            [{"holder_id": "h"}],
            [("h", "e1", 1.0)],
            [{"kind": "liquidity_buffer", "share": 0.1, "restore_share": 0.05}],
            _govt_falls(0.0),
        )


@pytest.mark.parametrize("execution", EXECUTIONS)
@pytest.mark.parametrize(
    ("reserve", "sale"),
    [
        # the first case's book: cash k restores it once L + k = 10%·(A + k): k = 27/0.9 = 30
        (30.0, 0.0),
        # a reserve of 12: A = 982, L = 82, then d = 98.2 − 82 = 16.2 of equities
        (12.0, 16.2),
    ],
)
def test_a_reserve_rebuilds_the_buffer_before_any_sale(
    execution: str, reserve: float, sale: float
) -> None:
    result = run_case(
        ASSETS,
        [{"holder_id": "h", "cash_reserve": reserve}],
        [("h", "e1", 6.0), ("h", "e2", 3.0), ("h", "g", 1.0)],
        [{"kind": "liquidity_buffer", "share": 0.1}],
        _govt_falls(0.3),
        execution,
    )
    assert sum(_sold(result).values()) == pytest.approx(sale, rel=1e-6, abs=1e-9)
    h = holder(result)
    assert h["cure_reserve"] == pytest.approx(reserve, rel=1e-12)
    assert h["status"] == ("cured" if sale == 0 else "forced")
    assert h["liquidity_buffer.metric_after"] == pytest.approx(0.1, rel=1e-6)
    cure = result.cures.row(0, named=True)
    assert (cure["need"], cure["cured"]) == pytest.approx((30.0, reserve), rel=1e-12)

"""``rating_floor`` oracles, each sale worked out by hand in the comments."""

from __future__ import annotations

import math
from typing import Any

import polars as pl
import pytest
from oracle_kit import holder, run_case

from estimator.api import RunResult

EXECUTIONS = ["pro_rata", "min_cost"]


def _bond(asset_id: str, sp: str | None, **ratings: Any) -> dict[str, Any]:
    """A bond at price 100 with an S&P rating (and optionally Moody's/Fitch)."""
    return {"asset_id": asset_id, "asset_class": "corp_bond", "price": 100.0, "rating_sp": sp} | {
        "rating_moodys": None,
        "rating_fitch": None,
        **ratings,
    }


def _sold(result: RunResult, holder_id: str = "h") -> dict[str, float]:
    t = result.trades.filter(pl.col("holder_id") == holder_id)
    return dict(zip(t["asset_id"], -t["trade_value"], strict=True))


def _downgrade(asset_id: str, notches: int = 1) -> list[dict[str, Any]]:
    return [{"select": {"asset_ids": [asset_id]}, "downgrade_notches": notches}]


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_downgrade_below_the_floor_sells_the_whole_position(execution: str) -> None:
    # x = 10 × 100 = 1000 in BBB- bond; 30 × 100 = 3000 in an A bond. One notch down: BB+, junk.
    # Tolerated share 0 → B = 1000 must go to 0: sell all 1000; the A bond is untouched.
    result = run_case(
        [_bond("x", "BBB-"), _bond("y", "A")],
        [{"holder_id": "h", "cash": 100.0}],
        [("h", "x", 10.0), ("h", "y", 30.0)],
        [{"kind": "rating_floor", "floor": "BBB-"}],
        _downgrade("x"),
        execution,
    )
    assert _sold(result) == pytest.approx({"x": 1000.0}, rel=1e-9)
    h = holder(result)
    assert h["status"] == "forced"
    assert h["triggered_rules"] == "rating_floor"
    assert h["compliant"]
    assert math.isclose(h["rating_floor.metric_before"], 1000 / 4100, rel_tol=1e-12)
    assert abs(h["rating_floor.metric_after"]) <= 1e-9


@pytest.mark.parametrize(("share", "solved"), [(0.0, False), (0.05, True)])
def test_min_cost_solves_only_where_there_is_a_choice(share: float, solved: bool) -> None:
    # Junk x 1000 and an A bond y 3000. With no tolerance every junk bond goes whatever it costs:
    # the trades are the pro-rata ones, without a solve. With 5% tolerated the fund keeps
    # 0.05·4000 = 200 of junk (cash unchanged, total assets 4000): it sells 800, and a solve
    # chooses which junk to sell (here the one junk bond).
    result = run_case(
        [_bond("x", "BBB-"), _bond("y", "A")],
        [{"holder_id": "h"}],
        [("h", "x", 10.0), ("h", "y", 30.0)],
        [{"kind": "rating_floor", "floor": "BBB-", "share": share}],
        _downgrade("x"),
        "min_cost",
    )
    assert _sold(result) == pytest.approx({"x": 1000.0 - share * 4000.0}, rel=1e-6)
    # one linear limit: solved in closed form
    assert holder(result)["solver_status"] == ("optimal (closed form)" if solved else "")


def test_a_rule_with_a_choice_beside_one_without_is_still_solved() -> None:
    # The junk bond x (1000) must go; a leverage cap of 1.5 on a book of 4000 with cash −1500
    # (equity 2500, gross 4000 → 1.6) asks for more: the solve decides what else to sell, and
    # the junk bond is still sold in full. Selling the junk bond raises 1000: debt 500, gross
    # 3000, equity 2500, leverage 1.2 ≤ 1.5 — enough on its own, so nothing else is sold.
    result = run_case(
        [_bond("x", "BBB-"), _bond("y", "A")],
        [{"holder_id": "h", "cash": -1500.0}],
        [("h", "x", 10.0), ("h", "y", 30.0)],
        [{"kind": "rating_floor", "floor": "BBB-"}, {"kind": "leverage", "max": 1.5}],
        _downgrade("x"),
        "min_cost",
    )
    assert holder(result)["solver_status"] == "optimal"
    assert _sold(result) == pytest.approx({"x": 1000.0}, rel=1e-6)


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_downgrade_to_exactly_the_floor_sells_nothing(execution: str) -> None:
    # BBB → BBB-: at the floor, not below it.
    result = run_case(
        [_bond("x", "BBB"), _bond("y", "A")],
        [{"holder_id": "h"}],
        [("h", "x", 10.0), ("h", "y", 30.0)],
        [{"kind": "rating_floor", "floor": "BBB-"}],
        _downgrade("x"),
        execution,
    )
    assert result.trades.is_empty()
    assert holder(result)["status"] == "ok"
    assert holder(result)["rating_floor.metric_before"] == 0.0


def test_tolerated_share_sells_pro_rata_down_to_it() -> None:
    # Junk x1 = 600, x2 = 400, IG y = 3000, cash 100 → A = 4100, B = 1000, s = 10%.
    # Cash ≥ 0, so A is unchanged by the sale: d = B − s·A = 1000 − 410 = 590, a common
    # fraction 590/1000 = 59% of each junk bond: 354 and 236.
    result = run_case(
        [_bond("x1", "BB"), _bond("x2", "B+"), _bond("y", "AA")],
        [{"holder_id": "h", "cash": 100.0}],
        [("h", "x1", 6.0), ("h", "x2", 4.0), ("h", "y", 30.0)],
        [{"kind": "rating_floor", "share": 0.1}],
        [{"select": {"all": True}, "price_return": 0.0}],
    )
    assert _sold(result) == pytest.approx({"x1": 354.0, "x2": 236.0}, rel=1e-9)
    assert math.isclose(holder(result)["rating_floor.metric_after"], 0.1, rel_tol=1e-9)


def test_min_cost_sells_the_least_and_only_junk() -> None:
    # Same book as above: the least sale is 590 whichever junk bond goes first (A is fixed), and
    # selling the IG bond never helps. x1 has the wider spread, so x2 (400) goes first, then
    # 190 of x1 — the spread-only optimum; impact (ADV 10⁹) moves it by far less than 1.
    result = run_case(
        [
            _bond("x1", "BB") | {"half_spread_bps": 50.0},
            _bond("x2", "B+") | {"half_spread_bps": 5.0},
            _bond("y", "AA"),
        ],
        [{"holder_id": "h", "cash": 100.0}],
        [("h", "x1", 6.0), ("h", "x2", 4.0), ("h", "y", 30.0)],
        [{"kind": "rating_floor", "share": 0.1}],
        [{"select": {"all": True}, "price_return": 0.0}],
        "min_cost",
    )
    sold = _sold(result)
    assert "y" not in sold
    assert math.isclose(sum(sold.values()), 590.0, rel_tol=1e-6)
    assert sold["x2"] == pytest.approx(400.0, rel=1e-3)
    assert sold["x1"] == pytest.approx(190.0, rel=1e-2)


@pytest.mark.parametrize(
    ("cash", "expected_sale"),
    [
        # G = 4000, borrowing 500 → A = 4000, B = 1000, s = 10%. Repaying all the way:
        # d = (B − s·G)/(1 − s) = 600/0.9 = 666.7 > 500, so the sale overshoots the debt and
        # A settles at G + C = 3500: d = B − s·3500 = 650 (B⁺ = 350 = 10% of 3500).
        (-500.0, 650.0),
        # borrowing 1000: d = 666.67 ≤ 1000, still repaying: A⁺ = 3333.3, B⁺ = 333.3 ✓.
        (-1000.0, 600.0 / 0.9),
    ],
)
def test_sale_repaying_borrowing_shrinks_total_assets(cash: float, expected_sale: float) -> None:
    result = run_case(
        [_bond("x", "BB"), _bond("y", "AA")],
        [{"holder_id": "h", "cash": cash}],
        [("h", "x", 10.0), ("h", "y", 30.0)],
        [{"kind": "rating_floor", "share": 0.1}],
        [{"select": {"all": True}, "price_return": 0.0}],
    )
    assert _sold(result) == pytest.approx({"x": expected_sale}, rel=1e-9)
    assert math.isclose(holder(result)["rating_floor.metric_after"], 0.1, rel_tol=1e-9)


@pytest.mark.parametrize(("composite", "sold"), [("lowest", 1000.0), ("middle", None)])
def test_composite_rating(composite: str, sold: float | None) -> None:
    # After one notch: S&P BB+ (11), Moody's Baa3 (10), Fitch BBB- (10).
    # lowest = 11 (junk) → sell all; middle of three = 10 (BBB-) → at the floor, keep.
    x = _bond("x", "BBB-", rating_moodys="Baa2", rating_fitch="BBB")
    result = run_case(
        [x, _bond("y", "A")],
        [{"holder_id": "h"}],
        [("h", "x", 10.0), ("h", "y", 30.0)],
        [{"kind": "rating_floor", "composite": composite}],
        _downgrade("x"),
    )
    assert _sold(result) == ({"x": pytest.approx(sold)} if sold else {})


@pytest.mark.parametrize(("unrated", "sold"), [("breach", {"nr": 500.0}), ("exempt", {})])
def test_unrated_holdings_follow_the_mandate(unrated: str, sold: dict[str, float]) -> None:
    # A 500 holding no agency rates (NR / empty) is below the floor only under `breach`.
    result = run_case(
        [_bond("nr", "NR"), _bond("y", "A")],
        [{"holder_id": "h"}],
        [("h", "nr", 5.0), ("h", "y", 30.0)],
        [{"kind": "rating_floor", "unrated": unrated}],
        [{"select": {"all": True}, "price_return": -0.0}],
    )
    assert _sold(result) == pytest.approx(sold)


def test_restore_share_below_the_trigger_share() -> None:
    # A = 4000 (cash 0), B = 1000 → 25% > s = 20%: triggered; restore to s_r = 5%:
    # d = 1000 − 0.05·4000 = 800.
    result = run_case(
        [_bond("x", "CCC"), _bond("y", "AA")],
        [{"holder_id": "h"}],
        [("h", "x", 10.0), ("h", "y", 30.0)],
        [{"kind": "rating_floor", "share": 0.2, "restore_share": 0.05}],
        [{"select": {"all": True}, "price_return": 0.0}],
    )
    assert _sold(result) == pytest.approx({"x": 800.0}, rel=1e-9)


def test_within_the_tolerated_share_nothing_trades() -> None:
    # B/A = 1000/4000 = 25% ≤ 30%.
    result = run_case(
        [_bond("x", "CCC"), _bond("y", "AA")],
        [{"holder_id": "h"}],
        [("h", "x", 10.0), ("h", "y", 30.0)],
        [{"kind": "rating_floor", "share": 0.3}],
        [{"select": {"all": True}, "price_return": 0.0}],
    )
    assert result.trades.is_empty()
    assert math.isclose(holder(result)["rating_floor.metric_before"], 0.25, rel_tol=1e-12)

"""Equilibrium mode: the fixed points of the pre-episode books, by hand and by their properties."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle_kit import asset_frame, holder_frame

import estimator
from estimator import Mandate, Scenario
from estimator.equilibrium import conditions, equilibrium
from estimator.errors import EquilibriumError, InputWarnings
from estimator.inputs import prepare
from estimator.market import Market

#: Hand-worked books of a few hundred currency units (conftest.hand_sized).
pytestmark = pytest.mark.usefixtures("hand_sized")


def _market(rules: list[dict] | None = None) -> Market:
    """X at 100; A: 10 units on 600 borrowed, B: 20 units on 1000 borrowed; leverage ≤ 2,
    restored to 2 (its trigger)."""
    rules = rules or [{"kind": "leverage", "max": 2.0}]
    return estimator.build_market(
        asset_frame([{"asset_id": "X", "price": 100.0}]),
        holder_frame([{"holder_id": "A", "cash": -600.0}, {"holder_id": "B", "cash": -1000.0}]),
        pl.DataFrame({"holder_id": ["A", "B"], "asset_id": "X", "quantity": [10.0, 20.0]}),
        {"m": Mandate(name="m", rules=rules)},
    )


def _impact(ell: float, **extra: object) -> dict:
    models = [{"model": "linear", "coefficient": ell, "per": "value"}]
    return {"method": "equilibrium", "tolerance": 1e-13, "models": models} | extra


# At price P (no shock: P₀ = 100) the books require: A, with V = 10P and E = 10P − 600, sells
# V − 2E = 1200 − 10P (all 10 units once P ≤ 60, insolvent below 60); B sells 2000 − 20P once
# P < 100 (all 20 once P ≤ 50). Linear impact ℓ per currency unit on Q = |q|·P₀ = 100|q|
# gives P = 100·(1 − 100ℓ|q|) = 100 − c·|q| with c = 10⁴ℓ. For 60 < P < 100,
# |q| = (1200 − 10P)/P + (2000 − 20P)/P = 3200/P − 30, so P² − (100 + 30c)·P + 3200c = 0.


def test_a_unique_equilibrium_by_hand() -> None:
    # c = 1: P² − 130P + 3200 = 0 → P = 65 + √1025 = 97.0156 (the other root, 32.98, is not in
    # (60, 100), and below 60 no root lies in its piece). Both searches end there.
    result = estimator.run(Scenario(name="s", impact=_impact(1e-4)), _market())
    assert result.equilibrium is not None
    row = result.equilibrium.row(0, named=True)
    expected = 65 + math.sqrt(1025)
    assert row["price_least"] == pytest.approx(expected, rel=1e-10)
    assert row["price_greatest"] == pytest.approx(expected, rel=1e-10)
    assert row["quantity_least"] == pytest.approx(-(3200 / expected - 30), rel=1e-9)
    info = result.manifest.dump()["equilibrium"]
    assert info["multiple_equilibria"] is False
    assert info["least_iterations"] > 1 and info["greatest_iterations"] > 1
    # the run's trades are the pre-episode books' trades at the equilibrium price
    sold = dict(result.trades.select("holder_id", "trade_value").iter_rows())
    assert sold["A"] == pytest.approx(-(1200 - 10 * expected), rel=1e-9)
    assert sold["B"] == pytest.approx(-(2000 - 20 * expected), rel=1e-9)
    assert result.assets["price_end"].item() == pytest.approx(expected, rel=1e-10)
    assert result.rounds is None


def test_two_equilibria_by_hand() -> None:
    # c = 1.9: P² − 157P + 6080 = 0 has roots (157 ± √329)/2 = 87.57 and 69.43, both in
    # (60, 100): the upper one is stable, the lower one not. Below 50 everyone sells
    # everything: |q| = 30, P = 100 − 57 = 43 ≤ 50 — a third fixed point, where both holders
    # are insolvent. From no impact the search stops at 87.57; from everything sold, at 43.
    result = estimator.run(Scenario(name="s", impact=_impact(1.9e-4)), _market())
    assert result.equilibrium is not None
    row = result.equilibrium.row(0, named=True)
    assert row["price_least"] == pytest.approx((157 + math.sqrt(329)) / 2, rel=1e-9)
    assert row["price_greatest"] == pytest.approx(43.0, rel=1e-12)
    assert row["quantity_greatest"] == pytest.approx(-30.0, rel=1e-12)
    assert row["price_greatest"] <= row["price_least"]  # greatest impact, lowest price
    info = result.manifest.dump()["equilibrium"]
    assert info["multiple_equilibria"] is True
    assert info["greatest_iterations"] == 1  # everything sold is already a fixed point


def test_rules_with_hysteresis_fall_back_to_rounds_with_a_warning() -> None:
    market = _market([{"kind": "leverage", "max": 2.0, "target": 1.8}])
    result = estimator.run(Scenario(name="s", impact=_impact(1e-4)), market)
    assert result.equilibrium is None and result.rounds is not None
    assert result.manifest.dump()["equilibrium"] is None
    (warning,) = [str(w) for w in result.warnings.items if "equilibrium" in str(w)]
    assert "impact.method" in warning and "m: leverage" in warning


def test_the_conditions_name_every_reason() -> None:
    market = _market([{"kind": "margin", "maintenance_rate": 0.25, "restore": "initial"}])
    impact = estimator.Scenario(name="s", impact=_impact(1e-4, mode="per_round")).impact
    reasons = conditions(market.holders, market.mandates, impact, lender_losses=True)
    assert len(reasons) == 3
    assert "per_round" in reasons[0] and "lender" in reasons[1] and "m: margin" in reasons[2]
    ok = estimator.Scenario(name="s", impact=_impact(1e-4)).impact
    assert conditions(_market().holders, _market().mandates, ok, lender_losses=False) == []


def test_a_rebalancer_that_remembers_its_decision_carries_state() -> None:
    market = _market(
        [{"kind": "rebalancing_band", "weights": {"equity": 0.6}, "restore": "edge", "defer": 0.5}]
    )
    ok = estimator.Scenario(name="s", impact=_impact(1e-4)).impact
    (reason,) = conditions(market.holders, market.mandates, ok, lender_losses=False)
    assert "carry state" in reason and "m: rebalancing_band" in reason


def test_a_search_that_cannot_converge_says_so() -> None:
    spec = Scenario(name="s", impact=_impact(1.9e-4, max_iterations=3))
    market = _market()
    shocked, holders = prepare(spec, market, "s", InputWarnings())
    with pytest.raises(EquilibriumError, match="did not converge in 3"):
        equilibrium(shocked, holders, market.positions, market.mandates, spec.impact)


def test_the_equilibrium_report_is_written(tmp_path: Path) -> None:
    result = estimator.run(Scenario(name="s", impact=_impact(1e-4)), _market())
    written = {p.name for p in result.write(tmp_path)}
    assert "equilibrium.csv" in written
    table = pl.read_csv(tmp_path / "equilibrium.csv")
    assert table.columns == [
        "asset_id",
        "price_0",
        "price_least",
        "price_greatest",
        "quantity_least",
        "quantity_greatest",
    ]


def _required_units(units: float, cash: float, price: float) -> float:
    """Units a holder with ``units`` of X and ``cash`` must sell at ``price`` under leverage
    ≤ 2 restored to 2, by hand: everything if insolvent, else (V − 2E)/P when V > 2E."""
    value = units * price
    equity = value + cash
    if equity <= 0:
        return units
    return max(value - 2 * equity, 0.0) / price


@settings(max_examples=20)
@given(
    books=st.lists(st.tuples(st.floats(1.0, 50.0), st.floats(1.2, 3.0)), min_size=1, max_size=4),
    ell=st.floats(1e-5, 3e-4),
    fall=st.floats(0.0, 0.2),
)
def test_both_searches_end_at_fixed_points_and_are_ordered(
    books: list[tuple[float, float]], ell: float, fall: float
) -> None:
    holders = [
        {"holder_id": f"H{i}", "cash": -units * 100 * (1 - 1 / leverage)}
        for i, (units, leverage) in enumerate(books)
    ]
    market = estimator.build_market(
        asset_frame([{"asset_id": "X", "price": 100.0}]),
        holder_frame(holders),
        pl.DataFrame(
            {
                "holder_id": [h["holder_id"] for h in holders],
                "asset_id": "X",
                "quantity": [u for u, _ in books],
            }
        ),
        {"m": Mandate(name="m", rules=[{"kind": "leverage", "max": 2.0}])},
    )
    shocks = [{"select": {"all": True}, "price_return": -fall}] if fall else []
    spec = Scenario(name="s", shocks=shocks, impact=_impact(ell, tolerance=1e-11))
    shocked, prepared = prepare(spec, market, "s", InputWarnings())
    found = equilibrium(shocked, prepared, market.positions, market.mandates, spec.impact)
    p0 = 100 * (1 - fall)
    cash = [h["cash"] for h in holders]
    for point in (found.least, found.greatest):
        price = point.prices["price"].item()
        sold = sum(_required_units(u, c, price) for (u, _), c in zip(books, cash, strict=True))
        assert -point.quantity["net_quantity"].item() == pytest.approx(sold, rel=1e-6, abs=1e-9)
        impacted = p0 * max(1 - ell * sold * p0, 1e-6)  # T(P) by hand
        assert price == pytest.approx(impacted, rel=1e-7)
    assert found.greatest.prices["price"].item() <= found.least.prices["price"].item() * (1 + 1e-9)

"""``collateral_buffer`` and capital calls: a leveraged LDI fund's yield buffer, worked by hand.

The fund of every case: gilts of 1,000 (10 at 100, modified duration 20, no convexity) on 800 of
repo, E = 200, DV01 = 20·1000/10⁴ = 2, a buffer of 100bp. Yields rise about 30bp: the gilts
fall 20·0.003 = 6% to 94, E = 140, DD = 18,800, DV01 = 1.88, b = 140/1.88 = 74.47bp. The
scenario gives the move as that 6% price return, so that the arithmetic stays linear (bonds are
repriced exactly as bullets by a yield shock: tests/test_rates.py).
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl
import pytest
from oracle_kit import asset_frame, holder, holder_frame

import estimator
from estimator import Mandate, Scenario
from estimator.api import RunResult
from estimator.errors import InputWarnings
from estimator.inputs import prepare
from estimator.market import Market
from estimator.rounds import evaluate_round

GILT = {"asset_id": "g", "asset_class": "govt_bond", "price": 100.0, "duration": 20.0}
YIELDS_UP_30 = Scenario(name="s", shocks=[{"select": {"all": True}, "price_return": -0.06}])


def _market(
    capital_call: dict[str, float] | None = None,
    execution: str = "pro_rata",
    assets: list[dict[str, Any]] | None = None,
    positions: list[tuple[str, str, float]] | None = None,
    **rule: float,
) -> Market:
    spec = {"kind": "collateral_buffer", "floor_bp": 100.0} | rule
    cure = {"cure": ["capital_call"], "capital_call": capital_call} if capital_call else {}
    mandate = Mandate(name="m", execution=execution, rules=[spec], **cure)
    pos = pl.DataFrame(
        positions or [("h", "g", 10.0)], schema=["holder_id", "asset_id", "quantity"], orient="row"
    )
    return estimator.build_market(
        asset_frame(assets or [GILT]),
        holder_frame([{"holder_id": "h", "cash": -800.0}]),
        pos,
        {"m": mandate},
    )


def _sold(result: RunResult) -> dict[str, float]:
    return dict(zip(result.trades["asset_id"], -result.trades["trade_value"], strict=True))


@pytest.mark.parametrize("execution", ["pro_rata", "min_cost"])
def test_without_capital_the_fund_sells_gilts_back_to_the_floor(execution: str) -> None:
    # f = 10⁴·E/(β·DD) = 1,400,000/1,880,000: keep 700 of 940, sell 240.
    result = estimator.run(YIELDS_UP_30, _market(execution=execution))
    assert _sold(result) == pytest.approx({"g": 240.0}, rel=1e-6)
    h = holder(result)
    assert h["status"] == "forced" and h["compliant"]
    assert math.isclose(h["collateral_buffer.metric_before"], 140 / 1.88, rel_tol=1e-12)
    assert math.isclose(h["collateral_buffer.metric_after"], 100.0, rel_tol=1e-6)
    assert h["equity_after"] == pytest.approx(140.0, rel=1e-12)  # sold at market


def test_a_recapitalisation_within_reach_restores_the_buffer_without_a_sale() -> None:
    # k = β·DV01 − E = 100·1.88 − 140 = 48 ≤ limit 0.5·E₀ = 100 (all of it in one round).
    result = estimator.run(YIELDS_UP_30, _market({"limit": 0.5}))
    assert result.trades.is_empty()
    h = holder(result)
    assert h["status"] == "cured"
    assert h["cure_capital"] == pytest.approx(48.0, rel=1e-12)
    assert h["capital_called"] == pytest.approx(48.0, rel=1e-12)
    assert h["equity_after"] == pytest.approx(188.0, rel=1e-12)
    assert h["collateral_buffer.metric_after"] == pytest.approx(100.0, rel=1e-12)


@pytest.mark.parametrize("execution", ["pro_rata", "min_cost"])
def test_a_slow_recapitalisation_leaves_the_rest_to_sell(execution: str) -> None:
    # 20% of the limit per round: 0.2·100 = 20 arrives, E = 160; the fund keeps
    # 10⁴·160/(100·20) = 800 of its 940 of gilts and sells 140.
    result = estimator.run(YIELDS_UP_30, _market({"limit": 0.5, "per_round": 0.2}, execution))
    assert _sold(result) == pytest.approx({"g": 140.0}, rel=1e-6)
    h = holder(result)
    assert h["status"] == "forced"
    assert h["cure_capital"] == pytest.approx(20.0, rel=1e-12)
    assert h["equity_after"] == pytest.approx(160.0, rel=1e-12)


def test_capital_called_carries_over_rounds_up_to_the_limit() -> None:
    # Round 1 (25% of a 100 limit per round): 25 called, E = 165, keep 825 of 940, sell 115;
    # cash −800 + 25 + 115 = −660. Round 2, gilts 2% lower: 808.5, E = 148.5, DV01 = 1.617:
    # k = 161.7 − 148.5 = 13.2 ≤ 25 → cured, 38.2 called in all.
    # Round 3, the called total preset to 90: only 10 remain of the limit, E = 158.5 → sells
    # 808.5 − 10⁴·158.5/2000 = 16 (a round of 25 would have cured it: k = 13.2).
    market = _market({"limit": 0.5, "per_round": 0.25})
    shocked, holders = prepare(YIELDS_UP_30, market, "s", InputWarnings())
    first = evaluate_round(shocked, holders, market.positions, market.mandates)
    assert -first.trades["trade_value"].sum() == pytest.approx(115.0, rel=1e-9)
    after = first.holders_after
    assert after["capital_called"].item() == pytest.approx(25.0, rel=1e-12)
    assert after["cash"].item() == pytest.approx(-660.0, rel=1e-12)

    lower = shocked.with_columns(pl.col("price") * 0.98)
    second = evaluate_round(lower, after, first.positions_after, market.mandates)
    assert second.trades.is_empty()
    assert second.holders["status"].item() == "cured"
    assert second.holders["cure_capital"].item() == pytest.approx(13.2, rel=1e-9)
    assert second.holders_after["capital_called"].item() == pytest.approx(38.2, rel=1e-9)

    nearly_spent = after.with_columns(capital_called=pl.lit(90.0))
    third = evaluate_round(lower, nearly_spent, first.positions_after, market.mandates)
    assert third.holders["cure_capital"].item() == pytest.approx(10.0, rel=1e-12)
    assert -third.trades["trade_value"].sum() == pytest.approx(16.0, rel=1e-9)


def test_min_cost_sells_the_long_bond_that_frees_most_duration() -> None:
    # Gilts 500 at D = 20 and 500 at D = 5 on 800 of repo (DD = 12,500, E = 200, b = 160bp),
    # a 200bp floor: DD must fall to 10⁴·200/200 = 10,000. Equal costs per unit sold, so
    # 2,500 of DD go most cheaply from the long bond: 125 of it.
    assets = [GILT, GILT | {"asset_id": "s", "duration": 5.0}]
    market = _market(
        execution="min_cost",
        assets=assets,
        positions=[("h", "g", 5.0), ("h", "s", 5.0)],
        floor_bp=200.0,
    )
    result = estimator.run(Scenario(name="calm"), market)
    sold = _sold(result)
    assert sold["g"] == pytest.approx(125.0, rel=1e-3)
    assert sold.get("s", 0.0) == pytest.approx(0.0, abs=0.5)


def test_no_duration_needs_no_buffer() -> None:
    equity = {"asset_id": "g", "price": 100.0}  # no duration: DD = 0
    crash = Scenario(name="s", shocks=[{"select": {"all": True}, "price_return": -0.1}])
    result = estimator.run(crash, _market(assets=[equity]))
    assert result.trades.is_empty()
    assert holder(result)["collateral_buffer.metric_before"] is None


def test_restore_below_the_floor_and_a_call_without_terms_are_rejected() -> None:
    with pytest.raises(ValueError, match="restore_bp"):
        Mandate(name="m", rules=[{"kind": "collateral_buffer", "floor_bp": 100, "restore_bp": 50}])
    with pytest.raises(ValueError, match=r"\[capital_call\]"):
        Mandate(
            name="m", cure=["capital_call"], rules=[{"kind": "collateral_buffer", "floor_bp": 1}]
        )

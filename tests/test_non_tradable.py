"""Losses on holdings that do not trade — a bank's loans, illiquid securities — as a holder
shock ``non_tradable_return``: hand-worked books, the rounds, survival and GLT's measures."""

from __future__ import annotations

import math

import polars as pl
import pytest
from oracle_kit import REL, holder, run_case, trade_quantities
from pydantic import ValidationError

import estimator
from estimator import Mandate, Scenario
from estimator.errors import InputWarnings
from estimator.scenario import HolderShock
from estimator.survival import Search, survival

pytestmark = pytest.mark.usefixtures("hand_sized")

# A bank: loans N = 500, a bond of 500 (500 at 1), borrowing 900. E = 100, A = 1000: leverage 10.
BANK = {"holder_id": "h", "holder_type": "bank", "cash": -900.0, "non_tradable": 500.0}
LIMIT = [{"kind": "leverage", "max": 12.0, "target": 10.0}]


def _bank(*returns: float) -> estimator.RunResult:
    return run_case(
        [{"asset_id": "a", "price": 1.0}],
        [BANK],
        [("h", "a", 500.0)],
        LIMIT,
        [],
        holder_shocks=[{"holder_ids": ["h"], "non_tradable_return": r} for r in returns],
    )


def test_a_loan_loss_forces_the_sale_that_restores_leverage() -> None:
    # −5%: N = 475, E = 75, A = 975, leverage 13 > 12. Selling s repays debt:
    # (975 − s)/75 = 10, s = 225
    result = _bank(-0.05)
    h = holder(result)
    assert h["status"] == "forced"
    assert math.isclose(trade_quantities(result)["a"], -225.0, rel_tol=REL)
    assert math.isclose(result.trades["fraction_sold"].item(), 225 / 500, rel_tol=REL)
    assert math.isclose(h["equity_after"], 75.0, rel_tol=REL)
    assert math.isclose(h["leverage_after"], 10.0, rel_tol=REL)
    # −1%: N = 495, E = 95, A = 995, leverage 10.47 ≤ 12: nothing to do
    assert holder(_bank(-0.01))["status"] == "ok"


def test_returns_that_select_a_holder_compound_in_file_order() -> None:
    # 500·(1 − 0.5)·(1 + 0.2) = 300, where adding the returns would give 350
    spec = Scenario(
        name="s",
        holder_shocks=[
            {"holder_types": ["bank"], "non_tradable_return": -0.5},
            {"holder_ids": ["h"], "non_tradable_return": 0.2},
            {"holder_types": ["fund"], "non_tradable_return": -0.9},  # not this holder
        ],
    )
    holders = pl.DataFrame([BANK | {"credit_line": 0.0, "liabilities": 0.0}]).with_columns(
        liability_duration=pl.lit(0.0)
    )
    shocked = holders.select(**spec.holder_columns(holders, InputWarnings(), "s"))
    assert shocked["non_tradable"].item() == pytest.approx(300.0, rel=1e-15)


def test_survival_scales_the_loan_loss_like_a_price_return() -> None:
    # at multiple m: N = 500 − 25m, E = 100 − 25m, A = 1000 − 25m; A/E = 12 at m = 8/11
    mandate = Mandate(name="m", rules=LIMIT, cure=[])
    market = estimator.build_market(
        pl.DataFrame(
            {"asset_id": ["a"], "price": [1.0], "asset_class": "bond", "adv": 1e9}
        ).with_columns(instrument=pl.lit("cash"), vol=pl.lit(0.05)),
        pl.DataFrame([BANK | {"mandate": "m"}]),
        pl.DataFrame({"holder_id": ["h"], "asset_id": ["a"], "quantity": [500.0]}),
        {"m": mandate},
    )
    spec = Scenario(name="s", holder_shocks=[{"holder_ids": ["h"], "non_tradable_return": -0.05}])
    assert spec.max_multiple == float("inf")  # a loss of more than all is all: m·r_N ≥ −1
    table = survival(spec, market, search=Search(max_multiple=2.0, grid=8, tolerance=1e-9))
    row = table.holders.row(0, named=True)
    assert row["forced_by"] == "leverage"
    assert row["forced_multiple"] == pytest.approx(8 / 11, rel=1e-8)


def test_scaling_and_bounds() -> None:
    shock = HolderShock(holder_ids=["h"], non_tradable_return=-0.3)
    assert shock.scaled(2.0).non_tradable_return == pytest.approx(-0.6)
    assert shock.scaled(5.0).non_tradable_return == -1.0  # all of it, no further
    for bad in (-1.5, float("nan"), float("inf")):
        with pytest.raises(ValidationError, match="non_tradable_return"):
            HolderShock(holder_ids=["h"], non_tradable_return=bad)


def test_glt_takes_the_loan_return_into_the_holders_return() -> None:
    """GLT's toy with loans N = 100 (r_N = −1%) added to bank 1 on 100 more of borrowing:
    e₁ = 5, a₁ = 200, b₁ = 39, r₁ = (60·−0.02 + 100·−0.01)/200 = −0.011, φ₁ = 39·200·0.011
    = 85.8; bank 2 as in the toy, φ₂ = 3.6. M₁ = [0.3, 0.2]: Φ = [0.3·85.8 + 0.2·3.6,
    0.2·85.8 + 0.8·3.6] = [26.46, 20.04]; Δp = −10⁻³·Φ; L = [60·0.02646 + 40·0.02004,
    20·0.02646 + 80·0.02004] = [2.3892, 2.1324]; AV = 4.5216/15 = 0.30144."""
    assets = pl.DataFrame(
        {"asset_id": ["k1", "k2"], "asset_class": "equity", "instrument": "cash"}
        | {"price": 1.0, "adv": 1e3, "vol": 0.2}
    )
    holders = pl.DataFrame(
        {"holder_id": ["b1", "b2"], "holder_type": "bank", "mandate": "m"}
        | {"cash": [-195.0, -90.0], "non_tradable": [100.0, 0.0]}
    )
    positions = pl.DataFrame(
        {"holder_id": ["b1", "b1", "b2", "b2"], "asset_id": ["k1", "k2", "k1", "k2"]}
        | {"quantity": [60.0, 40.0, 20.0, 80.0]}
    )
    mandate = Mandate(name="m", rules=[{"kind": "leverage", "mode": "targeting"}])
    market = estimator.build_market(assets, holders, positions, {"m": mandate})
    scenario = Scenario(
        name="glt",
        shocks=[{"select": {"asset_ids": ["k1"]}, "price_return": -0.02}],
        holder_shocks=[{"holder_ids": ["b1"], "non_tradable_return": -0.01}],
        impact={"models": [{"model": "linear", "coefficient": 1e-3, "per": "value"}]},
        attribution="glt",
    )
    result = estimator.run(scenario, market)
    h = {r["holder_id"]: r for r in result.holders.iter_rows(named=True)}
    assert result.manifest.dump()["glt"]["aggregate_vulnerability"] == pytest.approx(
        0.30144, rel=1e-12
    )
    assert (h["b1"]["glt_sales"], h["b2"]["glt_sales"]) == pytest.approx((85.8, 3.6), rel=1e-12)
    assert (h["b1"]["glt_loss"], h["b2"]["glt_loss"]) == pytest.approx((2.3892, 2.1324), rel=1e-12)

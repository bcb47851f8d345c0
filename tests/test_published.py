"""Published fire-sale models the engine was never tuned to, recomputed independently.

Breuer, Summer and Urošević's systemic loss evaluation on the EBA 2016 stress-test banks: a
bank whose leverage (loans + sovereign bonds at current prices) / (equity − mark-to-market
losses) exceeds 33 sells the same fraction of each sovereign holding, just enough to return to
33 (everything if it cannot); each market's price falls by 1.5 × daily vol × √(sold / ADV).
The fire sale's fixed point is computed here by iterating that map on dense matrices, and the
engine's equilibrium mode (a leverage threshold 33 → 33, pro-rata, square-root impact κ = 1.5,
loans non-tradable, the rest funded by borrowing that sale proceeds repay) must reproduce it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

import estimator
from estimator import Mandate
from estimator.scenario import Scenario

REFERENCE = Path(__file__).parent / "reference"
LIMIT, KAPPA = 33.0, 1.5


def _bsu_inputs() -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    banks = pl.read_csv(REFERENCE / "bsu_eba2016_banks.csv")
    markets = pl.read_csv(REFERENCE / "bsu_eba2016_markets.csv")
    return banks, markets, markets["market"].to_list()


def _bsu_by_iteration(
    banks: pl.DataFrame, markets: pl.DataFrame, names: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """The paper's map iterated from the pre-sale prices (1) down to its highest fixed point:
    per market the price and the quantity sold there."""
    H = banks.select(f"sov_{k}" for k in names).to_numpy()
    e, loans = banks["equity_e1"].to_numpy(), banks["loans_L1"].to_numpy()
    vol, adv = markets["daily_vol"].to_numpy(), markets["adv_eur_m"].to_numpy()
    p = np.ones(len(names))
    for _ in range(1000):
        bonds, equity = H @ p, e - H @ (1 - p)
        over = (equity <= 0) | (loans + bonds > LIMIT * equity)
        keep = np.clip((LIMIT * equity - loans) / np.where(bonds > 0, bonds, 1.0), 0.0, 1.0)
        sold = np.where(over, 1.0 - np.where(equity > 0, keep, 0.0), 0.0) @ H
        new = 1.0 - KAPPA * vol * np.sqrt(sold / adv)
        if np.max(np.abs(new - p)) <= 1e-15:
            return new, sold
        p = new
    raise AssertionError("the iteration did not converge")


def test_bsu_eba_2016_fixed_point() -> None:
    banks, markets, names = _bsu_inputs()
    price, sold = _bsu_by_iteration(banks, markets, names)
    assert 0.98 < price.min() < price.max() < 1.0  # a real fire sale, not a trivial one
    sov = [f"sov_{k}" for k in names]
    assets = markets.select(
        asset_id="market",
        asset_class=pl.lit("govt_bond"),
        instrument=pl.lit("cash"),
        price=pl.lit(1.0),
        adv="adv_eur_m",
        vol=pl.col("daily_vol") * np.sqrt(252),  # the engine's σ_d = σ/√252
    )
    holders = banks.select(
        holder_id="bank_lei",
        holder_type=pl.lit("bank"),
        mandate=pl.lit("m"),
        cash=pl.col("equity_e1") - pl.col("loans_L1") - pl.sum_horizontal(sov),  # borrowing
        non_tradable="loans_L1",
    )
    positions = (
        banks.unpivot(sov, index="bank_lei")
        .filter(pl.col("value") > 0)
        .select(
            holder_id="bank_lei",
            asset_id=pl.col("variable").str.strip_prefix("sov_"),
            quantity="value",
        )
        .sample(fraction=1.0, shuffle=True, seed=7)  # any row order
    )
    rule = {"kind": "leverage", "max": LIMIT, "target": LIMIT}
    mandate = Mandate(name="m", execution="pro_rata", rules=[rule])
    market = estimator.build_market(assets, holders, positions, {"m": mandate})
    scenario = Scenario(
        name="bsu",
        impact={
            "method": "equilibrium",
            "models": [{"model": "sqrt", "kappa": KAPPA}],
            "tolerance": 1e-14,
        },
    )
    result = estimator.run(scenario, market)
    assert result.equilibrium is not None
    assert result.manifest["equilibrium"]["multiple_equilibria"] is False
    got = {r["asset_id"]: r for r in result.equilibrium.iter_rows(named=True)}
    for name, p, q in zip(names, price, sold, strict=True):
        assert got[name]["price_least"] == pytest.approx(p, rel=1e-12, abs=1e-14)
        assert got[name]["price_greatest"] == pytest.approx(p, rel=1e-12, abs=1e-14)
        assert -got[name]["quantity_least"] == pytest.approx(q, rel=1e-9)

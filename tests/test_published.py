"""Published fire-sale models the engine was never tuned to, recomputed independently:
Breuer–Summer–Urošević's fixed points and Cont–Schaanning's rounds.

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


@pytest.mark.parametrize("loan_return", [None, -0.02])
def test_bsu_eba_2016_fixed_point(loan_return: float | None) -> None:
    """The paper's book as given (equity and loans after the stress test's loan losses), and the
    same book reached from one before them: loans L₁/(1 + r) and equity larger by the loss, a
    holder shock ``non_tradable_return = r`` to the loans (r = −2%). Both have one fire sale."""
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
        non_tradable=pl.col("loans_L1") / (1 + (loan_return or 0.0)),
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
    loss = [{"holder_types": ["bank"], "non_tradable_return": loan_return}]
    scenario = Scenario(
        name="bsu",
        holder_shocks=loss if loan_return is not None else [],
        impact={
            "method": "equilibrium",
            "models": [{"model": "sqrt", "kappa": KAPPA}],
            "tolerance": 1e-14,
        },
    )
    result = estimator.run(scenario, market)
    assert result.equilibrium is not None
    assert result.manifest.dump()["equilibrium"]["multiple_equilibria"] is False
    got = {r["asset_id"]: r for r in result.equilibrium.iter_rows(named=True)}
    for name, p, q in zip(names, price, sold, strict=True):
        assert got[name]["price_least"] == pytest.approx(p, rel=1e-12, abs=1e-14)
        assert got[name]["price_greatest"] == pytest.approx(p, rel=1e-12, abs=1e-14)
        assert -got[name]["quantity_least"] == pytest.approx(q, rel=1e-9)


# Cont and Schaanning's two-bank example (E. Schaanning's thesis, as implemented with these
# inputs in the FinNetValu package's test of its Cont–Schaanning model, test_csmodel.jl): one
# marketable asset at S₀ = 1 held 90 and 70, illiquid holdings Θ = [10, 20], capital C = [4, 4.5];
# bank 1's illiquid assets lose 20%. Leverage (Π + Θ)/C above λ_max = 33.3 sells the fraction
# Γ = min((Π + Θ − λ_b·C)/Π, 1) back to λ_b = 0.95·λ_max; impact Ψ = (1 − B/S)(1 − e^{−q/δ})
# on the round's sales q, B = S₀/2, δ = (1 − B/S₀)·c·ADV·√τ/σ_d (c = 0.4, ADV = 50, τ = 20,
# σ_d = 2%); the sold slice executes at the mid price (α = ½), the rest is marked at S(1 − Ψ).
CS_HOLDINGS, CS_ILLIQUID, CS_CAPITAL = [90.0, 70.0], [10.0, 20.0], [4.0, 4.5]
CS_LOSS, CS_MAX = [-0.2, 0.0], 33.3


def _cs_by_rounds() -> list[dict[str, np.ndarray | float]]:
    """The rounds as the model states them, on arrays: per round the leverage, Γ, capital
    after the round and the price after it."""
    pi, capital = np.array(CS_HOLDINGS), np.array(CS_CAPITAL)
    theta = np.array(CS_ILLIQUID) * (1 + np.array(CS_LOSS))
    capital = capital + np.array(CS_ILLIQUID) * np.array(CS_LOSS)
    target, s, b = 0.95 * CS_MAX, 1.0, 0.5
    delta = (1 - b) * 0.4 * 50 * np.sqrt(20) / 0.02
    out = []
    while True:
        leverage = (pi + theta) / capital
        gamma = np.where(leverage > CS_MAX, np.minimum((pi + theta - target * capital) / pi, 1), 0)
        q = float(gamma @ pi)
        if q == 0:
            return out
        psi = (1 - b / s) * (1 - np.exp(-q / delta))
        s *= 1 - psi
        capital = capital - (1 - 0.5 * gamma) * pi * psi
        pi = (1 - gamma) * pi * (1 - psi)
        out.append({"leverage": leverage, "gamma": gamma, "capital": capital, "price": s})


@pytest.mark.usefixtures("hand_sized")
def test_cont_schaanning_two_banks_round_by_round() -> None:
    rounds = _cs_by_rounds()
    assert len(rounds) == 3
    # the round-1 figures that test asserts (Ψ = 0.00771, S₁ = 0.99229, C₁ ≈ [1.44, 3.96]), to
    # the digits given there
    assert rounds[0]["price"] == pytest.approx(0.99229, abs=5e-6)
    assert rounds[0]["capital"] == pytest.approx([1.44, 3.96], abs=5e-3)

    assets = pl.DataFrame(
        {"asset_id": ["S"], "asset_class": "equity", "instrument": "cash", "price": 1.0}
        | {"adv": 50.0, "vol": 0.02 * np.sqrt(252)}  # the engine's σ_d = σ/√252
    )
    holders = pl.DataFrame(
        {"holder_id": ["B", "A"], "holder_type": "bank", "mandate": "m"}  # by id, not position
        | {"non_tradable": CS_ILLIQUID[::-1]}
        | {
            "cash": [
                c - p - t for c, p, t in zip(CS_CAPITAL, CS_HOLDINGS, CS_ILLIQUID, strict=True)
            ][::-1]
        }
    )
    positions = pl.DataFrame({"holder_id": ["A", "B"], "asset_id": "S", "quantity": CS_HOLDINGS})
    rule = {"kind": "leverage", "max": CS_MAX, "target": 0.95 * CS_MAX}
    market = estimator.build_market(
        assets, holders, positions, {"m": Mandate(name="m", execution="pro_rata", rules=[rule])}
    )
    scenario = Scenario(
        name="cs",
        holder_shocks=[{"holder_ids": ["A"], "non_tradable_return": CS_LOSS[0]}],
        impact={
            "mode": "per_round",
            "execution_point": 0.5,
            "tolerance": 1e-15,
            "models": [{"model": "exponential", "floor": 0.5, "c": 0.4, "horizon_days": 20}],
        },
    )
    result = estimator.run(scenario, market)
    assert result.balance_sheets is not None and result.rounds is not None
    sheets = result.balance_sheets.sort("round", "holder_id")
    fractions = result.trades.sort("round", "holder_id")
    for r, expected in enumerate(rounds, start=1):
        sheet = sheets.filter(pl.col("round") == r)
        for measure in ("leverage", "balance_sheet_leverage", "exposure_leverage"):
            assert sheet[measure].to_list() == pytest.approx(expected["leverage"], rel=1e-12)
        assert sheet["equity_end"].to_list() == pytest.approx(expected["capital"], rel=1e-12)
        traded = fractions.filter(pl.col("round") == r)
        sold = dict(traded.select("holder_id", "fraction_sold").iter_rows())
        assert sold.get("A", 0.0) == pytest.approx(expected["gamma"][0], rel=1e-12)
        assert "B" not in sold and expected["gamma"][1] == 0
        price = result.rounds.filter(pl.col("round") == r)["price_end"].item()
        assert price == pytest.approx(expected["price"], rel=1e-13)
    assert result.rounds["round"].max() == 3
    assert sheets.filter(pl.col("round") == 1)["loss_shock"].to_list() == pytest.approx([2.0, 0.0])

"""``make bench``: throughput of rule evaluation and of min-cost solves on generated books.

Books are drawn (fixed seed) over the default market's instruments; every holder carries a
vol target or a leverage + margin mandate. Prints holders per second for evaluation with
closed-form pro-rata trades, for min-cost solves with one compiled problem per shape, and for a
naive baseline that builds a fresh cvxpy problem per holder (on a sample, extrapolated).
"""

from __future__ import annotations

import sys
import time

import cvxpy as cp
import numpy as np
import polars as pl

from estimator import book as bk
from estimator.engine import evaluate_round
from estimator.mandates import Execution, Mandate
from estimator.market import load_market
from estimator.paths import markets_dir, resolve_scenario
from estimator.scenario import apply_scenario, load_scenario
from estimator.solve import ProblemCache
from rules import Book

MANDATES = {
    "vt": Mandate(name="vt", rules=[{"kind": "vol_target", "target": 0.08, "tolerance": 0.05}]),
    "hf": Mandate(
        name="hf",
        rules=[
            {"kind": "leverage", "max": 3.0, "target": 2.5},
            {"kind": "margin", "maintenance_rate": 0.15},
        ],
        cure=[],
    ),
}


def books(
    n_holders: int, per_holder: int, seed: int = 7
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    market = load_market(markets_dir() / "default")
    assets = market.assets.filter(pl.col("instrument") == "cash")
    rng = np.random.default_rng(seed)
    ids = np.array([f"H{i:07d}" for i in range(n_holders)])
    k = min(per_holder, assets.height)
    picks = np.argsort(rng.random((n_holders, assets.height)), axis=1)[:, :k]
    value = rng.lognormal(mean=14, sigma=1, size=(n_holders, k))
    prices = assets["price"].to_numpy()[picks]
    positions = pl.DataFrame(
        {
            "holder_id": np.repeat(ids, k),
            "asset_id": assets["asset_id"].to_numpy()[picks].ravel(),
            "quantity": (value / prices).ravel(),
        }
    )
    gross = value.sum(axis=1)
    lev = rng.uniform(1.5, 2.8, n_holders)
    holders = pl.DataFrame(
        {
            "holder_id": ids,
            "holder_type": "generated",
            "mandate": np.where(rng.random(n_holders) < 0.5, "vt", "hf"),
            "cash": gross / lev - gross,
            "other_debt": 0.0,
            "non_tradable": 0.0,
            "cash_reserve": 0.0,
            "credit_line": 0.0,
        }
    )
    return assets, holders, positions


def _shocked(assets: pl.DataFrame) -> pl.DataFrame:
    weights = load_market(markets_dir() / "default").index_weights
    return apply_scenario(assets, load_scenario(resolve_scenario("demo")), index_weights=weights)


def _holders_with_pre(
    assets: pl.DataFrame, holders: pl.DataFrame, positions: pl.DataFrame
) -> pl.DataFrame:
    pre = bk.holder_book(bk.position_frame(positions, assets), holders)
    lev = pre.select("holder_id", pl.col("leverage").alias(Book.LEVERAGE_PRE))
    return holders.join(lev, on="holder_id")


def naive_seconds(
    shocked: pl.DataFrame, positions: pl.DataFrame, holders: pl.DataFrame, sample: int
) -> float:
    """A fresh cvxpy problem per holder (vol target only), built and solved: seconds per holder."""
    pos = bk.position_frame(positions, shocked)
    hb = (
        bk.holder_book(pos, holders.drop(Book.LEVERAGE_PRE))
        .filter(pl.col("mandate") == "vt")
        .head(sample)
    )
    gcols = [c for c in shocked.columns if c.startswith("risk_g")]
    started = time.perf_counter()
    for hid, equity in hb.select("holder_id", Book.EQUITY).iter_rows():
        p = pos.filter(pl.col("holder_id") == hid)
        x = p["exposure"].to_numpy() / equity  # same scaling as the compiled path
        F = p.select(gcols).to_numpy().T
        s = p["specific_vol"].to_numpy()
        u = cp.Variable(len(x))
        xp = x + u
        cost = cp.sum(cp.abs(u)) * 5e-4 + cp.sum(cp.power(cp.abs(u), 1.5)) * 1e-7
        risk = cp.norm2(cp.hstack([F @ xp, cp.multiply(s, xp)]))
        cp.Problem(cp.Minimize(cost), [risk <= 0.08, u <= 0, u >= -x]).solve(solver="CLARABEL")
    return (time.perf_counter() - started) / max(hb.height, 1)


def main(
    sizes: tuple[int, ...] = (1_000, 10_000), per_holder: int = 20, solve_sample: int = 300
) -> None:
    print(
        f"{'holders':>8} {'rows':>9} {'eval+pro-rata h/s':>18} {'min-cost h/s':>13} "
        f"{'naive h/s':>10} {'speed-up':>9}"
    )
    for n in sizes:
        assets, holders, positions = books(n, per_holder)
        shocked = _shocked(assets)
        h = _holders_with_pre(assets, holders, positions)
        t = time.perf_counter()
        evaluate_round(shocked, h, positions, MANDATES, execution=Execution.PRO_RATA)
        eval_rate = n / (time.perf_counter() - t)
        sample = h.select("holder_id").head(solve_sample)
        hs = h.join(sample, on="holder_id", how="semi")
        ps = positions.join(sample, on="holder_id", how="semi")
        cache = ProblemCache(k=sum(c.startswith("risk_g") for c in shocked.columns))
        t = time.perf_counter()
        res = evaluate_round(shocked, hs, ps, MANDATES, execution=Execution.MIN_COST, cache=cache)
        solved = max(int((res.holders["solved"].fill_null(False)).sum()), 1)
        solve_rate = solved / (time.perf_counter() - t)
        naive_rate = 1 / naive_seconds(shocked, ps, hs, sample=30)
        print(
            f"{n:>8} {n * per_holder:>9} {eval_rate:>18,.0f} {solve_rate:>13,.0f} "
            f"{naive_rate:>10,.0f} {solve_rate / naive_rate:>8.1f}x"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()

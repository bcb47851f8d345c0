"""The shipped equilibrium example (scenarios/sovereign_fire_sale.toml): both fixed points of
its fire sale, recomputed from the bundle's files by iterating the fire-sale map on arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

import estimator
from estimator.cli import app
from estimator.paths import markets_dir, resolve_scenario
from estimator.scenario import load_scenario

LIMIT, KAPPA, LOSS = 33.3, 1.5, -0.0025


def _fixed_points() -> dict[str, tuple[float, float]]:
    """(least, greatest) price per bond relative to 100: a bank whose (N + H·p)/E(p) exceeds
    the limit, E(p) = E − H·(1 − p), sells the share of every bond that brings it back (all
    of it if none does); Δp = −κ·σ_d·√(sold value / ADV) with σ_d = √Σ_ii/√252. Iterated from
    p = 1 (least) and from every bond sold (greatest)."""
    root = markets_dir() / "sovereign"
    assets = pl.read_csv(root / "assets.csv").sort("asset_id")
    names = assets["asset_id"].to_list()
    cov = pl.read_csv(root / "covariance.csv")
    sigma = np.array([cov.filter(pl.col("asset_id") == n)[n].item() for n in names])
    holders = pl.read_csv(root / "holders.csv").sort("holder_id")
    held = (
        pl.read_csv(root / "positions.csv")
        .pivot(on="asset_id", index="holder_id", values="quantity")
        .sort("holder_id")
    )
    H = held.select(names).fill_null(0.0).to_numpy() * 100.0  # values at 100
    loans = holders["non_tradable"].to_numpy() * (1 + LOSS)
    equity = holders["cash"].to_numpy() + holders["non_tradable"].to_numpy() + H.sum(axis=1)
    equity += holders["non_tradable"].to_numpy() * LOSS
    depth = KAPPA * np.sqrt(sigma / 252) / np.sqrt(assets["adv"].to_numpy())

    def step(p: np.ndarray) -> np.ndarray:
        e = equity - H @ (1 - p)
        bonds = H @ p
        over = (e <= 0) | (loans + bonds > LIMIT * e)
        keep = np.clip((LIMIT * e - loans) / bonds, 0.0, 1.0)
        sold = np.where(over, 1 - np.where(e > 0, keep, 0.0), 0.0) @ H
        return 1 - depth * np.sqrt(sold)

    ends = []
    for start in (np.ones(len(names)), 1 - depth * np.sqrt(H.sum(axis=0))):
        p = start
        for _ in range(1000):
            p, before = step(p), p
            if np.max(np.abs(p - before)) <= 1e-15:
                break
        ends.append(p)
    return {n: (lo, hi) for n, lo, hi in zip(names, *ends, strict=True)}


def test_both_fixed_points_by_iteration() -> None:
    expected = _fixed_points()
    assert all(lo == 1.0 for lo, _ in expected.values())  # calm: nobody sells
    assert min(hi for _, hi in expected.values()) < 0.95  # and a severe fire sale
    spec = load_scenario(resolve_scenario("sovereign_fire_sale"))
    tight = spec.model_copy(update={"impact": spec.impact.model_copy(update={"tolerance": 1e-14})})
    result = estimator.run(tight, "sovereign")
    assert (
        result.equilibrium is not None
        and result.manifest.dump()["equilibrium"]["multiple_equilibria"]
    )
    for row in result.equilibrium.iter_rows(named=True):
        lo, hi = expected[row["asset_id"]]
        assert row["price_least"] == pytest.approx(100 * lo, rel=1e-12)
        assert row["price_greatest"] == pytest.approx(100 * hi, rel=1e-11)


def test_the_command_says_there_are_two(tmp_path: Path) -> None:
    ran = CliRunner().invoke(app, ["run", "sovereign_fire_sale", "--out", str(tmp_path / "o")])
    assert ran.exit_code == 0, ran.output
    assert "Equilibrium (two fixed points) — least: no price falls; greatest: largest fall" in (
        ran.output
    )
    assert "before any shock" not in ran.output and "Warning" not in ran.output


def test_glt_measures_of_the_shipped_glt_scenario() -> None:
    """GLT on the bundle's books by the paper's formulas on arrays: X the bonds at 100, the
    loans one more asset per bank with r_N = −0.25%, F = −3% on IT10, ℓ = 0.001/ADV."""
    root = markets_dir() / "sovereign"
    assets = pl.read_csv(root / "assets.csv").sort("asset_id")
    names = assets["asset_id"].to_list()
    holders = pl.read_csv(root / "holders.csv").sort("holder_id")
    held = (
        pl.read_csv(root / "positions.csv")
        .pivot(on="asset_id", index="holder_id", values="quantity")
        .sort("holder_id")
    )
    X = held.select(names).fill_null(0.0).to_numpy() * 100.0
    N, cash = holders["non_tradable"].to_numpy(), holders["cash"].to_numpy()
    e = X.sum(axis=1) + cash + N
    a = X.sum(axis=1) + N + np.maximum(cash, 0)
    F = np.where(np.array(names) == "IT10", -0.03, 0.0)
    ell = 0.001 / assets["adv"].to_numpy()
    r = (X @ F + N * -0.0025) / a
    phi = -(a - e) / e * a * r
    Phi = (X / a[:, None]).T @ phi
    L = X @ (ell * Phi)
    result = estimator.run("sovereign_glt")
    assert result.manifest.dump()["glt"]["aggregate_vulnerability"] == pytest.approx(
        L.sum() / e.sum(), rel=1e-12
    )
    got = result.holders.sort("holder_id")
    np.testing.assert_allclose(got["glt_sales"], phi, rtol=1e-12)
    np.testing.assert_allclose(got["glt_indirect_vulnerability"], L / e, rtol=1e-12)

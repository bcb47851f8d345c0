"""Greenwood–Landier–Thesmar's measures against the paper's toy (by hand) and an independent
matrix implementation on random books."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import estimator
from estimator import Mandate
from estimator.errors import InputError
from estimator.glt import measures
from estimator.scenario import Scenario


def _toy(*models: dict[str, object]) -> estimator.RunResult:
    """GLT's toy: holdings X = [[60, 40], [20, 80]], equity e = [5, 10] (borrowing 95 and 90),
    F = [−2%, 0], ℓ = 10⁻³ per unit of value."""
    assets = pl.DataFrame(
        {
            "asset_id": ["k2", "k1"],  # not in index order: joined by id
            "asset_class": "equity",
            "instrument": "cash",
            "price": 1.0,
            "adv": [2e3, 1e3],
            "vol": 0.2,
        }
    )
    holders = pl.DataFrame(
        {"holder_id": ["b2", "b1"], "holder_type": "bank", "mandate": "m"}
        | {"cash": [-90.0, -95.0]}  # borrowing, which sale proceeds repay
    )
    positions = pl.DataFrame(
        {
            "holder_id": ["b2", "b1", "b1", "b2"],
            "asset_id": ["k1", "k2", "k1", "k2"],
            "quantity": [20.0, 40.0, 60.0, 80.0],
        }
    )
    mandate = Mandate(name="m", rules=[{"kind": "leverage", "mode": "targeting"}])
    market = estimator.build_market(assets, holders, positions, {"m": mandate})
    scenario = Scenario(
        name="glt",
        shocks=[{"select": {"asset_ids": ["k1"]}, "price_return": -0.02}],
        impact={"models": list(models), "max_rounds": 3},
        attribution="glt",
    )
    return estimator.run(scenario, market)


def test_the_papers_toy_by_hand() -> None:
    """a = [100, 100], b = [19, 9], r = M·F = [−0.012, −0.004], φ = [22.8, 3.6],
    Φ = Mᵀφ = [14.4, 12.0], Δp = [−0.0144, −0.012], L = [1.344, 1.248]: AV = 2.592/15 = 0.1728,
    IV = [0.2688, 0.1248], S = [(80·0.6 + 120·0.4)·10⁻³·22.8, (80·0.2 + 120·0.8)·10⁻³·3.6]/15
    = [0.14592, 0.02688]."""
    result = _toy({"model": "linear", "coefficient": 1e-3, "per": "value"})
    h = {r["holder_id"]: r for r in result.holders.iter_rows(named=True)}
    assert result.manifest.dump()["glt"]["aggregate_vulnerability"] == pytest.approx(
        0.1728, rel=1e-12
    )
    assert h["b1"]["glt_sales"] == pytest.approx(22.8, rel=1e-12)
    assert h["b2"]["glt_sales"] == pytest.approx(3.6, rel=1e-12)
    assert (h["b1"]["glt_loss"], h["b2"]["glt_loss"]) == pytest.approx((1.344, 1.248), rel=1e-12)
    iv = (h["b1"]["glt_indirect_vulnerability"], h["b2"]["glt_indirect_vulnerability"])
    assert iv == pytest.approx((0.2688, 0.1248), rel=1e-12)
    s = (h["b1"]["glt_systemicness"], h["b2"]["glt_systemicness"])
    assert s == pytest.approx((0.14592, 0.02688), rel=1e-12)
    a = {r["asset_id"]: r for r in result.assets.iter_rows(named=True)}
    assert (a["k1"]["glt_net_sales"], a["k2"]["glt_net_sales"]) == pytest.approx((14.4, 12.0))
    assert a["k1"]["glt_price_change"] == pytest.approx(-0.0144, rel=1e-12)


def test_impact_per_adv_is_per_value_over_adv() -> None:
    """ℓ per ADV of 1 and 2 on ADVs of 1000 and 2000: ℓ = 10⁻³ per value on both, the toy."""
    result = _toy(
        {"model": "linear", "select": {"asset_ids": ["k1"]}, "coefficient": 1.0, "per": "adv"},
        {"model": "linear", "select": {"asset_ids": ["k2"]}, "coefficient": 2.0, "per": "adv"},
    )
    assert result.manifest.dump()["glt"]["aggregate_vulnerability"] == pytest.approx(
        0.1728, rel=1e-12
    )


def test_only_linear_impact_has_a_glt_reading() -> None:
    with pytest.raises(InputError, match=r"attribution 'glt' needs linear impact.*'sqrt'"):
        scenario = Scenario(
            name="s",
            shocks=[{"select": {"all": True}, "price_return": -0.1}],
            impact={"models": [{"model": "sqrt"}]},
            attribution="glt",
        )
        estimator.run(scenario, "small")


Array = np.ndarray


def _by_matrices(
    X: Array, value: Array, cash: Array, N: Array, D: Array, F: Array, ell: Array, r_n: Array
) -> tuple[float, Array, Array, Array]:
    """The paper's formulas on dense matrices, each holder's non-tradable holdings one more
    asset of its own (a column of diag(N)) with return r_N and no impact."""
    e = value + cash + N - D
    X = np.hstack([X, np.diag(N)])
    F, ell = np.concatenate([F, r_n]), np.concatenate([ell, np.zeros_like(N)])
    a = np.abs(X).sum(axis=1) + np.maximum(cash, 0)
    levered = (e > 0) & (a > 0)
    b = np.where(levered, (a - e) / np.where(e > 0, e, 1.0), 0.0)
    M = X / a[:, None]
    phi = np.where(levered, -b * a * (M @ F), 0.0)
    Phi = M.T @ phi
    dp = -ell * Phi
    L = -X @ dp
    E = e[e > 0].sum()
    S = phi * (M @ (X.sum(axis=0) * ell)) / E
    return L.sum() / E, np.where(e > 0, L / np.where(e > 0, e, 1.0), np.nan), S, L


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_random_system_matches_the_matrix_formulas(seed: int) -> None:
    """20 holders × 10 assets (futures, shorts, cash, non-tradable holdings and their returns,
    one holder with e ≤ 0)."""
    rng = np.random.default_rng(seed)
    n, k = 20, 10
    q = rng.uniform(0, 100, (n, k)) * (rng.uniform(size=(n, k)) < 0.6)
    q[rng.uniform(size=(n, k)) < 0.1] *= -1
    price, mult = rng.uniform(1, 50, k), np.where(np.arange(k) < 2, 10.0, 1.0)
    is_cash = np.arange(k) >= 2  # two futures
    X = q * price * mult
    value = (X * is_cash).sum(axis=1)
    cash, N = rng.uniform(-500, 500, n), rng.uniform(0, 300, n)
    D = value + cash + N - rng.uniform(5, 200, n) * np.where(np.arange(n) == 3, -1, 1)
    F, ell = rng.uniform(-0.1, 0.02, k), rng.uniform(0, 1e-4, k)
    r_n = rng.uniform(-0.2, 0.05, n) * (rng.uniform(size=n) < 0.5)
    hid, aid = [f"h{i:02d}" for i in range(n)], [f"a{j}" for j in range(k)]
    rows = [(hid[i], aid[j], q[i, j]) for i in range(n) for j in range(k) if q[i, j] != 0]
    rows.reverse()  # any order
    got = measures(
        pl.DataFrame(rows, schema=["holder_id", "asset_id", "quantity"], orient="row"),
        pl.DataFrame(
            {"holder_id": hid, "cash": cash, "non_tradable": N, "other_debt": D}
            | {"non_tradable_return": r_n}
        ),
        pl.DataFrame(
            {
                "asset_id": aid,
                "instrument": np.where(is_cash, "cash", "future"),
                "price": price,
                "multiplier": mult,
            }
        ),
        pl.DataFrame({"asset_id": aid, "ret": F}).reverse(),
        pl.DataFrame({"asset_id": aid, "ell": ell}),
    )
    av, iv, s, L = _by_matrices(X, value, cash, N, D, F, ell, r_n)
    assert got.aggregate_vulnerability == pytest.approx(av, rel=1e-12)
    table = got.holders.sort("holder_id")
    np.testing.assert_allclose(table["glt_loss"], L, rtol=1e-12, atol=1e-12 * np.abs(L).max())
    np.testing.assert_allclose(table["glt_systemicness"], s, rtol=1e-12, atol=1e-15)
    vulnerable = table["glt_indirect_vulnerability"].to_numpy()
    assert np.isnan(vulnerable[3]) and np.isnan(iv[3])  # e ≤ 0: undefined
    np.testing.assert_allclose(vulnerable, iv, rtol=1e-12)
    assert table["glt_systemicness"].sum() == pytest.approx(av, rel=1e-12)  # Σ S = AV

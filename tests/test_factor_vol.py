"""Realised volatility of a factor model's factors (:mod:`estimator.factor_vol`).

Oracles: factor returns built by hand (asset returns ``r = B f`` made from chosen ``f``, so the
fit must give ``f`` back), the EWMA recursion and the rescaled model ``B D Ω D Bᵀ`` worked out
by hand, and a vol-control fund's sale from its rule by hand.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracle_kit import asset_frame, holder_frame
from pydantic import ValidationError

import estimator
from estimator import factor_vol, realised
from estimator.errors import InputError
from estimator.mandates import Mandate
from estimator.risk import factor_model
from estimator.scenario import Scenario
from rules.estimators import Ewma, Lookback, MaxOf

#: Two uncorrelated factors: a with σ = 20%, b with σ = 10%.
COVARIANCE = pl.DataFrame(
    {"factor_i": ["a", "a", "b"], "factor_j": ["a", "b", "b"], "covariance": [0.04, 0.0, 0.01]}
)
#: x1 loads a, x2 loads b, x3 both; no specific risk.
LOADINGS = pl.DataFrame(
    {
        "asset_id": ["x1", "x2", "x3", "x3"],
        "factor": ["a", "b", "a", "b"],
        "loading": [1.0, 1.0, 1.0, 1.0],
    }
)
SPECIFIC = pl.DataFrame({"asset_id": ["x1", "x2", "x3"], "specific_vol": [0.0, 0.0, 0.0]})
MODEL = factor_model(LOADINGS, COVARIANCE, SPECIFIC)


def test_the_fit_gives_back_the_factor_returns_and_leaves_unloaded_factors_calm() -> None:
    """x1 −10%, x2 +2%, x3 −8% = −10% + 2%: f = (−0.10, 0.02). With only x1's return known, b
    is loaded by no asset of the day: its squared return is the calm 0.01/252."""
    market = pl.DataFrame({"asset_id": ["x3", "x1", "x2"], "r": [-0.08, -0.10, 0.02]})
    f, known = factor_vol.returns(market, MODEL, pl.col("r"))
    assert f == pytest.approx([-0.10, 0.02], abs=1e-15)
    assert known.tolist() == [True, True]
    only = market.with_columns(r=pl.when(pl.col("asset_id") == "x1").then(pl.col("r")))
    f, known = factor_vol.returns(only, MODEL, pl.col("r"))
    assert known.tolist() == [True, False]
    squared = pl.select(factor_vol.squared(MODEL, f, known)).to_series().to_list()
    assert squared == pytest.approx([0.01, 0.01 / 252], rel=1e-12)
    # x3 alone loads a and b together: neither is pinned down, both calm
    x3 = market.with_columns(r=pl.when(pl.col("asset_id") == "x3").then(pl.col("r")))
    assert factor_vol.returns(x3, MODEL, pl.col("r"))[1].tolist() == [False, False]


@given(
    f=st.lists(st.floats(-0.2, 0.2), min_size=3, max_size=3),
    b=st.lists(st.floats(-2.0, 2.0), min_size=15, max_size=15),
    s=st.lists(st.floats(0.0, 0.5), min_size=5, max_size=5),
)
def test_returns_of_a_factor_model_are_fitted_exactly(
    f: list[float], b: list[float], s: list[float]
) -> None:
    """Any weights fit ``r = B f`` exactly where B has full column rank."""
    B = np.array(b).reshape(5, 3)
    if np.linalg.matrix_rank(B, tol=1e-3) < 3 or np.linalg.cond(B) > 1e4:
        return
    ids = [f"x{i}" for i in range(5)]
    loadings = pl.DataFrame(
        {
            "asset_id": [i for i in ids for _ in range(3)],
            "factor": ["p", "q", "r"] * 5,
            "loading": B.ravel(),
        }
    )
    cov = pl.DataFrame(
        {
            "factor_i": ["p", "p", "p", "q", "q", "r"],
            "factor_j": ["p", "q", "r", "q", "r", "r"],
            "covariance": [0.04, 0.0, 0.0, 0.01, 0.0, 0.02],
        }
    )
    model = factor_model(loadings, cov, pl.DataFrame({"asset_id": ids, "specific_vol": s}))
    market = pl.DataFrame({"asset_id": ids, "r": B @ np.array(f)})
    got, known = factor_vol.returns(market, model, pl.col("r"))
    assert known.all()
    assert got == pytest.approx(f, abs=1e-9)


def test_the_rows_rescale_each_factor() -> None:
    """d = (2, ½): x3's row variance is 2²·0.04 + ½²·0.01 = 0.1625 (its own vol 0.40311,
    against the model's √0.05); a portfolio of x1 and x2 reads 2·20% and ½·10%."""
    market = pl.DataFrame({"asset_id": ["x1", "x2", "x3"], "vol": [0.2, 0.1, math.sqrt(0.05)]})
    rows = factor_vol.rows(market, MODEL, {"k": np.array([2.0, 0.5])})
    G = rows.select("risk_g0@k", "risk_g1@k").to_numpy()
    assert (
        pytest.approx(
            np.array([[0.16, 0.0, 0.16], [0.0, 0.0025, 0.0025], [0.16, 0.0025, 0.1625]]), abs=1e-15
        )
        == G @ G.T
    )
    own = rows["vol_scale@k"] * rows["vol"]
    assert own.to_list() == pytest.approx([0.4, 0.05, math.sqrt(0.1625)], rel=1e-12)


def fund(level: str, execution: str = "pro_rata") -> estimator.Market:
    """A vol-control fund holding 100 of x3 at 1 (no cash), target 20%, restored exactly
    (no band); its estimate an EWMA, λ = 0.94, of x3 or of the factors."""
    rule = {
        "kind": "vol_target",
        "target": 0.2,
        "estimator": {"kind": "ewma", "decay": 0.94, "level": level},
    }
    assets = asset_frame([{"asset_id": a, "price": 1.0, "vol": None} for a in ("x1", "x2", "x3")])
    pos = pl.DataFrame({"holder_id": ["v"], "asset_id": ["x3"], "quantity": [100.0]})
    return estimator.build_market(
        assets,
        holder_frame([{"holder_id": "v"}]),
        pos,
        {"m": Mandate(name="m", execution=execution, rules=[rule])},
        factors=MODEL,
    )


def day_zero() -> Scenario:
    """x1 −10%, x2 +2%, x3 −8% on Monday 2 March 2020: f = (−0.10, 0.02); on Tuesday x2
    −5% and x3 −5% (a flat, b −5%)."""
    moves = [
        {"date": "2020-03-02", "select": {"asset_ids": [a]}, "price_return": r}
        for a, r in (("x1", -0.10), ("x2", 0.02), ("x3", -0.08))
    ] + [
        {"date": "2020-03-03", "select": {"asset_ids": [a]}, "price_return": -0.05}
        for a in ("x2", "x3")
    ]
    return Scenario(name="p", path={"start": "2020-03-02", "end": "2020-03-03", "moves": moves})


@pytest.mark.parametrize("execution", ["pro_rata", "min_cost"])
@pytest.mark.parametrize(
    ("level", "variance"),
    [
        # each factor: σ̂_a² = 0.94·0.04 + 0.06·252·0.01 = 0.1888, σ̂_b² = 0.94·0.01 +
        # 0.06·252·0.0004 = 0.015448; x3 loads both, uncorrelated: 0.204248
        ("factor", 0.1888 + 0.015448),
        # x3 on its own: σ₀² = 0.05, 0.94·0.05 + 0.06·252·0.0064 = 0.143768
        ("asset", 0.143768),
    ],
)
def test_a_fund_reads_the_factors_estimates(level: str, variance: float, execution: str) -> None:
    """The fund's 92 of x3 (after −8%) at σ̂ = √variance: it keeps 0.2·92/σ̂ and sells the
    rest on the day, as its solve does (one asset to sell)."""
    result = estimator.run(day_zero(), fund(level, execution))
    sold = -result.trades.filter(pl.col("day") == 0)["trade_value"].sum()
    assert sold == pytest.approx(92 * (1 - 0.2 / math.sqrt(variance)), rel=1e-9)
    vols = result.volatility
    assert vols is not None
    first = vols.filter((pl.col("day") == 0) & (pl.col("asset_id") == "x3"))
    assert first["vol_estimate"].item() == pytest.approx(math.sqrt(variance), rel=1e-12)
    if level == "factor":  # Tuesday: a's variance decays, b's takes its −5%
        a = 0.94 * 0.1888
        b = 0.94 * 0.015448 + 0.06 * 252 * 0.0025
        second = vols.filter((pl.col("day") == 1) & (pl.col("asset_id") == "x3"))
        assert second["vol_estimate"].item() == pytest.approx(math.sqrt(a + b), rel=1e-9)


def test_a_factor_estimate_needs_a_factor_model() -> None:
    market = fund("factor")
    plain = estimator.build_market(
        market.assets.drop("risk_g0", "risk_g1", "specific_vol"),
        market.holders,
        market.positions,
        market.mandates,
    )
    with pytest.raises(InputError, match="needs a market with a factor model"):
        estimator.run(day_zero(), plain)


def test_the_level_is_the_max_s_own() -> None:
    assert Ewma(decay=0.94, level="factor").key == "factor:ewma0.94"
    both = MaxOf(of=[Lookback(days=5), Lookback(days=20)], level="factor", lag_days=1)
    assert both.key == "factor:max(lookback5,lookback20)-lag1"
    with pytest.raises(ValidationError, match="level on the max"):
        MaxOf(of=[Lookback(days=5, level="factor"), Lookback(days=20)])


def test_a_history_warms_the_factors_it_covers() -> None:
    """A history of x1 alone, −5% then +3%: a's EWMA (λ = 0.94) takes them, v ← 0.94·v +
    0.06·r² from 0.04/252; b, loaded by no covered asset, stays calm at 10%."""
    history = pl.DataFrame({"asset_id": ["x1"], "history_returns": [[-0.05, 0.03]]})
    wanted = {"factor:ewma0.94": Ewma(decay=0.94, level="factor")}
    state = realised.warmed_factors(fund("factor").assets, wanted, MODEL, history)
    assert state is not None
    v = 0.04 / 252
    for r in (-0.05, 0.03):
        v = 0.94 * v + 0.06 * r * r
    got = dict(
        zip(state["asset_id"], state["vol_scale@factor:ewma0.94"] * state["vol"], strict=True)
    )
    assert got == pytest.approx({"a": math.sqrt(252 * v), "b": 0.1}, rel=1e-12)

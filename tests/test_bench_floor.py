"""The solver floor (:mod:`estimator.bench.floor`) solves the production min-cost problem.

Two oracles: the production solver on the jobs a round makes, and hand-derived optima of
two-position holders (KKT conditions written out below, not a solver).

Accuracy. At production's tolerances (gap and residuals 10⁻⁹) an interior-point solve leaves
trades a few 10⁻⁶ of the book from the exact optimum where costs are nearly linear (futures of
large ADV): an objective that flat moves by less than the tolerance. On 308 holders floor and
production then differ by up to 3.8·10⁻⁶ of gross (two holders above 10⁻⁶, both solved
``optimal``); at 10⁻¹¹ every holder production solves ``optimal`` agrees within 2.3·10⁻⁷. So
the book here is small (30 holders) and the same problem is also checked at :data:`TIGHT`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from estimator.bench import floor
from estimator.errors import RunError
from estimator.solve import SOLVER_DEFAULTS, Job, ProblemCache
from rules import Leverage, Vec, VolTarget

#: Trades agree to this share of the holder's gross exposure Σ|x|.
TOL = 1e-6
#: Where production reports a solve short of its tolerances (Clarabel ``AlmostSolved``, cvxpy
#: ``optimal_inaccurate``, or a retry), its trades are checked to this share only: on the book
#: below one such holder is 1.35·10⁻⁶ off, and the floor within 10⁻⁹ of its KKT solution.
INACCURATE_TOL = 1e-5
#: Clarabel at production's settings but gap and residuals of 10⁻¹¹: trades near exact.
TIGHT = {
    **SOLVER_DEFAULTS["CLARABEL"],
    "tol_gap_abs": 1e-11,
    "tol_gap_rel": 1e-11,
    "tol_feas": 1e-11,
}


@pytest.fixture(scope="module")
def recorded() -> tuple[list, list[Job]]:
    return floor.vol_target_jobs(270)


def test_jobs_are_the_vt_mandates(recorded: tuple[list, list[Job]]) -> None:
    rules, jobs = recorded
    assert [r.kind for r in rules] == ["vol_target"]
    assert rules[0].gross_cap is not None
    assert len(jobs) >= 20
    assert {len(j.vectors[Vec.X0]) for j in jobs} == {50}


def test_two_variables_per_position(recorded: tuple[list, list[Job]]) -> None:
    rules, jobs = recorded
    k = jobs[0].risk_rows.shape[1]
    for problem in floor.prepare(rules, jobs[:3]):
        m = len(problem.live)
        assert problem.A.shape == (2 * m + 1 + (1 + k + m) + 3 * m, 2 * m)
        assert problem.q.shape == (2 * m,)


@pytest.mark.parametrize("options", [None, TIGHT], ids=["production settings", "tight"])
def test_floor_equals_production(
    recorded: tuple[list, list[Job]], options: dict[str, float] | None
) -> None:
    rules, jobs = recorded
    cache = ProblemCache(jobs[0].risk_rows.shape[1], **(options or {}))
    trades = floor.solve(floor.prepare(rules, jobs), options)
    for job, u in zip(jobs, trades, strict=True):
        want = cache.solve_holder(rules, job.scalars, job.vectors, job.risk_rows)
        gross = float(np.abs(job.vectors[Vec.X0]).sum())
        tol = TOL if want.status == "optimal" else INACCURATE_TOL
        assert np.max(np.abs(u - want.u)) <= tol * gross, want.status


def _job(
    x: list[float], s: list[float], h: list[float], beta: list[float], **scalars: float
) -> Job:
    n = len(x)
    return Job(
        {"equity": 100.0, **scalars},
        {
            Vec.X0: np.array(x),
            "half_spread": np.array(h),
            "impact": np.array(beta),
            Vec.IS_CASH: np.ones(n),
            Vec.RISK_SPECIFIC: np.array(s),
        },
        np.zeros((n, 1)),  # one factor with no loadings: the positions are uncorrelated
    )


def _check(rule: VolTarget, job: Job, want: list[float]) -> None:
    """The floor at :data:`TIGHT` (at production's settings it stops 3.8·10⁻⁶ of gross short
    on the risk case: see the module doc) and production at its own settings."""
    gross = float(np.abs(job.vectors[Vec.X0]).sum())
    (u,) = floor.solve(floor.prepare([rule], [job]), TIGHT)
    np.testing.assert_allclose(u, want, rtol=0, atol=TOL * gross)
    got = ProblemCache(1).solve_holder([rule], job.scalars, job.vectors, job.risk_rows).u
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL * gross)


def test_risk_binding_by_hand() -> None:
    """x = (60, −40), s = (0.3, 0.2), no factor. Selling v_i = |x_i|·φ_i costs
    h_i·v_i + β_i·v_i^{3/2}; the risk is R = √Σ s_i²·(|x_i| − v_i)². With R ≤ B binding, the
    KKT conditions are h_i + 1.5·β_i·√v_i = μ·s_i²·(|x_i| − v_i) for one μ > 0. Choose the
    answer v = (20, 10), μ = 0.01, h = (0.001, 0.002), and solve the conditions for β:
    β₁ = (0.01·0.09·40 − 0.001)/(1.5·√20), β₂ = (0.01·0.04·30 − 0.002)/(1.5·√10), both
    positive; B = √(0.09·40² + 0.04·30²) = √180. The problem is strictly convex, so v is the
    optimum: sell 20 of the long, buy back 10 of the short."""
    beta = [
        (0.01 * 0.09 * 40 - 0.001) / (1.5 * math.sqrt(20)),
        (0.01 * 0.04 * 30 - 0.002) / (1.5 * math.sqrt(10)),
    ]
    job = _job([60.0, -40.0], [0.3, 0.2], [0.001, 0.002], beta, **{"vol_target.bound": 180**0.5})
    _check(VolTarget(target=0.1), job, [-20.0, 10.0])


def test_gross_cap_binding_by_hand() -> None:
    """x = (60, 40), cap Σ|x⁺| ≤ 80 binding, risk bound far away: v₁ + v₂ = 20. Equal
    half-spreads cancel in the KKT conditions h + 1.5·β_i·√v_i = ν, so β₁·√v₁ = β₂·√v₂; with
    β₂ = 2·β₁, v₁ = 4·v₂: v = (16, 4)."""
    job = _job(
        [60.0, 40.0],
        [0.2, 0.2],
        [0.001, 0.001],
        [0.001, 0.002],
        **{"vol_target.bound": 1_000.0, "vol_target.gross_bound": 80.0},
    )
    _check(VolTarget(target=0.1, gross_cap=0.8), job, [-16.0, -4.0])


def test_refuses_other_rules(recorded: tuple[list, list[Job]]) -> None:
    _, jobs = recorded
    with pytest.raises(RunError, match="vol_target alone"):
        floor.prepare([Leverage(max=3.0)], jobs[:1])

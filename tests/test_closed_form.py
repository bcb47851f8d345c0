"""Min-cost solves in closed form (:mod:`estimator.closed_form`) for rules that are linear limits.

Three oracles, none of them the bisection: optima worked out by hand from the KKT conditions;
the KKT conditions themselves checked on every solution (one multiplier ``λ ≥ 0`` for which
every fraction sold is at its stationary point or at a bound it is pushed against); and the
conic solver at tight tolerances on the same holders.
"""

from __future__ import annotations

import math

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from estimator import closed_form
from estimator.solve import SOLVER_DEFAULTS, Job, ProblemCache
from rules import (
    CollateralBuffer,
    Leverage,
    LiquidityBuffer,
    Margin,
    ProblemSpace,
    RatingFloor,
    Redemption,
    RuleBase,
    Vec,
    VolTarget,
)
from rules._space import ONES

#: Clarabel with gap and residuals of 10⁻¹¹: trades within about 10⁻⁷ of the book of the optimum.
TIGHT = {
    **SOLVER_DEFAULTS["CLARABEL"],
    "tol_gap_abs": 1e-11,
    "tol_gap_rel": 1e-11,
    "tol_feas": 1e-11,
}


def job(x: list[float], impact: list[float], bound: float, *, spread: float = 0.0, **vecs) -> Job:
    n = len(x)
    vectors = {
        Vec.X0: np.array(x, dtype=float),
        "half_spread": np.full(n, spread),
        "impact": np.array(impact, dtype=float),
        **{k: np.array(v, dtype=float) for k, v in vecs.items()},
    }
    scalars = {"equity": float(sum(abs(v) for v in x)), **{"margin.bound": bound}}
    return Job(scalars, vectors, np.zeros((n, 1)))


def test_two_positions_by_hand() -> None:
    """Margin ``0.5·|x⁺₁| + 0.25·|x⁺₂| ≤ B`` on x = (100, 100), no spread, ``β = 10⁻³`` so
    ``q_i = β·100^{3/2} = 1``: ``a = (50, 25)``, ``φ_i = (λ·a_i/1.5)²``, ``Σa·φ = 62,500·λ²``.

    * B = 65 (d = 10): ``λ² = 1.6·10⁻⁴``, ``φ = (8/45, 2/45)``, ``u = (−160/9, −40/9)``;
    * B = 5 (d = 70): both free would put ``φ₁ = 1.244 > 1``; so ``φ₁ = 1`` and
      ``50 + 25·φ₂ = 70``, ``φ₂ = 0.8``: ``u = (−100, −80)`` (and ``λ = 1.5·√0.8/25``
      makes ``λ·a₁/1.5 = 1.79 > 1``, the clip holds).
    """
    rules = [Margin(maintenance_rate=0.25)]
    rate = {"margin.rate": [0.5, 0.25]}
    jobs = [job([100, 100], [1e-3, 1e-3], 65, **rate), job([100, 100], [1e-3, 1e-3], 5, **rate)]
    first, second = closed_form.solve(rules, jobs)
    assert first is not None and second is not None
    np.testing.assert_allclose(first.u, [-160 / 9, -40 / 9], rtol=1e-13)
    np.testing.assert_allclose(second.u, [-100, -80], rtol=1e-13)
    assert first.status == closed_form.STATUS
    assert first.binding == second.binding == ["margin.requirement<=bound"]


def test_a_spread_delays_selling_by_hand() -> None:
    """With a half-spread ``h`` a position sells only once ``λ·a_i > p_i = h·|x_i|``.
    x = (100, 100), margin rates (0.5, 0.25), ``h = 0.1``: ``p = (10, 10)``, ``q = (1, 1)``.
    With B = 70 (d = 5), guessing only position 1 sells: ``50·((50λ − 10)/1.5)² = 5`` gives
    ``50λ − 10 = 1.5/√10``, λ = 0.20949; position 2's ``25λ = 5.24 < 10``, so it sells nothing
    (the guess holds): ``φ₁ = 0.1``, ``u = (−10, 0)``."""
    rate = {"margin.rate": [0.5, 0.25]}
    (out,) = closed_form.solve(
        [Margin(maintenance_rate=0.25)], [job([100, 100], [1e-3, 1e-3], 70, spread=0.1, **rate)]
    )
    assert out is not None
    np.testing.assert_allclose(out.u, [-10, 0], rtol=1e-12, atol=1e-12)


def test_shorts_are_bought_back_by_hand() -> None:
    """Gross exposure ``Σ|x⁺| ≤ B`` (leverage by exposure) on x = (100, −100), equal costs: by
    symmetry both halve their excess; B = 150: ``φ = (0.25, 0.25)``, ``u = (−25, +25)``."""
    rule = Leverage(measure="exposure", max=3.0)
    j = job([100, -100], [1e-3, 1e-3], 0.0)
    j = Job({"equity": 200.0, rule.bound_name: 150.0}, j.vectors, j.risk_rows)
    (out,) = closed_form.solve([rule], [j])
    assert out is not None
    np.testing.assert_allclose(out.u, [-25, 25], rtol=1e-13)


def test_the_limit_that_binds_is_found() -> None:
    """Restoring to initial margin: maintenance ``0.25·|x⁺|`` and initial ``ι·|x⁺|`` against the
    same AE. Where one initial rate is above maintenance and the other below, each limit alone
    leaves the other broken or not; the solve keeps the single-limit optimum that meets both,
    and sends a holder where both bind together to the conic solver (None)."""
    rule = Margin(maintenance_rate=0.25, restore="initial", initial_rate=0.5)
    vecs = {"margin.rate": [0.25, 0.25], "margin.initial_rate": [0.5, 0.5]}
    only_initial = job([100, 100], [1e-3, 1e-3], 60, **vecs)  # initial binds, maintenance slack
    vecs2 = {"margin.rate": [0.6, 0.05], "margin.initial_rate": [0.05, 0.6]}
    both = job([100, 100], [1e-3, 1e-3], 40, **vecs2)  # each alone breaks the other
    first, second = closed_form.solve([rule], [only_initial, both])
    assert first is not None and second is None
    np.testing.assert_allclose(first.u, [-40, -40], rtol=1e-12)  # 0.5·2·(100 − 40) = 60
    assert first.binding == ["margin.initial<=bound"]


def test_what_it_leaves_to_the_solver() -> None:
    """A limit no sale can meet, a position without impact cost, a rule that is not linear and
    a rule that buys all go to the conic solver."""
    rate = {"margin.rate": [0.5, 0.25]}
    margin = Margin(maintenance_rate=0.25)
    cannot = job([100, 100], [1e-3, 1e-3], -1, **rate)  # d = 76 > Σa = 75
    flat = job([100, 100], [1e-3, 0.0], 65, **rate)
    assert closed_form.solve([margin], [cannot, flat]) == [None, None]
    assert closed_form.limits_of([VolTarget(target=0.1)]) is None
    assert closed_form.limits_of([margin, Leverage(max=3.0)]) is None  # balance sheet: not linear
    assert closed_form.limits_of([Leverage(measure="exposure", max=3.0)]) is not None


# --- every linear rule against the KKT conditions and the conic solver -------------------------

LINEAR_RULES: list[RuleBase] = [
    Margin(maintenance_rate=0.25),
    Margin(maintenance_rate=0.25, restore="initial", initial_rate=0.5),
    Leverage(measure="exposure", max=3.0),
    CollateralBuffer(**CollateralBuffer.examples[0]),
    LiquidityBuffer(**LiquidityBuffer.examples[0]),
    RatingFloor(**RatingFloor.examples[2]),
    Redemption(**Redemption.examples[0]),
]


def random_job(rules: list[RuleBase], rng: np.random.Generator, n: int, severity: float) -> Job:
    """A holder of ``n`` positions (a quarter short), each limit's vectors drawn at random
    (non-negative where declared so) and its bound set so that selling ``severity`` of the
    largest possible reduction meets it."""
    x = rng.lognormal(0, 1, n) * np.where(rng.random(n) < 0.25, -1, 1)
    vectors = {
        Vec.X0: x,
        "half_spread": rng.uniform(0, 5e-3, n),
        "impact": rng.lognormal(-5, 1, n),
    }
    scalars = {"equity": float(np.abs(x).sum())}
    for rule in rules:
        for limit in rule.linear_limits() or ():
            coef = {}
            for name in (limit.x_plus, limit.u, limit.abs_x_plus):
                if name is None or name == ONES:
                    continue
                if name not in vectors:
                    draw = rng.uniform(0, 1, n) if name in limit.nonneg else rng.normal(0, 1, n)
                    vectors[name] = draw
                coef[name] = vectors[name]
            g = coef.get(limit.x_plus, 0.0)
            c = coef.get(limit.u, 0.0)
            w = 1.0 if limit.abs_x_plus == ONES else coef.get(limit.abs_x_plus, 0.0)
            a = (g + c) * x + w * np.abs(x)
            lhs0 = float(np.sum(g * x + w * np.abs(x)))
            reach = float(np.clip(a, 0, None).sum())
            bound = lhs0 - severity * reach
            scalars[limit.bound] = min(scalars.get(limit.bound, math.inf), bound)
    return Job(scalars, vectors, np.zeros((n, 1)))


def kkt_gap(rules: list[RuleBase], j: Job, u: np.ndarray) -> float:
    """How far ``u`` is from the KKT conditions of the one limit it binds, relative to ``λ``."""
    x = j.vectors[Vec.X0]
    held = np.abs(x)
    phi = -u / x
    p = j.vectors["half_spread"] * held
    q = j.vectors["impact"] * held**1.5
    limits = [lim for r in rules for lim in r.linear_limits() or ()]
    worst = math.inf
    for limit in limits:
        g = j.vectors.get(limit.x_plus, 0.0) if limit.x_plus else 0.0
        c = j.vectors.get(limit.u, 0.0) if limit.u else 0.0
        w = (
            1.0
            if limit.abs_x_plus == ONES
            else (j.vectors[limit.abs_x_plus] if limit.abs_x_plus else 0.0)
        )
        a = (g + c) * x + w * held
        free = (phi > 1e-9) & (phi < 1 - 1e-9)
        if not free.any():
            continue
        marginal = (p + 1.5 * q * np.sqrt(np.clip(phi, 0, 1))) / np.where(a > 0, a, np.nan)
        lam = float(np.nanmedian(marginal[free]))
        spread = np.nanmax(np.abs(marginal[free] - lam)) / lam
        none = (phi <= 1e-9) & (a > 0)
        full = phi >= 1 - 1e-9
        pushed = max(
            float(np.max(lam - p[none] / a[none], initial=0.0)) / lam,  # unsold but worth selling
            float(np.max(marginal[full] - lam, initial=0.0)) / lam,  # sold out but too dear
        )
        worst = min(worst, max(spread, pushed))
    return worst


@given(
    st.sampled_from(range(len(LINEAR_RULES))),
    st.integers(0, 2**32 - 1),
    st.integers(2, 12),
    st.floats(0.05, 0.9),
)
def test_kkt_and_the_conic_solver_agree(rule_at: int, seed: int, n: int, severity: float) -> None:
    rules = [LINEAR_RULES[rule_at]]
    rng = np.random.default_rng(seed)
    j = random_job(rules, rng, n, severity)
    (out,) = closed_form.solve(rules, [j])
    if out is None:  # two limits binding together: nothing to check here
        return
    gross = float(np.abs(j.vectors[Vec.X0]).sum())
    assert kkt_gap(rules, j, out.u) < 1e-9
    with ProblemCache(1, closed_form=False, **TIGHT) as cache:
        want = cache.solve_many(rules, [j])[0]
    assert want.ok
    np.testing.assert_allclose(out.u, want.u, rtol=0, atol=1e-6 * gross)


def test_many_holders_at_once_as_one_by_one() -> None:
    """One call over many holders of different sizes gives each holder's own answer."""
    rng = np.random.default_rng(7)
    rules = [LINEAR_RULES[0]]
    jobs = [random_job(rules, rng, int(rng.integers(2, 9)), 0.5) for _ in range(40)]
    together = closed_form.solve(rules, jobs)
    for j, out in zip(jobs, together, strict=True):
        (alone,) = closed_form.solve(rules, [j])
        assert out is not None and alone is not None
        np.testing.assert_array_equal(out.u, alone.u)


def test_the_cache_merges_closed_form_and_conic_in_order() -> None:
    rng = np.random.default_rng(3)
    rules = [LINEAR_RULES[0]]
    jobs = [random_job(rules, rng, 4, 0.4) for _ in range(6)]
    cannot = jobs[2]
    jobs[2] = Job({**cannot.scalars, "margin.bound": -1e9}, cannot.vectors, cannot.risk_rows)
    with ProblemCache(1) as cache:
        outs = cache.solve_many(rules, jobs)
    assert cache.closed_form_solves == 5
    assert [o.status == closed_form.STATUS for o in outs] == [True, True, False, True, True, True]
    assert not outs[2].ok  # infeasible: the conic solver says so


@pytest.mark.parametrize("rule", LINEAR_RULES, ids=lambda r: r.shape_key)
def test_declared_limits_are_the_constraints(rule: RuleBase) -> None:
    """A rule's cvxpy constraints are its declared limits: same names, same number on a point."""
    n = 5
    p = ProblemSpace(n, 1, signs_fixed=True)
    cons = rule.constraints(p)
    limits = rule.linear_limits()
    assert limits is not None
    assert set(cons) == {lim.name for lim in limits}
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, n)
    phi = rng.uniform(0, 1, n)
    p.u.value = -phi * x
    p.x_plus.value = (1 - phi) * x
    for v in cons.values():
        for var in v.variables():
            if var.name() == "abs_x_plus":
                var.value = np.abs(p.x_plus.value)
    for param in p.params.values():
        param.value = rng.uniform(0, 1, param.shape) if param.shape else 0.7
    for limit in limits:
        vec = {k: p.params[k].value for k in p.params if p.params[k].shape}
        g = vec.get(limit.x_plus, 0.0) if limit.x_plus else 0.0
        c = vec.get(limit.u, 0.0) if limit.u else 0.0
        w = (
            1.0
            if limit.abs_x_plus == ONES
            else (vec[limit.abs_x_plus] if limit.abs_x_plus else 0.0)
        )
        lhs = float(np.sum(g * p.x_plus.value + c * p.u.value + w * np.abs(p.x_plus.value)))
        assert cp.sum(cons[limit.name].expr).value == pytest.approx(lhs - 0.7, abs=1e-12)

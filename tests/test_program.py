"""The direct Clarabel re-solve of a compiled problem against closed forms and cvxpy's own solve."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle_kit import run_case

import estimator
from estimator import closed_form
from estimator import program as program_module
from estimator import solve as solve_module
from estimator.program import ClarabelProgram
from estimator.solve import SOLVER_DEFAULTS
from rules import ProblemSpace, Vec

TUNED = SOLVER_DEFAULTS["CLARABEL"]


@pytest.mark.parametrize("a", [0.3, 1.5, 3.0])
def test_re_solve_matches_the_closed_form(a: float) -> None:
    """min −a·x + t with t ≥ x^{3/2}: 1.5·√x = a gives x* = 4a²/9 and the optimum
    −a·x* + x*^{3/2} = −12a³/27 + 8a³/27 = −4a³/27. The objective is accurate to the solver's
    10⁻⁹; x* only to about its square root (the objective is flat at its minimum)."""
    param = cp.Parameter(name="a", nonneg=True)
    x, t = cp.Variable(name="x"), cp.Variable(name="t")
    problem = cp.Problem(cp.Minimize(-param * x + t), [cp.PowCone3D(t, 1.0, x, 2 / 3)])
    program = ClarabelProgram(problem, TUNED)
    status, z = program.solve({param.id: np.array(a)})
    assert status == cp.OPTIMAL and z is not None
    objective = -a * program.value(x, z) + program.value(t, z)
    assert objective == pytest.approx(-4 * a**3 / 27, rel=1e-7)
    assert program.value(x, z) == pytest.approx(4 * a**2 / 9, abs=2e-4)


def _portfolio(n: int) -> tuple[cp.Problem, dict[str, cp.Parameter], cp.Variable]:
    """A problem with every cone the estimator uses: equality, inequality, SOC, power cone."""
    x0 = cp.Parameter(n, name="x0")
    cost = cp.Parameter(n, name="cost", nonneg=True)
    F = cp.Parameter((2, n), name="F")
    cap = cp.Parameter(name="cap", nonneg=True)
    phi, t, u, x_plus = (cp.Variable(n, name=s) for s in ("phi", "t", "u", "x_plus"))
    constraints = [
        u == -cp.multiply(x0, phi),
        x_plus == x0 + u,
        phi >= 0,
        phi <= 1,
        cp.norm2(F @ x_plus) <= cap,
        cp.PowCone3D(t, np.ones(n), phi, 2 / 3),
    ]
    params = {"x0": x0, "cost": cost, "F": F, "cap": cap}
    return cp.Problem(cp.Minimize(cost @ t + 0.01 * cp.sum(phi)), constraints), params, u


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shrink=st.floats(0.2, 0.9))
def test_re_solve_agrees_with_cvxpy_solve(seed: int, shrink: float) -> None:
    rng = np.random.default_rng(seed)
    n = 6
    problem, params, u = _portfolio(n)
    program = ClarabelProgram(problem, TUNED)
    x0 = rng.uniform(0.5, 2.0, n)
    F = rng.normal(size=(2, n))
    values = {
        "x0": x0,
        "cost": rng.uniform(0.1, 1.0, n),
        "F": F,
        "cap": shrink * float(np.linalg.norm(F @ x0)),  # binding: the book must shrink
    }
    for name, value in values.items():
        params[name].value = value
    status, z = program.solve({params[k].id: v for k, v in values.items()})
    problem.solve(solver=cp.CLARABEL, **TUNED)
    assert status == problem.status == cp.OPTIMAL and z is not None
    np.testing.assert_allclose(program.value(u, z), u.value, atol=1e-6)
    assert np.linalg.norm(F @ (x0 + program.value(u, z))) <= values["cap"] * (1 + 1e-7)


def test_an_infeasible_program_reports_its_status_and_no_solution() -> None:
    lo, hi = cp.Parameter(name="lo"), cp.Parameter(name="hi")
    x = cp.Variable(name="x")
    program = ClarabelProgram(cp.Problem(cp.Minimize(x), [x >= lo, x <= hi]), TUNED)
    assert program.solve({lo.id: np.array(1.0), hi.id: np.array(0.0)}) == (cp.INFEASIBLE, None)
    status, z = program.solve({lo.id: np.array(-1.0), hi.id: np.array(0.0)})  # same solver, reused
    assert status == cp.OPTIMAL and z is not None
    assert program.value(x, z) == pytest.approx(-1.0, abs=1e-8)


def test_a_stalled_clarabel_solve_falls_back_to_scs(monkeypatch: pytest.MonkeyPatch) -> None:
    # A margin account in two stocks of different spreads, min cost: solved once normally,
    # once with every Clarabel attempt failing, so that SCS solves; the trades agree to 10⁻⁴ of
    # the book (a first-order solver's accuracy).
    def case() -> dict[str, float]:
        result = run_case(
            [
                {"asset_id": "a", "price": 100.0, "half_spread_bps": 2.0},
                {"asset_id": "b", "price": 50.0, "half_spread_bps": 30.0, "adv": 1e6},
            ],
            [{"holder_id": "h", "cash": -9000.0}],
            [("h", "a", 60.0), ("h", "b", 120.0)],
            [{"kind": "margin", "maintenance_rate": 0.3}],
            [{"select": {"all": True}, "price_return": -0.1}],
            "min_cost",
        )
        statuses.append(result.holders["solver_status"].item())
        return dict(zip(result.trades["asset_id"], result.trades["trade_value"], strict=True))

    statuses: list[str] = []
    # the conic path is under test: a margin account alone would be solved in closed form
    monkeypatch.setattr(closed_form, "limits_of", lambda rules: None)
    normal = case()

    def stalled(self: object, params: object) -> tuple[str, None]:
        return "solver_error", None

    real_run = solve_module.CompiledProblem._run

    def no_clarabel(self: solve_module.CompiledProblem, solver: str, opts: dict) -> str:
        if solver.upper() == "CLARABEL":
            return "solver error: stalled"
        return real_run(self, solver, opts)

    monkeypatch.setattr(ClarabelProgram, "solve", stalled)
    monkeypatch.setattr(solve_module.CompiledProblem, "_run", no_clarabel)
    fallback = case()
    assert statuses == ["optimal", "optimal (SCS)"]
    assert normal  # the call is met by a sale
    book = 0.9 * (6000.0 + 6000.0)
    for asset in normal.keys() | fallback.keys():
        assert fallback.get(asset, 0.0) == pytest.approx(normal.get(asset, 0.0), abs=1e-4 * book)


def test_a_stalled_solve_is_retried_with_other_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The closed-form problem above, first held to one iteration (it cannot finish), then
    retried with the iteration limit lifted: the retry's answer, named by its label."""
    monkeypatch.setattr(program_module, "RETRIES", (("more iterations", {"max_iter": 200}),))
    param = cp.Parameter(name="a", nonneg=True)
    x, t = cp.Variable(name="x"), cp.Variable(name="t")
    problem = cp.Problem(cp.Minimize(-param * x + t), [cp.PowCone3D(t, 1.0, x, 2 / 3)])
    program = ClarabelProgram(problem, {**TUNED, "max_iter": 1})
    status, z = program.solve({param.id: np.array(1.5)})
    assert status == f"{cp.OPTIMAL} (more iterations)" and z is not None
    assert -1.5 * program.value(x, z) + program.value(t, z) == pytest.approx(-4 * 1.5**3 / 27)


@pytest.mark.parametrize("x0", [[60.0, -30.0, 40.0], [10.0, 0.0, -50.0]])
def test_signed_gross_equals_the_absolute_value(x0: list[float]) -> None:
    """Where no position changes sign, |x⁺| is written σ∘x⁺ (an equality): the same optimum as
    cvxpy's own absolute value. Sell at least half the gross, at costs 1, 2, 3 per unit sold
    (+ t ≥ φ^{3/2}): both forms give the same trades, to the solver's accuracy on trades (about
    the square root of its 10⁻⁹: the objective is flat at its minimum)."""
    n = 3
    trades = []
    for signs_fixed in (True, False):
        p = ProblemSpace(n, 1, signs_fixed=signs_fixed)
        phi, t = cp.Variable(n), cp.Variable(n)
        x = p.vec(Vec.X0)
        constraints = [
            p.u == -cp.multiply(x, phi),
            p.x_plus == x + p.u,
            phi >= 0,
            phi <= 1,
            cp.PowCone3D(t, np.ones(n), phi, 2 / 3),
            cp.sum(p.abs_x_plus) <= 0.5 * float(np.abs(x0).sum()),
        ]
        constraints[0:0] = p.ties  # the tie exists once abs_x_plus was read
        problem = cp.Problem(cp.Minimize(np.array([1.0, 2.0, 3.0]) @ phi + cp.sum(t)), constraints)
        p.params[Vec.X0].value = np.array(x0)
        if Vec.SIGN in p.params:
            p.params[Vec.SIGN].value = np.sign(x0)
        problem.solve(solver="CLARABEL", **TUNED)
        assert problem.status == cp.OPTIMAL
        trades.append(p.u.value)
    assert trades[0] == pytest.approx(trades[1], abs=1e-5 * float(np.abs(x0).sum()))


def test_the_installed_cvxpy_has_what_the_direct_solve_needs() -> None:
    assert program_module.direct_unavailable() is None


def test_a_missing_internal_is_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def renamed(*_: object) -> None:
        raise AttributeError("module has no attribute 'dims_to_solver_cones'")

    monkeypatch.setattr(program_module, "dims_to_solver_cones", renamed)
    reason = program_module.direct_unavailable.__wrapped__()
    assert reason == "AttributeError: module has no attribute 'dims_to_solver_cones'"


def test_internals_that_solve_wrongly_are_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """Internals that still exist but mean something else: the check's answer is wrong."""
    monkeypatch.setattr(ClarabelProgram, "solve", lambda self, _: (cp.OPTIMAL, np.zeros(3)))
    reason = program_module.direct_unavailable.__wrapped__()
    assert reason is not None and reason.startswith("the check problem re-solved to")


def test_without_the_direct_path_solves_go_through_cvxpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same trades (to the solver's tolerance) with one warning in the manifest, and the
    direct re-solve never called."""
    direct = estimator.run("small_crash", execution="min_cost")

    def never(*_: object) -> None:
        raise AssertionError("the direct path was used")

    monkeypatch.setattr(program_module, "direct_unavailable", lambda: "AttributeError: gone")
    monkeypatch.setattr(ClarabelProgram, "solve", never)
    fallback = estimator.run("small_crash", execution="min_cost")
    keys = ["holder_id", "asset_id"]
    a, b = (r.trades.sort(keys) for r in (direct, fallback))
    assert a.select(keys).equals(b.select(keys)) and a.height > 10
    scale = float(np.abs(a["trade_value"]).max())
    np.testing.assert_allclose(b["trade_value"], a["trade_value"], rtol=0, atol=1e-6 * scale)
    said = [w for w in fallback.manifest.dump()["warnings"] if "lacks what re-solving" in w]
    assert len(said) == 1 and "(AttributeError: gone)" in said[0]
    assert not any("lacks what re-solving" in w for w in direct.manifest.dump()["warnings"])

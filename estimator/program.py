"""A DPP cvxpy problem compiled once to Clarabel's conic form and re-solved for new parameters.

cvxpy reduces a parametrised problem to the cone program ::

    minimise  qᵀz   subject to  A·z + s = b,  s ∈ K

in which ``q``, ``A`` and ``b`` are *linear* in the parameter vector ``p̃ = (p, 1)``:
``vec(q) = T_q·p̃`` and ``nz(A, b) = T_A·p̃`` with ``T_q``, ``T_A`` sparse and fixed, and the
sparsity pattern of ``[A | b]`` fixed as well (DPP). cvxpy's own ``Problem.solve`` re-derives
that data through its generic reduction chain on every call, which for a 50-position holder costs
about as much as the interior-point solve itself. :class:`ClarabelProgram` keeps ``T_q``, ``T_A``
and the pattern from the first compilation and per solve does only the two sparse products, a
new Clarabel solver on that data and the solve; the solution ``z`` is read back into the
problem's variables by their column offsets. A new solver each time (rather than a data update
of the last one, which keeps its scaling) makes every solve independent of the ones before it,
so a holder's trades do not depend on how holders are batched or spread over processes.

Only what cvxpy's reduction leaves intact is read back directly: variables without attributes
(cvxpy replaces e.g. a ``nonneg`` variable by a new one) — :attr:`ClarabelProgram.readable`.

The tensors ``T_q``, ``T_A`` are cvxpy internals, not its public interface.
:func:`direct_unavailable` checks, once per process, that the installed cvxpy still has them
*and* that a small problem with a known answer re-solves to it; where it does not, callers solve
through ``Problem.solve`` (same problems, same answers, slower) and say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import clarabel
import cvxpy as cp
import numpy as np
import scipy.sparse as sp

try:  # internals of cvxpy: checked by direct_unavailable, not assumed
    from cvxpy.reductions.solvers.conic_solvers.clarabel_conif import (
        CLARABEL,
        dims_to_solver_cones,
    )
    from cvxpy.settings import PARAM_PROB
except ImportError as exc:  # pragma: no cover - a cvxpy without them
    _MISSING: str | None = f"{type(exc).__name__}: {exc}"
else:
    _MISSING = None

_CONSTANT_ID = -1  # cvxpy's column id of the constant 1 in the parameter vector


_SOLVED = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
#: Settings tried, each on its own and in turn, when a solve stalls ("insufficient progress",
#: not an infeasible problem): without Ruiz
#: equilibration (books whose costs span many orders of magnitude), then with shorter steps
#: (at most 90% of the way to the cone boundary instead of 99%: limits that pin positions, such
#: as an investment-grade-only fund's "no junk", leave optimal duals that are not unique).
RETRIES: tuple[tuple[str, dict[str, object]], ...] = (
    ("without equilibration", {"equilibrate_enable": False}),
    ("shorter steps", {"max_step_fraction": 0.9}),
)


class ClarabelProgram:
    """``problem`` (DPP) in Clarabel's form, re-solved by :meth:`solve` for new parameter values."""

    def __init__(self, problem: cp.Problem, settings: Mapping[str, float]) -> None:
        for param in problem.parameters():  # the reduction needs values, any will do
            if param.value is None:
                param.value = np.ones(param.shape)
        data, _, _ = problem.get_problem_data(cp.CLARABEL)
        prog = data[PARAM_PROB]
        prog.reduced_A.cache(keep_zeros=False)
        self._t_a = sp.csr_array(prog.reduced_A.reduced_mat)
        indices, indptr, (m, width) = prog.reduced_A.problem_data_index
        self._cut = int(indptr[-2])  # entries before it are A's, after it b's (last column)
        self._a_pattern = (np.asarray(indices[: self._cut]), np.asarray(indptr[:-1]))
        self._b_rows = np.asarray(indices[self._cut :])
        self._shape = (m, width - 1)
        self._t_q = sp.csr_array(prog.q)
        self._param_cols = {
            pid: (col, prog.param_id_to_size[pid])
            for pid, col in prog.param_id_to_col.items()
            if pid != _CONSTANT_ID
        }
        self._constant_col = prog.param_id_to_col[_CONSTANT_ID]
        self._size = prog.total_param_size + 1
        self._cones = dims_to_solver_cones(prog.cone_dims)
        self._settings = CLARABEL.parse_solver_opts(False, dict(settings))
        self._retries = []
        for label, change in RETRIES:
            retry = CLARABEL.parse_solver_opts(False, dict(settings))
            for name, value in change.items():
                setattr(retry, name, value)
            self._retries.append((label, retry))
        self._p = sp.csc_array((width - 1, width - 1))
        self._columns = {
            var.id: (prog.var_id_to_col[var.id], var.size, var.shape)
            for var in problem.variables()
            if var.id in prog.var_id_to_col
        }
        self.readable = frozenset(self._columns)

    def solve(self, params: Mapping[int, np.ndarray]) -> tuple[str, np.ndarray | None]:
        """(cvxpy status, z) for parameter values by parameter id; ``z`` is None if unsolved."""
        p = np.zeros(self._size)
        p[self._constant_col] = 1.0
        for pid, (col, size) in self._param_cols.items():
            p[col : col + size] = np.ravel(params[pid], order="F")
        flat = self._t_a @ p
        a = sp.csc_array((-flat[: self._cut], *self._a_pattern), shape=self._shape)
        b = np.zeros(self._shape[0])
        b[self._b_rows] = flat[self._cut :]
        q = self._t_q @ p
        # a fresh solver per solve: a data update keeps state of the previous solve (its
        # scaling), which would make a holder's trades depend on who was solved before it
        solver = clarabel.DefaultSolver(self._p, q[:-1], a, b, self._cones, self._settings)
        result = solver.solve()
        status = CLARABEL.STATUS_MAP.get(str(result.status), cp.SOLVER_ERROR)
        if status in _SOLVED:
            return status, np.asarray(result.x)
        if "Infeasible" in str(result.status):  # no other settings would change that
            return status, None
        for label, settings in self._retries:
            result = clarabel.DefaultSolver(self._p, q[:-1], a, b, self._cones, settings).solve()
            status = CLARABEL.STATUS_MAP.get(str(result.status), cp.SOLVER_ERROR)
            if status in _SOLVED:
                return f"{status} ({label})", np.asarray(result.x)
        return status, None

    def value(self, var: cp.Variable, z: np.ndarray) -> np.ndarray:
        """``var``'s value in the solution ``z`` (``var`` must be in :attr:`readable`)."""
        col, size, shape = self._columns[var.id]
        return z[col : col + size].reshape(shape, order="F")

    def load(self, problem: cp.Problem, z: np.ndarray) -> None:
        """Write ``z`` into the values of ``problem``'s readable variables."""
        for var in problem.variables():
            if var.id in self._columns:
                var.save_value(self.value(var, z))


#: The check's problem: minimise x₀ + x₁ + t over x ≥ 1, x₀ ≥ p, t ≥ x₀^{3/2} (a 3-d power cone,
#: as in the min-cost problem). At p = 4 by hand: x₀ = 4, x₁ = 1, t = 4^{3/2} = 8, cost 13.
_CHECK_P, _CHECK_X, _CHECK_T = 4.0, (4.0, 1.0), 8.0


@cache
def direct_unavailable() -> str | None:
    """Why this process cannot re-solve compiled problems directly, or None when it can.

    The installed cvxpy must expose the internals :class:`ClarabelProgram` reads, and a small
    problem with a hand-computed answer (:data:`_CHECK_P`) re-solved through them must give that
    answer to 1e-6. The first failure is the reason (e.g. an attribute a new cvxpy renamed).
    """
    if _MISSING is not None:
        return _MISSING
    try:
        x, t, p = cp.Variable(2), cp.Variable(), cp.Parameter()
        problem = cp.Problem(
            cp.Minimize(cp.sum(x) + t),
            [x >= 1, x[0] >= p, cp.PowCone3D(t, 1.0, x[0], 2 / 3)],
        )
        program = ClarabelProgram(problem, {})
        if not {x.id, t.id} <= program.readable:
            return "the compiled problem does not keep its variables"
        status, z = program.solve({p.id: np.array(_CHECK_P)})
        if z is None:
            return f"the check problem was not solved ({status})"
        got = (*program.value(x, z), float(program.value(t, z)))
    except Exception as exc:  # any failure of the internals means: do not use them
        return f"{type(exc).__name__}: {exc}"
    if not np.allclose(got, (*_CHECK_X, _CHECK_T), rtol=1e-6, atol=1e-6):
        return f"the check problem re-solved to {got}, not {(*_CHECK_X, _CHECK_T)}"
    return None

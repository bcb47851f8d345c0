"""Minimal-cost forced trades with cvxpy: one compiled problem per shape, re-solved per holder.

For a holder with exposures ``x`` the problem is::

    minimise    Σ_i h_i·|u_i| + β_i·|u_i|^{3/2}
    subject to  x⁺ = x + u,    u between −x and 0 (sell down longs, buy back shorts),
                every rule's constraints (triggered rules at their restore level,
                the others at their trigger level)

with ``h_i`` the half-spread (bps / 10⁴) and ``β_i = κ·σ_d,i / √ADV_i`` the square-root-law
impact coefficient (``σ_d = σ / √252``, floored at 10⁻⁴ so the objective stays strictly convex;
impact cost per unit traded ``κ·σ_d·√(|u|/ADV)``). Strict convexity makes the optimal trades
unique, so per-asset flows do not depend on the solver.

Compile once, re-solve many: a shape is (rule structure, padded size n); all numbers enter as
cvxpy Parameters (DPP), currency divided by a per-holder scale ``S = max(Σ|x|, |E|)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from estimator.errors import RunError
from rules import ProblemSpace, RuleBase, Vec

DEFAULT_SOLVER = "CLARABEL"
IMPACT_KAPPA = 1.0
MIN_DAILY_VOL = 1e-4


def padded_size(n: int) -> int:
    """Few shapes: the next power of two, at least 4."""
    return max(4, 1 << (max(n, 1) - 1).bit_length())


@dataclass
class Outcome:
    u: np.ndarray  # trades in currency, length n (unpadded)
    ok: bool
    status: str
    binding: list[str]


class CompiledProblem:
    """A problem shape with named parameters; :meth:`solve` binds values and solves."""

    def __init__(self, rules: Sequence[RuleBase], n: int, k: int) -> None:
        p = ProblemSpace(n, k)
        x0 = p.vec(Vec.X0)
        lo, hi = p.vec("lo"), p.vec("hi")
        h, beta = p.vec("half_spread", nonneg=True), p.vec("impact", nonneg=True)
        self.constraints: dict[str, cp.Constraint] = {}
        for rule in rules:
            self.constraints.update(rule.constraints(p))
        base = [p.x_plus == x0 + p.u, p.u >= lo, p.u <= hi]
        cost = h @ cp.abs(p.u) + beta @ cp.power(cp.abs(p.u), 1.5)
        self.problem = cp.Problem(cp.Minimize(cost), base + list(self.constraints.values()))
        if not self.problem.is_dcp(dpp=True):
            raise RunError(
                f"problem for {[r.kind for r in rules]} is not DPP; it would recompile per holder"
            )
        self.space = p

    def solve(
        self, values: Mapping[str, np.ndarray | float], n: int, solver: str, **opts
    ) -> Outcome:
        for name, param in self.space.params.items():
            param.value = values[name]
        try:
            self.problem.solve(solver=solver, **opts)
        except cp.error.SolverError as exc:
            return Outcome(np.zeros(n), False, f"solver error: {exc}", [])
        status = self.problem.status
        if status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or self.space.u.value is None:
            return Outcome(np.zeros(n), False, str(status), [])
        u = np.asarray(self.space.u.value)[:n]
        binding = sorted(name for name, c in self.constraints.items() if _is_tight(c))
        return Outcome(u, True, str(status), binding)


def _is_tight(c: cp.Constraint, tol: float = 1e-6) -> bool:
    residual = c.expr.value
    return residual is not None and float(np.max(residual)) >= -tol


class ProblemCache:
    """Compiled problems by (rule shapes, n, k)."""

    def __init__(self, k: int, solver: str = DEFAULT_SOLVER, **options: float) -> None:
        self.k = k
        self.solver = solver
        self.options = options
        self._problems: dict[tuple, CompiledProblem] = {}

    def get(self, rules: Sequence[RuleBase], n: int) -> CompiledProblem:
        key = (tuple(sorted(r.shape_key for r in rules)), n)
        if key not in self._problems:
            self._problems[key] = CompiledProblem(
                sorted(rules, key=lambda r: r.shape_key), n, self.k
            )
        return self._problems[key]

    @property
    def compiled(self) -> int:
        return len(self._problems)

    def solve_holder(
        self,
        rules: Sequence[RuleBase],
        scalars: Mapping[str, float],
        vectors: Mapping[str, np.ndarray],
        risk_rows: np.ndarray,
    ) -> Outcome:
        """Solve one holder: ``vectors`` per position (currency, unscaled), ``risk_rows`` (n, k)."""
        x = vectors[Vec.X0]
        n = len(x)
        size = padded_size(n)
        scale = max(float(np.abs(x).sum()), abs(scalars["equity"]), 1e-12)
        values: dict[str, np.ndarray | float] = {}
        for name, vec in vectors.items():
            padded = np.zeros(size)
            padded[:n] = vec
            values[name] = padded
        values[Vec.X0] = values[Vec.X0] / scale
        values["lo"] = np.minimum(-values[Vec.X0], 0.0)
        values["hi"] = np.maximum(-values[Vec.X0], 0.0)
        values["impact"] = values["impact"] * math.sqrt(scale)
        F = np.zeros((self.k, size))
        F[:, :n] = risk_rows.T
        values[Vec.RISK_FACTOR] = F
        for name, v in scalars.items():
            values[name] = v / scale
        problem = self.get(rules, size)
        out = problem.solve(values, n, self.solver, **self.options)
        out.u = out.u * scale
        out.u[np.abs(out.u) < 1e-10 * scale] = 0.0
        return out

"""The problem space of one compiled min-cost problem: its variables and named parameters.

Rules write their constraints on it (:meth:`rules.RuleBase.constraints`); cvxpy is imported
when a space is made, that is when a problem is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import cvxpy as cp

#: The coefficient vector of ones: ``Σ|x⁺|`` is :data:`ONES` on ``abs_x_plus``.
ONES: Final = "1"


class Vec:
    """Per-position vectors (length n, padded with zeros) a rule's constraints may use."""

    X0 = "x0"  # exposures before the trade
    IS_CASH = "is_cash"  # 1 for cash instruments, 0 for futures
    RISK_FACTOR = "risk_factor"  # (k, n): Σ = Fᵀ F + diag(s²) restricted to the holder's assets
    RISK_SPECIFIC = "risk_specific"  # s, specific volatility
    MARGIN_RATE = "margin_rate"  # m_i, the asset's own rate or null (filled by the rule)
    SIGN = "sign"  # σ_i = sign(x0_i): ±1, 0 for an empty slot
    CASH0 = "cash0"  # scalar: account cash before the trade


class ProblemSpace:
    """The variables and named parameters of one compiled problem shape.

    ``u`` are trades and ``x_plus`` the post-trade exposures, tied by ``x_plus == x0 + u``.
    Parameters are created once, by name, and re-bound for every holder that is solved.
    ``signs_fixed``: no position can change sign in this problem (every fraction sold φ ≤ 1);
    :attr:`abs_x_plus` then needs no absolute value. ``ties`` are constraints the space itself
    adds to the problem.
    """

    def __init__(self, n: int, k: int, *, signs_fixed: bool = False) -> None:
        import cvxpy as cp  # noqa: PLC0415 (imported when a problem is built, not with the rules)

        self.n = n
        self.k = k
        self.u = cp.Variable(n, name="u")
        self.x_plus = cp.Variable(n, name="x_plus")
        self.params: dict[str, cp.Parameter] = {}
        self.signs_fixed = signs_fixed
        self.ties: list[cp.Constraint] = []
        self._abs: cp.Variable | None = None

    @property
    def abs_x_plus(self) -> cp.Expression:
        """``|x⁺|``, elementwise. When no position changes sign, ``|x⁺| = σ∘x⁺`` with
        ``σ = sign(x₀)``: a variable tied to ``x⁺`` by an equality. The same number as
        ``cp.abs``, without its epigraph ``v ≥ x⁺, v ≥ −x⁺``: at a position sold in full both of
        those are tight at ``v = 0`` together with ``φ ≤ 1``, a degenerate vertex on which
        interior-point solvers stall."""
        import cvxpy as cp  # noqa: PLC0415

        if not self.signs_fixed:
            return cp.abs(self.x_plus)
        if self._abs is None:
            self._abs = cp.Variable(self.n, name="abs_x_plus")
            self.ties.append(self._abs == cp.multiply(self.vec(Vec.SIGN), self.x_plus))
        return self._abs

    def param(
        self, name: str, shape: tuple[int, ...] = (), *, nonneg: bool = False
    ) -> cp.Parameter:
        """The parameter called ``name``, created on first use."""
        import cvxpy as cp  # noqa: PLC0415

        if name not in self.params:
            self.params[name] = cp.Parameter(shape, name=name, nonneg=nonneg)
        return self.params[name]

    def vec(self, name: str, *, nonneg: bool = False) -> cp.Parameter:
        """A per-position parameter of length n."""
        return self.param(name, (self.n,), nonneg=nonneg)


@dataclass(frozen=True)
class LinearLimit:
    """A limit linear in the trades, by the names of its parameters:
    ``Σ_i g_i·x⁺_i + c_i·u_i + w_i·|x⁺_i| ≤ B``.

    ``x_plus``, ``u`` and ``abs_x_plus`` name the vectors ``g``, ``c`` and ``w`` (None for a
    term the limit lacks; :data:`ONES` for a vector of ones, ``w = 1`` in ``Σ|x⁺| ≤ B``), those
    in ``nonneg`` are declared non-negative; ``bound`` names the scalar ``B``. The same
    declaration writes the cvxpy constraint (:meth:`constraint`) and the closed-form solve
    (:mod:`estimator.closed_form`), which reads the vectors and the bound from a holder's inputs.
    """

    name: str
    bound: str
    x_plus: str | None = None
    u: str | None = None
    abs_x_plus: str | None = None
    nonneg: frozenset[str] = frozenset()

    def constraint(self, p: ProblemSpace) -> cp.Constraint:
        """The limit on ``p``'s variables."""
        import cvxpy as cp  # noqa: PLC0415

        terms = []
        for name, var in ((self.x_plus, p.x_plus), (self.u, p.u)):
            if name is not None:
                terms.append(p.vec(name, nonneg=name in self.nonneg) @ var)
        if self.abs_x_plus == ONES:
            terms.append(cp.sum(p.abs_x_plus))
        elif self.abs_x_plus is not None:
            vec = p.vec(self.abs_x_plus, nonneg=self.abs_x_plus in self.nonneg)
            terms.append(vec @ p.abs_x_plus)
        lhs = terms[0]
        for term in terms[1:]:
            lhs = lhs + term
        return lhs <= p.param(self.bound)

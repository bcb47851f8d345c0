"""The problem space of one compiled min-cost problem: its variables and named parameters.

Rules write their constraints on it (:meth:`rules.RuleBase.constraints`); cvxpy is imported
when a space is made, that is when a problem is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import cvxpy as cp


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

"""Min-cost solves without a conic solver, for holders whose rules are linear limits.

With no purchases a holder's trades are ``u = −φ∘x`` with ``φ ∈ [0, 1]`` the fraction of each
position sold (:mod:`estimator.solve`), so ``x⁺ = (1 − φ)∘x`` and ``|x⁺| = (1 − φ)∘|x|``, and a
:class:`~rules.LinearLimit` ``Σ g_i·x⁺_i + c_i·u_i + w_i·|x⁺_i| ≤ B`` reads::

    Σ a_i·φ_i ≥ d,    a_i = (g_i + c_i)·x_i + w_i·|x_i|,    d = Σ (g_i·x_i + w_i·|x_i|) − B.

The cost of the trades is ``Σ p_i·φ_i + q_i·φ_i^{3/2}`` with ``p_i = h_i·|x_i|`` and
``q_i = β_i·|x_i|^{3/2}`` (:class:`~estimator.rounds.min_cost.CostModel`). Under one limit the
KKT conditions ``p_i + 1.5·q_i·√φ_i − λ·a_i = μ⁰_i − μ¹_i`` (multipliers of ``φ_i ≥ 0`` and
``φ_i ≤ 1``) give every fraction from one multiplier ``λ ≥ 0``::

    φ_i(λ) = clip((λ·a_i − p_i) / (1.5·q_i), 0, 1)²,

and ``λ`` solves ``s(λ) = Σ a_i·φ_i(λ) = d``: ``s`` is continuous and non-decreasing from
``s(0) = 0`` to ``s(λ̄) = Σ a_i⁺`` at ``λ̄ = max_{a_i > 0} (p_i + 1.5·q_i) / a_i``, so one
bisection on ``[0, λ̄]``, run for every holder at once, finds it to the last bit; ``φ`` is taken
at the upper end, where the limit holds. A holder whose ``d ≤ 0`` sells nothing.

Several limits (a margin account restored to initial margin, a leverage limit beside a margin
requirement): the optimum under one limit alone that meets every other limit is the optimum
under all of them, since it is the least cost over a larger set. A holder none of whose
single-limit optima meets the others (two limits bind together), whose limit cannot be met
(``Σ a_i⁺ < d``) or whose costs are not strictly convex (``q_i = 0`` or not finite on a held
position) is left to the conic solver. Strict convexity makes the optimum unique, so the trades
are the solver's, exact where the solver's are within its tolerance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from rules import RuleBase, Vec
from rules._space import ONES, LinearLimit

if TYPE_CHECKING:
    from estimator.solve import Job, Outcome

#: The status of a holder solved here.
STATUS = "optimal (closed form)"
#: A limit counts as met with a shortfall below this share of the holder's scale
#: ``max(Σ|x|, |E|)``, and as binding within :data:`TIGHT` of it (the solver's test).
FEASIBLE = 1e-9
TIGHT = 1e-6
#: Bisection steps: from ``λ̄`` down to ``2⁻²⁰⁰·λ̄``, far below the last bit of any ``λ``.
STEPS = 200


def limits_of(rules: Sequence[RuleBase]) -> list[LinearLimit] | None:
    """Every limit of ``rules`` when all are linear and none buys, else None."""
    out: list[LinearLimit] = []
    for rule in rules:
        limits = rule.linear_limits()
        if limits is None or rule.buys:
            return None
        out.extend(limits)
    return out or None


class _Book:
    """The concatenated positions of many holders: row ``r`` belongs to holder ``seg[r]``."""

    def __init__(self, jobs: Sequence[Job]) -> None:
        self.jobs = jobs
        self.count = len(jobs)
        self.lengths = np.fromiter((len(j.vectors[Vec.X0]) for j in jobs), int, len(jobs))
        self.seg = np.repeat(np.arange(self.count), self.lengths)
        self.x = self.vector(Vec.X0)
        self.held = np.abs(self.x)
        with np.errstate(invalid="ignore", over="ignore"):
            self.p = self.vector("half_spread") * self.held
            self.q = self.vector("impact") * self.held**1.5
        equity = self.scalar("equity")
        self.scale = np.maximum(np.maximum(self.sum(self.held), np.abs(equity)), 1e-12)
        live = self.held > 0
        convex = ~live | (np.isfinite(self.p) & np.isfinite(self.q) & (self.q > 0))
        self.convex = self.sum((~convex).astype(float)) == 0

    def vector(self, name: str) -> np.ndarray:
        if name == ONES:
            return np.ones(len(self.seg))
        return np.concatenate([np.asarray(j.vectors[name], dtype=float) for j in self.jobs])

    def scalar(self, name: str) -> np.ndarray:
        return np.fromiter((j.scalars[name] for j in self.jobs), float, self.count)

    def sum(self, rows: np.ndarray) -> np.ndarray:
        """Per holder: ``Σ`` of a row vector over the holder's rows."""
        return np.bincount(self.seg, weights=rows, minlength=self.count)

    def linear(self, limit: LinearLimit) -> tuple[np.ndarray, np.ndarray]:
        """``a`` per row and ``d`` per holder of ``Σ a_i·φ_i ≥ d`` (module doc)."""
        zero = np.zeros(len(self.seg))
        g = zero if limit.x_plus is None else self.vector(limit.x_plus)
        c = zero if limit.u is None else self.vector(limit.u)
        w = zero if limit.abs_x_plus is None else self.vector(limit.abs_x_plus)
        a = (g + c) * self.x + w * self.held
        d = self.sum(g * self.x + w * self.held) - self.scalar(limit.bound)
        return a, d

    def fractions(self, a: np.ndarray, lam: np.ndarray) -> np.ndarray:
        """``φ_i(λ) = clip((λ·a_i − p_i)/(1.5·q_i), 0, 1)²``, 0 on empty rows."""
        z = np.divide(lam * a - self.p, 1.5 * self.q, out=np.zeros_like(a), where=self.q > 0)
        return np.clip(z, 0.0, 1.0) ** 2

    def one_limit(self, a: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The optimal fractions under ``Σ a·φ ≥ d`` alone, and which holders can meet it."""
        rising = (a > 0) & (self.q > 0)
        capacity = self.sum(np.where(rising, a, 0.0))
        top = np.zeros(self.count)
        with np.errstate(divide="ignore", invalid="ignore"):
            ends = np.where(rising, (self.p + 1.5 * self.q) / a, 0.0)
        np.maximum.at(top, self.seg, ends)
        needed = d > 0
        meets = ~needed | (capacity >= d)
        lo, hi = np.zeros(self.count), np.where(needed & meets, top, 0.0)
        for _ in range(STEPS):
            mid = 0.5 * (lo + hi)
            if not np.any((mid > lo) & (mid < hi)):  # every bracket is down to adjacent floats
                break
            enough = self.sum(a * self.fractions(a, mid[self.seg])) >= d
            lo, hi = np.where(enough, lo, mid), np.where(enough, mid, hi)
        return self.fractions(a, hi[self.seg]), meets


def solve(rules: Sequence[RuleBase], jobs: Sequence[Job]) -> list[Outcome | None]:
    """Each job's outcome where it has a closed form (module doc), None where the conic solver
    must decide."""
    from estimator.solve import DUST, Outcome  # noqa: PLC0415 (solve imports this module)

    limits = limits_of(rules)
    if limits is None or not jobs:
        return [None] * len(jobs)
    book = _Book(jobs)
    forms = [book.linear(limit) for limit in limits]
    chosen = np.full(book.count, -1)
    phi = np.zeros(len(book.seg))
    for j, (a, d) in enumerate(forms):
        open_ = chosen < 0
        if not open_.any():
            break
        trial, meets = book.one_limit(a, d)
        ok = open_ & meets & book.convex
        for b, e in forms:
            ok &= e - book.sum(b * trial) <= FEASIBLE * book.scale
        chosen[ok] = j
        take = ok[book.seg]
        phi[take] = trial[take]
    u = -phi * book.x
    u[np.abs(u) < DUST * book.scale[book.seg]] = 0.0
    gaps = np.array([d - book.sum(a * phi) for a, d in forms])  # limit − lhs, per holder
    tight = gaps >= -TIGHT * book.scale
    names = [limit.name for limit in limits]
    ends = np.cumsum(book.lengths)
    out: list[Outcome | None] = []
    for h, end in enumerate(ends):
        if chosen[h] < 0:
            out.append(None)
            continue
        binding = sorted(n for n, t in zip(names, tight[:, h], strict=True) if t)
        out.append(Outcome(u[end - book.lengths[h] : end].copy(), True, STATUS, binding))
    return out

"""The solver floor: vol_target min-cost solves written straight in Clarabel's API.

A benchmark reference for :mod:`estimator.solve`, written apart from it: no cvxpy, no padding,
no parameters — per holder the smallest cone program of the same problem, built in advance
(:func:`prepare`, not timed), then one ``clarabel.DefaultSolver(P, q, A, b, cones,
settings).solve()`` each (:func:`solve`, timed). The gap between the two is what the
production path pays above the interior-point solve itself.

The problem (:mod:`estimator.solve`, rule :mod:`rules.vol_target`). A holder with exposures
``x`` (currency), equity ``E``, half-spreads ``h``, impact coefficients ``β``, factor rows
``F`` (k, n) and specific vols ``s`` sells the fraction ``φ_i ∈ [0, 1]`` of each position,
trades ``u = −x∘φ``, post-trade book ``x⁺ = x∘(1 − φ)``::

    minimise    Σ_i h_i·|x_i|·φ_i + β_i·(|x_i|·φ_i)^{3/2}
    subject to  ‖(F x⁺, s∘x⁺)‖₂ ≤ b          (b = τ·E at the level, from the round)
                Σ_i |x_i|·(1 − φ_i) ≤ γ·E    (only with a gross cap)
                0 ≤ φ ≤ 1

Scaled as production scales it: currency by ``S = max(Σ|x|, |E|)`` (``x̂ = x/S``, ``a = |x̂|``,
``b̂ = b/S``, ``Ĝ = γE/S``, impact ``β̂ = β·√S``) and cost by the dearest full exit
``c = max_i(h_i·a_i + β̂_i·a_i^{3/2})``. Positions with ``x_i = 0`` trade nothing whatever
``φ_i`` is and are left out, so ``m ≤ n`` positions enter. With ``t_i`` the epigraph of the
impact cost the program has exactly ``2m`` variables ``z = (φ, t)``::

    minimise    (1/c)·Σ_i (h_i·a_i·φ_i + β̂_i·t_i)
    subject to  φ ≥ 0,  1 − φ ≥ 0                              NonnegativeConeT(2m)
                aᵀφ − (Σa − Ĝ) ≥ 0          (gross cap only)    NonnegativeConeT(1)
                (b̂, F(x̂ − x̂∘φ), s∘(x̂ − x̂∘φ)) ∈ SOC            SecondOrderConeT(1 + k + m)
                (t_i, 1, a_i·φ_i) ∈ K_pow(2/3),  i = 1..m        PowerConeT(2/3) × m

where ``K_pow(α) = {(p, q, r): p^α·q^{1−α} ≥ |r|, p, q ≥ 0}``, so ``t_i^{2/3} ≥ a_i·φ_i``, that is
``t_i ≥ (a_i·φ_i)^{3/2}``. In Clarabel's form ``A·z + s = b, s ∈ K``, ``P = 0``; each cone's
rows are ``s = b − A·z``: for the SOC ``b = (b̂, F x̂, s∘x̂)`` and ``A = (0; F·diag(x̂);
diag(s∘x̂))``; for the i-th power cone ``b = (0, 1, 0)``, ``A = (−e_{t_i}; 0; −a_i·e_{φ_i})``.
Rows: ``2m (+1) + 1 + k + m + 3m``; at 50 positions and 6 factors, 100 variables and 308 rows.

Production, by comparison, compiles through cvxpy: ``φ, t, u, x⁺, |x⁺|`` at the padded size
and the equalities that tie them, and per holder binds parameters, forms ``A`` and ``b`` by two
sparse products, solves, reads the variables back and checks which constraints bind.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import clarabel
import numpy as np
import scipy.sparse as sp

from estimator.bench.measure import min_cost_batches
from estimator.errors import RunError
from estimator.solve import SOLVER_DEFAULTS, Job
from rules import Book, RuleBase, Vec, VolTarget

#: The synthetic mandate whose only rule is vol_target (10% ±5%, gross cap 3×).
VT = "vt"
#: The impact epigraph's power cone: ``t^{2/3}·1^{1/3} ≥ a·φ``.
ALPHA = 2 / 3
#: Clarabel statuses whose solution is kept.
_SOLVED = ("Solved", "AlmostSolved")


@dataclass(frozen=True)
class FloorProblem:
    """One holder's cone program (``P, q, A, b, cones``) and how to read trades from it."""

    P: sp.csc_matrix
    q: np.ndarray
    A: sp.csc_matrix
    b: np.ndarray
    cones: list[clarabel.NonnegativeConeT | clarabel.SecondOrderConeT | clarabel.PowerConeT]
    x: np.ndarray  # exposures in currency, all n positions
    live: np.ndarray  # indices of the m positions in the program (x_i ≠ 0)


def vol_target_jobs(n_holders: int, seed: int = 11) -> tuple[list[RuleBase], list[Job]]:
    """The rules and min-cost jobs of the ``vt`` holders of a generated book of ``n_holders``
    (about one in nine is ``vt``), as the production round makes them after the synthetic
    crash: :func:`estimator.rounds.evaluate_round` at min-cost execution, with a cache that
    records what it is asked to solve."""
    _, batches = min_cost_batches(n_holders, seed, mandate=VT)
    if len(batches) != 1:
        raise RunError(f"expected one batch of vol_target solves, got {len(batches)}")
    return batches[0]


def prepare(rules: Sequence[RuleBase], jobs: Sequence[Job]) -> list[FloorProblem]:
    """Each job's cone program (see the module doc); ``rules`` must be one ``vol_target``."""
    if len(rules) != 1 or not isinstance(rules[0], VolTarget):
        raise RunError(f"the floor solves vol_target alone, not {[r.kind for r in rules]}")
    return [_program(job, rules[0]) for job in jobs]


def _program(job: Job, rule: VolTarget) -> FloorProblem:
    x_all = np.asarray(job.vectors[Vec.X0], dtype=float)
    live = np.flatnonzero(x_all != 0)
    scale = max(float(np.abs(x_all).sum()), abs(job.scalars[Book.EQUITY]), 1e-12)
    x = x_all[live] / scale
    a = np.abs(x)
    m = len(live)
    h = job.vectors["half_spread"][live]
    beta = job.vectors["impact"][live] * math.sqrt(scale)
    c = float(np.max(h * a + beta * a**1.5, initial=0.0)) or 1.0
    F = job.risk_rows[live].T  # (k, m)
    s = job.vectors[Vec.RISK_SPECIFIC][live]
    k = F.shape[0]
    eye, zero = sp.identity(m, format="csc"), sp.csc_matrix((m, m))

    blocks = [[-eye, zero], [eye, zero]]  # φ ≥ 0, 1 − φ ≥ 0
    rhs = [np.zeros(m), np.ones(m)]
    nonneg = 2 * m
    if rule.gross_cap is not None:  # aᵀφ − (Σa − Ĝ) ≥ 0
        cap = job.scalars[f"{rule.kind}.gross_bound"] / scale
        blocks.append([sp.csc_matrix(-a[None, :]), sp.csc_matrix((1, m))])
        rhs.append(np.array([cap - a.sum()]))
        nonneg += 1
    # (b̂, F x⁺, s∘x⁺) ∈ SOC with x⁺ = x̂ − diag(x̂)·φ
    blocks.append([sp.csc_matrix((1, m)), sp.csc_matrix((1, m))])
    blocks.append([sp.csc_matrix(F * x[None, :]), sp.csc_matrix((k, m))])
    blocks.append([sp.diags(s * x, format="csc"), zero])
    rhs += [np.array([job.scalars[rule.bound_name] / scale]), F @ x, s * x]
    # (t_i, 1, a_i φ_i) ∈ K_pow(2/3): rows interleaved per position
    pow_phi = sp.csc_matrix((-a, (3 * np.arange(m) + 2, np.arange(m))), shape=(3 * m, m))
    pow_t = sp.csc_matrix((-np.ones(m), (3 * np.arange(m), np.arange(m))), shape=(3 * m, m))
    blocks.append([pow_phi, pow_t])
    rhs.append(np.tile([0.0, 1.0, 0.0], m))

    A = sp.csc_matrix(sp.bmat(blocks, format="csc"))
    A.eliminate_zeros()
    cones = [
        clarabel.NonnegativeConeT(nonneg),
        clarabel.SecondOrderConeT(1 + k + m),
        *(clarabel.PowerConeT(ALPHA) for _ in range(m)),
    ]
    return FloorProblem(
        P=sp.csc_matrix((2 * m, 2 * m)),
        q=np.concatenate([h * a / c, beta / c]),
        A=A,
        b=np.concatenate(rhs),
        cones=cones,
        x=x_all,
        live=live,
    )


def settings(options: Mapping[str, float] | None = None) -> clarabel.DefaultSettings:
    """Clarabel settings, quiet: production's (:data:`estimator.solve.SOLVER_DEFAULTS`) by
    default, Clarabel's own defaults with ``options={}``."""
    chosen = clarabel.DefaultSettings()
    chosen.verbose = False
    for name, value in (SOLVER_DEFAULTS["CLARABEL"] if options is None else options).items():
        setattr(chosen, name, value)
    return chosen


def solve(
    problems: Sequence[FloorProblem], options: Mapping[str, float] | None = None
) -> list[np.ndarray]:
    """Trades ``u = −x∘φ`` (currency, all n positions) of each problem, one Clarabel solve
    each; ``options`` as in :func:`settings`. Raises :class:`RunError` on an unsolved holder
    (a floor that drops holders would time less work than it claims)."""
    chosen = settings(options)
    trades = []
    for i, pr in enumerate(problems):
        result = clarabel.DefaultSolver(pr.P, pr.q, pr.A, pr.b, pr.cones, chosen).solve()
        if str(result.status) not in _SOLVED:
            raise RunError(f"floor problem {i} ended {result.status}")
        u = np.zeros(len(pr.x))
        u[pr.live] = -pr.x[pr.live] * np.asarray(result.x)[: len(pr.live)]
        trades.append(u)
    return trades

"""Minimal-cost forced trades with cvxpy: one compiled problem per shape, re-solved per holder.

For a holder with exposures ``x`` the problem is::

    minimise    Σ_i h_i·|u_i| + β_i·|u_i|^{3/2}
    subject to  x⁺ = x + u,    u between −x and 0 (sell down longs, buy back shorts;
                                              rules that buy also add to held positions),
                every rule's constraints (triggered rules at their restore level,
                the others at their trigger level)

with ``h_i`` the half-spread (bps / 10⁴) and ``β_i = κ·σ_d,i / √ADV_i`` the square-root-law
impact coefficient (``σ_d = σ / √252``, floored at 10⁻⁴ so the objective stays strictly convex;
impact cost per unit traded ``κ·σ_d·√(|u|/ADV)``), both given per position by
:class:`estimator.rounds.min_cost.CostModel`. Strict convexity makes the optimal trades
unique, so per-asset flows do not depend on the solver.

Conic form. De-risking trades only reduce positions, so ``u = −φ∘x`` with ``φ ∈ [0, 1]`` the
fraction of each position sold, ``|u_i| = φ_i·|x_i|``. Rules that buy (``rule.buys``, e.g.
rebalancing) add ``w ≥ 0``, the value bought: ``u = −φ∘x + sign(x)∘w`` and
``|u_i| = φ_i·|x_i| + w_i`` at the optimum (selling and buying the same asset only adds cost);
purchases go into assets the holder already holds. Purchases are values, not fractions of the
position: a rebalancing fund may have to buy hundreds of times a small holding, and as a
fraction that would put numbers of order 10³ in the cone beside costs of order 10⁻⁶, which the
interior point method solves only to reduced accuracy. A long position is never sold through
zero (``φ ≤ 1``: no rule needs a short where there was a long); a short may be bought back into
a long (``φ > 1``: a net short class rebalanced to a long target turns its positions over)
unless a rule's convex form needs fixed signs (then ``φ ≤ 1`` everywhere). Where no sign can
change, ``|x⁺|`` is written ``σ∘x⁺`` with ``σ = sign(x)`` (:attr:`ProblemSpace.abs_x_plus`).
With ``v = φ∘|x| + w`` the value traded the cost is ``h·v + β·t`` with ``t_i ≥ v_i^{3/2}``,
written exactly as the power cone ``t_i^{2/3}·1^{1/3} ≥ v_i``. Currency is divided by a
per-holder scale ``S = max(Σ|x|, |E|)`` (so ``β`` becomes ``β·√S``) and the objective by
``c = max_i(h_i·|x_i| + β_i·|x_i|^{3/2})``, the dearest full exit, so every number the solver
sees is of order one. Slots without a position (padding, zero exposures) move nothing whatever
``φ`` and ``w`` are: ``φ`` stays within its bounds and ``w`` gets the cost ``1·t``, which pins it
at zero.

Compile once, re-solve many: a shape is (rule structure, padded size n); all numbers enter as
cvxpy Parameters (DPP). With Clarabel the compiled cone program is re-solved directly
(:class:`~estimator.program.ClarabelProgram`: two sparse products and a data update per holder);
other solvers go through ``Problem.solve``. Large batches are solved on a Dask distributed
cluster — a local one started on first need, or an existing one by its scheduler's address —
each worker with its own compiled problems (:class:`ProblemCache`).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from estimator.errors import RunError
from rules import ProblemSpace, RuleBase, Vec

if TYPE_CHECKING:
    import cvxpy as cp
    from distributed import Client, LocalCluster

    from estimator.program import ClarabelProgram

DEFAULT_SOLVER = "CLARABEL"
#: Clarabel is asked for a duality gap and residuals of 10⁻⁹ (its defaults are 10⁻⁸) with
#: iterative refinement of each KKT solve, which puts trades within about 10⁻⁶ of the book of
#: other accurate solvers. A solve that stalls short of that ends ``optimal_inaccurate`` (kept:
#: the estimator re-checks every rule on the result); one that fails outright is retried without
#: equilibration (:mod:`estimator.program`), then at the solver's own defaults, then by
#: :data:`FALLBACK_SOLVER`.
SOLVER_DEFAULTS: dict[str, dict[str, float]] = {
    "CLARABEL": {
        "tol_gap_abs": 1e-9,
        "tol_gap_rel": 1e-9,
        "tol_feas": 1e-9,
        "iterative_refinement_reltol": 1e-15,
        "iterative_refinement_abstol": 1e-15,
    },
}
#: The last resort when Clarabel stalls (books whose costs span many orders of magnitude): SCS,
#: a first-order conic solver, at residuals of 10⁻⁸.
FALLBACK_SOLVER = "SCS"
FALLBACK_OPTIONS: dict[str, float] = {"eps_abs": 1e-8, "eps_rel": 1e-8, "max_iters": 200_000}
#: 1 for a long position (or an empty slot), 0 for a short: where shorts may turn long, only
#: longs are held to φ ≤ 1 (see the module doc).
LONG = "is_long"
#: Trades smaller than this share of the book are solver residue and set to zero.
DUST = 1e-9


def padded_size(n: int) -> int:
    """Few shapes, little padding (every padded slot is one more cone for the solver): 4 or 8
    for small books, else the next multiple of 8."""
    return 4 if n <= 4 else -(-n // 8) * 8


@dataclass
class Outcome:
    u: np.ndarray  # trades in currency, length n (unpadded)
    ok: bool
    status: str
    binding: list[str]


class CompiledProblem:
    """A problem shape with named parameters; :meth:`solve` binds values and solves."""

    def __init__(
        self,
        rules: Sequence[RuleBase],
        n: int,
        k: int,
        solver: str = DEFAULT_SOLVER,
        options: Mapping[str, float] | None = None,
        *,
        direct: bool = True,
    ) -> None:
        import cvxpy as cp  # noqa: PLC0415 (imported when a problem is built)

        from estimator.program import ClarabelProgram, direct_unavailable  # noqa: PLC0415

        buys = any(rule.buys for rule in rules)
        signs_fixed = not buys or any(rule.fixed_signs for rule in rules)
        p = ProblemSpace(n, k, signs_fixed=signs_fixed)
        x0 = p.vec(Vec.X0)
        spread, impact = p.vec("spread_cost"), p.vec("impact_cost", nonneg=True)
        held = p.vec("held", nonneg=True)
        buy_spread = p.vec("buy_spread_cost", nonneg=True)
        phi = cp.Variable(n, name="fraction_sold")
        t = cp.Variable(n, name="impact_epigraph")
        self.constraints: dict[str, cp.Constraint] = {}
        for rule in rules:
            self.constraints.update(rule.constraints(p))
        base = [phi >= 0]
        if signs_fixed:
            base += [phi <= 1]  # never through zero
        else:  # longs never through zero (a row 0 ≤ 1 for a short: it may turn long)
            base += [cp.multiply(p.vec(LONG), phi) <= 1]
        sold = cp.multiply(held, phi)
        if buys:  # purchases too: u = −φ∘x + σ∘w, traded |x|∘φ + w
            bought = cp.Variable(n, name="value_bought")
            traded = sold + bought
            base += [
                bought >= 0,
                p.u == cp.multiply(p.vec(Vec.SIGN), bought) - cp.multiply(x0, phi),
            ]
        else:
            traded = sold
            base += [p.u == -cp.multiply(x0, phi)]
        base += [
            p.x_plus == x0 + p.u,
            cp.PowCone3D(t, np.ones(n), traded, 2 / 3),  # t ≥ (traded)^{3/2}
        ]
        cost = spread @ phi + impact @ t + (buy_spread @ bought if buys else 0)
        rows = base + list(self.constraints.values())
        self.problem = cp.Problem(cp.Minimize(cost), rows + p.ties)  # ties: once all is read
        if not self.problem.is_dcp(dpp=True):
            raise RunError(
                f"problem for {[r.kind for r in rules]} is not DPP; it would recompile per holder"
            )
        self.space = p
        self.program: ClarabelProgram | None = None
        if direct and solver.upper() == DEFAULT_SOLVER and direct_unavailable() is None:
            program = ClarabelProgram(self.problem, options or {})
            if {v.id for v in self.problem.variables()} <= program.readable:
                self.program = program

    def solve(
        self, values: Mapping[str, np.ndarray | float], n: int, solver: str, **opts
    ) -> Outcome:
        """Bind ``values`` and solve; if the tuned ``opts`` fail, retry at the solver's defaults.

        With Clarabel the compiled cone program is re-solved directly
        (:class:`~estimator.program.ClarabelProgram`); other solvers go through cvxpy.
        """
        for name, param in self.space.params.items():
            param.save_value(np.asarray(values[name], dtype=float))  # shapes are ours
        if self.program is not None and solver.upper() == DEFAULT_SOLVER:
            status, z = self.program.solve({p.id: p.value for p in self.space.params.values()})
            if z is not None:
                self.program.load(self.problem, z)
                return self._outcome(n, status)
        else:
            status = self._run(solver, opts)
        if status not in _SOLVED and opts:
            status = self._run(solver, {})
            if status in _SOLVED:
                return self._outcome(n, f"{status} (solver defaults)")
        if status not in _SOLVED and solver.upper() == DEFAULT_SOLVER:
            fallback = self._run(FALLBACK_SOLVER, FALLBACK_OPTIONS)
            if fallback in _SOLVED and self.space.u.value is not None:
                return self._outcome(n, f"{fallback} ({FALLBACK_SOLVER})")
        if status not in _SOLVED or self.space.u.value is None:
            return Outcome(np.zeros(n), False, status, [])
        return self._outcome(n, status)

    def _outcome(self, n: int, status: str) -> Outcome:
        u = np.asarray(self.space.u.value)[:n]
        from cvxpy.constraints.zero import Equality  # noqa: PLC0415

        binding = sorted(
            name
            for name, c in self.constraints.items()
            if not isinstance(c, Equality) and _is_tight(c)  # an identity is not a limit
        )
        return Outcome(u, True, status, binding)

    def _run(self, solver: str, opts: Mapping[str, float]) -> str:
        import cvxpy as cp  # noqa: PLC0415

        try:
            with warnings.catch_warnings():  # an inaccurate solve is reported in its status
                warnings.filterwarnings("ignore", "Solution may be inaccurate", UserWarning)
                # no warm start: a solve must not depend on the holder solved before it
                self.problem.solve(solver=solver, warm_start=False, **opts)
        except cp.error.SolverError as exc:
            return f"solver error: {exc}"
        return str(self.problem.status)


#: cvxpy's statuses of a solved problem (``cvxpy.OPTIMAL``, ``cvxpy.OPTIMAL_INACCURATE``).
_SOLVED = ("optimal", "optimal_inaccurate")


def _is_tight(c: cp.Constraint, tol: float = 1e-6) -> bool:
    residual = c.expr.value
    return residual is not None and float(np.max(residual)) >= -tol


@dataclass
class Job:
    """One holder's solve: scalars and per-position vectors in currency, risk rows (n, k)."""

    scalars: Mapping[str, float]
    vectors: Mapping[str, np.ndarray]
    risk_rows: np.ndarray


#: A batch of fewer solves than this per worker is solved in this process: a worker imports the
#: solver stack and compiles its own problems on its first task (about a second), and a local
#: cluster takes about half a second to start, so below it one process is faster.
PARALLEL_MIN_PER_WORKER = 400
#: Seconds to wait for a cluster's scheduler or workers before giving up.
START_TIMEOUT = 20


class ProblemCache:
    """Compiled problems by (rule shapes, n, k), and the solves of many holders.

    ``workers > 1`` solves large batches on a Dask distributed cluster of that many worker
    processes with one thread each (cvxpy is not thread-safe), started on first need and
    closed with the cache; ``scheduler`` (an address such as ``tcp://host:8786``) uses an
    existing cluster instead, with as many workers as it has, for every batch. Each worker
    compiles its own problems once; a batch goes to a local cluster from ``parallel_min``
    solves per worker (default :data:`PARALLEL_MIN_PER_WORKER`). With Clarabel a compiled
    problem is re-solved directly (``direct``); ``direct=False`` goes through cvxpy's
    ``Problem.solve`` every time. Holders whose rules are all linear limits are solved in
    closed form (:mod:`estimator.closed_form`; ``closed_form=False`` sends them to the conic
    solver too). ``reuse=False``
    compiles a fresh problem for every holder and solves it through cvxpy: the naive baseline of
    ``make bench``.
    """

    def __init__(
        self,
        k: int,
        solver: str = DEFAULT_SOLVER,
        *,
        workers: int = 1,
        scheduler: str | None = None,
        parallel_min: int | None = None,
        reuse: bool = True,
        direct: bool = True,
        closed_form: bool = True,
        **options: float,
    ) -> None:
        self.k = k
        # a cluster of one's own is there to be used: every batch goes to it
        self.parallel_min = 0 if scheduler is not None and parallel_min is None else parallel_min
        self.solver = solver
        self.workers = max(1, workers)
        self.scheduler = scheduler
        self.reuse = reuse
        self.closed_form = closed_form and reuse  # the naive baseline solves every holder
        self.closed_form_solves = 0
        self._direct = direct and reuse  # the naive baseline solves through cvxpy
        self.options = {**SOLVER_DEFAULTS.get(solver.upper(), {}), **options}
        self._problems: dict[tuple, CompiledProblem] = {}
        self._shapes: set[tuple] = set()
        self._client: Client | None = None
        self._cluster: LocalCluster | None = None
        self._used = 1

    @property
    def fallback(self) -> str | None:
        """Why compiled problems are not re-solved directly although asked to (the installed
        cvxpy lacks what that needs: :func:`~estimator.program.direct_unavailable`), or None —
        asked only once a problem is solved: a run that solves nothing needs no cvxpy."""
        if not (self._direct and self._shapes and self.solver.upper() == DEFAULT_SOLVER):
            return None
        from estimator.program import direct_unavailable  # noqa: PLC0415

        return direct_unavailable()

    @property
    def direct(self) -> bool:
        """Whether compiled problems are re-solved directly (:class:`ClarabelProgram`)."""
        return self._direct and self.fallback is None

    @staticmethod
    def _key(rules: Sequence[RuleBase], n: int) -> tuple:
        return (tuple(sorted(r.shape_key for r in rules)), padded_size(n))

    def get(self, rules: Sequence[RuleBase], n: int) -> CompiledProblem:
        """The compiled problem for ``rules`` at padded size ``n``."""
        key = self._key(rules, n)
        if key not in self._problems or not self.reuse:
            self._problems[key] = CompiledProblem(
                sorted(rules, key=lambda r: r.shape_key),
                n,
                self.k,
                self.solver,
                self.options,
                direct=self.direct,
            )
        return self._problems[key]

    @property
    def workers_used(self) -> int:
        """Worker processes that solved: the cluster's once a batch was large enough to use it
        (:data:`PARALLEL_MIN_PER_WORKER` solves per worker), else this process alone."""
        return self._used

    @property
    def compiled(self) -> int:
        """Distinct problem shapes solved: each is compiled once per process that solves it
        (and once per holder with ``reuse=False``)."""
        return len(self._shapes)

    @property
    def _distributed(self) -> bool:
        return self.workers > 1 or self.scheduler is not None

    def solve_many(self, rules: Sequence[RuleBase], jobs: Sequence[Job]) -> list[Outcome]:
        """Outcomes of ``jobs`` in order; on the cluster when the batch is large."""
        return self.solve_batches([(rules, jobs)])[0]

    def solve_batches(
        self, batches: Sequence[tuple[Sequence[RuleBase], Sequence[Job]]]
    ) -> list[list[Outcome]]:
        """Outcomes of every batch's jobs, batch by batch and in order. Holders whose rules are
        all linear limits are solved in closed form (:mod:`estimator.closed_form`, unless
        ``closed_form=False``); the rest by the conic solver: all of them on the cluster when
        there are :data:`PARALLEL_MIN_PER_WORKER` solves per worker or more, each in this
        process otherwise."""
        if not self.closed_form:
            return self._conic(batches)
        from estimator import closed_form  # noqa: PLC0415

        done = [closed_form.solve(rules, jobs) for rules, jobs in batches]
        rest = [
            (rules, [j for j, out in zip(jobs, outs, strict=True) if out is None])
            for (rules, jobs), outs in zip(batches, done, strict=True)
        ]
        self.closed_form_solves += sum(o is not None for outs in done for o in outs)
        solved = iter(self._conic(rest))
        merged = []
        for outs in done:
            conic = iter(next(solved))
            merged.append([out if out is not None else next(conic) for out in outs])
        return merged

    def _conic(
        self, batches: Sequence[tuple[Sequence[RuleBase], Sequence[Job]]]
    ) -> list[list[Outcome]]:
        for rules, jobs in batches:
            self._shapes.update(self._key(rules, len(j.vectors[Vec.X0])) for j in jobs)
        total = sum(len(jobs) for _, jobs in batches)
        if total == 0:
            return [[] for _ in batches]
        least = PARALLEL_MIN_PER_WORKER if self.parallel_min is None else self.parallel_min
        if not self._distributed or total < least * self.workers:
            return [
                [self.solve_holder(rules, j.scalars, j.vectors, j.risk_rows) for j in jobs]
                for rules, jobs in batches
            ]
        client = self.start()
        size = math.ceil(total / (4 * self._used))
        spec = (self.k, self.solver, self.options, self.reuse, self.direct)
        chunks, owners = [], []
        for b, (rules, jobs) in enumerate(batches):
            for i in range(0, len(jobs), size):
                chunks.append((spec, list(rules), jobs[i : i + size]))
                owners.append(b)
        from distributed import KilledWorker  # noqa: PLC0415 (imported with the cluster)

        try:
            # the jobs go to the workers as data, not inside the task graph
            parts = client.gather(client.map(_solve_chunk, client.scatter(chunks), pure=False))
        except (KilledWorker, OSError, TimeoutError) as exc:  # a worker lost, a cluster gone
            self.close()
            raise RunError(f"the solver cluster failed ({type(exc).__name__}: {exc})") from exc
        out: list[list[Outcome]] = [[] for _ in batches]
        for b, part in zip(owners, parts, strict=True):
            out[b].extend(part)
        return out

    def start(self) -> Client:
        """Start the local cluster (or connect to ``scheduler``) now rather than at the first
        large batch; a long-lived cache pays this once."""
        if self._client is None:
            from distributed import Client, LocalCluster  # noqa: PLC0415 (a large import)

            try:
                if self.scheduler is not None:
                    self._client = Client(
                        self.scheduler, timeout=START_TIMEOUT, set_as_default=False
                    )
                    self._used = max(1, len(self._client.scheduler_info()["workers"]))
                else:
                    self._cluster = LocalCluster(
                        n_workers=self.workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=":0",  # any free port: runs side by side never clash
                        silence_logs=logging.ERROR,
                    )
                    self._client = Client(self._cluster, set_as_default=False)
                    self._client.wait_for_workers(self.workers, timeout=START_TIMEOUT)
                    self._used = self.workers
            except (OSError, TimeoutError) as exc:
                self.close()
                where = self.scheduler or f"a local cluster of {self.workers} workers"
                raise RunError(f"could not start solving on {where} ({exc})") from exc
        return self._client

    def close(self) -> None:
        """Close the client, and the local cluster if this cache started it."""
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        try:
            if client is not None:
                client.close()
        finally:
            if cluster is not None:
                cluster.close()

    def __enter__(self) -> ProblemCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        x0 = values[Vec.X0] = values[Vec.X0] / scale
        held = np.abs(x0)
        values[Vec.SIGN] = np.sign(x0)
        values[LONG] = (x0 >= 0).astype(float)
        values["held"] = held
        spread = values.pop("half_spread")
        impact = values.pop("impact") * math.sqrt(scale)
        cost_scale = float(np.max(spread * held + impact * held**1.5, initial=0.0)) or 1.0
        idle = held == 0
        values["spread_cost"] = spread * held / cost_scale
        values["buy_spread_cost"] = spread / cost_scale
        values["impact_cost"] = np.where(idle, 1.0, impact / cost_scale)
        F = np.zeros((self.k, size))
        F[:, :n] = risk_rows.T
        values[Vec.RISK_FACTOR] = F
        for name, v in scalars.items():
            values[name] = v / scale
        problem = self.get(rules, size)
        out = problem.solve(values, n, self.solver, **self.options)
        out.u = out.u * scale
        out.u[np.abs(out.u) < DUST * scale] = 0.0
        return out


_WORKER_CACHES: dict[tuple, ProblemCache] = {}


def _solve_chunk(
    args: tuple[tuple[int, str, dict, bool, bool], list[RuleBase], Sequence[Job]],
) -> list[Outcome]:
    """On a worker: solve a chunk with the worker process's own compiled problems."""
    (k, solver, options, reuse, direct), rules, jobs = args
    key = (k, solver, tuple(sorted(options.items())), reuse, direct)
    if key not in _WORKER_CACHES:
        _WORKER_CACHES[key] = ProblemCache(k, solver, reuse=reuse, direct=direct, **options)
    cache = _WORKER_CACHES[key]
    return [cache.solve_holder(rules, j.scalars, j.vectors, j.risk_rows) for j in jobs]

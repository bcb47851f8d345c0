"""The benchmark's measurements, each beside its baseline in the same run (:class:`Figure`).

Where a fast path and its baseline compute the same thing (min-cost solves against a plain
cvxpy problem, against the floor and across worker processes; a pro-rata round against its
closed form) their results are compared before the figure is kept: a difference raises
:class:`MismatchError` — the quick benchmark in the test suite runs them at small sizes for
that reason. The other figures (run end to end, a cascade round, min-cost at scale, survival)
set a larger job beside a part of it, and are timed only.
"""

from __future__ import annotations

import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import polars as pl

from estimator import closed_form, risk, synthetic
from estimator.bench import sizes
from estimator.bench.figures import Figure
from estimator.errors import InputWarnings
from estimator.impact import Impact
from estimator.inputs import prepare
from estimator.mandates import Execution
from estimator.market import Market
from estimator.rounds import evaluate_round
from estimator.solve import Job, ProblemCache
from rules import RuleBase

POSITIONS = 100
SOLVE_POSITIONS = 50
KAPPA = 3.0  # strong impact, so that the cascade runs many rounds
#: Two formulations of one problem (the compiled cone program re-solved in Clarabel directly;
#: cvxpy's reduction with constants; the floor's minimal program) solved at the same
#: tolerances: a gap of 10⁻⁹ leaves trades a few 10⁻⁶ of a holder's gross from the exact
#: optimum where costs are nearly linear, so they agree to this share of its gross.
SOLVER_AGREEMENT = 1e-5


class MismatchError(AssertionError):
    """A fast path's results differ from its baseline's."""


def _best(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """(best seconds of ``repeats`` calls after one warm-up, the last result)."""
    result = fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def _pro_rata(market: Market) -> Market:
    mandates = {
        n: m.model_copy(update={"execution": Execution.PRO_RATA})
        for n, m in market.mandates.items()
    }
    return dataclasses.replace(market, mandates=mandates)


class _Coded(NamedTuple):
    """A market's shocked assets and holders after the synthetic crash, as ids and coded (as
    a run keeps them), its codes and its coded positions."""

    shocked: pl.DataFrame
    holders: pl.DataFrame
    codes: Any
    assets: pl.DataFrame  # coded
    coded_holders: pl.DataFrame
    positions: pl.DataFrame  # coded, in (holder, asset) order


def _coded(market: Market) -> _Coded:
    shocked, holders = sizes.prepared_inputs(market)
    codes, positions = market.coded
    return _Coded(shocked, holders, codes, codes.encode(shocked), codes.encode(holders), positions)


def startup(repeats: int = 7) -> list[Figure]:
    """``forced-flow --help`` and ``import estimator`` against a bare ``python -c pass``, run
    in turn ``repeats`` times each (medians)."""
    cli = str(Path(sys.executable).with_name("forced-flow"))
    commands = {
        "bare": [sys.executable, "-c", "pass"],
        "import": [sys.executable, "-c", "import estimator"],
        "help": [cli, "--help"],
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times[name].append(time.perf_counter() - started)
    bare = statistics.median(times["bare"])
    return [
        Figure(
            "start-up: forced-flow --help",
            statistics.median(times["help"]),
            "python -c pass",
            bare,
            max_excess=0.5,
        ),
        Figure(
            "start-up: import estimator",
            statistics.median(times["import"]),
            "python -c pass",
            bare,
            max_excess=0.5,
        ),
    ]


def round_throughput(n_holders: int, repeats: int) -> Figure:
    """``run`` end to end (scenario applied, coding, the round, every report written) against
    one pro-rata round of the same coded book alone."""
    from estimator.api import run  # noqa: PLC0415 (the command's own import, timed apart)

    market = _pro_rata(synthetic.market(n_holders, per_holder=POSITIONS))
    spec = synthetic.scenario(market)
    _, _, _, assets, holders, positions = _coded(market)

    def one() -> None:
        evaluate_round(
            assets, holders, positions, market.mandates, execution=Execution.PRO_RATA, coded=True
        )

    alone, _ = _best(one, repeats)

    def whole() -> None:
        fresh = dataclasses.replace(market)  # its codes made anew, as a fresh run makes them
        with tempfile.TemporaryDirectory() as out:
            run(spec, fresh).write(out)

    end_to_end, _ = _best(whole, max(1, repeats // 2))
    rows = positions.height
    return Figure(
        f"run end to end, {n_holders:,} × {POSITIONS}, pro-rata",
        end_to_end,
        "the round alone",
        alone,
        note=f"{rows / end_to_end / 1e6:.2f} M rows/s end to end, {rows / alone / 1e6:.2f} M "
        "rows/s for the round",
    )


def cascade_round(n_holders: int, max_rounds: int) -> Figure:
    """A round of a pro-rata cascade with square-root impact (prices moved, trades booked,
    books marked, losses attributed), against one evaluation of the same book."""
    from estimator.cascade import cascade  # noqa: PLC0415

    market = _pro_rata(synthetic.market(n_holders, per_holder=POSITIONS))
    shocked, holders, codes, encoded_assets, encoded_holders, positions = _coded(market)

    def one() -> None:
        evaluate_round(
            encoded_assets,
            encoded_holders,
            positions,
            market.mandates,
            execution=Execution.PRO_RATA,
            coded=True,
        )

    evaluation, _ = _best(one, 1)
    impact = Impact(models=[{"model": "sqrt", "kappa": KAPPA}], max_rounds=max_rounds)
    started = time.perf_counter()
    result = cascade(shocked, holders, positions, market.mandates, impact, codes=codes)
    seconds = time.perf_counter() - started
    rounds = result.rounds_traded + 1  # the last evaluation finds no one forced
    peak = sizes.peak_gb()
    return Figure(
        f"cascade round, {n_holders:,} × {POSITIONS}, square-root impact",
        seconds / rounds,
        "one evaluation",
        evaluation,
        max_ratio=1.5,
        note=f"{rounds} rounds in {seconds:.1f} s, peak {peak:.2f} GB",
    )


class _Recorder(ProblemCache):
    """A problem cache that keeps every batch of min-cost jobs it is given."""

    def __init__(self, k: int) -> None:
        super().__init__(k)
        self.batches: list[tuple[list[RuleBase], list[Job]]] = []

    def solve_batches(self, batches: Sequence[tuple[Sequence[RuleBase], Sequence[Job]]]) -> list:
        self.batches.extend((list(rules), list(jobs)) for rules, jobs in batches)
        return super().solve_batches(batches)


def min_cost_batches(
    n_holders: int, seed: int = 11, *, mandate: str | None = None
) -> tuple[int, list[tuple[list, list[Job]]]]:
    """(k, every batch of (rules, jobs) a min-cost round of a generated book solves), 50
    positions per holder, as the round makes them; with ``mandate``, its holders only."""
    market = synthetic.market(n_holders, per_holder=SOLVE_POSITIONS, seed=seed)
    shocked, holders = sizes.prepared_inputs(market)
    positions = market.positions
    if mandate is not None:
        holders = holders.filter(pl.col("mandate") == mandate)
        positions = positions.join(holders.select("holder_id"), on="holder_id", how="semi")
    k = len(risk.factor_columns(shocked))
    recorder = _Recorder(k)
    evaluate_round(
        shocked, holders, positions, market.mandates, execution=Execution.MIN_COST, cache=recorder
    )
    return k, recorder.batches


def min_cost_jobs(n_holders: int, seed: int = 11) -> tuple[int, list[tuple[list, Job]]]:
    """(k, every (rules, job) of :func:`min_cost_batches`)."""
    k, batches = min_cost_batches(n_holders, seed)
    return k, [(rules, job) for rules, jobs in batches for job in jobs]


def _solve_all(cache: ProblemCache, jobs: list[tuple[list, Job]]) -> list[np.ndarray]:
    return [cache.solve_holder(r, j.scalars, j.vectors, j.risk_rows).u for r, j in jobs]


def _agree(name: str, got: list[np.ndarray], want: list[np.ndarray], jobs: list, tol: float):
    """Trades within ``tol`` of each holder's gross, or :class:`MismatchError`."""
    worst = max(
        (
            float(np.max(np.abs(g - w), initial=0.0))
            / max(float(np.abs(j.vectors["x0"]).sum()), 1e-12)
            for g, w, (_, j) in zip(got, want, jobs, strict=True)
        ),
        default=0.0,
    )
    if not worst <= tol:  # NaN included
        raise MismatchError(f"{name}: trades differ by {worst:.2e} of a holder's gross (> {tol:g})")
    return worst


def naive_solves(n_holders: int, sample: int) -> Figure:
    """Min-cost solves with one compiled problem per shape re-solved, against a naive loop
    that builds a plain cvxpy problem for every holder (its parameters treated as constants:
    ``ignore_dpp``) — the same holders, their trades compared."""
    k, jobs = min_cost_jobs(n_holders)
    jobs = jobs[:sample]
    compiled = ProblemCache(k)
    fast, got = _best(lambda: _solve_all(compiled, jobs), 1)
    naive = ProblemCache(k, reuse=False, ignore_dpp=True)
    started = time.perf_counter()
    want = _solve_all(naive, jobs)
    slow = time.perf_counter() - started
    worst = _agree("compiled vs naive", got, want, jobs, SOLVER_AGREEMENT)
    name = f"min-cost solve, {SOLVE_POSITIONS} positions, compiled"
    return _per_holder(name, fast, "a plain cvxpy problem per holder", slow, jobs, worst)


def _per_holder(
    name: str,
    seconds: float,
    baseline: str,
    baseline_seconds: float,
    jobs: list,
    worst: float,
    max_ratio: float | None = None,
) -> Figure:
    """Milliseconds per holder of two solves of ``jobs``, their trades ``worst`` apart."""
    per = 1e3 / max(len(jobs), 1)
    return Figure(
        name,
        seconds * per,
        baseline,
        baseline_seconds * per,
        unit="ms",
        max_ratio=max_ratio,
        note=f"{len(jobs)} holders, trades within {worst:.1e} of gross",
    )


def survival_search(scenario: str = "march_2020") -> Figure:
    """The survival search on the census against one round of every holder at the whole
    scenario (its unit of work)."""
    from estimator import stack  # noqa: PLC0415
    from estimator.api import load_inputs  # noqa: PLC0415
    from estimator.survival import survival  # noqa: PLC0415

    started = time.perf_counter()
    result = survival(scenario)
    seconds = time.perf_counter() - started
    spec, _, market = load_inputs(scenario, None)
    points = market.holders.select("holder_id", multiple=pl.lit(1.0), cash=pl.lit(0.0))

    def one() -> None:
        big, scaled = stack.stacked(market, spec, points)
        shocked, holders = prepare(
            scaled, big, scaled.name, InputWarnings(), multiple=stack.MULTIPLE
        )
        evaluate_round(shocked, holders, big.positions, big.mandates, execution=Execution.PRO_RATA)

    one_round, _ = _best(one, 1)
    return Figure(
        f"survival {scenario}",
        seconds,
        "one round of every holder",
        one_round,
        max_value=10.0,
        note=f"{result.evaluations} rounds, {result.points:,} points",
    )


def workers(n_holders: int, processes: int) -> Figure:
    """The min-cost solves of a generated book's round on a local Dask cluster of
    ``processes`` workers (started before the clock; the round's batches sent to it at once, as
    a round sends them) against one process, outcomes compared."""
    k, batches = min_cost_batches(n_holders)
    one = ProblemCache(k, closed_form=False)  # the conic solves are what the workers share
    started = time.perf_counter()
    want = [o.u for part in one.solve_batches(batches) for o in part]
    alone = time.perf_counter() - started
    with ProblemCache(k, workers=processes, parallel_min=0, closed_form=False) as many:
        many.start()
        started = time.perf_counter()
        got = [o.u for part in many.solve_batches(batches) for o in part]
        parallel = time.perf_counter() - started
    flat = [(rules, job) for rules, jobs in batches for job in jobs]
    _agree(f"{processes} processes vs 1", got, want, flat, 0.0)
    per = 1e3 / max(len(flat), 1)
    return Figure(
        f"min-cost solves in {processes} processes",
        parallel * per,
        "one process",
        alone * per,
        unit="ms",
        max_ratio=1.0,
        note=f"{len(flat)} holders in {len(batches)} batches",
    )


def closed_form_solves(n_holders: int) -> Figure:
    """Min-cost solves of holders whose rules are linear limits (a leverage limit by exposure
    beside a margin requirement) in closed form, all at once (:mod:`estimator.closed_form`),
    against the conic solver on the same holders, trades compared."""
    k, batches = min_cost_batches(n_holders, mandate="hf")
    conic = ProblemCache(k, closed_form=False)
    base, want = _best(lambda: conic.solve_batches(batches), 1)
    closed = ProblemCache(k)
    fast, got = _best(lambda: closed.solve_batches(batches), 3)
    pairs = [(rules, job) for rules, jobs in batches for job in jobs]
    closed_count = sum(o.status == closed_form.STATUS for part in got for o in part)
    if closed_count != len(pairs):  # then the figure would time the conic solver
        raise MismatchError(f"closed form: {closed_count} of {len(pairs)} holders solved")
    flat = [[o.u for part in outs for o in part] for outs in (got, want)]
    worst = _agree("closed form vs conic", *flat, pairs, SOLVER_AGREEMENT)
    name = f"min-cost solve, leverage + margin, {SOLVE_POSITIONS} positions, closed form"
    return _per_holder(name, fast, "the conic solver", base, pairs, worst)


def floor_solves(n_holders: int) -> Figure:
    """The production solve of vol-target holders against the solver's floor: the minimal cone
    program of the same problem built for Clarabel directly (:mod:`estimator.bench.floor`),
    data prepared in advance; the same holders, trades compared."""
    from estimator.bench import floor  # noqa: PLC0415

    rules, jobs = floor.vol_target_jobs(n_holders)
    problems = floor.prepare(rules, jobs)
    base, want = _best(lambda: floor.solve(problems), 1)
    cache = ProblemCache(len(jobs[0].risk_rows[0]) if jobs else 0)
    pairs = [(rules, job) for job in jobs]
    fast, got = _best(lambda: _solve_all(cache, pairs), 1)
    worst = _agree("production vs floor", got, want, pairs, SOLVER_AGREEMENT)
    name = f"min-cost solve, vol_target, {SOLVE_POSITIONS} positions"
    floor_name = "Clarabel on the minimal cone program"
    return _per_holder(name, fast, floor_name, base, pairs, worst, max_ratio=1.3)


def prorata_round(n_holders: int, repeats: int) -> Figure:
    """A pro-rata round of vol-target, leverage and margin books against their closed form
    in numpy and scipy.sparse (:mod:`estimator.bench.prorata`), trades compared first."""
    from estimator.bench import prorata  # noqa: PLC0415

    market = prorata.bench_market(n_holders, per_holder=POSITIONS)
    baseline = prorata.prepared(market)
    _, _, codes, assets, coded_holders, positions = _coded(market)

    def one() -> Any:
        return evaluate_round(
            assets,
            coded_holders,
            positions,
            market.mandates,
            execution=Execution.PRO_RATA,
            coded=True,
        )

    fast, result = _best(one, repeats)
    base, want = _best(lambda: prorata.trades(baseline), repeats)
    got = result.decoded(codes).trades.select("holder_id", "asset_id", "trade_quantity")
    table = pl.DataFrame(
        {"holder_id": baseline.holder_id, "asset_id": baseline.asset_id, "want": want}
    ).join(got, on=["holder_id", "asset_id"], how="left")
    gross = baseline.quantity * np.take(baseline.unit, baseline.asset)
    scale = np.repeat(np.add.reduceat(np.abs(gross), baseline.indptr[:-1]), baseline.counts)
    gap = np.abs(table["trade_quantity"].fill_null(0.0).to_numpy() - table["want"].to_numpy())
    worst = float(np.max(gap * np.abs(np.take(baseline.unit, baseline.asset)) / scale))
    extra = got.join(table, on=["holder_id", "asset_id"], how="anti").height
    if not worst <= 1e-9 or extra:  # NaN included
        raise MismatchError(
            f"pro-rata round vs numpy: trades differ by {worst:.2e} of gross; {extra} trades "
            "the baseline does not make"
        )
    rows = positions.height
    return Figure(
        f"pro-rata round, {n_holders:,} × {POSITIONS}, vol_target/leverage/margin",
        fast,
        "numpy + scipy.sparse closed form",
        base,
        max_ratio=2.0,
        note=f"{rows / fast / 1e6:.1f} M rows/s against {rows / base / 1e6:.1f} M rows/s",
    )


def min_cost_round(n_holders: int, workers: int) -> Figure:
    """One round that honours every mandate's execution style — min-cost holders solved, on
    ``workers`` Dask workers started before the clock — against the same round all pro-rata;
    the 100k-holder figure extrapolated in proportion."""
    market = synthetic.market(n_holders, per_holder=POSITIONS)
    _, _, _, assets, holders, positions = _coded(market)
    k = len(risk.factor_columns(assets))

    def pro_rata() -> Any:
        return evaluate_round(
            assets, holders, positions, market.mandates, execution=Execution.PRO_RATA, coded=True
        )

    base, _ = _best(pro_rata, 1)
    with ProblemCache(k, workers=workers) as cache:
        if workers > 1:
            cache.start()
        started = time.perf_counter()
        result = evaluate_round(
            assets, holders, positions, market.mandates, cache=cache, coded=True
        )
        seconds = time.perf_counter() - started
        used = cache.workers_used
    solved = int(result.holders["solved"].fill_null(False).sum())
    scale = 100_000 / n_holders
    return Figure(
        f"round honouring min-cost, {n_holders:,} × {POSITIONS}, {used} worker(s)",
        seconds,
        "the same round pro-rata",
        base,
        note=f"{solved:,} solves, {1e3 * seconds / max(solved, 1):.1f} ms each; 100k × 100: "
        f"about {seconds * scale:.0f} s",
    )


def min_cost_cascade(n_holders: int, workers: int, max_rounds: int) -> Figure:
    """A cascade with square-root impact that honours every mandate's execution style, on
    ``workers`` Dask workers, against the same cascade pro-rata; 100k extrapolated."""
    from estimator.cascade import cascade  # noqa: PLC0415

    market = synthetic.market(n_holders, per_holder=POSITIONS)
    shocked, holders, codes, _, _, positions = _coded(market)
    k = len(risk.factor_columns(shocked))
    impact = Impact(models=[{"model": "sqrt", "kappa": KAPPA}], max_rounds=max_rounds)
    times, rounds = {}, {}
    for style in (Execution.PRO_RATA, None):
        with ProblemCache(k, workers=workers) as cache:
            if workers > 1 and style is None:
                cache.start()
            started = time.perf_counter()
            result = cascade(
                shocked,
                holders,
                positions,
                market.mandates,
                impact,
                execution=style,
                cache=cache,
                codes=codes,
            )
            times[style], rounds[style] = time.perf_counter() - started, result.rounds_traded
            used = cache.workers_used
    seconds = times[None]
    return Figure(
        f"cascade honouring min-cost, {n_holders:,} × {POSITIONS}, {used} worker(s)",
        seconds,
        "the same cascade pro-rata",
        times[Execution.PRO_RATA],
        note=f"{rounds[None]} rounds traded ({rounds[Execution.PRO_RATA]} pro-rata); 100k × "
        f"100: about {seconds * 100_000 / n_holders / 60:.0f} min",
    )

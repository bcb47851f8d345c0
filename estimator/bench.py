"""``make bench``: throughput of rule evaluation and of min-cost solves on generated books.

Books come from :mod:`estimator.synthetic` (every rule kind, a six-factor risk model, an index),
with the synthetic crash that forces every kind. For each book size it prints:

* evaluation of every rule with closed-form pro-rata trades, over the whole book: seconds of
  the first round and the best of ``--repeats`` more (a process's first round also pays for
  fresh memory), holder-asset rows per second of the best, and the peak memory of the
  process — on a market coded once (integer keys, books in (holder, asset) order:
  :attr:`Market.coded`), with the seconds of that coding and of decoding the round's results
  back to ids printed beside; the best round is split into its two stages (``trades``: every
  rule evaluated and the trades decided; ``settle``: the trades applied, every rule re-checked
  on the post-trade book and the result assembled);
* min-cost solves at 50 positions per holder, on a sample: milliseconds per holder with one
  compiled problem per shape re-solved in one process and in ``--workers`` processes (timed
  from started processes; their start-up is printed apart), beside a naive baseline that
  builds a fresh cvxpy problem for every holder (smaller sample);
* a pro-rata cascade with square-root impact on the largest book (``--cascade-size``, up to
  ``--cascade-rounds`` rounds): rounds, seconds and peak memory.

Each book size and the cascade run in a fresh process, as a run from the command line does, so
that each peak is its own.

Run ``python -m estimator.bench [SIZES…] [--workers N]``; sizes are numbers of holders.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import polars as pl

from estimator import synthetic
from estimator.api import prepare
from estimator.cascade import cascade
from estimator.errors import InputWarnings
from estimator.impact import Impact
from estimator.mandates import Execution
from estimator.market import Market
from estimator.rounds import evaluate_round
from estimator.solve import ProblemCache

POSITIONS = 100
SOLVE_POSITIONS = 50
KAPPA = 3.0  # strong impact, so that the cascade runs many rounds


def prepared_inputs(market: Market) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Shocked assets and holders with their book before the shocks, as :func:`run` makes."""
    return prepare(synthetic.scenario(market), market, "synthetic", InputWarnings())


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux


def _fresh(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a new process (spawned: nothing inherited from this one)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


def evaluation(n_holders: int, repeats: int) -> dict[str, float]:
    """One pro-rata round over ``n_holders`` × 100 positions: rows, seconds of the first round
    and best seconds of ``repeats`` more, seconds to code the market (once, as a run does on
    first use, :attr:`Market.coded`) and to decode a result, and the peak memory in GB."""
    market = synthetic.market(n_holders, per_holder=POSITIONS)
    shocked, holders = prepared_inputs(market)
    started = time.perf_counter()
    codes, positions = market.coded
    coding = time.perf_counter() - started
    assets, holders = codes.encode(shocked), codes.encode(holders)
    times, stages = [], []
    for _ in range(1 + repeats):
        stages.append({})
        started = time.perf_counter()
        result = evaluate_round(
            assets,
            holders,
            positions,
            market.mandates,
            execution=Execution.PRO_RATA,
            coded=True,
            timings=stages[-1],
        )
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    result.decoded(codes)
    best = min(range(1, len(times)), key=times.__getitem__, default=0)
    return {
        "rows": positions.height,
        "first": times[0],
        "best": times[best],
        "trades": stages[best]["trades"],
        "settle": stages[best]["settle"],
        "coding": coding,
        "decoding": time.perf_counter() - started,
        "peak": _peak_gb(),
    }


def solving(sample: int, workers: int, *, reuse: bool = True) -> tuple[float, float]:
    """(milliseconds per solved holder, seconds to start the worker processes) of a min-cost
    round on ``sample`` holders × 50 positions; the round is timed from started workers."""
    market = synthetic.market(sample, per_holder=SOLVE_POSITIONS, seed=11)
    shocked, holders = prepared_inputs(market)
    k = sum(c.startswith("risk_g") for c in shocked.columns)
    with ProblemCache(k, workers=workers, reuse=reuse) as cache:
        started = time.perf_counter()
        if workers > 1:
            cache.start()
        startup = time.perf_counter() - started
        started = time.perf_counter()
        result = evaluate_round(
            shocked,
            holders,
            market.positions,
            market.mandates,
            execution=Execution.MIN_COST,
            cache=cache,
        )
        elapsed = time.perf_counter() - started
    solved = int(result.holders["solved"].fill_null(False).sum())
    return 1e3 * elapsed / max(solved, 1), startup


def cascading(n_holders: int, max_rounds: int) -> tuple[int, float, float]:
    """(rounds traded, seconds, peak GB) of a pro-rata cascade with square-root impact on
    every asset."""
    market = synthetic.market(n_holders, per_holder=POSITIONS)
    shocked, holders = prepared_inputs(market)
    impact = Impact(models=[{"model": "sqrt", "kappa": KAPPA}], max_rounds=max_rounds)
    mandates = {
        n: m.model_copy(update={"execution": Execution.PRO_RATA})
        for n, m in market.mandates.items()
    }
    codes, positions = market.coded  # as a run does
    started = time.perf_counter()
    result = cascade(shocked, holders, positions, mandates, impact, codes=codes)
    return result.rounds_traded, time.perf_counter() - started, _peak_gb()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1_000, 10_000, 100_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--solve-sample", type=int, default=2_000)
    parser.add_argument("--naive-sample", type=int, default=100)
    parser.add_argument("--cascade-size", type=int, default=100_000)
    parser.add_argument("--cascade-rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    one, _ = solving(args.solve_sample, 1)
    many, startup = solving(args.solve_sample, args.workers)
    naive, _ = solving(args.naive_sample, 1, reuse=False)
    print(f"min-cost solves, {SOLVE_POSITIONS} positions per holder, ms per holder:")
    print(f"  compiled once, 1 process:          {one:6.1f}   ({args.solve_sample} holders)")
    print(
        f"  compiled once, {args.workers} processes:        {many:6.1f}   "
        f"(+ {startup:.1f} s once to start the processes)"
    )
    print(f"  naive, fresh problem per holder:   {naive:6.1f}   ({args.naive_sample} holders)")
    print(
        f"  speed-up over naive: {naive / one:.1f}x (1 process), {naive / many:.1f}x "
        f"({args.workers} processes)"
    )
    print()
    print(
        f"{'holders':>8} {'rows':>11} {'first s':>8} {'best s':>7} {'trades s':>9} "
        f"{'settle s':>9} {'rows/s':>12} {'coding s':>9} {'decoding s':>11} {'peak GB':>8}"
    )
    for n in args.sizes:
        e = _fresh(evaluation, n, args.repeats)
        print(
            f"{n:>8,} {e['rows']:>11,} {e['first']:>8.2f} {e['best']:>7.2f} "
            f"{e['trades']:>9.2f} {e['settle']:>9.2f} {e['rows'] / e['best']:>12,.0f} "
            f"{e['coding']:>9.2f} {e['decoding']:>11.2f} {e['peak']:>8.2f}"
        )
        sys.stdout.flush()

    if args.cascade_size:
        rounds, seconds, peak = _fresh(cascading, args.cascade_size, args.cascade_rounds)
        print()
        print(
            f"cascade, {args.cascade_size:,} holders × {POSITIONS} positions, square-root impact: "
            f"{rounds} rounds in {seconds:.1f} s ({seconds / max(rounds, 1):.1f} s per round), "
            f"peak {peak:.2f} GB"
        )


if __name__ == "__main__":
    main()

"""One pro-rata round per book size, each in a fresh process: rows per second and peak memory.

Books come from :mod:`estimator.synthetic` (every rule kind, a six-factor risk model, an index),
with the synthetic crash that forces every kind. Per size: seconds of the first round and the
best of ``repeats`` more (a process's first round also pays for fresh memory), holder-asset rows
per second of the best, the best round's two stages (``trades``: every rule evaluated and the
trades decided; ``settle``: the trades applied, every rule re-checked on the post-trade book and
the result assembled), the seconds to code the market (integer keys, books in (holder, asset)
order: :attr:`Market.coded`) and to decode the round's results, and the process's peak memory.
Each size runs in a fresh process, as a run from the command line does, so that each peak is
its own. ``python -m estimator.bench.sizes [SIZES…]``.
"""

from __future__ import annotations

import multiprocessing
import resource
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import polars as pl

from estimator import synthetic
from estimator.errors import InputWarnings
from estimator.inputs import prepare
from estimator.mandates import Execution
from estimator.market import Market
from estimator.rounds import evaluate_round

POSITIONS = 100


def prepared_inputs(market: Market) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Shocked assets and holders with their book before the shocks, as :func:`run` makes."""
    return prepare(synthetic.scenario(market), market, "synthetic", InputWarnings())


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux


def fresh(fn: Callable[..., Any], *args: Any) -> Any:
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
        "peak": peak_gb(),
    }


def table(sizes: list[int], repeats: int) -> None:
    """Print one pro-rata round per book size, each in a fresh process."""
    print(
        f"{'holders':>8} {'rows':>11} {'first s':>8} {'best s':>7} {'trades s':>9} "
        f"{'settle s':>9} {'rows/s':>12} {'coding s':>9} {'decoding s':>11} {'peak GB':>8}"
    )
    for n in sizes:
        e = fresh(evaluation, n, repeats)
        print(
            f"{n:>8,} {e['rows']:>11,} {e['first']:>8.2f} {e['best']:>7.2f} "
            f"{e['trades']:>9.2f} {e['settle']:>9.2f} {e['rows'] / e['best']:>12,.0f} "
            f"{e['coding']:>9.2f} {e['decoding']:>11.2f} {e['peak']:>8.2f}",
            flush=True,
        )


if __name__ == "__main__":
    table([int(n) for n in sys.argv[1:]] or [1_000, 10_000, 100_000], repeats=3)

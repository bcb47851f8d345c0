"""``make bench``: throughput of rule evaluation and of min-cost solves on generated books.

Books come from :mod:`estimator.synthetic` (every rule kind, a six-factor risk model, an index),
with the synthetic crash that forces every kind. For each book size it prints:

* evaluation of every rule with closed-form pro-rata trades, over the whole book: seconds,
  holder-asset rows per second, and the process's peak memory so far — on a market coded once
  (integer keys, books in (holder, asset) order: :attr:`Market.coded`), with the seconds of that
  coding and of decoding the round's results back to ids printed beside;
* min-cost solves at 50 positions per holder, on a sample: milliseconds per holder with one
  compiled problem per shape re-solved in one process and in ``--workers`` processes (timed
  from started processes; their start-up is printed apart), beside a naive baseline that
  builds a fresh cvxpy problem for every holder (smaller sample);
* a pro-rata cascade with square-root impact on the largest book (``--cascade-size``, up to
  ``--cascade-rounds`` rounds): rounds, seconds and peak memory.

Run ``python -m estimator.bench [SIZES…] [--workers N]``; sizes are numbers of holders.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import polars as pl

from estimator import book as bk
from estimator import synthetic
from estimator.cascade import cascade
from estimator.engine import evaluate_round
from estimator.impact import Impact
from estimator.mandates import Execution
from estimator.market import Market
from estimator.scenario import apply_scenario
from estimator.solve import ProblemCache
from rules import Book

POSITIONS = 100
SOLVE_POSITIONS = 50
KAPPA = 3.0  # strong impact, so that the cascade runs many rounds


def prepared_inputs(market: Market) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Shocked assets and holders with their leverage before the shocks, as :func:`run` makes."""
    shocked = apply_scenario(
        market.assets, synthetic.scenario(market), index_weights=market.index_weights
    )
    pre = bk.holder_book(bk.position_frame(market.positions, market.assets), market.holders)
    holders = market.holders.join(
        pre.select("holder_id", pl.col("leverage").alias(Book.LEVERAGE_PRE)), on="holder_id"
    )
    return shocked, holders


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux


def evaluation(n_holders: int) -> tuple[int, float, float, float]:
    """(rows, seconds to evaluate, to code the market, to decode the result) of one pro-rata
    round over ``n_holders`` × 100 positions. The market is coded once (as a run does on
    first use, :attr:`Market.coded`); the round runs on codes."""
    market = synthetic.market(n_holders, per_holder=POSITIONS)
    shocked, holders = prepared_inputs(market)
    started = time.perf_counter()
    codes, positions = market.coded
    coding = time.perf_counter() - started
    started = time.perf_counter()
    result = evaluate_round(
        codes.encode(shocked),
        codes.encode(holders),
        positions,
        market.mandates,
        execution=Execution.PRO_RATA,
        coded=True,
    )
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    result.decoded(codes)
    return positions.height, seconds, coding, time.perf_counter() - started


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


def cascading(n_holders: int, max_rounds: int) -> tuple[int, float]:
    """(rounds traded, seconds) of a pro-rata cascade with square-root impact on every asset."""
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
    return result.rounds_traded, time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1_000, 10_000, 100_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--solve-sample", type=int, default=2_000)
    parser.add_argument("--naive-sample", type=int, default=100)
    parser.add_argument("--cascade-size", type=int, default=100_000)
    parser.add_argument("--cascade-rounds", type=int, default=10)
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
        f"{'holders':>8} {'rows':>11} {'eval+pro-rata s':>16} {'rows/s':>12} "
        f"{'coding s':>9} {'decoding s':>11} {'peak GB':>8}"
    )
    for n in args.sizes:
        rows, seconds, coding, decoding = evaluation(n)
        print(
            f"{n:>8,} {rows:>11,} {seconds:>16.2f} {rows / seconds:>12,.0f} "
            f"{coding:>9.2f} {decoding:>11.2f} {_peak_gb():>8.2f}"
        )
        sys.stdout.flush()

    if args.cascade_size:
        rounds, seconds = cascading(args.cascade_size, args.cascade_rounds)
        print()
        print(
            f"cascade, {args.cascade_size:,} holders × {POSITIONS} positions, square-root impact: "
            f"{rounds} rounds in {seconds:.1f} s ({seconds / max(rounds, 1):.1f} s per round), "
            f"peak {_peak_gb():.2f} GB"
        )


if __name__ == "__main__":
    main()

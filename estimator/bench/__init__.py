"""``make bench``: every figure beside a baseline measured in the same run.

``python -m estimator.bench`` measures, each as a ratio of two times taken in turn
(:mod:`estimator.bench.figures`):

* start-up: ``forced-flow --help`` and ``import estimator`` against a bare ``python -c pass``;
* min-cost solves, one compiled problem per shape re-solved, against a plain cvxpy problem
  built for every holder, on the same holders, trades compared; in two worker processes
  against one;
* the minimal cone program for vol-target holders called in Clarabel directly (the solver's
  floor, :mod:`estimator.bench.floor`) against the production solve, on the same holders;
* holders whose rules are linear limits solved in closed form, all at once
  (:mod:`estimator.closed_form`), against the conic solver, trades compared;
* a pro-rata round of vol-target, leverage and margin books against a closed form in numpy and
  scipy.sparse (:mod:`estimator.bench.prorata`), trades compared first;
* ``run`` end to end (scenario, coding, round, reports) against the round alone;
* a cascade round (prices moved, trades booked, books marked, losses attributed) against one
  evaluation of the same book;
* a 10k-holder round and cascade that honour every mandate's execution style (min-cost solves
  on ``--workers`` Dask workers) against the same all pro-rata, the 100k figures extrapolated;
* the survival search on the census against one round of every holder;
* a 30-day dated path on the census market against 30 one-day runs (:mod:`estimator.bench.paths`);
* one pro-rata round at 1k, 10k and 100k holders × 100 positions (rows per second, peak memory),
  each in a fresh process (:mod:`estimator.bench.sizes`).

The figures go to ``bench/latest.json`` and, with ``--readme``, into the README's table.
``--quick`` runs every measurement at small sizes: each fast path is checked against its
baseline before it is timed, so the test suite runs it to catch a fast path that breaks.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from estimator.bench import measure, paths, sizes
from estimator.bench.figures import (
    Figure,
    printed,
    read_json,
    run_meta,
    update_readme,
    write_json,
)
from estimator.bench.sizes import prepared_inputs

ROOT = Path(__file__).resolve().parents[2]


def _sections(quick: bool, workers: int) -> list[Callable[[], list[Figure] | Figure]]:
    if quick:
        return [
            lambda: measure.startup(repeats=1),
            lambda: measure.naive_solves(40, sample=6),
            lambda: measure.floor_solves(60),
            lambda: measure.closed_form_solves(100),
            lambda: measure.prorata_round(200, repeats=1),
            lambda: measure.round_throughput(200, repeats=1),
            lambda: measure.cascade_round(200, max_rounds=3),
            lambda: measure.min_cost_round(100, workers=1),
            lambda: measure.min_cost_cascade(100, workers=1, max_rounds=2),
            lambda: measure.survival_search("small_crash"),
            lambda: paths.path_days(3, "small_crash", drift=-0.08),
        ]
    return [
        measure.startup,
        lambda: measure.naive_solves(2_000, sample=100),
        lambda: measure.workers(2_000, workers),
        lambda: measure.floor_solves(2_700),
        lambda: measure.closed_form_solves(10_000),
        lambda: sizes.fresh(measure.prorata_round, 100_000, 3),
        lambda: measure.round_throughput(10_000, repeats=3),
        lambda: sizes.fresh(measure.cascade_round, 100_000, 10),
        lambda: measure.min_cost_round(10_000, workers),
        lambda: measure.min_cost_cascade(10_000, workers, 10),
        lambda: measure.survival_search("march_2020"),
        lambda: paths.path_days(30, "march_2020"),
    ]


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (the test suite's)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "latest.json")
    parser.add_argument("--readme", action="store_true", help="write the README's table")
    parser.add_argument("--no-sizes", action="store_true", help="skip the per-size table")
    parser.add_argument(
        "--readme-only",
        action="store_true",
        help="write the README's table from --out, run nothing",
    )
    args = parser.parse_args(argv)
    if args.readme_only:
        figures, meta = read_json(args.out)
        update_readme(ROOT / "README.md", figures, meta)
        return figures

    figures: list[Figure] = []
    for section in _sections(args.quick, args.workers):
        got = section()
        for figure in got if isinstance(got, list) else [got]:
            figures.append(figure)
            print(printed([figure]).splitlines()[1], flush=True)
    print()
    print(printed(figures))
    meta = run_meta()
    write_json(figures, args.out, meta)
    if args.readme:
        update_readme(ROOT / "README.md", figures, meta)
    if not (args.quick or args.no_sizes):
        print()
        sizes.table([1_000, 10_000, 100_000], repeats=3)
    return figures


__all__ = ["Figure", "main", "prepared_inputs"]

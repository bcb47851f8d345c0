"""A dated path against as many one-day runs: what carrying the state from day to day costs.

The path: ``days`` trading days from 19 February 2020 on a scenario's market, each day a
seeded move of equities (mean −0.4%, standard deviation 3%: a crash's order of magnitude, not
a record), with the scenario's impact, run for its ``days`` days (``max_days``: not the days
of paced selling after its last move). The baseline: one run of the path's first day alone
(load, shocks, books, the day's rounds and reports' tables; ``max_days = 1``), best of two,
times ``days``. A path that carries its books from day to day should cost no more than that
(target 1.2×).
"""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import polars as pl

from estimator.bench.figures import Figure
from estimator.bench.measure import MismatchError

START = dt.date(2020, 2, 19)
#: Daily equity returns of the bench path: mean and standard deviation.
DRIFT, SPREAD = -0.004, 0.03


def path_days(days: int, scenario: str = "march_2020", drift: float = DRIFT) -> Figure:
    """The ``days``-day path against ``days`` one-day runs (module docstring); the path's day 0
    is checked to trade as the one-day run does (:class:`MismatchError` otherwise)."""
    import estimator  # noqa: PLC0415 (the library as a user calls it)
    from estimator import dates  # noqa: PLC0415
    from estimator.inputs import load_inputs  # noqa: PLC0415
    from estimator.scenario import Scenario  # noqa: PLC0415

    spec, _, market = load_inputs(scenario)
    on = dates.trading_days("XNYS", START, START + dt.timedelta(days=2 * days + 14))[:days]
    returns = np.random.default_rng(7).normal(drift, SPREAD, days)
    equities = {"asset_classes": ["equity", "equity_future"]}
    moves = [
        {"date": d.isoformat(), "select": equities, "price_return": float(r)}
        for d, r in zip(on, returns, strict=True)
    ]

    def dated(kept: list[dict], **days: int) -> Scenario:
        path = {"start": START.isoformat(), "end": on[len(kept) - 1].isoformat(), "moves": kept}
        return Scenario(name="bench_path", path=path, impact=spec.impact, days=days)

    first = []
    for _ in range(2):  # the first day alone: its rounds, not the paced days after it
        started = time.perf_counter()
        alone = estimator.run(dated(moves[:1], max_days=1), market)
        first.append(time.perf_counter() - started)
    started = time.perf_counter()  # the path's days only, not the paced days after it
    result = estimator.run(dated(moves, max_days=days), market)
    seconds = time.perf_counter() - started
    assert result.manifest.cascade is not None and result.manifest.days is not None
    day_0 = result.trades.filter(pl.col("day") == 0)
    if not day_0.equals(alone.trades.filter(pl.col("day") == 0)):
        raise MismatchError("the path's day 0 trades differently from the same day alone")
    return Figure(
        f"{days}-day path, {scenario}'s market",
        seconds,
        f"{days} one-day runs",
        days * min(first),
        max_ratio=1.2,
        note=f"{result.manifest.cascade.rounds_traded} rounds over "
        f"{len(result.manifest.days.per_day)} days",
    )

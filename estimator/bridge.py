"""Daily levels between sourced anchors: a seeded Brownian bridge, never a straight line.

Where no daily series of a level is shipped (a yield, a spread, the VIX), a path anchors on the
sourced closes of named days and fills the days between with a Brownian bridge at a daily
volatility ``σ`` (itself sourced, or labelled an assumption). Between anchors ``(a, X_a)`` and
``(b, X_b)``, with ``W`` a random walk of daily steps ``σ·Z`` (``Z`` standard normal)::

    B(t) = X_a + (t − a)/(b − a)·(X_b − X_a) + W(t) − W(a) − (t − a)/(b − a)·(W(b) − W(a))

so ``B`` meets every anchor exactly, and between two it has the variance of a bridge,
``σ²·(t − a)(b − t)/(b − a)`` — the daily variance a straight line lacks.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np


def bridge(anchors: Sequence[tuple[int, float]], daily_vol: float, seed: int) -> np.ndarray:
    """Levels on days ``0 … T`` through ``anchors`` (day, level) — the first on day 0, days
    increasing, ``T`` the last anchor's — with steps of ``daily_vol`` between them, drawn from
    ``numpy.random.default_rng(seed)``."""
    days = [d for d, _ in anchors]
    if len(anchors) < 2 or days[0] != 0 or any(b <= a for a, b in itertools.pairwise(days)):
        raise ValueError("anchors: at least two, the first on day 0, days increasing")
    if not daily_vol > 0:
        raise ValueError("daily_vol must be positive: a bridge without variance is a straight line")
    steps = np.random.default_rng(seed).standard_normal(days[-1]) * daily_vol
    walk = np.concatenate([[0.0], np.cumsum(steps)])
    out = np.empty(days[-1] + 1)
    for (a, level_a), (b, level_b) in itertools.pairwise(anchors):
        t = np.arange(a, b + 1)
        share = (t - a) / (b - a)
        out[a : b + 1] = (
            level_a
            + share * (level_b - level_a)
            + walk[a : b + 1]
            - walk[a]
            - share * (walk[b] - walk[a])
        )
    return out

"""The survival search's bisection tree (several levels per round) against one bisection step
at a time, written out plainly: the same brackets to the last bit, monotone or not."""

from __future__ import annotations

import math

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from estimator import stack
from estimator.survival import TREE_LEVELS, _bisect


class _Rule:
    """A stand-in for one-round evaluations: holder h is forced at (multiple m, cash c) where
    ``forced(h, m, c)`` says; it counts the rounds asked for."""

    def __init__(self, forced) -> None:
        self.forced, self.count = forced, 0

    def statuses(self, points: pl.DataFrame, *, events: bool = True) -> pl.DataFrame:
        self.count += 1
        flags = [
            self.forced(h, m, c)
            for h, m, c in points.select("holder_id", stack.MULTIPLE, "cash").iter_rows()
        ]
        return points.with_columns(
            forced=pl.Series(flags, dtype=pl.Boolean),
            forced_by=pl.Series([f"rule@{m:.17g}" for m in points[stack.MULTIPLE]]),
        )


def _plain(lo: float, hi: float, forced_at, width, *, up_when_forced: bool):
    """One holder's bisection, a step at a time (the brackets stop once narrow)."""
    by = None
    while not (hi - lo <= width(hi) or (lo + hi) / 2 <= lo or (lo + hi) / 2 >= hi):
        mid = (lo + hi) / 2
        forced = forced_at(mid)
        if forced != up_when_forced:
            hi, by = mid, (f"rule@{mid:.17g}" if forced else by)
        else:
            lo = mid
    return lo, hi, by


thresholds = st.lists(st.floats(0.01, 2.99), min_size=1, max_size=6)


@given(thresholds, st.sampled_from([1e-3, 1e-6]), st.booleans())
def test_the_tree_walks_to_the_brackets_of_one_step_at_a_time(
    marks: list[float], tol: float, window: bool
) -> None:
    # forced from a threshold on, or (not monotone) only inside a narrow window above it
    def forced(h: str, m: float, _: float) -> bool:
        t = marks[int(h)]
        return t <= m < t + 0.01 if window else m >= t

    step = 3.0 / 24
    brackets = pl.DataFrame(
        {
            "holder_id": [str(i) for i in range(len(marks))],
            "lo": [math.floor(t / step) * step for t in marks],
            "hi": [math.floor(t / step) * step + step for t in marks],
            "by": ["grid"] * len(marks),
        }
    )
    probe = _Rule(forced)
    width = tol * pl.col("hi").clip(lower_bound=1)
    got = _bisect(probe, brackets, width, lambda x: (x, pl.lit(0.0)), up_when_forced=False)
    for h, lo, hi, by in brackets.iter_rows():
        want = _plain(
            lo,
            hi,
            lambda m, h=h: forced(h, m, 0.0),
            lambda hi: tol * max(hi, 1.0),
            up_when_forced=False,
        )
        row = got.filter(pl.col("holder_id") == h).row(0)
        assert (row[1], row[2]) == want[:2]
        assert row[3] == (want[2] or by)
    steps = math.ceil(math.log2(step / (tol * 1.0))) + 1
    assert probe.count <= math.ceil(steps / TREE_LEVELS)


@given(st.lists(st.floats(1.0, 1e6), min_size=1, max_size=5))
def test_the_cure_search_halves_every_bracket_until_all_are_narrow(needs: list[float]) -> None:
    # forced while the cash added is short of the holder's need; every bracket is halved
    # until the widest is narrow (each=False), as one step at a time for all does
    def forced(h: str, _: float, c: float) -> bool:
        return c < needs[int(h)]

    his = [2.0 ** math.ceil(math.log2(n)) for n in needs]
    brackets = pl.DataFrame(
        {
            "holder_id": [str(i) for i in range(len(needs))],
            "lo": [h / 2 for h in his],
            "hi": his,
            "by": pl.Series([None] * len(needs), dtype=pl.String),
        }
    )
    tol = 1e-3
    got = _bisect(
        _Rule(forced),
        brackets,
        tol * pl.col("hi"),
        lambda x: (pl.lit(1.0), x),
        up_when_forced=True,
        each=False,
    )
    state = [[lo, hi] for lo, hi in brackets.select("lo", "hi").iter_rows()]

    def narrow(lo: float, hi: float) -> bool:
        return hi - lo <= tol * hi or (lo + hi) / 2 <= lo or (lo + hi) / 2 >= hi

    while not all(narrow(lo, hi) for lo, hi in state):
        for i, (lo, hi) in enumerate(state):
            mid = (lo + hi) / 2
            state[i] = [mid, hi] if forced(str(i), 1.0, mid) else [lo, mid]
    assert got.sort("holder_id").select("lo", "hi").rows() == [tuple(s) for s in state]

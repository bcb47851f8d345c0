"""The Brownian bridge between sourced anchors (:mod:`estimator.bridge`): it meets every anchor,
has a bridge's variance between them (checked over many seeds against σ²·(t − a)(b − t)/(b − a)),
and is reproducible from its seed."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from estimator.bridge import bridge
from estimator.path import MarketPath, read_moves

ANCHORS = [(0, 1.56), (13, 0.54), (20, 1.18), (29, 0.70)]


@given(st.integers(0, 2**32 - 1), st.floats(0.001, 0.5))
def test_every_anchor_is_met(seed: int, vol: float) -> None:
    levels = bridge(ANCHORS, vol, seed)
    assert len(levels) == 30
    for day, level in ANCHORS:
        assert levels[day] == pytest.approx(level, abs=1e-12)


def test_the_variance_between_anchors_is_a_bridge_s() -> None:
    """Between days 13 and 20 (length 7), day 16 has variance σ²·3·4/7; over 4,000 seeds the
    sample variance is within 7% of it (its standard error is about 2.2%), and the mean is the
    line between the anchors."""
    vol = 0.05
    at_16 = np.array([bridge(ANCHORS, vol, seed)[16] for seed in range(4_000)])
    assert at_16.var() == pytest.approx(vol**2 * 3 * 4 / 7, rel=0.07)
    line = 0.54 + 3 / 7 * (1.18 - 0.54)
    assert at_16.mean() == pytest.approx(line, abs=4 * vol * (12 / 7) ** 0.5 / 4_000**0.5)


def test_a_seed_gives_one_path() -> None:
    assert np.array_equal(bridge(ANCHORS, 0.05, 1), bridge(ANCHORS, 0.05, 1))
    assert not np.array_equal(bridge(ANCHORS, 0.05, 1), bridge(ANCHORS, 0.05, 2))


def test_bad_anchors_and_a_straight_line_are_refused() -> None:
    with pytest.raises(ValueError, match="first on day 0"):
        bridge([(1, 1.0), (5, 2.0)], 0.1, 0)
    with pytest.raises(ValueError, match="increasing"):
        bridge([(0, 1.0), (5, 2.0), (5, 3.0)], 0.1, 0)
    with pytest.raises(ValueError, match="straight line"):
        bridge([(0, 1.0), (5, 2.0)], 0.0, 0)


def _tool() -> ModuleType:  # tools/ is not a package: the script loaded by its path
    path = Path(__file__).resolve().parents[1] / "tools" / "path_from_anchors.py"
    spec = importlib.util.spec_from_file_location("path_from_anchors", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_anchor_tool_writes_a_path_that_meets_its_anchors(tmp_path: Path) -> None:
    """Yields of 1.56% on 19 February and 0.54% on 9 March 2020 (13 trading days apart) and
    1.18% on 18 March: the table's daily changes in bp add up to −102 bp and then +64 bp, one
    row per trading day after the first anchor, and the estimator reads it as a path."""
    anchors = [
        (dt.date(2020, 2, 19), 1.56),
        (dt.date(2020, 3, 9), 0.54),
        (dt.date(2020, 3, 18), 1.18),
    ]
    table = _tool().rows(
        anchors, "govts", "yield_change_bp", unit=100, daily_vol=0.08, seed=3, source="a source"
    )
    assert table.height == 20
    to_9_march = table.filter(table["date"] <= "2020-03-09")["value"].sum()
    assert to_9_march == pytest.approx(-102.0, abs=1e-9)
    assert table["value"].sum() == pytest.approx(-38.0, abs=1e-9)
    out = tmp_path / "t.csv"
    table.write_csv(out)
    moves = read_moves(out, MarketPath(start="2020-02-19", targets={"govts": {"all": True}}))
    assert len(moves) == 20 and moves[0].date == dt.date(2020, 2, 20)

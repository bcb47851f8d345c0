"""The benchmark's quick run: every fast path agrees with its baseline, and the figures' file
and the README table come out of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from estimator.bench import main
from estimator.bench.figures import BEGIN, END, Figure, read_json, update_readme


def test_ratios_excesses_and_targets_by_hand() -> None:
    f = Figure("x", 3.0, "base", 2.0, max_ratio=1.3)
    assert f.ratio == 1.5 and f.met is False
    g = Figure("y", 0.7, "bare", 0.25, max_excess=0.5)
    assert g.excess == pytest.approx(0.45) and g.met is True
    assert Figure("z", 12.0, "one", 1.0, max_value=10.0).met is False
    assert Figure("w", 1.0, "one", 1.0).met is None


def test_the_readme_table_is_replaced_between_its_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{BEGIN}\nold table\n{END}\nafter\n")
    update_readme(
        readme,
        [Figure("round", 2.0, "numpy", 1.0, max_ratio=2.0)],
        {"date": "2026-12-07", "machine": "2 cores"},
    )
    text = readme.read_text()
    assert "old table" not in text and text.startswith("intro\n") and text.endswith("after\n")
    assert "| round | 2 s | numpy: 1 s | 2.00× | ≤ 2× | yes |  |" in text
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="markers"):
        update_readme(readme, [], {"date": "", "machine": ""})


def test_the_quick_bench_agrees_with_every_baseline(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    figures = main(["--quick", "--out", str(out)])  # raises where a fast path disagrees
    names = {f.name for f in figures}
    assert any(n.startswith("min-cost solve") for n in names)
    assert any(n.startswith("pro-rata round") for n in names)
    assert any("Clarabel" in f.baseline for f in figures)
    back, meta = read_json(out)
    assert [f.name for f in back] == [f.name for f in figures] and meta["machine"]
    rows = json.loads(out.read_text())["figures"]
    assert all(r["ratio"] > 0 for r in rows)

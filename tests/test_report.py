"""Report writing: spreadsheet-safe text, signless zeros, all-or-nothing folders."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from estimator.manifest import Manifest
from estimator.report import neutralise, write_reports


def test_neutralise_text_cells_only() -> None:
    frame = pl.DataFrame(
        {"id": ["=cmd()", "+1", "-x", "@a", "ok"], "v": [-0.0, -1.0, 0.0, 2.0, None]}
    )
    out = neutralise(frame)
    assert out["id"].to_list() == ["'=cmd()", "'+1", "'-x", "'@a", "ok"]
    assert out.write_csv().splitlines()[1] == "'=cmd(),0.0"
    assert out["v"].to_list()[1:] == [-1.0, 0.0, 2.0, None]


def test_write_replaces_whole_folder(tmp_path: Path) -> None:
    target = tmp_path / "r"
    write_reports(
        target, {"a": pl.DataFrame({"x": [1]}), "b": pl.DataFrame({"y": [2]})}, Manifest()
    )
    write_reports(target, {"a": pl.DataFrame({"x": [3]})}, Manifest())
    assert sorted(p.name for p in target.iterdir()) == ["a.csv", "manifest.json"]
    assert pl.read_csv(target / "a.csv")["x"].to_list() == [3]


class _Unserialisable(Manifest):
    def dump(self) -> dict[str, object]:
        return {"when": object()}


def test_failed_write_leaves_previous_report(tmp_path: Path) -> None:
    target = tmp_path / "r"
    write_reports(target, {"a": pl.DataFrame({"x": [1]})}, Manifest())
    unserialisable = _Unserialisable()  # fails after the tables are written
    with pytest.raises(TypeError):
        write_reports(target, {"a": pl.DataFrame({"x": [2]})}, unserialisable)
    assert pl.read_csv(target / "a.csv")["x"].to_list() == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]

"""Write a run's reports atomically: everything or nothing.

Files are written into a temporary sibling folder which then replaces the target folder, so a
failed run never leaves a partial report. Text cells starting with ``= + - @`` are prefixed with
``'`` so spreadsheet programs do not execute them.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import polars as pl

Format = Literal["csv", "parquet"]
_FORMULA = r"^[=+\-@]"


def neutralise(frame: pl.DataFrame) -> pl.DataFrame:
    """Text columns safe for spreadsheets; numbers unchanged (−0.0 written as 0.0)."""
    text = [c for c, t in frame.schema.items() if t == pl.String]
    floats = [c for c, t in frame.schema.items() if t.is_float()]
    signless_zero = [pl.when(pl.col(c) == 0).then(0.0).otherwise(c).alias(c) for c in floats]
    return frame.with_columns(signless_zero).with_columns(
        pl.when(pl.col(c).str.contains(_FORMULA))
        .then("'" + pl.col(c))
        .otherwise(pl.col(c))
        .alias(c)
        for c in text
    )


def money(value: float) -> str:
    """An amount for people to read: ``1.23bn``, ``45.60m``, ``7.00k``, ``12``."""
    for unit, size in (("tn", 1e12), ("bn", 1e9), ("m", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:,.2f}{unit}"
    return f"{value:,.0f}"


def write_reports(
    out_dir: Path,
    tables: Mapping[str, pl.DataFrame],
    manifest: dict,
    fmt: Format = "csv",
    texts: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write ``tables``, ``manifest.json`` and any ``texts`` (file name → content, e.g. an HTML
    report) into ``out_dir`` (replaced as a whole)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for name, frame in tables.items():
            if fmt == "csv":
                neutralise(frame).write_csv(tmp / f"{name}.csv")
            else:
                frame.write_parquet(tmp / f"{name}.parquet")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        for name, text in (texts or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        old = None
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out_dir.rename(old)
        tmp.rename(out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(out_dir.iterdir())

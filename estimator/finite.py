"""The invariant every result keeps: no report, manifest or page holds NaN or ±inf.

Input bounds (:mod:`estimator.bounds`) keep every number a valid run computes finite; these
checks make sure of it where results are assembled, and name the quantity when they are not.
A non-finite result is never filled in: the run fails (:class:`~estimator.errors.RunError`,
exit 1) and nothing is written. Empty cells (nulls: "not applicable", e.g. a volatility per unit
of equity where equity is gone) are not numbers and are allowed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import polars as pl

from estimator.errors import RunError

#: Columns that identify a row, tried in order, to name where a non-finite value is.
_KEYS = ("holder_id", "asset_id", "target_id", "rule", "round", "day", "holder_type")


def non_finite(frame: pl.DataFrame) -> list[str]:
    """Float columns of ``frame`` holding NaN or ±inf, each with the first such row's keys."""
    floats = [c for c, t in frame.schema.items() if t.is_float()]
    if not floats:
        return []
    bad = frame.select(pl.col(floats).is_finite().not_().any()).row(0, named=True)
    found = []
    for column in (c for c in floats if bad[c]):
        keys = [k for k in _KEYS if k in frame.columns]
        row = frame.filter(~pl.col(column).is_finite()).select(*keys, column).row(0, named=True)
        where = ", ".join(f"{k} {row[k]}" for k in keys)
        found.append(f"{column} = {row[column]}" + (f" ({where})" if where else ""))
    return found


def check_tables(tables: Mapping[str, pl.DataFrame]) -> None:
    """Raise :class:`RunError` naming every table and column with a non-finite value."""
    found = [f"{name}: {what}" for name, frame in tables.items() for what in non_finite(frame)]
    if found:
        raise RunError(
            "the run produced non-finite numbers, so nothing is written: " + "; ".join(found)
        )


def _walk(value: object, path: str) -> list[str]:
    if isinstance(value, float):
        return [] if math.isfinite(value) else [f"{path} = {value}"]
    if isinstance(value, Mapping):
        return [w for k, v in value.items() for w in _walk(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list | tuple):
        return [w for i, v in enumerate(value) for w in _walk(v, f"{path}.{i}")]
    return []


def check_manifest(manifest: Mapping[str, object]) -> None:
    """Raise :class:`RunError` naming every non-finite number in ``manifest`` by its path."""
    found = _walk(manifest, "")
    if found:
        raise RunError("the run's manifest has non-finite numbers: " + "; ".join(found))

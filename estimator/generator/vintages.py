"""Dated vintages of the census parameter file.

A parameter file lists its vintages (``vintages = ["2017-12", …]``, each the month its data
describe) and may give any value by vintage:

* an **aggregate** (a table with ``value``, ``kind``, ``date``, ``source``) by vintage, with an
  optional ``scale`` naming an index of ``[indices]``::

      [holders.total_assets]
      scale = "us_equity"
      "2019-12" = { value = 4.6e12, kind = "estimate", date = "2019-12-31", source = "…" }

  A vintage the table gives is taken as it is. One it does not give is carried from the
  nearest vintage it gives (in months; the earlier on a tie), scaled by the index's ratio
  between the two vintages, ``v_t = v_s · I_t / I_s`` (no ``scale``: carried flat), and
  labelled ``assumption: scaled from <s>``;
* **terms** (any other value) by vintage, ``floor_bp = { "2017-12" = 80.0, "2023-06" = 250.0 }``:
  the terms in force, i.e. those of the latest vintage at or before the one asked for (none
  before: the key is dropped). A list entry whose ``count`` is 0 at the vintage (a holder
  type that did not exist then, ``count = { "2017-12" = 0, "2020-12" = 5 }``) is dropped with
  its figures.

:func:`resolve` gives the file as of one vintage, with every vintaged value replaced, and the
figures it used (:class:`Figure`) for ``forced-flow census --as-of`` and the manifests.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

_VINTAGE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_FIGURE_KEYS = {"value", "kind", "date", "source"}


def is_vintage(key: object) -> bool:
    return isinstance(key, str) and _VINTAGE.match(key) is not None


def months(vintage: str) -> int:
    """Months since year 0 of a ``YYYY-MM`` vintage."""
    year, month = vintage.split("-")
    return 12 * int(year) + int(month) - 1


def vintage_of(day: str | date) -> str:
    """The vintage label of a date (its month)."""
    day = date.fromisoformat(day) if isinstance(day, str) else day
    return f"{day.year:04d}-{day.month:02d}"


def latest_at(vintages: list[str], day: str | date) -> str:
    """The vintage in force on ``day``: the latest that describes a month before ``day``'s
    (a vintage describes its month's end; the earliest if none is before)."""
    at = months(vintage_of(day))
    before = [v for v in vintages if months(v) < at]
    return max(before, key=months) if before else min(vintages, key=months)


@dataclass(frozen=True)
class Figure:
    """One aggregate as a vintage uses it."""

    path: str  # where it sits in the file, e.g. ``holders[ldi_fund].total_assets``
    value: float
    kind: str  # estimate | assumption | assumption: scaled from <vintage>
    date: str
    source: str
    #: an assumption's plausible range (``range = [lo, hi]``) and the argument for it
    low: float | None = None
    high: float | None = None
    range_source: str = ""

    @classmethod
    def of(cls, path: str, table: dict[str, Any]) -> Figure:
        low, high = table.get("range", (None, None))
        return cls(path, float(table["value"]), table["kind"], str(table["date"]),
                   table["source"], low, high, table.get("range_source", ""))  # fmt: skip


def _is_figure(node: object) -> bool:
    return isinstance(node, dict) and node.keys() >= _FIGURE_KEYS


def _is_vintaged(node: object) -> bool:
    if not isinstance(node, dict) or not node:
        return False
    dated = [k for k in node if is_vintage(k)]
    return bool(dated) and all(is_vintage(k) or k == "scale" for k in node)


def _carry(node: dict, vintage: str, indices: dict, path: str) -> dict:
    given = sorted((k for k in node if is_vintage(k)), key=months)
    if vintage in node:
        return dict(node[vintage])
    source = min(given, key=lambda v: (abs(months(v) - months(vintage)), months(v)))
    figure = dict(node[source])
    ratio, how = 1.0, "carried flat"
    if "scale" in node:
        index = indices.get(node["scale"])
        if index is None or vintage not in index or source not in index:
            raise ValueError(
                f"{path}: index {node['scale']!r} has no value for {source} and {vintage}"
            )
        ratio = index[vintage]["value"] / index[source]["value"]
        how = f"× {ratio:.4f} by the index {node['scale']!r}"
    figure["value"] = figure["value"] * ratio
    if "range" in figure:
        figure["range"] = [end * ratio for end in figure["range"]]
    figure["kind"] = f"assumption: scaled from {source}"
    figure["source"] = f"{how}; at {source}: {figure['source']}"
    return figure


def _terms(node: dict, vintage: str) -> tuple[bool, Any]:
    before = [k for k in node if is_vintage(k) and months(k) <= months(vintage)]
    if not before:
        return False, None
    return True, copy.deepcopy(node[max(before, key=months)])


def resolve(params: dict[str, Any], vintage: str) -> tuple[dict[str, Any], list[Figure]]:
    """``params`` as of ``vintage`` (module docstring) and every aggregate figure it uses."""
    if vintage not in params.get("vintages", []):
        raise ValueError(f"no vintage {vintage!r}; the file has {params.get('vintages', [])}")
    indices = params.get("indices", {})
    figures: list[Figure] = []

    def walk(node: Any, path: str) -> tuple[bool, Any]:
        if _is_vintaged(node):
            dated = [node[k] for k in node if is_vintage(k)]
            if all(_is_figure(d) for d in dated):
                figure = _carry(node, vintage, indices, path)
                figures.append(Figure.of(path, figure))
                return True, figure
            return _terms(node, vintage)
        if _is_figure(node):
            figures.append(Figure.of(path, node))
            return True, dict(node)
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                keep, value = walk(v, f"{path}.{k}" if path else k)
                if keep:
                    out[k] = value
            return True, out
        if isinstance(node, list):
            out_list = []
            for i, v in enumerate(node):
                label = v.get("type", v.get("id", v.get("name", i))) if isinstance(v, dict) else i
                mark = len(figures)
                keep, value = walk(v, f"{path}[{label}]")
                if isinstance(value, dict) and value.get("count") == 0:
                    del figures[mark:]  # a type with no holders at this vintage: not used
                elif keep:
                    out_list.append(value)
            return True, out_list
        return True, node

    _, resolved = walk({k: v for k, v in params.items() if k != "indices"}, "")
    resolved["vintage"] = vintage
    return resolved, figures

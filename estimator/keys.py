"""Integer keys for the holder-asset table.

Holder and asset ids are strings; joins, group-bys and sorts over millions of rows are several
times faster on integers. A round therefore works on *codes* (``holder_id → 0…H−1``,
``asset_id → 0…N−1``): an asset's code is its id's rank among the sorted asset ids; holders are
numbered in (mandate, holder_id) order, so that the positions of one mandate's holders are one
contiguous slice of a book in (holder, asset) order — taken without a copy. Rows stay aligned by
id: a code names exactly one id, and an id outside its table is an error, never a silent
mismatch. Codes are internal: frames are decoded back to ids, and sorted by id where their
order shows, before they leave the estimator.

Position rows are kept in (holder, asset) order and flagged as sorted: per-holder sums are
sparse products over their pattern (:class:`estimator.book.Pattern`), lookups by pair are joins
that Polars merges; holder- and asset-level columns reach the rows by :func:`broadcast`, a
gather by code instead of a join.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

HOLDER, ASSET = "holder_id", "asset_id"
#: Columns that hold ids, by the table whose ids they name.
HOLDER_IDS = (HOLDER, "lender", "target_id", "source_id")
ASSET_IDS = (ASSET,)
CODE = pl.UInt32


@dataclass(frozen=True)
class Keys:
    """The sorted ids that codes index into."""

    holders: pl.Series
    assets: pl.Series

    @classmethod
    def of(cls, holders: pl.DataFrame, assets: pl.DataFrame) -> Keys:
        """Keys of the holder and asset tables; holders grouped by ``mandate`` if they have one."""
        order = [c for c in ("mandate", HOLDER) if c in holders.columns]
        ids = holders.select(order).sort(order).unique(HOLDER, keep="first", maintain_order=True)
        return cls(ids[HOLDER], assets[ASSET].unique().sort())

    def encode(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` with its id columns replaced by codes (ids not in the tables raise)."""
        return frame.with_columns(
            pl.col(col).cast(pl.Enum(ids)).to_physical().cast(CODE)
            for col, ids in self._present(frame)
        )

    def decode(self, frame: pl.DataFrame, order: Sequence[str] = ()) -> pl.DataFrame:
        """``frame`` with codes turned back into ids (nulls stay null), its rows sorted by the
        columns ``order`` that it has — id columns in id order (sorted on integer ranks,
        before the ids come back)."""
        by = [c for c in order if c in frame.columns]
        if by:
            rank = self.holders.rank("ordinal").cast(CODE) - 1  # code → rank of its id
            columns = [
                rank.gather(frame[c]) if c in HOLDER_IDS and frame.schema[c] == CODE else frame[c]
                for c in by
            ]
            key = _one_key(columns)
            frame = frame.sort(columns if key is None else key, maintain_order=True)
        return frame.with_columns(
            ids.gather(frame[col]).alias(col)
            for col, ids in self._present(frame)
            if frame.schema[col] == CODE
        )

    def _present(self, frame: pl.DataFrame) -> list[tuple[str, pl.Series]]:
        pairs = [(c, self.holders) for c in HOLDER_IDS] + [(c, self.assets) for c in ASSET_IDS]
        return [(c, ids) for c, ids in pairs if c in frame.columns]


def _one_key(columns: list[pl.Series]) -> pl.Series | None:
    """The sort order of ``columns`` (lexicographic) as one integer, ``Σ c_j·Π_{k>j} (max_k + 1)``,
    when they are non-negative integers without nulls whose ranges multiply below 2⁶³ — one
    integer sorts several times faster than several; None otherwise."""
    if not columns or not all(c.dtype.is_integer() and not c.has_nulls() for c in columns):
        return None
    if any(c.len() and c.min() < 0 for c in columns):
        return None
    key, span = pl.zeros(columns[0].len(), pl.UInt64, eager=True), 1
    for c in reversed(columns):
        width = int(c.max()) + 1 if c.len() else 1
        key = key + c.cast(pl.UInt64) * span
        span *= width
        if span >= 2**63:
            return None
    return key


def pair() -> pl.Expr:
    """One integer per coded (holder, asset) pair, ordered as (holder, asset)."""
    return pl.col(HOLDER).cast(pl.UInt64) * 2**32 + pl.col(ASSET)


def unpair(key: str = "_pair") -> list[pl.Expr]:
    """The holder and asset codes of a :func:`pair` column."""
    return [
        (pl.col(key) // 2**32).cast(CODE).alias(HOLDER),
        (pl.col(key) % 2**32).cast(CODE).alias(ASSET),
    ]


def by_holder(rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` (coded) in holder order — (holder, asset) order when they have assets — and
    flagged as sorted by holder. Sorts only when they are not in that order already."""
    # one integer sorts several times faster than two
    key = pair() if ASSET in rows.columns else pl.col(HOLDER).cast(pl.UInt64)
    if not rows.select(key.alias("_key"))["_key"].is_sorted():
        rows = rows.sort(key)
    return rows.with_columns(pl.col(HOLDER).set_sorted())


def add_by_pair(left: pl.DataFrame, right: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """``left`` and ``right`` (coded, each in (holder, asset) order with one row per pair)
    combined: a row per pair found in either, in that order, with ``columns`` summed (a side
    without the pair adds nothing). A linear merge of the two orders, not a hash group-by."""
    if left.is_empty() or right.is_empty():
        return (right if left.is_empty() else left).select(HOLDER, ASSET, *columns)
    merged = left.select(pair().alias("_pair"), *columns).merge_sorted(
        right.select(pair().alias("_pair"), *columns), key="_pair"
    )
    at = merged["_pair"].to_numpy()
    starts = np.flatnonzero(np.r_[True, at[1:] != at[:-1]])  # where a new pair begins
    summed = {c: np.add.reduceat(merged[c].to_numpy(), starts) for c in columns}
    out = pl.DataFrame({"_pair": at[starts], **summed}, schema=merged.schema)
    return out.select(*unpair(), *columns)


def span(rows: pl.DataFrame, first: int, last: int) -> tuple[int, int]:
    """Start and stop of the rows whose holder code is in ``first…last``, for ``rows`` in
    holder order: a binary search, so that the rows are a slice taken without a copy."""
    bounds = pl.Series([first, last + 1], dtype=CODE)
    start, stop = rows[HOLDER].search_sorted(bounds, side="left").to_list()
    return start, stop


def lookup(rows: pl.DataFrame, column: str, wanted: pl.DataFrame) -> pl.Series:
    """``rows``' ``column`` at each (holder, asset) pair of ``wanted`` (null where ``rows`` has
    no such pair), in ``wanted``'s order. ``rows`` must be in (holder, asset) order with one row
    per pair: both sides are then flagged sorted on one integer per pair where they are, and the
    join merges them instead of hashing."""
    table = rows.select(pair().alias("_pair"), column).with_columns(pl.col("_pair").set_sorted())
    sought = wanted.select(pair().alias("_pair"))
    if sought["_pair"].is_sorted():
        sought = sought.with_columns(pl.col("_pair").set_sorted())
    found = sought.join(table, on="_pair", how="left", maintain_order="left")
    if found.height != sought.height:
        raise ValueError("lookup: the rows hold some (holder, asset) pair more than once")
    return found[column]


def broadcast(
    table: pl.DataFrame, columns: list[str], rows: pl.DataFrame, key: str = HOLDER
) -> pl.DataFrame:
    """``rows`` with ``table``'s ``columns`` matched by the code in ``key`` — a left join that
    keeps the rows' order: ``table`` is spread over every code (null where it has no row), then
    gathered at the rows' codes."""
    if not columns:
        return rows
    if rows.is_empty():
        return rows.with_columns(pl.lit(None, dtype=table.schema[c]).alias(c) for c in columns)
    codes = rows[key]
    span = pl.DataFrame({key: pl.arange(0, int(codes.max()) + 1, dtype=CODE, eager=True)})
    dense = span.join(
        table.select(key, *columns), on=key, how="left", maintain_order="left", validate="1:1"
    ).rechunk()  # a gather from one contiguous chunk is about twice as fast
    return rows.with_columns(dense[c].gather(codes) for c in columns)

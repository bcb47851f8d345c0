"""Credit ratings on one order: every agency's scale mapped to a notch, 1 = AAA/Aaa (best).

Scales (long-term issue ratings):

====  ===========  =========  ====  ===========  =========
notch S&P / Fitch  Moody's    notch S&P / Fitch  Moody's
====  ===========  =========  ====  ===========  =========
1     AAA          Aaa        12    BB           Ba2
2     AA+          Aa1        13    BB-          Ba3
3     AA           Aa2        14    B+           B1
4     AA-          Aa3        15    B            B2
5     A+           A1         16    B-           B3
6     A            A2         17    CCC+         Caa1
7     A-           A3         18    CCC          Caa2
8     BBB+         Baa1       19    CCC-         Caa3
9     BBB          Baa2       20    CC           Ca
10    BBB-         Baa3       21    C            C
11    BB+          Ba1        22    SD, RD, D    —
====  ===========  =========  ====  ===========  =========

Notches 1–10 are investment grade. ``NR`` (not rated) and ``WR`` (withdrawn) mean unrated, as
does an empty cell; any other string is not a rating.

Composite of the agencies' notches ``n₁ … n_k`` (unrated ones left out):

* ``lowest`` — ``max nᵢ``, the most conservative;
* ``middle`` — bond-index practice: the middle of three, the lower of two, the one of one
  (e.g. Bloomberg and ICE index rules).
"""

from __future__ import annotations

from typing import Literal

import polars as pl

SP_FITCH: tuple[str, ...] = (
    "AAA", "AA+", "AA", "AA-", "A+", "A", "A-", "BBB+", "BBB", "BBB-", "BB+",
    "BB", "BB-", "B+", "B", "B-", "CCC+", "CCC", "CCC-", "CC", "C",
)  # fmt: skip
MOODYS: tuple[str, ...] = (
    "Aaa", "Aa1", "Aa2", "Aa3", "A1", "A2", "A3", "Baa1", "Baa2", "Baa3", "Ba1",
    "Ba2", "Ba3", "B1", "B2", "B3", "Caa1", "Caa2", "Caa3", "Ca", "C",
)  # fmt: skip
DEFAULTED = ("SD", "RD", "D")
UNRATED = ("NR", "WR")

#: Rating columns of the assets table and the scale each one uses.
AGENCY_COLUMNS: dict[str, tuple[str, ...]] = {
    "rating_sp": SP_FITCH,
    "rating_fitch": SP_FITCH,
    "rating_moodys": MOODYS,
}

Composite = Literal["lowest", "middle"]


def scale_notches(scale: tuple[str, ...]) -> dict[str, int]:
    """Notch of every string on ``scale`` (defaults included for S&P/Fitch)."""
    notches = {r: i + 1 for i, r in enumerate(scale)}
    if scale is SP_FITCH:
        notches |= dict.fromkeys(DEFAULTED, len(SP_FITCH) + 1)
    return notches


def accepted(column: str) -> tuple[str, ...]:
    """Every string a rating column may hold."""
    return (*scale_notches(AGENCY_COLUMNS[column]), *UNRATED)


def notch(rating: str) -> int:
    """The notch of one rating on any scale (for parameters such as a floor of ``BBB-``)."""
    for scale in (SP_FITCH, MOODYS):
        found = scale_notches(scale).get(rating)
        if found is not None:
            return found
    raise ValueError(
        f"unknown rating {rating!r}: expected S&P/Fitch (AAA … C, SD, RD, D) or Moody's (Aaa … C)"
    )


def notch_expr(column: str) -> pl.Expr:
    """Notch of a rating column; null where unrated (empty, NR, WR)."""
    mapping = scale_notches(AGENCY_COLUMNS[column])
    return pl.col(column).replace_strict(mapping, default=None, return_dtype=pl.Int32)


def composite_expr(columns: list[str], rule: Composite) -> pl.Expr:
    """Composite notch over the given agency columns (null when no agency rates the asset).

    ``lowest``: the largest notch. ``middle``: of three notches a ≤ b ≤ c the middle one,
    ``b = a + b + c − min − max``; of two the larger; of one that one.
    """
    notches = [notch_expr(c) for c in columns]
    worst = pl.max_horizontal(notches)
    if rule == "lowest":
        return worst
    rated = pl.sum_horizontal([n.is_not_null() for n in notches])
    middle = pl.sum_horizontal(notches) - worst - pl.min_horizontal(notches)
    return pl.when(rated == 3).then(middle).otherwise(worst)


def shift_expr(column: str, notches: int) -> pl.Expr:
    """The rating ``notches`` further down its scale (negative: up), clamped to the scale's ends.

    Unrated and defaulted ratings are left as they are.
    """
    scale = AGENCY_COLUMNS[column]
    moved = {r: scale[min(max(i + notches, 0), len(scale) - 1)] for i, r in enumerate(scale)}
    return pl.col(column).replace(moved)

"""A scenario's yield and spread shocks on the asset table: bonds repriced as exact bullets.

A bond with modified duration ``D`` and, where given, convexity ``C`` is the bullet of
:mod:`estimator.bonds` with that duration and convexity at its yield ``y₀`` (the assets'
``yield`` column, else :data:`~estimator.bonds.DEFAULT_YIELDS` by asset class) and coupon
frequency ``f`` (``coupon_frequency``, default 2). A shock ``Δy`` moves its price by
``B(y + Δy)/B(y)`` with ``y`` its yield after the shocks before: monotone and positive for any
``y + Δy > −f``, equal to the Taylor form ``1 − D·Δy + ½·C·Δy²`` to second order, and exact
when shocks compound (``B(y₀ + Δy₁ + Δy₂)/B(y₀)``). A yield driven to ``−f`` or below is an
input error; a quoted convexity no bullet of its duration has is a warning, and the bond is then
repriced by its duration alone (a zero coupon).

Example: a 2-year annual 5% bond at 5% is at par, with ``D = 1.95238/1.05 = 1.85941`` and
``C = (2·0.05/1.05 + 6·1.05/1.05²)/1.05² = 5.26941``. At +100bp it is worth
``0.05/1.06 + 1.05/1.06² = 0.981666`` of its price (Taylor: ``0.981669``); at +5,000bp
``0.05/1.55 + 1.05/1.55² = 0.469303``, where the Taylor form gives ``0.728971`` and, past
``Δy = D/C`` (3,529bp), rises again.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import polars as pl

from estimator import bonds
from estimator.errors import InputError, InputWarnings, Problem


def yields(assets: pl.DataFrame) -> pl.Expr:
    """Each bond's yield: its own, else the default of its asset class (null without a
    duration: not a bond)."""
    default = pl.col("asset_class").replace_strict(
        bonds.DEFAULT_YIELDS, default=bonds.OTHER_YIELD, return_dtype=pl.Float64
    )
    own = pl.col("yield") if "yield" in assets.columns else pl.lit(None, dtype=pl.Float64)
    return pl.when(pl.col("duration").is_not_null()).then(pl.coalesce(own, default))


@functools.lru_cache(maxsize=32)
def _bullets(key: tuple[tuple[float, float | None, float, int], ...]) -> bonds.Fit:
    """The fitted bullets of bonds given as (D, C or None, y₀, f): fitted once per market (a
    survival search applies the scenario a thousand times)."""
    d, c, y, f = zip(*key, strict=True)
    convexity = np.array([math.nan if v is None else v for v in c], dtype=float)
    return bonds.fit(np.array(d), convexity, np.array(y), np.array(f, dtype=float))


def reprice(
    out: pl.DataFrame, hit: pl.Expr, dy: pl.Expr, label: str, where: str, warnings: InputWarnings
) -> pl.DataFrame:
    """The bonds ``hit`` at yield ``y + dy`` (see the module docstring; ``dy`` one number for
    all, or each row's own); an input error where that yield is ``≤ −f``."""
    rows = out.with_row_index("_row").filter(hit).with_columns(_dy=dy)
    step = rows["_dy"].to_numpy()
    f = rows["coupon_frequency"].to_numpy().astype(float)
    y0, y = rows["yield_pre"].to_numpy(), rows["yield"].to_numpy()
    below = (y + step) <= -f
    if below.any():
        names = rows.filter(pl.Series(below))["asset_id"].to_list()[:10]
        raise InputError(
            [Problem(label, f"the shocks drive yields to −f or below for {names}", field=where)]
        )
    convexity = [None if c is None else float(c) for c in rows["convexity"]]
    durations = rows["duration"].to_list()
    key = tuple(zip(durations, convexity, y0.tolist(), f.astype(int).tolist(), strict=True))
    fit = _bullets(key)
    _warn_unmatched(rows, fit, label, warnings)
    ratio = np.ones(out.height)
    at = rows["_row"].to_numpy()
    ratio[at] = bonds.reprice(y, y + step, fit.coupon, fit.periods, f)
    new_yield = out["yield"].to_numpy().copy()
    new_yield[at] = y + step
    return out.with_columns(
        pl.col("price") * pl.Series(ratio), pl.Series("yield", new_yield, dtype=pl.Float64)
    )


def _warn_unmatched(
    rows: pl.DataFrame, fit: bonds.Fit, label: str, warnings: InputWarnings
) -> None:
    """A warning per bond whose quoted convexity no bullet of its duration has (beyond
    :data:`~estimator.bonds.CONVEXITY_RTOL`): it is repriced by its duration alone."""
    given = rows["convexity"].to_numpy()
    f = rows["coupon_frequency"].to_numpy().astype(float)
    _, nearest = bonds.duration_convexity(rows["yield_pre"].to_numpy(), fit.coupon, fit.periods, f)
    with np.errstate(invalid="ignore"):
        far = np.abs(nearest - given) > bonds.CONVEXITY_RTOL * np.abs(given)
    for i in np.flatnonzero(~np.isnan(given) & ~fit.convexity_matched & far)[:10]:
        warnings.add(
            Problem(
                label,
                f"asset {rows['asset_id'][int(i)]}: no bond of duration "
                f"{rows['duration'][int(i)]:g} has convexity {given[i]:g} (a zero coupon has "
                f"{nearest[i]:.4g}); repriced by its duration alone, as a zero coupon",
                field="convexity",
            )
        )

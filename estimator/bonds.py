"""Exact bond repricing: each bond is a bullet fitted to its duration and convexity.

The Taylor form ``P(1 − D·Δy + ½·C·Δy²)`` turns up beyond ``Δy = D/C``. Instead a bond with
modified duration ``D`` (years) and, optionally, convexity ``C`` (years²) is represented by a
bullet, and a yield change ``Δy`` reprices it as ``P' = P · B(y + Δy) / B(y)``: positive and
non-increasing in ``y`` for every ``y + Δy > −f``, since every cash flow is positive.

**The bullet.** Coupon frequency ``f ∈ {1, 2, 4, 12}`` a year, yield ``y`` (annual, decimal,
compounded ``f`` times a year), annual coupon rate ``c ≥ 0`` per unit face, maturity ``N > 0``
in coupon periods (a real number). With ``m = ⌈N⌉`` and ``τ = N − m + 1 ∈ (0, 1]`` there are
coupon dates ``t_j = τ + j`` periods from now, ``j = 0 … m − 1`` (the last at ``N``); each pays
``c/f``, the first only ``c/f·τ`` (a short first coupon, so the price is continuous in ``N``),
and the face 1 is paid at ``N``. With ``v = 1/(1 + y/f)``, computed as
``v^t = exp(−t·log1p(y/f))`` ::

    B(y) = Σ_j CF_j · v^{t_j}
    D = −B′/B  = E_w[t] / (f·(1 + y/f))
    C =  B″/B  = E_w[t(t + 1)] / (f²·(1 + y/f)²)

with ``E_w`` the mean over cash flows weighted by their present values ``CF_j·v^{t_j}/B`` and
``t`` in periods. ``N = 0`` is cash: one flow of 1 now, ``B ≡ 1``, ``D = C = 0``.

**The fit.** The targets in periods are the mean ``μ = D·f·(1 + y/f)`` and the second moment
``E_w[t²] = C·f²·(1 + y/f)² − μ``, i.e. the variance ``σ² = E_w[t²] − μ²``. For a fixed ``N``
the mean is ``μ(c) = (c·A₁ + B₁)/(c·A₀ + B₀)`` with ``A_k = Σ_j (coupon_j/c)·t_j^k·v^{t_j}``
(coupon present values per unit coupon rate) and ``B_k = N^k·v^N``, so the coupon is explicit ::

    c(N) = (μ·B₀ − B₁) / (A₁ − μ·A₀) = v^N·(μ − N) / (A₁ − μ·A₀)

At ``N = μ`` the bullet is a zero coupon (``c = 0``, ``σ² = 0``). A point ``N`` of the curve
is *valid* where ``c(N)`` is finite and ``0 ≤ c(N) ≤ MAX_COUPON`` (100 %); for ``μ ≤ 1`` no
``N > μ`` is. The fit looks, within the first stretch of valid ``N`` from ``μ`` (up to
``N_max``), for the ``N`` whose variance ``σ²(c(N), N)`` equals the target.

The variance is **not monotone** in ``N`` along this curve: near ``MAX_COUPON`` it dips (by a few
10⁻⁴, relative) at the end of each period, as the short first coupon regrows; and where
``μ`` is near or above a perpetuity's ``(1 + y/f)/(y/f)`` periods (e.g. ``D = 10`` at
``y = 10 %``, annual) ``c(N)`` rises and falls back towards 0 while ``σ²`` oscillates on a
plateau. A bisection over ``[μ, N_max]`` that counts an invalid ``c`` as "too far" can then end
on the edge of the valid region rather than on a root. So the fit (vectorised over bonds):

1. scans ``N_k = μ + (N_max − μ)·(k/K)²``, ``k = 1 … K = SCAN_POINTS`` (dense near the zero
   coupon) for the first invalid point and bisects for the end ``N_e`` of the first valid
   stretch (``N_max`` if there is none);
2. scans ``N_k = μ + (N_e − μ)·(1 − cos(πk/K))/2`` (dense at both ends, ``N_e`` itself last)
   for the first valid point whose ``E_w[t²]`` reaches the target, and bisects between it and
   the point before down to adjacent floats: where both are valid the target lies between.

Each trial ``N`` costs O(1) per bond: ``v^τ`` cancels from every ratio, and the prefix sums
``U_k(i) = Σ_{1≤j≤i} j^k·v^j`` (``k = 0, 1, 2``) are tabulated once per bond, so that with
``m = ⌈N⌉`` and ``U_k = U_k(m − 1)`` (``t_j = τ + j``, the ``j = 0`` coupon weighted ``τ``) ::

    f·A₀ = v^τ·(τ + U₀),   f·A₁ = v^τ·(τ² + τU₀ + U₁),   f·A₂ = v^τ·(τ³ + τ²U₀ + 2τU₁ + U₂)

Then ``c`` is recomputed from direct sums at the ``N`` found, and the bullet's ``D`` and ``C``
(:func:`duration_convexity`) must equal the targets to ``MATCH_RTOL``.

**Fallback.** Where ``C`` is missing, or not matched to ``MATCH_RTOL`` by the bullet found
(``σ² < 0``: ``C`` below a zero coupon's, which no bond with positive flows has — in particular
``C < D²``; or more than any bullet with ``c ≤ MAX_COUPON`` and ``N ≤ N_max`` reaches), the bond
is a zero coupon ``c = 0, N = μ`` with the duration matched, and ``convexity_matched`` is False
so the caller can warn. A target within ~10⁻⁴ of the top of the first stretch's variance
range (measured from the zero coupon's 0) may be reported unmatched although reachable, and
bullets beyond an invalid stretch are not searched. ``D = 0`` is no rate sensitivity:
``N = 0, c = 0``, ratio 1 (``convexity_matched`` only where ``C == 0``).

``N_max = MAX_YEARS·f`` (200 years): far beyond any bond, and it bounds the tables at
``200·f`` flows per bond. Example: a 2-period annual bond ``c = 5 %`` prices at par at
``y = 5 %`` and at ``0.05/1.06 + 1.05/1.06² = 1.103/1.1236 ≈ 0.98167`` at ``y = 6 %``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Coupon frequencies a bond may have, per year.
FREQUENCIES = (1, 2, 4, 12)

#: Yield of a bond without its own (the assets' ``yield`` column), by asset class, and of any
#: other class: assumptions, round levels of the kind these bonds have yielded over the past
#: decades, not any date's market. Only the shape of the bullet depends on them, through
#: ``μ = D·f·(1 + y/f)``; a price moves by the ratio of two prices at ``y`` and ``y + Δy``.
DEFAULT_YIELDS = {"govt_bond": 0.03, "bond_future": 0.03, "corp_bond": 0.05}
OTHER_YIELD = 0.04
DEFAULT_FREQUENCY = 2

#: A quoted convexity within this share of the nearest a bullet of its duration can have is
#: taken as that bullet's (quoted figures are rounded) without a warning.
CONVEXITY_RTOL = 0.05

#: Longest bullet, in years: ``N_max = MAX_YEARS·f`` periods.
MAX_YEARS = 200.0

#: Largest annual coupon rate a fitted bullet may have (1.0 = 100 % of face a year).
MAX_COUPON = 1.0

#: Relative tolerance on ``D`` and ``C`` for the convexity to count as matched.
MATCH_RTOL = 1e-9

#: Points of the scan over ``[μ, N_max]`` that brackets the fitted maturity.
SCAN_POINTS = 256

#: Bonds searched together (bounds the prefix tables at ``CHUNK × 200·f`` floats each).
CHUNK = 256

_MAX_BISECTIONS = 200


@dataclass(frozen=True, eq=False)
class Fit:
    """Fitted bullets, one per bond: annual ``coupon`` rate, maturity ``periods`` (coupon
    periods) and whether the bullet's convexity equals the given one (``convexity_matched``)."""

    coupon: np.ndarray
    periods: np.ndarray
    convexity_matched: np.ndarray


def price(
    y: np.ndarray, coupon: np.ndarray, periods: np.ndarray, frequency: np.ndarray
) -> np.ndarray:
    """``B(y)`` per unit face of each bullet: ``Σ_j CF_j·(1 + y/f)^{−t_j}``."""
    shape, (y, c, n, f) = _flat(y, coupon, periods, frequency)
    _check_bullets(c, n, f)
    _check_yield(y, f, "y")
    t, cf = _schedule(c, n, f)
    return (cf * _discount(t, y, f)).sum(axis=1).reshape(shape)


def duration_convexity(
    y: np.ndarray, coupon: np.ndarray, periods: np.ndarray, frequency: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Modified duration ``E_w[t]/(f(1 + y/f))`` (years) and convexity
    ``E_w[t(t + 1)]/(f(1 + y/f))²`` (years²) of each bullet."""
    shape, (y, c, n, f) = _flat(y, coupon, periods, frequency)
    _check_bullets(c, n, f)
    _check_yield(y, f, "y")
    t, cf = _schedule(c, n, f)
    pv = cf * _discount(t, y, f)
    b = pv.sum(axis=1)
    fq = f + y  # f·(1 + y/f)
    duration = (pv * t).sum(axis=1) / b / fq
    convexity = (pv * (t * (t + 1.0))).sum(axis=1) / b / fq**2
    return duration.reshape(shape), convexity.reshape(shape)


def reprice(
    y_old: np.ndarray,
    y_new: np.ndarray,
    coupon: np.ndarray,
    periods: np.ndarray,
    frequency: np.ndarray,
) -> np.ndarray:
    """``B(y_new)/B(y_old)`` per bullet (1 where ``periods == 0``), from the log-sum-exp of the
    flows so that it underflows only where the true ratio is below ~10⁻³⁰⁸.

    Raises ValueError where a yield is not finite or ``≤ −f``, or a bullet is not valid.
    """
    shape, (y0, y1, c, n, f) = _flat(y_old, y_new, coupon, periods, frequency)
    _check_bullets(c, n, f)
    _check_yield(y0, f, "y_old")
    _check_yield(y1, f, "y_new")
    t, cf = _schedule(c, n, f)
    with np.errstate(divide="ignore"):
        log_cf = np.where(cf > 0, np.log(cf), -np.inf)
    ratio = np.exp(
        _log_sum_exp(log_cf - t * _log1p(y1, f)) - _log_sum_exp(log_cf - t * _log1p(y0, f))
    )
    return np.where(n == 0, 1.0, ratio).reshape(shape)


def fit(
    duration: np.ndarray, convexity: np.ndarray, yield_: np.ndarray, frequency: np.ndarray
) -> Fit:
    """Bullets with each bond's duration and, where reachable, convexity (NaN = missing).

    Raises ValueError where a duration is negative, not finite or longer than ``N_max``, a
    yield not finite or ``≤ −f``, or a frequency not in :data:`FREQUENCIES`.
    """
    shape, (d, cx, y, f) = _flat(duration, convexity, yield_, frequency)
    _check_frequency(f)
    _check_yield(y, f, "yield")
    if not np.all(np.isfinite(d) & (d >= 0)):
        raise ValueError("durations must be finite and ≥ 0")
    fq = f + y
    mu = d * fq
    if np.any(mu > MAX_YEARS * f):
        raise ValueError(f"durations·(1 + y/f) must be at most {MAX_YEARS:g} years")
    e2 = cx * fq**2 - mu  # target E_w[t²]
    coupon, periods = np.zeros_like(mu), mu.copy()
    with np.errstate(invalid="ignore"):
        todo = np.flatnonzero((d > 0) & np.isfinite(cx) & (e2 - mu**2 > 0))
    for start in range(0, todo.size, CHUNK):
        i = todo[start : start + CHUNK]
        n = _search(mu[i], e2[i], y[i], f[i])
        found = np.isfinite(n)
        periods[i[found]] = n[found]
        coupon[i[found]] = _coupon_for_mean(mu[i[found]], y[i[found]], f[i[found]], n[found])
    ok = np.isfinite(coupon) & (coupon >= 0) & (coupon <= MAX_COUPON)
    coupon, periods = np.where(ok, coupon, 0.0), np.where(ok, periods, mu)
    miss = ~_matches(d, cx, y, coupon, periods, f)
    coupon, periods = np.where(miss, 0.0, coupon), np.where(miss, mu, periods)
    matched = _matches(d, cx, y, coupon, periods, f)
    return Fit(coupon.reshape(shape), periods.reshape(shape), matched.reshape(shape))


def _matches(
    d: np.ndarray, cx: np.ndarray, y: np.ndarray, c: np.ndarray, n: np.ndarray, f: np.ndarray
) -> np.ndarray:
    dur, conv = duration_convexity(y, c, n, f)
    with np.errstate(invalid="ignore"):
        return (np.abs(dur - d) <= MATCH_RTOL * d) & (np.abs(conv - cx) <= MATCH_RTOL * np.abs(cx))


def _search(mu: np.ndarray, e2: np.ndarray, y: np.ndarray, f: np.ndarray) -> np.ndarray:
    """``N`` with ``E_w[t²] = e2`` on the curve ``c(N)``, within the first stretch of valid ``N``
    from the zero coupon; NaN where no scanned point of that stretch reaches ``e2``."""
    order = np.argsort(f, kind="stable")  # one block of tables per frequency, in this order
    mu, e2, y, f = mu[order], e2[order], y[order], f[order]
    n_max = MAX_YEARS * f
    width = np.ceil(n_max).astype(np.intp)  # table entries per bond: j = 0 … ⌈N_max⌉ − 1
    start = np.cumsum(width) - width
    tables = np.empty((4, width.sum()))  # v^j, then Σ_{1≤i≤j} i^k·v^i for k = 0, 1, 2
    for freq in np.unique(f):  # one block per frequency, each only as long as its N_max
        bond = np.flatnonzero(f == freq)
        j = np.arange(width[bond[0]], dtype=float)
        first = start[bond[0]]
        block = tables[:, first : first + bond.size * j.size].reshape(4, bond.size, j.size)
        np.exp(-j * _log1p(y[bond], f[bond]), out=block[0])
        np.cumsum(block[0], axis=1, out=block[1])
        block[1] -= 1.0  # the sums run over i ≥ 1
        np.multiply(block[0], j, out=block[2])
        np.multiply(block[2], j, out=block[3])
        np.cumsum(block[2:], axis=2, out=block[2:])
    start = start[:, None]
    mc, e2c, fc = mu[:, None], e2[:, None], f[:, None]

    def curve(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Whether ``c(N)`` is valid, and ``E_w[t²]`` there (one column per trial ``N``)."""
        i = np.maximum(np.ceil(n), 1.0) - 1.0
        tau = n - i
        vm, u0, u1, u2 = tables[:, start + i.astype(np.intp)]
        a0 = (tau + u0) / fc
        a1 = (tau**2 + tau * u0 + u1) / fc
        a2 = (tau**3 + tau**2 * u0 + 2.0 * tau * u1 + u2) / fc
        c = vm * (mc - n) / (a1 - mc * a0)  # v^τ cancels from every sum
        moment2 = (c * a2 + n**2 * vm) / (c * a0 + vm)
        return (c >= 0) & (c <= MAX_COUPON) & np.isfinite(moment2), moment2

    def invalid(n: np.ndarray) -> np.ndarray:
        return ~curve(n)[0]

    def reaches(n: np.ndarray) -> np.ndarray:
        valid, moment2 = curve(n)
        return valid & (moment2 >= e2c)

    with np.errstate(all="ignore"):
        quadratic = (np.arange(1, SCAN_POINTS + 1) / SCAN_POINTS) ** 2
        ends, last_valid, _ = _first_switch(invalid, mu, n_max, quadratic)
        end = np.where(ends, last_valid, n_max)
        cosine = 0.5 - 0.5 * np.cos(np.pi * np.arange(1, SCAN_POINTS + 1) / SCAN_POINTS)
        found, _, hi = _first_switch(reaches, mu, end, cosine)
    periods = np.empty_like(mu)
    periods[order] = np.where(found, hi, np.nan)
    return periods


def _first_switch(
    predicate: Callable[[np.ndarray], np.ndarray],
    start: np.ndarray,
    stop: np.ndarray,
    steps: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the first scanned ``N = start + (stop − start)·step`` where ``predicate`` holds,
    then bisection between it and the point before (``start`` itself is never evaluated) down
    to adjacent floats: whether one was found, the last ``N`` without and the first with."""
    grid = start[:, None] + (stop - start)[:, None] * steps
    grid[:, -1] = stop
    hit = predicate(grid)
    first = hit.argmax(axis=1)
    rows = np.arange(start.size)
    lo = np.where(first > 0, grid[rows, first - 1], start)
    hi = grid[rows, first]
    for _ in range(_MAX_BISECTIONS):
        mid = 0.5 * (lo + hi)
        if np.all((mid == lo) | (mid == hi)):
            break
        yes = predicate(mid[:, None])[:, 0]
        lo, hi = np.where(yes, lo, mid), np.where(yes, mid, hi)
    return hit.any(axis=1), lo, hi


def _coupon_for_mean(mu: np.ndarray, y: np.ndarray, f: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``c(N) = v^N·(μ − N)/(A₁ − μ·A₀)``: the coupon giving a bullet of ``N`` periods the
    present-value-weighted mean time ``μ`` (periods), from direct sums."""
    t, per_unit = _schedule(np.ones_like(n), n, f, face=0.0)
    pv = per_unit * _discount(t, y, f)
    a0, a1 = pv.sum(axis=1), (pv * t).sum(axis=1)
    with np.errstate(all="ignore"):
        return np.exp(-n * _log1p(y, f)[:, 0]) * (mu - n) / (a1 - mu * a0)


def _schedule(
    c: np.ndarray, n: np.ndarray, f: np.ndarray, face: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Times ``t`` (periods) and amounts ``CF`` of every bullet's flows, padded with zeros to
    the longest one (bonds × flows)."""
    m = np.maximum(np.ceil(n), 1.0)
    tau = n - m + 1.0
    j = np.arange(int(m.max()) if m.size else 1, dtype=float)
    live = j < m[:, None]
    t = np.where(live, tau[:, None] + j, 0.0)
    cf = np.where(live, (c / f)[:, None], 0.0)
    cf[:, 0] *= tau
    cf[np.arange(n.size), m.astype(np.intp) - 1] += face
    return t, cf


def _log1p(y: np.ndarray, f: np.ndarray) -> np.ndarray:
    """``log(1 + y/f)`` as a column."""
    return np.log1p(y / f)[:, None]


def _discount(t: np.ndarray, y: np.ndarray, f: np.ndarray) -> np.ndarray:
    """``(1 + y/f)^{−t}`` as ``exp(−t·log1p(y/f))``."""
    return np.exp(-t * _log1p(y, f))


def _log_sum_exp(a: np.ndarray) -> np.ndarray:
    top = a.max(axis=1)
    return top + np.log(np.exp(a - top[:, None]).sum(axis=1))


def _flat(*arrays: np.ndarray) -> tuple[tuple[int, ...], list[np.ndarray]]:
    """The broadcast shape, and each array broadcast to it, flat and float64."""
    full = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in arrays))
    return full[0].shape, [np.ascontiguousarray(a).ravel() for a in full]


def _check_frequency(f: np.ndarray) -> None:
    if not np.all(np.isin(f, FREQUENCIES)):
        raise ValueError(f"coupon frequencies must be one of {FREQUENCIES}")


def _check_bullets(c: np.ndarray, n: np.ndarray, f: np.ndarray) -> None:
    _check_frequency(f)
    if not np.all(np.isfinite(c) & (c >= 0)):
        raise ValueError("coupons must be finite and ≥ 0")
    if not np.all((n >= 0) & (n <= MAX_YEARS * f)):
        raise ValueError(f"periods must be in [0, {MAX_YEARS:g}·frequency]")


def _check_yield(y: np.ndarray, f: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(y) & (y > -f)):
        raise ValueError(f"{name} must be finite and above −frequency (1 + y/f > 0)")

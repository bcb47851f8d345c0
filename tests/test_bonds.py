"""Bullet-bond repricing: prices against explicit cash-flow sums, duration and convexity against
finite differences, the fit's round trip and fallbacks, and the repriced ratio's shape."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from estimator import bonds

FREQUENCIES = [1, 2, 4, 12]


def _flows(c: float, n: float, f: int) -> list[tuple[float, float]]:
    """The bullet's (time in periods, amount) pairs, written out one by one."""
    m = max(math.ceil(n), 1)
    tau = n - m + 1
    coupons = [(tau + j, c / f * (tau if j == 0 else 1.0)) for j in range(m)]
    return [*coupons, (n, 1.0)]


def _price_by_hand(y: float, c: float, n: float, f: int) -> float:
    return math.fsum(cf * (1 + y / f) ** -t for t, cf in _flows(c, n, f))


def _duration_convexity_by_hand(y: float, c: float, n: float, f: int) -> tuple[float, float]:
    """``E_w[t]/(f + y)`` and ``E_w[t(t + 1)]/(f + y)²``, PV weights summed with fsum."""
    pv = [(t, cf * (1 + y / f) ** -t) for t, cf in _flows(c, n, f)]
    b = math.fsum(p for _, p in pv)
    mean = math.fsum(t * p for t, p in pv) / b
    second = math.fsum(t * (t + 1) * p for t, p in pv) / b
    return mean / (f + y), second / (f + y) ** 2


def _zero_coupon_convexity(d: float, y: float, f: int) -> float:
    mu = d * (f + y)
    return mu * (mu + 1) / (f + y) ** 2


# 1. price and reprice against explicit sums ---------------------------------------------------

CASES = list(
    itertools.product(
        [0.0, 0.05],  # coupon
        [0.4, 1.0, 2.0, 7.0, 7.3, 59.999, 60.5, 123.25],  # periods
        FREQUENCIES,
        [-0.01, 0.0, 0.03, 0.2],  # yield
    )
)


def test_price_agrees_with_an_explicit_cash_flow_sum() -> None:
    c, n, f, y = (np.array(v, dtype=float) for v in zip(*CASES, strict=True))
    got = bonds.price(y, c, n, f)
    for k, (ck, nk, fk, yk) in enumerate(CASES):
        assert got[k] == pytest.approx(_price_by_hand(yk, ck, nk, fk), rel=1e-12, abs=0)


def test_reprice_is_the_ratio_of_explicit_cash_flow_sums() -> None:
    c, n, f, y = (np.array(v, dtype=float) for v in zip(*CASES, strict=True))
    for dy in (-0.015, 0.004, 0.25):
        got = bonds.reprice(y, y + dy, c, n, f)
        for k, (ck, nk, fk, yk) in enumerate(CASES):
            want = _price_by_hand(yk + dy, ck, nk, fk) / _price_by_hand(yk, ck, nk, fk)
            assert got[k] == pytest.approx(want, rel=1e-12, abs=0)


def test_price_broadcasts_per_bond() -> None:
    got = bonds.price(np.array([[0.01], [0.02], [0.03]]), 0.04, np.array([[4.0, 9.5]]), 2)
    assert got.shape == (3, 2)
    assert got[2, 1] == pytest.approx(_price_by_hand(0.03, 0.04, 9.5, 2), rel=1e-12)


# 2. a case by hand -----------------------------------------------------------------------------


def test_two_period_annual_bond_by_hand() -> None:
    # 5 % annual coupon, 2 years: at 5 % it is at par, 0.05/1.05 + 1.05/1.05² = 1;
    # at 6 %, 0.05/1.06 + 1.05/1.06² = (0.05·1.06 + 1.05)/1.1236 = 1.103/1.1236 = 0.98166607333…
    assert bonds.price(0.05, 0.05, 2.0, 1) == pytest.approx(1.0, rel=1e-15)
    assert bonds.price(0.06, 0.05, 2.0, 1) == pytest.approx(0.9816660733357066, rel=1e-15)
    assert bonds.reprice(0.05, 0.06, 0.05, 2.0, 1) == pytest.approx(0.9816660733357066, rel=1e-14)


# 3. duration and convexity; the fit's round trip -------------------------------------------------


@pytest.mark.parametrize(
    ("c", "n", "f", "y"),
    [(0.03, 20.5, 2, 0.04), (0.0, 7.3, 1, 0.01), (0.08, 123.25, 12, 0.05), (0.02, 1.5, 4, -0.005)],
)
def test_duration_convexity_are_finite_differences_of_price(
    c: float, n: float, f: int, y: float
) -> None:
    d, cx = bonds.duration_convexity(y, c, n, f)
    p = [_price_by_hand(y + k * 1e-5, c, n, f) for k in (-1, 0, 1)]
    assert d == pytest.approx((p[0] - p[2]) / (2e-5 * p[1]), rel=1e-8)
    p = [_price_by_hand(y + k * 1e-4, c, n, f) for k in (-1, 0, 1)]
    assert cx == pytest.approx((p[0] - 2 * p[1] + p[2]) / (1e-8 * p[1]), rel=1e-6)


def test_duration_convexity_agree_with_explicit_sums() -> None:
    c, n, f, y = (np.array(v, dtype=float) for v in zip(*CASES, strict=True))
    d, cx = bonds.duration_convexity(y, c, n, f)
    for k, (ck, nk, fk, yk) in enumerate(CASES):
        want = _duration_convexity_by_hand(yk, ck, nk, fk)
        assert (d[k], cx[k]) == pytest.approx(want, rel=1e-12, abs=0)


def _assert_fitted(d: np.ndarray, cx: np.ndarray, y: np.ndarray, f: np.ndarray) -> None:
    fit = bonds.fit(d, cx, y, f)
    assert fit.convexity_matched.all()
    assert ((fit.coupon >= 0) & (fit.coupon <= bonds.MAX_COUPON)).all()
    assert ((fit.periods >= d * (f + y)) & (fit.periods <= bonds.MAX_YEARS * f)).all()
    got_d, got_c = bonds.duration_convexity(y, fit.coupon, fit.periods, f)
    np.testing.assert_allclose(got_d, d, rtol=1e-10, atol=0)
    np.testing.assert_allclose(got_c, cx, rtol=1e-10, atol=0)


@pytest.mark.parametrize(
    ("d", "cx", "y", "f"),
    [
        (19.0, 450.0, 0.02, 2),  # UST 30y
        (8.5, 85.0, 0.04, 2),  # gilt 10y
        (10.0, (113.5 + 11.0**2 + 11.0) / 1.1**2, 0.10, 1),  # σ² = 113.5 on the plateau
    ],
)
def test_fit_matches_named_bonds(d: float, cx: float, y: float, f: int) -> None:
    _assert_fitted(*(np.array([v], dtype=float) for v in (d, cx, y, f)))


def test_fit_recovers_duration_and_convexity_of_a_grid_of_bullets() -> None:
    grid = list(
        itertools.product(
            [0.0, 0.01, 0.05, 0.12],
            [0.75, 2.0, 10.0, 30.0, 50.0],
            [-0.005, 0.03, 0.10],
            FREQUENCIES,
        )
    )
    targets = [_duration_convexity_by_hand(y, c, years * f, f) for c, years, y, f in grid]
    d, cx = (np.array(v) for v in zip(*targets, strict=True))
    y, f = (np.array([g[k] for g in grid], dtype=float) for k in (2, 3))
    _assert_fitted(d, cx, y, f)


# 4. fallbacks -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("d", "cx", "y", "f"),
    [
        (10.0, 50.0, 0.02, 2),  # below a zero coupon's 104.95
        (7.95, 56.8, 0.05, 2),  # C < D² = 63.2: no bond with positive flows has it
        (5.0, math.nan, 0.03, 2),  # missing
        (5.0, -3.0, 0.03, 2),
        (5.0, 1e5, 0.03, 2),  # C·(f + y)² − μ = E_w[t²] ≤ N_max² = 400² bounds C by ~3.9e4
        (0.3, 1.2 * _zero_coupon_convexity(0.3, 0.03, 1), 0.03, 1),  # μ < 1 period: no coupon
    ],
)
def test_unmatched_convexity_falls_back_to_a_zero_coupon(
    d: float, cx: float, y: float, f: int
) -> None:
    fit = bonds.fit(d, cx, y, f)
    assert not fit.convexity_matched
    assert fit.coupon == 0.0
    assert fit.periods == pytest.approx(d * (f + y), rel=1e-15)
    got_d, _ = _duration_convexity_by_hand(y, 0.0, float(fit.periods), f)
    assert got_d == pytest.approx(d, rel=1e-12)


def test_a_bullet_found_but_not_matching_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # The last guard: whatever the search returns, a bullet whose C misses is not reported.
    monkeypatch.setattr(bonds, "_search", lambda mu, e2, y, f: 1.5 * mu)
    fit = bonds.fit(19.0, 450.0, 0.02, 2)
    assert not fit.convexity_matched
    assert fit.coupon == 0.0
    assert fit.periods == pytest.approx(19.0 * 2.02, rel=1e-15)


def test_zero_duration_never_moves() -> None:
    fit = bonds.fit(0.0, np.array([0.0, math.nan, 5.0]), 0.03, 2)
    assert fit.periods.tolist() == [0.0, 0.0, 0.0]
    assert fit.coupon.tolist() == [0.0, 0.0, 0.0]
    assert fit.convexity_matched.tolist() == [True, False, False]
    ratio = bonds.reprice(0.03, np.array([-1.9, 0.0, 50.0]), 0.0, 0.0, 2)
    assert ratio.tolist() == [1.0, 1.0, 1.0]


# 5. the repriced ratio -----------------------------------------------------------------------


@st.composite
def _bonds(draw: st.DrawFn) -> tuple[float, float, float, int]:
    d = draw(st.floats(0.1, 30.0))
    y = draw(st.floats(-0.005, 0.10))
    f = draw(st.sampled_from(FREQUENCIES))
    ratio = draw(st.none() | st.floats(0.9, 1.6))
    cx = math.nan if ratio is None else ratio * _zero_coupon_convexity(d, y, f)
    return d, cx, y, f


@given(
    bond=_bonds(),
    moves_bp=st.lists(st.integers(-300, 100_000), min_size=2, max_size=30, unique=True),
    small=st.lists(st.floats(-0.0025, 0.0025), min_size=1, max_size=8),
)
@settings(max_examples=40)
def test_repriced_ratio_is_positive_decreasing_and_taylor_near_zero(
    bond: tuple[float, float, float, int], moves_bp: list[int], small: list[float]
) -> None:
    d, cx, y, f = bond
    fit = bonds.fit(d, cx, y, f)
    c, n = float(fit.coupon), float(fit.periods)
    dy = np.array(sorted({0, *moves_bp})) / 1e4
    ratio = bonds.reprice(y, y + dy, c, n, f)
    assert (ratio > 0).all()
    assert (np.diff(ratio) < 0).all()  # 1 bp apart at least: far above rounding
    assert ratio[dy == 0] == 1.0

    # Taylor to third order: R(x) = Σ w_j (1 + x)^{−t_j}, x = Δy/(f + y), with t_j ≤ N, so
    # |R − (1 − D·Δy + ½C·Δy²)| ≤ sup|R‴|/6·|x|³ ≤ K·|Δy|³ for |x| ≤ x̄, with
    # K = N(N + 1)(N + 2) / (6·(f + y)³·(1 − x̄)^{N+3}); the 1e-13 is rounding.
    conv = cx if fit.convexity_matched else _zero_coupon_convexity(d, y, f)
    small_dy = np.array(small)
    x_bar = np.abs(small_dy).max() / (f + y)
    k = n * (n + 1) * (n + 2) / (6 * (f + y) ** 3 * (1 - x_bar) ** (n + 3))
    taylor = 1 - d * small_dy + 0.5 * conv * small_dy**2
    got = bonds.reprice(y, y + small_dy, c, n, f)
    assert (np.abs(got - taylor) <= k * np.abs(small_dy) ** 3 + 1e-13).all()


# 6. inputs the caller must turn into errors -----------------------------------------------------


@pytest.mark.parametrize("y_new", [-2.0, -2.5, math.nan, math.inf])
def test_reprice_rejects_yields_at_or_below_minus_f(y_new: float) -> None:
    with pytest.raises(ValueError, match="y_new"):
        bonds.reprice(0.03, np.array([0.01, y_new]), 0.04, 20.0, 2)
    with pytest.raises(ValueError, match="y_old"):
        bonds.reprice(y_new, 0.03, 0.04, 20.0, 2)


@pytest.mark.parametrize(
    ("d", "y", "f"),
    [(-1.0, 0.03, 2), (math.nan, 0.03, 2), (5.0, -1.0, 1), (5.0, 0.03, 3), (250.0, 0.03, 1)],
)
def test_fit_rejects_bad_inputs(d: float, y: float, f: int) -> None:
    with pytest.raises(ValueError):
        bonds.fit(d, 50.0, y, f)


# 7. speed ---------------------------------------------------------------------------------------


def test_fit_of_200_bonds_is_quick() -> None:
    rng = np.random.default_rng(7)
    f = rng.choice(FREQUENCIES, 200).astype(float)
    y = rng.uniform(-0.005, 0.10, 200)
    d = rng.uniform(0.1, 30.0, 200)
    cx = rng.uniform(0.9, 1.6, 200) * (d * (f + y)) * (d * (f + y) + 1) / (f + y) ** 2
    start = time.perf_counter()
    fit = bonds.fit(d, cx, y, f)
    assert time.perf_counter() - start < 1.0
    assert fit.convexity_matched.any() and not fit.convexity_matched.all()


# the curve c(N) the fit searches --------------------------------------------------------------


def _curve(
    d: float, y: float, f: int, points: int = 400
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``N``, ``c(N)`` and the variance ``σ²`` (periods²) along the curve, over the first stretch
    of valid ``N`` sampled; each point's duration checked against ``d``."""
    mu = d * (f + y)
    n = np.linspace(mu, bonds.MAX_YEARS * f, points + 1)[1:]
    c = bonds._coupon_for_mean(np.full(points, mu), np.full(points, y), np.full(points, f), n)
    valid = np.isfinite(c) & (c >= 0) & (c <= bonds.MAX_COUPON)
    stretch = valid.argmin() if not valid.all() else points
    n, c = n[:stretch], c[:stretch]
    got_d, got_c = bonds.duration_convexity(y, c, n, f)
    np.testing.assert_allclose(got_d, d, rtol=1e-9)
    return n, c, got_c * (f + y) ** 2 - mu - mu**2


def test_variance_along_the_curve_is_not_monotone() -> None:
    # Why the fit scans before it bisects: on a perpetuity-like plateau (μ = 11 periods is a
    # perpetuity's 1.1/0.1 at 10 %) and near a 100 % coupon, σ² falls as well as rises with N.
    for d, y, f in [(10.0, 0.10, 1), (30.0, 0.02, 1)]:
        _, _, var = _curve(d, y, f, points=4000)
        assert (np.diff(var) < -1e-6 * var[1:]).any()
        assert var.size > 10


@pytest.mark.parametrize("f", [1, 2, 12])
@pytest.mark.parametrize("y", [-0.005, 0.02, 0.05, 0.10])
def test_fit_reaches_targets_along_the_whole_curve(y: float, f: int) -> None:
    d = np.array([0.8, 2.0, 5.0, 10.0, 20.0, 30.0])
    targets, rows = [], []
    for dk in d:
        _, _, var = _curve(float(dk), y, f)
        if var.size:
            mu = dk * (f + y)
            for share in (0.05, 0.5, 0.9, 0.99):
                targets.append((share * var.max() + mu**2 + mu) / (f + y) ** 2)
                rows.append(dk)
    n = len(rows)
    _assert_fitted(np.array(rows), np.array(targets), np.full(n, y), np.full(n, float(f)))

"""Yield and spread shocks on the asset table: bonds repriced as exact bullets, monotone and
positive for any shock, exact when shocks compound, checked against hand arithmetic."""

from __future__ import annotations

import itertools
import math

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from estimator import InputError, Scenario, apply_scenario, load_market
from estimator.errors import InputWarnings
from estimator.paths import markets_dir

SMALL = load_market(markets_dir() / "small")


def _bond(**columns: object) -> pl.DataFrame:
    """The small market's 30-year gilt (P = 85, D = 19, C = 450) with ``columns`` changed."""
    gilt = SMALL.assets.filter(pl.col("asset_id") == "GILT30Y")
    return gilt.with_columns(pl.lit(v).alias(k) for k, v in columns.items())


def _price(assets: pl.DataFrame, *bps: float, warnings: InputWarnings | None = None) -> float:
    shocks = [{"select": {"all": True}, "yield_change_bp": bp} for bp in bps]
    spec = Scenario.model_validate({"name": "s", "shocks": shocks})
    return apply_scenario(assets, spec, warnings=warnings)["price"].item()


# The 2-year annual 5% bond at 5%: D = 1.95238/1.05, C = (2·0.05/1.05 + 6·1.05/1.05²)/1.05²
TWO_YEAR = {
    "price": 100.0,
    "duration": (0.05 / 1.05 + 2 * 1.05 / 1.05**2) / 1.05,
    "convexity": (2 * 0.05 / 1.05 + 6 * 1.05 / 1.05**2) / 1.05**2,
    "yield": 0.05,
    "coupon_frequency": 1,
}


@pytest.mark.parametrize(
    ("bp", "by_hand"),
    [
        (100, 0.05 / 1.06 + 1.05 / 1.06**2),
        (-200, 0.05 / 1.03 + 1.05 / 1.03**2),
        (5000, 0.05 / 1.55 + 1.05 / 1.55**2),
    ],
)
def test_a_bond_of_known_cash_flows_reprices_exactly(bp: float, by_hand: float) -> None:
    """A bond whose duration and convexity are a 2-year 5% annual bond's is that bond."""
    assert _price(_bond(**TWO_YEAR), bp) == pytest.approx(100 * by_hand, rel=1e-12)


def test_shocks_compound_exactly() -> None:
    gilt = _bond(**{"yield": 0.02})
    assert _price(gilt, 100, 200, -50) == pytest.approx(_price(gilt, 250), rel=1e-12)


def test_small_moves_agree_with_the_taylor_form_to_third_order() -> None:
    """The bullet has D = 19 and C = 450, so it differs from P(1 − DΔy + ½CΔy²) by the third
    order term, B‴/(6B)·Δy³ ≤ E[t(t+1)(t+2)]/(6f³)·|Δy|³ < 5,000·|Δy|³ for flows within 60
    half-years."""
    gilt = _bond(**{"yield": 0.02})
    for bp in (-25, -10, 1, 10, 25):
        dy = bp / 1e4
        taylor = 85 * (1 - 19 * dy + 0.5 * 450 * dy**2)
        assert abs(_price(gilt, bp) - taylor) <= 85 * 5_000 * abs(dy) ** 3 + 1e-12


def test_the_taylor_forms_turn_is_gone() -> None:
    """With P(1 − DΔy + ½CΔy²) the gilt fell to 54 at +300bp and rose back to 115 at
    +1,000bp; the bullet keeps falling."""
    gilt = _bond()
    prices = [_price(gilt, bp) for bp in (300, 1000, 3000, 5000)]
    assert all(b < a for a, b in itertools.pairwise(prices))
    assert 0 < prices[-1] < prices[0] < 85


@settings(max_examples=40)
@given(
    duration=st.floats(0.5, 30),
    excess=st.floats(1.0, 1.6),
    yield_=st.floats(-0.005, 0.1),
    frequency=st.sampled_from([1, 2, 4, 12]),
    moves=st.lists(st.integers(-300, 5000), min_size=2, max_size=8, unique=True),
)
def test_prices_fall_monotonically_and_stay_positive(
    duration: float, excess: float, yield_: float, frequency: int, moves: list[int]
) -> None:
    zero = duration**2 + duration / (frequency * (1 + yield_ / frequency))  # C of a zero ≈
    bond = _bond(
        duration=duration, convexity=excess * zero, coupon_frequency=frequency, **{"yield": yield_}
    )
    prices = [_price(bond, bp) for bp in sorted(moves)]
    assert all(p > 0 and math.isfinite(p) for p in prices)
    assert all(b < a for a, b in itertools.pairwise(prices))


def test_a_yield_driven_below_minus_f_is_an_input_error() -> None:
    # f = 2: the yield may not reach −200%; from 2% that is a fall of more than 20,200bp,
    # made here of five shocks within the per-shock bound
    with pytest.raises(InputError) as caught:
        _price(_bond(**{"yield": 0.02}), *[-4100] * 5)
    assert "yields to −f or below" in str(caught.value)


def test_a_shock_beyond_5000bp_is_too_large() -> None:
    with pytest.raises(ValueError, match="less than or equal to 5000"):
        Scenario.model_validate(
            {"name": "s", "shocks": [{"select": {"all": True}, "yield_change_bp": 100_000}]}
        )


def test_unreachable_convexity_warns_and_reprices_by_duration() -> None:
    """C = 0.9·D² is below a zero coupon's: no bond has it."""
    warnings = InputWarnings()
    bond = _bond(duration=8.0, convexity=0.9 * 64, **{"yield": 0.03})
    got = _price(bond, 100, warnings=warnings)
    assert any("no bond of duration 8 has convexity 57.6" in str(w) for w in warnings.items)
    mu = 8.0 * 2 * 1.015  # the zero coupon's maturity in half-years: D·f·(1 + y/f)
    assert got == pytest.approx(85 * (1.015 / 1.02) ** mu, rel=1e-12)


def test_default_yield_and_frequency() -> None:
    """Without a yield, a government bond's is 3% and its coupons half-yearly: without a
    convexity the gilt is the zero coupon of μ = D·f·(1 + y/f) = 19·2·1.015 = 38.57
    half-years, worth (1.015/1.02)^38.57 of its price at +100bp."""
    gilt = _bond(convexity=None)
    assert _price(gilt, 100) == pytest.approx(85 * (1.015 / 1.02) ** (19 * 2 * 1.015), rel=1e-12)
    annual = _bond(convexity=None, coupon_frequency=1)  # a Bund: μ = 19·1.03 years
    assert _price(annual, 100) == pytest.approx(85 * (1.03 / 1.04) ** (19 * 1.03), rel=1e-12)

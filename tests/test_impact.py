"""Price-impact models: every number worked out by hand in the comments."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from estimator import InputError
from estimator.impact import Impact, execution_price, prices_after
from estimator.scenario import load_scenario

DAILY = math.sqrt(252)  # vol = σ_d · √252


def _state(model: dict[str, Any], **asset: Any) -> pl.DataFrame:
    """One asset ``A`` (P₀ = price = 100, ADV 1e8, σ_d 2%) with ``model`` and net quantities."""
    row = {
        "asset_id": "A",
        "asset_class": "equity",
        "instrument": "cash",
        "price_0": 100.0,
        "price": 100.0,
        "multiplier": 1.0,
        "adv": 1e8,
        "vol": 0.02 * DAILY,
        "round_quantity": 0.0,
        "episode_quantity": 0.0,
    } | asset
    assets = pl.DataFrame([row])
    params = Impact(models=[model]).parameters(assets)
    return assets.join(params, on="asset_id")


def _price(model: dict[str, Any], mode: str = "cumulative", **asset: Any) -> float:
    return prices_after(_state(model, **asset), mode)["price_after"].item()


def test_no_impact_leaves_the_price() -> None:
    assert _price({"model": "none"}, episode_quantity=-1e9) == 100.0


def test_linear_per_value() -> None:
    # sell 500 000 units at P₀ = 100: Q = 5e7; ℓ = 1e-9 per currency unit → −5% → 95
    model = {"model": "linear", "coefficient": 1e-9, "per": "value"}
    assert _price(model, episode_quantity=-5e5) == pytest.approx(95.0, rel=1e-12)


def test_linear_per_adv() -> None:
    # Q = 5e7 = half a day's volume; ℓ = 0.1 per ADV → −5% → 95; buying the same: +5% → 105
    model = {"model": "linear", "coefficient": 0.1, "per": "adv"}
    assert _price(model, episode_quantity=-5e5) == pytest.approx(95.0, rel=1e-12)
    assert _price(model, episode_quantity=5e5) == pytest.approx(105.0, rel=1e-12)


def test_square_root_law() -> None:
    # Q = 2.5e7 = a quarter of ADV: √0.25 = 0.5; κ = 1, σ_d = 2% → −1% → 99; κ = 3 → −3% → 97
    assert _price({"model": "sqrt"}, episode_quantity=-2.5e5) == pytest.approx(99.0, rel=1e-12)
    three = {"model": "sqrt", "kappa": 3.0}
    assert _price(three, episode_quantity=-2.5e5) == pytest.approx(97.0, rel=1e-12)


def test_exponential_decays_towards_the_floor() -> None:
    # b = ½ → B = 50; δ = (1 − ½)·1·1e8·√1 / 0.02 = 2.5e9. Q = δ·ln 2 → exp(−Q/δ) = ½:
    # Δp/p = −(1 − 50/100)·(1 − ½) = −25% → 75 = B + (P − B)·½
    model = {"model": "exponential", "floor": 0.5}
    quantity = 2.5e9 * math.log(2) / 100
    assert _price(model, episode_quantity=-quantity) == pytest.approx(75.0, rel=1e-12)
    # τ = 4 days doubles δ (√4): exp(−ln2 / 2) = 0.7071…: 50 + 50·0.7071… = 85.355…
    slow = model | {"horizon_days": 4.0}
    assert _price(slow, episode_quantity=-quantity) == pytest.approx(50 + 50 * 2**-0.5, rel=1e-12)
    # the price never goes below the floor however much is sold
    assert _price(model, episode_quantity=-1e8) == pytest.approx(50 + 50 * math.exp(-4), rel=1e-12)
    assert _price(model, episode_quantity=-1e12) >= 50.0


def test_cumulative_impact_does_not_depend_on_how_the_selling_is_split() -> None:
    # square root on 4e5 units sold: in one round or as 1e5 + 3e5, the final price is the same
    # (√(4e7/1e8) = 0.632…: 100·(1 − 0.02·0.632…) = 98.735…)
    model = {"model": "sqrt"}
    one = _price(model, episode_quantity=-4e5, round_quantity=-4e5)
    split = _price(model, price=99.0, episode_quantity=-4e5, round_quantity=-3e5)
    assert one == pytest.approx(split, rel=1e-15)
    assert one == pytest.approx(100 * (1 - 0.02 * math.sqrt(0.4)), rel=1e-12)


def test_per_round_impact_compounds_on_the_round_price() -> None:
    # linear per ADV ℓ = 0.1. Round 1: sell 5e5 at 100, Q = 5e7 → −5% → 95.
    # Round 2: sell 5e5 more at 95, Q = 4.75e7 → −4.75% → 95·0.9525 = 90.4875
    model = {"model": "linear", "coefficient": 0.1}
    first = _price(model, "per_round", round_quantity=-5e5, episode_quantity=-5e5)
    assert first == pytest.approx(95.0, rel=1e-12)
    second = _price(model, "per_round", price=first, round_quantity=-5e5, episode_quantity=-1e6)
    assert second == pytest.approx(90.4875, rel=1e-12)


def test_impact_never_takes_a_price_to_zero() -> None:
    model = {"model": "linear", "coefficient": 1.0}  # 1 ADV sold would be −100%
    assert 0 < _price(model, episode_quantity=-5e6) <= 100 * 1e-6 * (1 + 1e-9)


def test_execution_price_between_pre_and_post_impact() -> None:
    frame = pl.DataFrame({"start": [100.0], "end": [90.0]})
    got = frame.select(
        mid=execution_price(pl.col("start"), pl.col("end"), 0.5),
        post=execution_price(pl.col("start"), pl.col("end"), 1.0),
    ).row(0)
    assert got == (95.0, 90.0)


def test_each_asset_takes_the_first_model_that_selects_it() -> None:
    assets = pl.DataFrame(
        {
            "asset_id": ["E1", "B1", "F1"],
            "asset_class": ["equity", "govt_bond", "future"],
            "instrument": ["cash", "cash", "future"],
        }
    )
    impact = Impact(
        models=[
            {"model": "sqrt", "kappa": 2.0, "select": {"asset_classes": ["equity"]}},
            {"model": "linear", "coefficient": 0.3, "select": {"instruments": ["cash"]}},
        ]
    )
    params = impact.parameters(assets).sort("asset_id")
    assert params["impact_model"].to_list() == ["linear", "sqrt", "none"]  # B1, E1, F1
    assert params["impact_kappa"].to_list() == [None, 2.0, None]
    assert params["impact_coefficient"].to_list() == [0.3, None, None]


@given(
    model=st.sampled_from(
        [
            {"model": "linear", "coefficient": 0.2},
            {"model": "linear", "coefficient": 1e-10, "per": "value"},
            {"model": "sqrt", "kappa": 0.7},
            {"model": "exponential", "floor": 0.3, "c": 0.5},
        ]
    ),
    small=st.floats(0, 1e7),
    extra=st.floats(0, 1e7),
    buying=st.booleans(),
)
def test_more_flow_never_moves_the_price_less(
    model: dict[str, Any], small: float, extra: float, buying: bool
) -> None:
    """Impact is monotone in the flow (what equilibrium prices need)."""
    sign = 1.0 if buying else -1.0
    moved = [abs(_price(model, episode_quantity=sign * q) - 100.0) for q in (small, small + extra)]
    assert moved[1] >= moved[0] - 1e-12


@pytest.mark.parametrize(
    ("impact", "field"),
    [
        ('mode = "sometimes"', "impact.mode"),
        ("execution_point = 1.5", "impact.execution_point"),
        (
            '[[impact.models]]\nmodel = "exponential"\nfloor = 1.2',
            "impact.models.0.exponential.floor",
        ),
        ('[[impact.models]]\nmodel = "linear"\ncoefficient = -1', "impact.models.0.linear"),
        ('[[impact.models]]\nmodel = "cubic"', "impact.models.0"),
    ],
)
def test_bad_impact_settings_name_the_file_and_field(
    tmp_path: Path, impact: str, field: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f'name = "bad"\n[impact]\n{impact}\n')
    with pytest.raises(InputError) as err:
        load_scenario(path)
    message = str(err.value)
    assert "bad.toml" in message
    assert field in message


def test_a_futures_flow_is_valued_with_its_multiplier() -> None:
    # 5 000 contracts of multiplier 50 at 100: Q = 2.5e7, a quarter of ADV → −1% (κ = 1, σ_d 2%)
    price = _price({"model": "sqrt"}, multiplier=50.0, episode_quantity=-5e3)
    assert price == pytest.approx(99.0, rel=1e-12)

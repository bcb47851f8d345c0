"""VIX futures' settlement dates and the short-term futures index (:mod:`estimator.vix`).

Oracles: the exchange's rule applied by hand on a calendar, and the index's published rise on
5 February 2018 (96.1%, Invest In Vol, PRWeb, February 2018) from the two contracts'
published settlements.
"""

from __future__ import annotations

import datetime as dt

import pytest

from estimator import vix
from estimator.paths import resolve_scenario
from estimator.scenario import load_scenario

D = dt.date


@pytest.mark.parametrize(
    ("contract", "settles"),
    [
        # third Friday of February 2018 is the 16th: thirty days before, Wednesday 17 January
        ((2018, 1), D(2018, 1, 17)),
        # the February and March 2018 contracts "expiring Wednesday, February 14, 2018 and
        # Wednesday, March 21, 2018" (Invest In Vol)
        ((2018, 2), D(2018, 2, 14)),
        ((2018, 3), D(2018, 3, 21)),
        # December: the third Friday of the next year's January (17 January 2020)
        ((2019, 12), D(2019, 12, 18)),
        # 19 June 2024 is Juneteenth, the exchange closed: the business day before
        ((2024, 6), D(2024, 6, 18)),
        # the third Friday of April 2022 is Good Friday: thirty days before Thursday 14 April
        ((2022, 3), D(2022, 3, 15)),
    ],
)
def test_settlement_dates(contract: tuple[int, int], settles: dt.date) -> None:
    assert vix.settlement_date(*contract) == settles


def test_the_roll_weights_count_business_days() -> None:
    """17 January – 14 February 2018: 11 business days in January from the 17th, 9 in
    February before the 14th, dt = 20. After Friday 2 February: 5, 6, 7, 8, 9, 12 and 13
    February are left, w₁ = 7/20; on the 13th none (all in the second month); on the 17th,
    the period's first day, 19."""
    assert vix.roll_period(D(2018, 2, 2)) == (D(2018, 1, 17), D(2018, 2, 14))
    assert vix.first_month_weight(D(2018, 2, 2)) == pytest.approx(7 / 20, abs=1e-15)
    assert vix.first_month_weight(D(2018, 2, 13)) == 0.0
    assert vix.first_month_weight(D(2018, 1, 17)) == pytest.approx(19 / 20, abs=1e-15)
    assert vix.roll_period(D(2018, 2, 14)) == (D(2018, 2, 14), D(2018, 3, 21))


def test_the_index_rose_96_percent_on_5_february_2018() -> None:
    """February 15.625 → 33.225, March 14.975 → 27.975, at 2 February's weights 0.35/0.65:
    (0.35·33.225 + 0.65·27.975)/(0.35·15.625 + 0.65·14.975) − 1 = 29.8125/15.2025 − 1."""
    r = vix.index_return(D(2018, 2, 2), (15.625, 33.225), (14.975, 27.975))
    assert r == pytest.approx(29.8125 / 15.2025 - 1, rel=1e-12)
    assert 0.9605 <= r < 0.9615  # the published 96.1%


def test_the_volmageddon_scenarios_move_the_future_by_that_return() -> None:
    r = vix.index_return(D(2018, 2, 2), (15.625, 33.225), (14.975, 27.975))
    one_shot = load_scenario(resolve_scenario("volmageddon_2018"))
    path = load_scenario(resolve_scenario("volmageddon_2018_path"))
    assert path.path is not None
    moves = [
        *(s.price_return for s in one_shot.shocks if s.select.asset_classes == ["vix_future"]),
        *(m.price_return for m in path.path.moves if m.select.asset_classes == ["vix_future"]),
    ]
    assert moves == [r, r]


def test_a_closed_day_has_no_weight() -> None:
    with pytest.raises(ValueError, match="not a business day"):
        vix.first_month_weight(D(2018, 2, 3))  # a Saturday

"""Exchange calendars: the trading days a path's dates follow, against the exchanges' own
published holiday schedules."""

from __future__ import annotations

import datetime as dt

import pytest

from estimator import dates

D = dt.date


@pytest.mark.parametrize(
    ("calendar", "day", "open_"),
    [
        ("XNYS", D(2020, 3, 9), True),  # the first circuit-breaker day: open
        ("XNYS", D(2020, 4, 10), False),  # Good Friday
        ("XNYS", D(2018, 12, 5), False),  # national day of mourning, President G. H. W. Bush
        ("XNYS", D(2020, 7, 3), False),  # Independence Day observed (4 July a Saturday)
        ("XNYS", D(2022, 9, 19), True),  # open in New York on the state funeral in London
        ("XLON", D(2022, 9, 19), False),  # the state funeral of Queen Elizabeth II
        ("XLON", D(2022, 6, 3), False),  # the Platinum Jubilee bank holiday
        ("XLON", D(2020, 4, 13), False),  # Easter Monday
        ("XNYS", D(2020, 4, 13), True),  # … on which New York trades
        ("XLON", D(2020, 7, 3), True),
        ("XNYS", D(2020, 3, 14), False),  # a Saturday
    ],
)
def test_trading_days_by_the_exchanges_schedules(calendar: str, day: dt.date, open_: bool) -> None:
    assert dates.is_trading_day(calendar, day) is open_


def test_march_2020_counts_by_hand() -> None:
    # 19 February – 31 March 2020 on XNYS: 8 weekdays in February (19–28; Presidents' Day, the
    # 17th, is before the start) and 22 in March, no holiday in between: 30. Day 13 is 9 March.
    days = dates.trading_days("XNYS", D(2020, 2, 19), D(2020, 3, 31))
    assert len(days) == 30
    assert days[0] == D(2020, 2, 19) and days[-1] == D(2020, 3, 31)
    assert dates.nth_trading_day("XNYS", D(2020, 2, 19), 13) == D(2020, 3, 9)


def test_good_friday_is_skipped_by_both() -> None:
    # Thursday 9 April 2020, then Good Friday; London also keeps Easter Monday.
    assert dates.nth_trading_day("XNYS", D(2020, 4, 9), 1) == D(2020, 4, 13)
    assert dates.nth_trading_day("XLON", D(2020, 4, 9), 1) == D(2020, 4, 14)


def test_out_of_range_and_unknown_calendars_are_errors() -> None:
    with pytest.raises(ValueError, match="outside"):
        dates.is_trading_day("XNYS", D(1950, 1, 3))
    with pytest.raises(ValueError, match="unknown calendar"):
        dates.is_trading_day("XPAR", D(2020, 1, 3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a trading day"):
        dates.nth_trading_day("XNYS", D(2020, 4, 10), 1)


def test_an_episode_may_run_past_the_last_year_of_dates() -> None:
    """A path may start on the last year's last days: the days after it are still counted."""
    assert dates.nth_trading_day("XNYS", D(2035, 12, 20), 60).year == 2036

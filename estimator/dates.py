"""Trading days of the exchanges an episode's dates follow.

A trading day is a weekday on which the exchange is open: ``XNYS`` (the New York Stock
Exchange: its holidays and one-off closures, e.g. 5 December 2018 and 9 January 2025, national
days of mourning) and ``XLON`` (the London Stock Exchange: the bank holidays of England and
Wales and one-off closures, e.g. 19 September 2022), by the financial calendars of the
``holidays`` package. Day ``d`` of an episode is the ``d``-th trading day after its start
(day 0).
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Literal

import polars as pl

Calendar = Literal["XNYS", "XLON"]
CALENDARS: tuple[Calendar, ...] = ("XNYS", "XLON")
#: Years a path's dates may fall in; the calendars run two years further, for the days an
#: episode goes on after its last date (paced sales, the next day's calendar flags).
FIRST_YEAR, LAST_YEAR = 1990, 2035
BEYOND = 2


@functools.cache
def _closed(calendar: Calendar) -> frozenset[dt.date]:
    """The exchange's weekday closures over :data:`FIRST_YEAR` … :data:`LAST_YEAR`."""
    import holidays  # noqa: PLC0415 (a run without dates does not need it)

    years = range(FIRST_YEAR, LAST_YEAR + BEYOND + 1)
    return frozenset(holidays.financial_holidays(calendar, years=years))


def _check(calendar: Calendar, *dates: dt.date, beyond: int = 0) -> None:
    if calendar not in CALENDARS:
        raise ValueError(f"unknown calendar {calendar!r}: expected one of {', '.join(CALENDARS)}")
    for d in dates:
        if not FIRST_YEAR <= d.year <= LAST_YEAR + beyond:
            raise ValueError(f"{d} is outside the calendars' years {FIRST_YEAR}–{LAST_YEAR}")


def is_trading_day(calendar: Calendar, day: dt.date) -> bool:
    """Whether the exchange is open on ``day``."""
    _check(calendar, day)
    return day.weekday() < 5 and day not in _closed(calendar)


def trading_days(calendar: Calendar, start: dt.date, end: dt.date) -> list[dt.date]:
    """The trading days from ``start`` to ``end``, both included, in order (``end`` may run
    :data:`BEYOND` years past :data:`LAST_YEAR`)."""
    _check(calendar, start)
    _check(calendar, end, beyond=BEYOND)
    days = pl.date_range(start, end, "1d", eager=True)
    closed = pl.Series(sorted(_closed(calendar)), dtype=pl.Date)
    return days.filter((days.dt.weekday() <= 5) & ~days.is_in(closed.implode())).to_list()


def nth_trading_day(calendar: Calendar, start: dt.date, n: int) -> dt.date:
    """The ``n``-th trading day after ``start`` (``n = 0``: ``start`` itself, a trading day)."""
    if not is_trading_day(calendar, start):
        raise ValueError(f"{start} is not a trading day on {calendar}")
    end = start + dt.timedelta(days=2 * n + 14)  # at least n trading days later
    return trading_days(calendar, start, end)[n]

"""VIX futures and the short-term futures index that volatility products track.

A VIX future (Cboe Futures Exchange, $1,000 an index point) of month ``M`` settles on the
Wednesday thirty days before the third Friday of month ``M + 1`` — thirty days before the
business day preceding that Friday where it is a holiday, and on the business day before where
the settlement day itself is one (:func:`settlement_date`).

The S&P 500 VIX Short-Term Futures Index holds the first- and second-month contracts and rolls
from the first into the second a little every business day, keeping a weighted month to
expiry (S&P Dow Jones Indices, *S&P VIX Futures Indices Methodology*). A roll period runs from
one settlement date (included) to the next (excluded); with ``dt`` its business days and
``dr`` those left after day ``t`` (from the next business day to the next settlement date,
excluded), the weights on day ``t`` are ``w₁ = dr/dt`` on the first month and ``w₂ = 1 − w₁``
on the second, and the index's return over day ``t`` is taken with the day before's weights
(:func:`index_return`)::

    r_t = (w₁·F₁,t + w₂·F₂,t) / (w₁·F₁,t−1 + w₂·F₂,t−1) − 1,   w = w(t − 1).

Example, 5 February 2018: the roll period runs from 17 January to 14 February (``dt = 20``);
after Friday 2 February seven business days are left (``dr = 7``), so ``w₁ = 0.35``. The
February and March contracts settled at 15.625 and 14.975 on the 2nd and 33.225 and 27.975 on
the 5th (Invest In Vol, PRWeb, February 2018): ``r = 29.8125/15.2025 − 1 = 96.1%``, the index's
published rise that day. A daily-rebalancing product on the index trades ``(L² − L)·r·NAV``
in these futures (``leverage`` targeting by exposure, README).
"""

from __future__ import annotations

import datetime as dt

from estimator import dates

#: US dollars per VIX index point of one future.
MULTIPLIER = 1_000.0


def _third_friday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)


def _business_day_on_or_before(day: dt.date) -> dt.date:
    while not dates.is_trading_day("XNYS", day):
        day -= dt.timedelta(days=1)
    return day


def settlement_date(year: int, month: int) -> dt.date:
    """The settlement date of the VIX future of ``month`` (module docstring): thirty days
    before the third Friday of the next month — before the business day preceding it where
    that Friday is closed (Good Friday: Tuesday 15 March 2022) — on the business day before
    where that day is closed."""
    following = (year + month // 12, month % 12 + 1)
    friday = _business_day_on_or_before(_third_friday(*following))
    return _business_day_on_or_before(friday - dt.timedelta(days=30))


def _month(year: int, month: int, offset: int) -> tuple[int, int]:
    y, m = divmod(year * 12 + month - 1 + offset, 12)
    return y, m + 1


def roll_period(day: dt.date) -> tuple[dt.date, dt.date]:
    """The settlement dates around ``day``: the last on or before it, the next after it."""
    for offset in (-1, 0):  # a month's contract settles in that month
        start = settlement_date(*_month(day.year, day.month, offset))
        end = settlement_date(*_month(day.year, day.month, offset + 1))
        if start <= day < end:
            return start, end
    raise ValueError(f"no VIX roll period holds {day}")  # pragma: no cover - settlements tile


def first_month_weight(day: dt.date) -> float:
    """``w₁ = dr/dt`` on ``day`` (a business day): the first month's share of the index.
    Business days are the exchange calendar's as it stands (an unscheduled closure, which
    the index's methodology leaves out of its counts, is counted here as a closed day)."""
    if not dates.is_trading_day("XNYS", day):
        raise ValueError(f"{day} is not a business day of the VIX futures")
    start, end = roll_period(day)
    total = len(dates.trading_days("XNYS", start, end - dt.timedelta(days=1)))
    left = len(dates.trading_days("XNYS", day + dt.timedelta(days=1), end - dt.timedelta(days=1)))
    return left / total


def index_return(
    day_before: dt.date, first: tuple[float, float], second: tuple[float, float]
) -> float:
    """The index's return over the business day after ``day_before``, from the first- and
    second-month contracts' settlements (before, after) — the contracts of ``day_before``'s
    roll period, at its weights."""
    w = first_month_weight(day_before)
    before = w * first[0] + (1 - w) * second[0]
    return (w * first[1] + (1 - w) * second[1]) / before - 1

"""The domain of every input number: finite, and within bounds wide enough for any real market.

Every number the tool reads (market tables, mandate and scenario files, command-line options)
must be finite, and the bounds below keep every product it forms finite too: a position's value
``|q|·P·m`` is at most :data:`MAX_AMOUNT` (checked per position), so sums over millions of
positions, squares in risk terms (``σ²x²`` ≤ 10² · 10³⁶) and ratios stay far inside float64's
range (about 1.8·10³⁰⁸). A value beyond its bound is an input error that says "too large";
NaN and ±inf say "not finite". The bounds are generous on purpose: they reject overflow and
typing slips, not unusual markets (a yen or won base currency, a century bond, a meme stock's
volatility all pass).

Pydantic models of the scenario and mandate files share :data:`MODEL_CONFIG` (frozen, no
unknown keys, no NaN or infinity); their fields carry their own bounds, shown by
``forced-flow schema``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable

from pydantic import ConfigDict

MODEL_CONFIG = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

#: Largest amount of money: cash, debt, ADV, liabilities, a position's value ``|q|·P·m``.
MAX_AMOUNT = 1e18
#: Largest price per unit (bonds per 100 nominal), before and after a scenario's shocks.
MAX_PRICE = 1e12
#: Largest number of units (or contracts) in one position.
MAX_QUANTITY = 1e15
#: Largest number of identical accounts one holder row stands for.
MAX_ACCOUNTS = 1e9
#: Largest contract multiplier.
MAX_MULTIPLIER = 1e6
#: Largest annualised volatility (1000%), before and after a scenario's shocks.
MAX_VOL = 10.0
#: Largest factor loading in absolute value.
MAX_LOADING = 1e3
#: Largest annualised (co)variance in absolute value (a volatility of 1000%).
MAX_COVARIANCE = MAX_VOL**2
#: Longest modified duration, years (assets and liabilities).
MAX_DURATION = 100.0
#: Largest convexity in absolute value, years² (a 100-year zero coupon has about 10⁴).
MAX_CONVEXITY = 1e5
#: Yields to maturity, decimal: from −10% to 100%.
MIN_YIELD, MAX_YIELD = -0.1, 1.0
#: Largest half bid-ask spread, bp (the whole price).
MAX_SPREAD_BPS = 10_000.0
#: Largest yield or spread change of one shock, bp, either way.
MAX_RATE_CHANGE_BP = 5_000.0
#: Largest price return of one shock (+10,000%).
MAX_RETURN = 100.0
#: Largest multiplier of a volatility, margin rate or margin requirement in one shock.
MAX_SHOCK_MULTIPLIER = 100.0
#: Longest horizon or delay in trading days (about four years).
MAX_DAYS = 1_000
#: Most rounds of a cascade, and iterations of an equilibrium search.
MAX_ROUNDS = 10_000


def finite_problem(
    value: float, low: float, high: float, *, open_low: bool = False, open_high: bool = False
) -> str | None:
    """Why ``value`` is outside ``low … high`` (each end excluded where asked) in a user's
    words, or None when it is inside."""
    if not math.isfinite(value):
        return f"not finite (got {value})"
    if value > high or (open_high and value == high):
        return f"too large: expected a value {'<' if open_high else '≤'} {high:g}, got {value:g}"
    if value < low or (open_low and value == low):
        return f"expected a value {'>' if open_low else '≥'} {low:g}, got {value:g}"
    return None


def repeated(values: Iterable[Hashable]) -> list:
    """The values given more than once, sorted: what a "one of each" check names."""
    return sorted(v for v, n in Counter(values).items() if n > 1)

"""Column contracts of every input table, as dataframely schemas.

Each column carries its description; the README's data dictionary mirrors them (a test keeps
the two in sync).
Every schema has a hidden ``__line__`` column: the line of the source file a row came from, so
a failed rule names the file, the line and the field.
"""

from __future__ import annotations

import dataframely as dy
import polars as pl

from estimator.bonds import DEFAULT_FREQUENCY, FREQUENCIES
from estimator.bounds import (
    MAX_ACCOUNTS,
    MAX_AMOUNT,
    MAX_CONVEXITY,
    MAX_COVARIANCE,
    MAX_DURATION,
    MAX_LOADING,
    MAX_MULTIPLIER,
    MAX_PRICE,
    MAX_QUANTITY,
    MAX_SPREAD_BPS,
    MAX_VOL,
    MAX_YIELD,
    MIN_YIELD,
)
from rules.ratings import accepted

LINE = "__line__"


INSTRUMENTS = ("cash", "future")

#: What a failed ``check`` on a column means, for error messages.
CHECK_MESSAGES = {
    "instrument": "expected one of: cash, future",
    "rating_sp": "expected an S&P rating (AAA … C, SD, D), NR, WR or empty",
    "rating_fitch": "expected a Fitch rating (AAA … C, RD, D), NR, WR or empty",
    "rating_moodys": "expected a Moody's rating (Aaa … C), NR, WR or empty",
    "coupon_frequency": f"expected one of: {', '.join(map(str, FREQUENCIES))}",
}


def _rating(column: str, description: str) -> dy.String:
    return dy.String(
        nullable=True, check=lambda c: c.is_in(accepted(column)), description=description
    )


class _Sourced(dy.Schema):
    line = dy.Int64(alias=LINE, description="line of the source file (1 = header)")


class Assets(_Sourced):
    asset_id = dy.String(primary_key=True, description="unique asset identifier")
    asset_class = dy.String(description="e.g. equity, govt_bond, corp_bond, equity_future")
    instrument = dy.String(
        check=lambda c: c.is_in(INSTRUMENTS),
        description="`cash` (securities: value is in equity) or `future` (marked to cash daily)",
    )
    price = dy.Float64(
        min_exclusive=0, max=MAX_PRICE, description="price per unit (bonds: per 100 nominal)"
    )
    multiplier = dy.Float64(
        nullable=True,
        min_exclusive=0,
        max=MAX_MULTIPLIER,
        description="contract multiplier (futures; default 1)",
    )
    adv = dy.Float64(
        min_exclusive=0, max=MAX_AMOUNT, description="average daily traded value, base currency"
    )
    vol = dy.Float64(
        nullable=True,
        min=0,
        max=MAX_VOL,
        description="annualised return volatility (empty: the risk model's, which must be given)",
    )
    duration = dy.Float64(
        nullable=True, min=0, max=MAX_DURATION, description="modified duration, years (bonds)"
    )
    convexity = dy.Float64(
        nullable=True,
        min=-MAX_CONVEXITY,
        max=MAX_CONVEXITY,
        description="convexity, years² (bonds; empty: duration only)",
    )
    yield_ = dy.Float64(
        alias="yield",
        nullable=True,
        min=MIN_YIELD,
        max=MAX_YIELD,
        description="yield to maturity, decimal (bonds; empty: the default of its asset class)",
    )
    coupon_frequency = dy.Int64(
        nullable=True,
        check=lambda c: c.is_in(FREQUENCIES),
        description="coupons a year: 2 for Treasuries and gilts, 1 for Bunds (default 2)",
    )
    rating_sp = _rating("rating_sp", "S&P rating, e.g. BBB-; NR/WR/empty = unrated")
    rating_moodys = _rating("rating_moodys", "Moody's rating, e.g. Baa3; NR/WR/empty = unrated")
    rating_fitch = _rating("rating_fitch", "Fitch rating, e.g. BBB-; NR/WR/empty = unrated")
    margin_rate = dy.Float64(
        nullable=True, min=0, max=1, description="maintenance margin rate (share of exposure)"
    )
    initial_margin_rate = dy.Float64(
        nullable=True,
        min=0,
        max=1,
        description="initial margin rate (share of exposure; Reg T: 0.5)",
    )
    half_spread_bps = dy.Float64(
        nullable=True,
        min=0,
        max=MAX_SPREAD_BPS,
        description="half bid-ask spread in basis points (default 5)",
    )
    auction_share = dy.Float64(
        nullable=True,
        min_exclusive=0,
        max=1,
        description="a typical closing auction's share of ADV (index events trade in it; "
        "empty: no closing auction)",
    )


class Holders(_Sourced):
    holder_id = dy.String(primary_key=True, description="unique holder identifier")
    holder_type = dy.String(description="e.g. vol_control_fund, hedge_fund, margin_account")
    mandate = dy.String(
        nullable=True, description="mandate name; empty: the mandate whose `applies_to` matches"
    )
    cash = dy.Float64(
        min=-MAX_AMOUNT,
        max=MAX_AMOUNT,
        description="account cash; negative = borrowing in the account",
    )
    other_debt = dy.Float64(
        nullable=True, min=0, max=MAX_AMOUNT, description="debt outside the account"
    )
    non_tradable = dy.Float64(
        nullable=True, min=0, max=MAX_AMOUNT, description="value of non-tradable holdings"
    )
    cash_reserve = dy.Float64(
        nullable=True,
        min=0,
        max=MAX_AMOUNT,
        description="external cash usable to cure a margin call",
    )
    credit_line = dy.Float64(
        nullable=True,
        min=0,
        max=MAX_AMOUNT,
        description="undrawn credit usable to cure a margin call",
    )
    lender = dy.String(
        nullable=True,
        description="holder_id of the lender (e.g. prime broker) that bears a shortfall",
    )
    liabilities = dy.Float64(
        nullable=True,
        min=0,
        max=MAX_AMOUNT,
        description="present value of the holder's liabilities (pensions), base currency",
    )
    liability_duration = dy.Float64(
        nullable=True,
        min=0,
        max=MAX_DURATION,
        description="modified duration of the liabilities, years",
    )
    reference_equity = dy.Float64(
        nullable=True,
        min_exclusive=0,
        max=MAX_AMOUNT,
        description="equity drawdowns are measured from (e.g. a high-water mark); "
        "empty: equity before the scenario",
    )
    accounts = dy.Float64(
        nullable=True,
        min=1,
        max=MAX_ACCOUNTS,
        description="identical accounts the row stands for, a whole number (default 1); its "
        "amounts and positions are each account's",
    )


class Positions(_Sourced):
    holder_id = dy.String(primary_key=True, description="holder (see holders)")
    asset_id = dy.String(primary_key=True, description="asset (see assets)")
    quantity = dy.Float64(
        min=-MAX_QUANTITY,
        max=MAX_QUANTITY,
        description="units held (futures: contracts); negative = short",
    )


class IndexWeights(_Sourced):
    index_id = dy.String(primary_key=True, description="index identifier, e.g. SPX")
    asset_id = dy.String(primary_key=True, description="member asset (see assets)")
    weight = dy.Float64(min=0, max=1, description="weight in the index (per index, sums to 1)")


class DealerGamma(_Sourced):
    asset_id = dy.String(primary_key=True, description="the underlying (see assets)")
    level = dy.Float64(
        primary_key=True,
        min_exclusive=-1,
        max=10,
        description="spot level relative to the price before the scenario: S/S₀ − 1",
    )
    gamma = dy.Float64(
        min=-MAX_AMOUNT,
        max=MAX_AMOUNT,
        description="the dealers' net dollar gamma per 1% move at that level, base currency "
        "(positive: long gamma)",
    )


class FactorLoadings(_Sourced):
    asset_id = dy.String(primary_key=True, description="asset")
    factor = dy.String(primary_key=True, description="factor name")
    loading = dy.Float64(
        min=-MAX_LOADING,
        max=MAX_LOADING,
        description="exposure of the asset's return to the factor",
    )


class FactorCovariance(_Sourced):
    factor_i = dy.String(primary_key=True, description="factor name")
    factor_j = dy.String(primary_key=True, description="factor name")
    covariance = dy.Float64(
        min=-MAX_COVARIANCE,
        max=MAX_COVARIANCE,
        description="annualised covariance of factor returns",
    )


class SpecificRisk(_Sourced):
    asset_id = dy.String(primary_key=True, description="asset")
    specific_vol = dy.Float64(min=0, max=MAX_VOL, description="annualised idiosyncratic volatility")


class Covariance(_Sourced):
    asset_i = dy.String(primary_key=True, description="asset")
    asset_j = dy.String(primary_key=True, description="asset")
    covariance = dy.Float64(
        min=-MAX_COVARIANCE,
        max=MAX_COVARIANCE,
        description="annualised covariance of asset returns",
    )


#: Defaults filled into optional numeric columns after validation.
DEFAULTS: dict[type[dy.Schema], dict[str, float]] = {
    Assets: {"multiplier": 1.0, "coupon_frequency": DEFAULT_FREQUENCY},
    Holders: {
        "other_debt": 0.0,
        "non_tradable": 0.0,
        "cash_reserve": 0.0,
        "credit_line": 0.0,
        "liabilities": 0.0,
        "liability_duration": 0.0,
        "accounts": 1.0,
    },
}


def columns(schema: type[dy.Schema]) -> dict[str, dy.Column]:
    """The schema's user-facing columns (without ``__line__``)."""
    return {name: col for name, col in schema.columns().items() if name != LINE}


def polars_dtype(column: dy.Column) -> pl.DataType:
    return column.dtype

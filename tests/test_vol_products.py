"""Daily-rebalancing volatility products on VIX futures, by hand.

A product that keeps its exposure at ``L`` times its net assets each day (``leverage``
targeting on exposure, its book a VIX future bought or sold against cash) trades
``(L² − L)·r·NAV`` after a day's return ``r`` of the futures it holds: exposure ``L·NAV``
becomes ``L·NAV·(1 + r)``, net assets ``NAV·(1 + L·r)``, and back at ``L`` times them the
product buys ``L·NAV·(1 + L·r) − L·NAV·(1 + r)``. Inverse (``L = −1``) and leveraged long
(``L = 2``) products both buy on a day the futures rise. A termination clause (an 80% fall of
the indicative value) is a ``stop_loss`` that closes the book.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from oracle_kit import future, holder, run_case, trade_quantities

import estimator
from estimator.market import load_market
from estimator.paths import resolve_market, resolve_scenario
from estimator.scenario import load_scenario

#: A VIX future at 14 index points, $1,000 a point.
VX = future("vx", 14.0, 1_000.0) | {"asset_class": "vix_future", "vol": 0.8}
NAV = 100e6


def product(
    contracts: float, r: float, extra: list[dict[str, Any]] | None = None
) -> dict[str, float]:
    """A product with NAV in cash holding ``contracts`` VIX futures; the futures move by r."""
    rules = [{"kind": "leverage", "measure": "exposure", "mode": "targeting"}, *(extra or [])]
    result = run_case(
        [VX],
        [{"holder_id": "h", "cash": NAV}],
        [("h", "vx", contracts)],
        rules,
        [{"select": {"asset_ids": ["vx"]}, "price_return": r}],
    )
    assert holder(result)["status"] in ("forced", "liquidated")
    return trade_quantities(result)


@pytest.mark.parametrize(
    ("leverage", "r"),
    [
        (-1.0, 0.96),  # XIV's and SVXY's day: the short-term futures index +96%
        (-1.0, -0.10),  # a calm fall: the inverse product sells more futures short
        (2.0, 0.96),  # a 2× long product (UVXY, TVIX) buys as much as an inverse one
        (2.0, -0.20),
        (-0.5, 0.30),  # SVXY after February 2018: −½×
        (-0.5, -0.15),
    ],
)
def test_a_product_trades_l_squared_minus_l_times_r_times_nav(leverage: float, r: float) -> None:
    contracts = leverage * NAV / (14.0 * 1_000.0)
    traded = product(contracts, r)["vx"]
    bought = traded * 14.0 * (1 + r) * 1_000.0  # in currency at the day's price
    assert bought == pytest.approx((leverage**2 - leverage) * r * NAV, rel=1e-9)


def test_an_inverse_product_past_its_termination_clause_closes_out() -> None:
    """−1× after +96%: the net assets fall to 4% of the day before (a 96% loss, past the
    80% clause), so instead of buying back 192% of NAV and staying short 4% it buys back
    the whole short, 196% of NAV."""
    contracts = -NAV / 14_000.0
    stop = [{"kind": "stop_loss", "threshold": 0.8, "cut": 1.0}]
    assert product(contracts, 0.96, stop)["vx"] == pytest.approx(-contracts, rel=1e-12)
    assert product(contracts, 0.5, stop)["vx"] * 21_000.0 == pytest.approx(NAV, rel=1e-9)


def test_the_census_inverse_products_on_5_february_2018() -> None:
    """The 2017-12 census's inverse VIX products hold −1× their NAV in VIX futures at 15
    points ($3.1bn together, FT Lex). On 5 February the futures rise 96.1%: the product with
    XIV's clause loses 96% and buys back its whole short, 1.961·NAV at the day's price; the
    other rebalances to −1×, (L² − L)·r·NAV = 2·0.961·NAV — by hand from each holder's
    NAV, against the run."""
    scenario = load_scenario(resolve_scenario("volmageddon_2018"))
    market = load_market(resolve_market("census/2017-12"))
    products = market.holders.filter(pl.col("holder_type") == "inverse_vol_etp")
    assert products["cash"].sum() == pytest.approx(3.1e9, rel=1e-9)
    r = 29.8125 / 15.2025 - 1
    nav = dict(zip(products["mandate"], products["cash"], strict=True))
    expected = (1 + r) * nav["census_inverse_vix_terminable"] + 2 * r * nav["census_inverse_vix"]
    result = estimator.run(scenario, market)
    bought = result.trades.join(products.select("holder_id"), on="holder_id", how="semi")
    assert set(bought["asset_id"]) == {"VX_FUT"}
    assert bought["trade_value"].sum() == pytest.approx(expected, rel=1e-9)
    later = load_market(resolve_market("census/2019-12")).holders
    assert "inverse_vol_etp" not in set(later["holder_type"])

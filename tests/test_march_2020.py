"""``make demo``'s run — March 2020 on the census vintage of December 2019 — checked against
the bundle's own files: who must sell what follows from the shocks by arithmetic done here, not
by the engine.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

import polars as pl
import pytest

import estimator
from estimator.paths import (
    DEFAULT_MARKET,
    DEMO_SCENARIO,
    markets_dir,
    resolve_market,
    resolve_scenario,
)

SCENARIO = estimator.load_scenario(resolve_scenario(DEMO_SCENARIO))
CENSUS = markets_dir() / SCENARIO.market
#: The scenario's shock on every equity, and the one bond it cuts.
EQUITY_RETURN = next(
    s.price_return for s in SCENARIO.shocks if "equity" in (s.select.asset_classes or [])
)
(FALLEN,) = next(s.select.asset_ids for s in SCENARIO.shocks if s.downgrade_notches)


def _rows(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader((CENSUS / name).open()))


@pytest.fixture(scope="module")
def result() -> estimator.RunResult:
    return estimator.run(DEMO_SCENARIO)


def test_the_demo_runs_on_the_census_vintage_before_it(result: estimator.RunResult) -> None:
    assert SCENARIO.market == f"{DEFAULT_MARKET}/2019-12"
    assert result.manifest.dump()["market"]["as_of"] == "2019-12"
    assert result.holders.height == len(_rows("holders.csv"))
    statuses = result.manifest.dump()["statuses"]
    assert sum(statuses.values()) == result.holders.height
    assert statuses["forced"] > 0
    assert "family_office" not in set(result.holders["holder_type"])  # from 2020-12 only


def test_index_funds_do_not_trade(result: estimator.RunResult) -> None:
    # every equity falls by the same 34% and no index changes: an index fund's weights do not
    # move, so it has nothing to rebalance
    index_funds = {r["holder_id"] for r in _rows("holders.csv") if r["holder_type"] == "index_fund"}
    assert index_funds
    assert result.trades.filter(pl.col("holder_id").is_in(index_funds)).height == 0


def test_investment_grade_only_funds_sell_the_fallen_angel_in_full(
    result: estimator.RunResult,
) -> None:
    # the fallen angel is BBB- and is cut a notch, to junk; funds with no tolerance for junk sell
    # every unit of it and nothing else (one round, no price impact)
    ratings = {r["asset_id"]: r["rating_sp"] for r in _rows("assets.csv")}
    assert ratings[FALLEN] == "BBB-"
    strict = {r["holder_id"] for r in _rows("holders.csv") if r["mandate"] == "census_ig_only"}
    held = {
        r["holder_id"]: float(r["quantity"])
        for r in _rows("positions.csv")
        if r["holder_id"] in strict and r["asset_id"] == FALLEN
    }
    assert held
    sold = result.trades.filter(pl.col("holder_id").is_in(strict))
    assert set(sold["asset_id"]) == {FALLEN}
    by_holder = dict(zip(sold["holder_id"], sold["trade_quantity"], strict=True))
    assert by_holder.keys() == held.keys()
    for holder, quantity in held.items():
        assert math.isclose(by_holder[holder], -quantity, rel_tol=1e-12)


def test_the_family_office_accounts_are_wiped_out() -> None:
    """March 2020's shocks on the holders of end-2020, when the family office existed: equity
    after the shock = cash + Σ q·p·(1 − 34%) over its (all-equity) book, below zero."""
    bundle = markets_dir() / DEFAULT_MARKET / "2020-12"

    def rows(name: str) -> list[dict[str, str]]:
        return list(csv.DictReader((bundle / name).open()))

    prices = {r["asset_id"]: (r["asset_class"], float(r["price"])) for r in rows("assets.csv")}
    accounts = {
        r["holder_id"]: float(r["cash"])
        for r in rows("holders.csv")
        if r["holder_type"] == "family_office"
    }
    assert len(accounts) == 5
    equity = defaultdict(float, accounts)
    for r in rows("positions.csv"):
        if r["holder_id"] in accounts:
            asset_class, price = prices[r["asset_id"]]
            assert asset_class == "equity"
            equity[r["holder_id"]] += float(r["quantity"]) * price * (1 + EQUITY_RETURN)
    assert all(e < 0 for e in equity.values())
    result = estimator.run(DEMO_SCENARIO, estimator.load_market(bundle))
    status = dict(result.holders.select("holder_id", "status").iter_rows())
    assert {status[h] for h in accounts} == {"insolvent"}


def test_the_census_market_is_where_a_scenario_without_a_market_runs(tmp_path: Path) -> None:
    spec = tmp_path / "calm.toml"
    spec.write_text('name = "calm"\n')
    loaded = estimator.load_scenario(spec)
    assert loaded.market == DEFAULT_MARKET
    latest = resolve_market(DEFAULT_MARKET)  # the census's latest vintage
    assert latest.name == "2024-06"
    holders = list(csv.DictReader((latest / "holders.csv").open()))
    assert estimator.run(spec).holders.height == len(holders)

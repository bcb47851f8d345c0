"""The closing-auction lens: index demand as a multiple of a typical auction, the rest in days.
Every figure is worked out by hand in the comments."""

from __future__ import annotations

import polars as pl
import pytest
from oracle_kit import asset_frame, holder_frame

import estimator
from estimator import Mandate, Scenario
from estimator.aggregate import asset_flows
from estimator.report import absorbed


def _trade(holder: str, asset: str, value: float, rules: str, placed: str, part: float) -> dict:
    return {
        "holder_id": holder,
        "asset_id": asset,
        "trade_quantity": value,
        "trade_value": value,
        "rules": rules,
        "position_rules": placed,
        "position_value": part,
    }


ASSETS = pl.DataFrame(
    {
        "asset_id": ["a", "b", "c"],
        "asset_class": "equity",
        "price": 1.0,
        "adv": [200.0, 100.0, 50.0],
        "auction_share": [0.1, None, 0.2],
    }
)

TRADES = pl.DataFrame(
    [
        _trade("h1", "a", 20.0, "index_tracking", "index_tracking", 20.0),
        _trade("h2", "a", -5.0, "margin", "", 0.0),
        _trade("h1", "b", 10.0, "index_tracking", "index_tracking", 10.0),
        _trade("h1", "c", -30.0, "index_tracking", "index_tracking", -30.0),
        # a solved trade (no position part) naming index tracking counts whole
        _trade("h3", "c", -10.0, "index_tracking;redemption", "", 0.0),
    ]
)


def test_index_demand_is_read_in_auctions_the_rest_in_days() -> None:
    got = {r["asset_id"]: r for r in asset_flows(TRADES, ASSETS, 0.2).iter_rows(named=True)}
    # a: net 20 − 5 = 15, of which 20 in the auction; the −5 left over takes 5/(0.2·200) =
    #    0.125 days; the auction demand is 20/(0.1·200) = 1 typical auction.
    a = got["a"]
    assert (a["net_value"], a["auction_value"]) == (15.0, 20.0)
    assert a["days_to_absorb"] == pytest.approx(0.125, rel=1e-12)
    assert a["auction_multiple"] == pytest.approx(1.0, rel=1e-12)
    assert a["pct_adv"] == pytest.approx(7.5, rel=1e-12)
    assert a["lens"] == "auction+days"
    # b: no closing auction, so the index demand stays in days: 10/(0.2·100) = 0.5.
    b = got["b"]
    assert (b["auction_value"], b["auction_multiple"], b["lens"]) == (0.0, 0.0, "days")
    assert b["days_to_absorb"] == pytest.approx(0.5, rel=1e-12)
    # c: all −40 is index demand: 40/(0.2·50) = 4 auctions, no days.
    c = got["c"]
    assert (c["net_value"], c["auction_value"], c["lens"]) == (-40.0, -40.0, "auction")
    assert c["auction_multiple"] == pytest.approx(4.0, rel=1e-12)
    assert c["days_to_absorb"] == 0.0


def test_the_lens_names_what_it_reads() -> None:
    rows = {
        r["asset_id"]: absorbed(r) for r in asset_flows(TRADES, ASSETS, 0.2).iter_rows(named=True)
    }
    assert rows == {"a": "1.0× auction + 0.12 days", "b": "0.50 days", "c": "4.0× auction"}


def test_without_auction_shares_every_figure_is_in_days() -> None:
    plain = asset_flows(TRADES, ASSETS.drop("auction_share"), 0.2)
    assert plain["lens"].to_list() == ["days"] * 3
    # a: 15/(0.2·200) = 0.375; b: 0.5; c: 40/(0.2·50) = 4
    assert plain["days_to_absorb"].to_list() == pytest.approx([0.375, 0.5, 4.0], rel=1e-12)
    assert plain["auction_multiple"].to_list() == [0.0, 0.0, 0.0]


def test_a_run_reads_an_index_deletion_in_the_closing_auction() -> None:
    # Index X: a .5, b .3, c .2; the tracker holds 60/20/20 units at 1. Deleting c trades
    # a +12.5, b +7.5, c −20 (tests/test_index_tracking.py). ADV 100 each, a typical auction
    # 10% of it: c's −20 is 20/(0.1·100) = 2 auctions, a's 1.25, b's 0.75; nothing in days.
    stocks = [
        {"asset_id": a, "price": 1.0, "adv": 100.0, "auction_share": 0.1} for a in ("a", "b", "c")
    ]
    mandate = Mandate(name="m", rules=[{"kind": "index_tracking", "index": "X"}])
    market = estimator.build_market(
        asset_frame(stocks),
        holder_frame([{"holder_id": "h", "cash": 0.0}]),
        pl.DataFrame(
            {"holder_id": "h", "asset_id": ["a", "b", "c"], "quantity": [60.0, 20.0, 20.0]}
        ),
        {"m": mandate},
        index_weights=pl.DataFrame(
            {"index_id": "X", "asset_id": ["a", "b", "c"], "weight": [0.5, 0.3, 0.2]}
        ),
    )
    deletion = {"index_id": "X", "asset_id": "c", "action": "delete"}
    result = estimator.run(Scenario(name="s", index_changes=[deletion]), market)
    got = result.assets.sort("asset_id")
    assert got["lens"].to_list() == ["auction"] * 3
    assert got["auction_multiple"].to_list() == pytest.approx([1.25, 0.75, 2.0], rel=1e-9)
    assert got["days_to_absorb"].to_list() == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)


def test_the_multiple_is_the_largest_days_demand() -> None:
    """Two index events in ``c`` on two days, −30 then +10: 20 net over the run, but the day of
    −30 is what an auction must take, 30/(0.2·50) = 3 auctions; no day's flow is left to days.
    A tiny demand keeps two significant digits (0.5/(0.2·50) = 0.05)."""
    two = pl.DataFrame(
        [
            _trade("h1", "c", -30.0, "index_tracking", "index_tracking", -30.0) | {"day": 0},
            _trade("h1", "c", 10.0, "index_tracking", "index_tracking", 10.0) | {"day": 3},
        ]
    )
    row = asset_flows(two, ASSETS, 0.2).filter(pl.col("asset_id") == "c").row(0, named=True)
    assert (row["net_value"], row["auction_value"], row["lens"]) == (-20.0, -20.0, "auction")
    assert row["auction_multiple"] == pytest.approx(3.0, rel=1e-12)
    tiny = TRADES.filter(pl.col("asset_id") == "c").head(1).with_columns(position_value=-0.5)
    tiny = tiny.with_columns(trade_value=-0.5)
    row = asset_flows(tiny, ASSETS, 0.2).filter(pl.col("asset_id") == "c").row(0, named=True)
    assert absorbed(row) == "0.05× auction"

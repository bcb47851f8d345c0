"""The small teaching market's crash: every rule kind is forced, and the calm market forces no
one."""

from __future__ import annotations

import math

import polars as pl

import estimator
from estimator.paths import markets_dir
from estimator.scenario import Scenario
from rules import RULE_KINDS


def test_small_crash_forces_every_rule_kind() -> None:
    result = estimator.run("small_crash")
    triggered = set(";".join(result.holders["triggered_rules"]).split(";")) - {""}
    assert triggered == set(RULE_KINDS)
    statuses = set(result.holders["status"])
    assert {"forced", "cured", "insolvent"} <= statuses
    # per-asset flows are the sum of holder trades, by asset id
    by_asset = result.trades.group_by("asset_id").agg(pl.col("trade_value").sum())
    joined = result.assets.join(by_asset, on="asset_id", how="left").fill_null(0.0)
    for net, total in joined.select("net_value", "trade_value").iter_rows():
        assert math.isclose(net, total, rel_tol=1e-12, abs_tol=1e-6)


def test_small_market_starts_compliant() -> None:
    calm = Scenario(name="calm")
    result = estimator.run(calm, estimator.load_market(markets_dir() / "small"))
    assert result.holders["status"].to_list() == ["ok"] * result.holders.height
    assert result.trades.height == 0


def test_small_crash_fallen_angel_is_sold_in_full_by_the_ig_fund() -> None:
    # IG_BBBM_10Y (BBB-/Baa3) is cut to BB+/Ba1: lower of two ratings is junk, tolerated share 0.
    result = estimator.run("small_crash")
    sold = result.trades.filter(pl.col("holder_id") == "IG_FUND")
    assert sold["asset_id"].to_list() == ["IG_BBBM_10Y"]
    assert sold["trade_quantity"].to_list() == [-5.0e5]
    fund = result.holders.filter(pl.col("holder_id") == "IG_FUND").row(0, named=True)
    assert fund["triggered_rules"] == "rating_floor"
    assert fund["compliant"]


def test_small_crash_pension_buys_equities_and_sells_bonds_back_to_sixty_forty() -> None:
    # The crash takes the pension's equities below 55% of total assets: contrarian flow.
    result = estimator.run("small_crash")
    trades = result.trades.filter(pl.col("holder_id") == "PENSION_60_40").join(
        result.assets.select("asset_id", "asset_class"), on="asset_id"
    )
    by_class = dict(trades.group_by("asset_class").agg(pl.col("trade_value").sum()).iter_rows())
    assert by_class["equity"] > 0 > by_class["govt_bond"]
    assert math.isclose(by_class["equity"], -by_class["govt_bond"], rel_tol=1e-9)
    pension = result.holders.filter(pl.col("holder_id") == "PENSION_60_40").row(0, named=True)
    assert pension["rebalancing_band.metric_before"] > 0.05
    assert abs(pension["rebalancing_band.metric_after"]) <= 1e-9


def test_small_crash_index_fund_follows_the_reconstitution() -> None:
    # The 20bn LARGE_CAP fund holds the index exactly. Equities fall 20%, EQ_MID1 (2%) a further
    # 25% (×0.6 in all): the sleeve is 20bn·(0.98·0.8 + 0.02·0.6) = 15.92bn and EQ_MID1's
    # drifted weight 0.012/0.796. Deleting it sells all of it, 20bn·0.02·0.6 = 240m; EQ_MID2
    # comes in at 1%: 15.92bn·0.01 = 159.2m bought; the other members take the difference.
    result = estimator.run("small_crash")
    trades = result.trades.filter(pl.col("holder_id") == "INDEX_FUND")
    value = dict(zip(trades["asset_id"], trades["trade_value"], strict=True))
    assert math.isclose(value["EQ_MID1"], -240e6, rel_tol=1e-9)
    assert math.isclose(value["EQ_MID2"], 159.2e6, rel_tol=1e-9)
    assert math.isclose(sum(value.values()), 0.0, abs_tol=1e-3)  # sales fund the purchases
    fund = result.holders.filter(pl.col("holder_id") == "INDEX_FUND").row(0, named=True)
    assert (fund["triggered_rules"], fund["compliant"]) == ("index_tracking", True)

"""The shipped demo: every holder type is forced, and the calm market forces no one."""

from __future__ import annotations

import math

import polars as pl

import estimator
from estimator.scenario import Scenario


def test_demo_forces_every_rule_kind() -> None:
    result = estimator.run("demo")
    triggered = set(";".join(result.holders["triggered_rules"]).split(";")) - {""}
    assert triggered == {"vol_target", "leverage", "margin"}
    statuses = set(result.holders["status"])
    assert {"forced", "cured", "insolvent"} <= statuses
    # per-asset flows are the sum of holder trades, by asset id
    by_asset = result.trades.group_by("asset_id").agg(pl.col("trade_value").sum())
    joined = result.assets.join(by_asset, on="asset_id", how="left").fill_null(0.0)
    for net, total in joined.select("net_value", "trade_value").iter_rows():
        assert math.isclose(net, total, rel_tol=1e-12, abs_tol=1e-6)


def test_default_market_starts_compliant() -> None:
    calm = Scenario(name="calm")
    result = estimator.run(calm, estimator.load_market("scenarios/markets/default"))
    assert result.holders["status"].to_list() == ["ok"] * result.holders.height
    assert result.trades.height == 0

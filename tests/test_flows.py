"""Flow kinds: each rule kind's trades classified by hand, the most binding kind of several,
and the identities that tie the per-kind table to the trades and the headline."""

from __future__ import annotations

import math

import polars as pl
import pytest
from oracle_kit import two_sellers

import estimator
from estimator import Mandate
from estimator.flows import HEADLINE, KINDS, kind_of

RULES = {
    "margin": ({"kind": "margin"}, "forced"),
    "leverage": ({"kind": "leverage", "max": 3.0}, "forced"),
    "redemption": ({"kind": "redemption", "min_cash": 0.05}, "forced"),
    "rating_floor": ({"kind": "rating_floor"}, "forced"),
    "liquidity_buffer": ({"kind": "liquidity_buffer", "share": 0.1}, "forced"),
    "collateral_buffer": ({"kind": "collateral_buffer", "floor_bp": 100.0}, "forced"),
    "stop_loss": ({"kind": "stop_loss", "threshold": 0.1, "cut": 0.5}, "forced"),
    "var_limit": ({"kind": "var_limit", "limit": 0.02}, "forced"),
    "vol_target": ({"kind": "vol_target", "target": 0.1}, "systematic"),
    "rebalancing_band": ({"kind": "rebalancing_band", "weights": {"equity": 0.6}}, "policy"),
    "funding_ratio": (
        {
            "kind": "funding_ratio",
            "weights": {"equity": 0.6},
            "derisked_weights": {"equity": 0.3},
            "trigger": 0.9,
        },
        "policy",
    ),
    "index_tracking": ({"kind": "index_tracking", "index": "X"}, "policy"),
}


@pytest.mark.parametrize("kind", sorted(RULES))
def test_each_rule_kind_by_hand(kind: str) -> None:
    rule, expected = RULES[kind]
    assert kind_of(kind, Mandate(name="m", rules=[rule])) == expected


def test_targeting_leverage_is_systematic_and_the_most_binding_kind_wins() -> None:
    targeting = Mandate(name="t", rules=[{"kind": "leverage", "mode": "targeting"}])
    assert kind_of("leverage", targeting) == "systematic"
    mixed = Mandate(name="m", rules=[RULES[k][0] for k in ("rebalancing_band", "vol_target")])
    assert kind_of("rebalancing_band;vol_target", mixed) == "systematic"
    assert kind_of("rebalancing_band", mixed) == "policy"
    both = Mandate(name="b", rules=[RULES[k][0] for k in ("funding_ratio", "margin")])
    assert kind_of("funding_ratio;margin", both) == "forced"
    assert kind_of("", both) == "forced"  # an insolvent holder's liquidation names no rule


def test_two_holders_by_hand() -> None:
    result, _ = two_sellers()  # the fund sells 2250 (systematic), the account 2500 (forced)
    kinds = dict(result.trades.select("holder_id", "flow_kind").iter_rows())
    assert kinds == {"v": "systematic", "h": "forced"}
    assert result.flows is not None
    table = {(k, c): (s, b, n) for k, c, s, b, n in result.flows.iter_rows()}
    assert table[("systematic", "equity")] == pytest.approx((2250.0, 0.0, -2250.0), rel=1e-9)
    assert table[("forced", "equity")] == pytest.approx((2500.0, 0.0, -2500.0), rel=1e-9)
    assert result.manifest["flows"]["headline"] == pytest.approx({"equity": -4750.0}, rel=1e-9)


@pytest.fixture(scope="module")
def crash() -> estimator.RunResult:
    return estimator.run("small_crash")


def test_the_table_adds_up_to_the_trades(crash: estimator.RunResult) -> None:
    assert crash.flows is not None
    trades = crash.trades.join(crash.assets.select("asset_id", "asset_class"), on="asset_id")
    assert set(crash.trades["flow_kind"]) <= set(KINDS)
    for kind, asset_class, sold, bought, net in crash.flows.iter_rows():
        u = trades.filter((pl.col("flow_kind") == kind) & (pl.col("asset_class") == asset_class))[
            "trade_value"
        ]
        assert sold == pytest.approx(-u.filter(u < 0).sum(), rel=1e-12)
        assert bought == pytest.approx(u.filter(u > 0).sum(), rel=1e-12)
        assert net == pytest.approx(bought - sold, rel=1e-12, abs=1e-6)
    sold = math.fsum(crash.flows["sell_value"])
    assert sold == pytest.approx(crash.manifest["totals"]["sell_value"], rel=1e-12)
    headline = crash.manifest["flows"]["headline"]
    rows = crash.flows.filter(pl.col("flow_kind").is_in(HEADLINE))
    for asset_class in set(rows["asset_class"]):
        net = rows.filter(pl.col("asset_class") == asset_class)["net_value"].sum()
        assert headline[asset_class] == pytest.approx(net, rel=1e-12, abs=1e-6)
    assert "policy" in set(crash.trades["flow_kind"])  # the small market's pensions rebalance


def test_the_html_report_has_the_flows_by_kind(crash: estimator.RunResult) -> None:
    page = crash.html()
    section = page[page.index("<h2>Flow by kind</h2>") : page.index("<h2>Assets</h2>")]
    assert crash.flows is not None
    assert section.count("<tr>") == crash.flows.height + 1  # a row per kind × class
    for kind in set(crash.flows["flow_kind"]):
        assert f"<td>{kind}</td>" in section

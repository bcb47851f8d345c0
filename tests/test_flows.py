"""Flow kinds: each rule kind's trades classified by hand, the most binding kind of several,
and the identities that tie the per-kind table to the trades and the headline."""

from __future__ import annotations

import math

import polars as pl
import pytest
from oracle_kit import two_sellers

import estimator
from estimator import Mandate, Scenario
from estimator.flows import HEADLINE, KINDS, kind_of
from estimator.html import render

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
    assert result.manifest.dump()["flows"]["headline"] == pytest.approx(
        {"equity": -4750.0}, rel=1e-9
    )


def _balanced_fund(execution: str) -> estimator.RunResult:
    assets = pl.DataFrame(
        {"asset_id": ["e", "b"], "asset_class": ["equity", "bond"], "instrument": "cash"}
        | {"price": 1.0, "adv": 1e12, "vol": [0.2, 0.05]}
    )
    holders = pl.DataFrame(
        {"holder_id": ["p"], "holder_type": ["fund"], "mandate": ["m"], "cash": [0.0]}
    )
    positions = pl.DataFrame({"holder_id": "p", "asset_id": ["e", "b"], "quantity": [60.0, 40.0]})
    rules = [
        {"kind": "rebalancing_band", "weights": {"equity": 0.6, "bond": 0.4}},
        {"kind": "vol_target", "target": 0.1},
    ]
    mandates = {"m": Mandate(name="m", rules=rules, execution=execution)}
    market = estimator.build_market(assets, holders, positions, mandates)
    shock = {"select": {"asset_classes": ["equity"]}, "price_return": -0.25, "vol_multiplier": 2.0}
    return estimator.run(Scenario(name="s", shocks=[shock]), market)


def test_position_rule_trades_and_the_book_scaling_are_two_kinds() -> None:
    """A 60/40 fund (±5% bands, back to target) that also targets 10% volatility, pro rata.
    Equities −25% with their vol ×2 (0.2 → 0.4; bonds 0.05): x⁰ = (45, 40), V = E = 85. The
    band buys 6 of equities with 6 of bonds, x¹ = (51, 34); then σ(x¹) = √(20.4² + 1.7²) =
    √419.05 and the book is scaled by f = 8.5/√419.05. The policy part is (+6, −6), the
    systematic part (f − 1)·x¹; one trade per asset, u = f·x¹ − x⁰."""
    result = _balanced_fund("pro_rata")
    f = 8.5 / math.sqrt(0.4**2 * 51**2 + 0.05**2 * 34**2)
    want = {"e": (f * 51 - 45, 6.0), "b": (f * 34 - 40, -6.0)}
    rows = result.trades.select("asset_id", "trade_value", "position_value", "flow_kind")
    for asset_id, u, p, kind in rows.iter_rows():
        assert (u, p) == pytest.approx(want[asset_id], rel=1e-9)
        assert kind == "systematic"  # the trade's most binding part
    assert set(result.trades["position_kind"]) == {"policy"}
    assert set(result.trades["book_kind"]) == {"systematic"}
    assert result.flows is not None
    table = {(k, c): (s, b, n) for k, c, s, b, n in result.flows.iter_rows()}
    expected = {
        ("systematic", "bond"): ((1 - f) * 34, 0.0, (f - 1) * 34),
        ("systematic", "equity"): ((1 - f) * 51, 0.0, (f - 1) * 51),
        ("policy", "bond"): (6.0, 0.0, -6.0),
        ("policy", "equity"): (0.0, 6.0, 6.0),
    }
    assert table.keys() == expected.keys()
    for key, values in expected.items():
        assert table[key] == pytest.approx(values, rel=1e-9, abs=1e-12)
    headline = result.manifest.dump()["flows"]["headline"]  # the policy purchase is not in it
    assert headline == pytest.approx({"bond": (f - 1) * 34, "equity": (f - 1) * 51}, rel=1e-9)


def _ig_fund(execution: str) -> estimator.RunResult:
    """An investment-grade fund with a 5% volatility target: 50 in each of two bonds (vol 10%,
    uncorrelated), no cash. Bond j is cut to BB+ and every vol doubles: σ/E = √2·10/100."""
    assets = pl.DataFrame(
        {"asset_id": ["a", "j"], "asset_class": "corp_bond", "instrument": "cash", "price": 1.0}
        | {"adv": 1e12, "vol": 0.1, "rating_sp": ["A", "BBB-"]}
    )
    holders = pl.DataFrame(
        {"holder_id": ["g"], "holder_type": ["fund"], "mandate": ["m"], "cash": [0.0]}
    )
    positions = pl.DataFrame({"holder_id": "g", "asset_id": ["a", "j"], "quantity": 50.0})
    rules = [{"kind": "rating_floor", "floor": "BBB-"}, {"kind": "vol_target", "target": 0.05}]
    mandates = {"m": Mandate(name="m", rules=rules, execution=execution)}
    market = estimator.build_market(assets, holders, positions, mandates)
    shocks = [
        {"select": {"asset_ids": ["j"]}, "rating_sp": "BB+"},
        {"select": {"all": True}, "vol_multiplier": 2.0},
    ]
    return estimator.run(Scenario(name="s", shocks=shocks), market)


def test_a_forced_sale_then_a_systematic_scaling_pro_rata() -> None:
    """Pro rata the floor sells all 50 of j (forced), x¹ = (50, 0); σ(x¹) = 0.2·50 = 10
    against 0.05·100 = 5 scales the book by f = ½: 25 of a sold (systematic)."""
    result = _ig_fund("pro_rata")
    rows = result.trades.select("asset_id", "trade_value", "position_value", "flow_kind")
    got = {a: ((u, p), k) for a, u, p, k in rows.iter_rows()}
    assert got["j"][0] == pytest.approx((-50.0, -50.0), rel=1e-9)
    assert got["a"][0] == pytest.approx((-25.0, 0.0), rel=1e-9, abs=1e-12)
    assert (got["j"][1], got["a"][1]) == ("forced", "systematic")
    assert result.manifest.dump()["flows"]["by_kind"]["forced"]["sell_value"] == pytest.approx(50.0)
    assert result.manifest.dump()["flows"]["by_kind"]["systematic"]["sell_value"] == pytest.approx(
        25.0
    )


def test_a_solved_trade_is_one_trade_of_every_binding_rule() -> None:
    """Min-cost, the same fund sells the same 50 of j and 25 of a (the least sales that meet
    both rules) in one solve: each trade is one, of the most binding kind (forced)."""
    result = _ig_fund("min_cost")
    got = dict(result.trades.select("asset_id", "trade_value").iter_rows())
    assert got == pytest.approx({"j": -50.0, "a": -25.0}, rel=1e-5)
    assert (result.trades["position_value"] == 0).all()
    assert set(result.trades["flow_kind"]) == {"forced"}
    sold = result.manifest.dump()["flows"]["by_kind"]["forced"]["sell_value"]
    assert sold == pytest.approx(75.0, rel=1e-5)


@pytest.fixture(scope="module")
def crash() -> estimator.RunResult:
    return estimator.run("small_crash")


def test_the_table_adds_up_to_the_trades(crash: estimator.RunResult) -> None:
    assert crash.flows is not None
    trades = crash.trades.join(crash.assets.select("asset_id", "asset_class"), on="asset_id")
    assert set(crash.trades["flow_kind"]) <= set(KINDS)
    for kind, asset_class, sold, bought, net in crash.flows.iter_rows():
        rows = trades.filter(pl.col("asset_class") == asset_class)
        p = rows.filter(pl.col("position_kind") == kind)["position_value"]
        rest = rows.filter(pl.col("book_kind") == kind).select(
            pl.col("trade_value") - pl.col("position_value")
        )
        v = pl.concat([p, rest.to_series()])
        assert sold == pytest.approx(-v.filter(v < 0).sum(), rel=1e-12)
        assert bought == pytest.approx(v.filter(v > 0).sum(), rel=1e-12)
        assert net == pytest.approx(bought - sold, rel=1e-12, abs=1e-6)
    net = math.fsum(crash.flows["net_value"])  # the kinds' net flows add up to the trades'
    assert net == pytest.approx(math.fsum(crash.trades["trade_value"]), rel=1e-12, abs=1e-6)
    sold = math.fsum(crash.flows["sell_value"])
    assert sold == pytest.approx(crash.manifest.dump()["totals"]["sell_value"], rel=1e-12)
    headline = crash.manifest.dump()["flows"]["headline"]
    rows = crash.flows.filter(pl.col("flow_kind").is_in(HEADLINE))
    for asset_class in set(rows["asset_class"]):
        net = rows.filter(pl.col("asset_class") == asset_class)["net_value"].sum()
        assert headline[asset_class] == pytest.approx(net, rel=1e-12, abs=1e-6)
    assert "policy" in set(crash.trades["flow_kind"])  # the small market's pensions rebalance


def test_the_html_report_has_the_flows_by_kind(crash: estimator.RunResult) -> None:
    page = render(crash)
    section = page[page.index("<h2>Flow by kind</h2>") : page.index("<h2>Assets</h2>")]
    assert crash.flows is not None
    assert section.count("<tr>") == crash.flows.height + 1  # a row per kind × class
    for kind in set(crash.flows["flow_kind"]):
        assert f"<td>{kind}</td>" in section

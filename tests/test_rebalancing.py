"""``rebalancing_band`` oracles, each trade worked out by hand in the comments."""

from __future__ import annotations

import math
from typing import Any

import polars as pl
import pytest
from oracle_kit import holder, run_case
from pydantic import ValidationError

from estimator import Mandate
from estimator.api import RunResult

EXECUTIONS = ["pro_rata", "min_cost"]
SIXTY_FORTY = {"kind": "rebalancing_band", "weights": {"equity": 0.6, "govt_bond": 0.4}}


def _asset(asset_id: str, asset_class: str) -> dict[str, Any]:
    return {"asset_id": asset_id, "asset_class": asset_class, "price": 100.0}


def _traded(result: RunResult, holder_id: str = "h") -> dict[str, float]:
    t = result.trades.filter(pl.col("holder_id") == holder_id)
    return dict(zip(t["asset_id"], t["trade_value"], strict=True))


def _equity_falls(r: float) -> list[dict[str, Any]]:
    return [{"select": {"asset_classes": ["equity"]}, "price_return": r}]


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_sixty_forty_outside_five_percent_returns_to_target(execution: str) -> None:
    # Equities 600, bonds 400. Equities −25% → 450; V = 850; equity weight 52.9% < 55%, bonds
    # 47.1% > 45%: both out. Target: equities 0.6·850 = 510 (buy 60), bonds 340 (sell 60).
    result = run_case(
        [_asset("eq", "equity"), _asset("ust", "govt_bond")],
        [{"holder_id": "h", "holder_type": "pension"}],
        [("h", "eq", 6.0), ("h", "ust", 4.0)],
        [SIXTY_FORTY],
        _equity_falls(-0.25),
        execution,
    )
    assert _traded(result) == pytest.approx({"eq": 60.0, "ust": -60.0}, rel=1e-6)
    h = holder(result)
    assert h["status"] == "forced"
    assert h["compliant"]
    assert math.isclose(h["rebalancing_band.metric_before"], 0.6 - 450 / 850, rel_tol=1e-12)
    assert abs(h["rebalancing_band.metric_after"]) <= 1e-9
    assert math.isclose(h["cash_after"], 0.0, abs_tol=1e-6)


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_edge_mode_stops_at_the_band(execution: str) -> None:
    # Same book: equities to 55% of 850 = 467.5 (buy 17.5), bonds to 45% = 382.5 (sell 17.5).
    result = run_case(
        [_asset("eq", "equity"), _asset("ust", "govt_bond")],
        [{"holder_id": "h"}],
        [("h", "eq", 6.0), ("h", "ust", 4.0)],
        [SIXTY_FORTY | {"restore": "edge"}],
        _equity_falls(-0.25),
        execution,
    )
    assert _traded(result) == pytest.approx({"eq": 17.5, "ust": -17.5}, rel=1e-6)


def test_inside_the_band_nothing_trades() -> None:
    # Equities −10% → 540 of 940 = 57.4%, inside 55–65%.
    result = run_case(
        [_asset("eq", "equity"), _asset("ust", "govt_bond")],
        [{"holder_id": "h"}],
        [("h", "eq", 6.0), ("h", "ust", 4.0)],
        [SIXTY_FORTY],
        _equity_falls(-0.10),
    )
    assert result.trades.is_empty()
    assert holder(result)["status"] == "ok"


def test_a_rally_sells_equities() -> None:
    # Equities +40% → 840 of 1240 = 67.7% > 65%: back to 60% = 744 (sell 96), bonds 496 (buy 96).
    result = run_case(
        [_asset("eq", "equity"), _asset("ust", "govt_bond")],
        [{"holder_id": "h"}],
        [("h", "eq", 6.0), ("h", "ust", 4.0)],
        [SIXTY_FORTY],
        _equity_falls(0.40),
    )
    assert _traded(result) == pytest.approx({"eq": -96.0, "ust": 96.0}, rel=1e-9)


THREE_CLASSES = {
    "kind": "rebalancing_band",
    "weights": {"equity": 0.5, "govt_bond": 0.3, "corp_bond": 0.2},
}


def test_purchases_are_funded_by_overweight_classes() -> None:
    # Equities 500 → 400 (−20%), govt 300, corp 200, no cash: V = 900. Equity 44.4% < 45%: out;
    # govt 33.3% and corp 22.2% are inside their bands. Buy 0.5·900 − 400 = 50, funded by the
    # overweights: govt 300 − 270 = 30 and corp 200 − 180 = 20, each sold in full (pool = 50).
    # Within equities, two stocks held 240/160 share the purchase 30/20.
    result = run_case(
        [
            _asset("e1", "equity"),
            _asset("e2", "equity"),
            _asset("g", "govt_bond"),
            _asset("c", "corp_bond"),
        ],
        [{"holder_id": "h"}],
        [("h", "e1", 3.0), ("h", "e2", 2.0), ("h", "g", 3.0), ("h", "c", 2.0)],
        [THREE_CLASSES],
        _equity_falls(-0.20),
    )
    assert _traded(result) == pytest.approx({"e1": 30.0, "e2": 20.0, "g": -30.0, "c": -20.0})
    assert math.isclose(holder(result)["cash_after"], 0.0, abs_tol=1e-9)


def test_purchases_are_paid_from_cash_first() -> None:
    # As above with 100 cash: V = 1000, equity 40% → buy 500 − 400 = 100 from cash; no sales.
    result = run_case(
        [_asset("e", "equity"), _asset("g", "govt_bond"), _asset("c", "corp_bond")],
        [{"holder_id": "h", "cash": 100.0}],
        [("h", "e", 5.0), ("h", "g", 3.0), ("h", "c", 2.0)],
        [THREE_CLASSES],
        _equity_falls(-0.20),
    )
    assert _traded(result) == pytest.approx({"e": 100.0})
    assert math.isclose(holder(result)["cash_after"], 0.0, abs_tol=1e-9)


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_what_cash_and_overweights_cannot_fund_is_borrowed(execution: str) -> None:
    # Policy names only equities (60% ± 5%); 500 equities, 500 in a non-policy class, no cash:
    # V = 1000, equity 50% → buy 100 with nothing to fund it: borrowed, cash −100. V stays
    # 1000 (600 + 500 − 100), so equities are at 60% afterwards.
    result = run_case(
        [_asset("e", "equity"), _asset("re", "real_estate")],
        [{"holder_id": "h"}],
        [("h", "e", 5.0), ("h", "re", 5.0)],
        [{"kind": "rebalancing_band", "weights": {"equity": 0.6}}],
        [{"select": {"all": True}, "price_return": 0.0}],
        execution,
    )
    assert _traded(result) == pytest.approx({"e": 100.0}, rel=1e-6)
    assert math.isclose(holder(result)["cash_after"], -100.0, rel_tol=1e-6)
    assert holder(result)["compliant"]


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_a_policy_class_not_held_is_reported_under_either_style(execution: str) -> None:
    # 60/40 on a book of equities only: V = 1000, equities 100% → sell 1000 − 600 = 400; the
    # bond class has no position to buy into, stays at 0% (out of its band) and the holder is
    # not compliant. Its trades cannot restore the rule: the closed form under either style.
    result = run_case(
        [_asset("e", "equity"), _asset("g", "govt_bond")],
        [{"holder_id": "h"}],
        [("h", "e", 10.0)],
        [SIXTY_FORTY],
        _equity_falls(0.0),
        execution,
    )
    assert _traded(result) == pytest.approx({"e": -400.0}, rel=1e-9)
    assert not holder(result)["compliant"]


def test_min_cost_sells_the_cheaper_overweight_class() -> None:
    # The three-class book: 50 must be raised from govt (overweight 30, band floor 25% = 225,
    # so up to 75 can go) and corp (up to 200 − 135 = 65). Corp is 40× dearer to trade, so
    # min-cost sells govt only, 50 of it — pro-rata would have split 30/20.
    result = run_case(
        [
            _asset("e", "equity"),
            _asset("g", "govt_bond") | {"half_spread_bps": 1.0},
            _asset("c", "corp_bond") | {"half_spread_bps": 40.0},
        ],
        [{"holder_id": "h"}],
        [("h", "e", 5.0), ("h", "g", 3.0), ("h", "c", 2.0)],
        [THREE_CLASSES],
        _equity_falls(-0.20),
        "min_cost",
    )
    traded = _traded(result)
    assert traded["e"] == pytest.approx(50.0, rel=1e-6)
    assert traded["g"] == pytest.approx(-50.0, rel=1e-4)
    assert abs(traded.get("c", 0.0)) <= 1e-3


@pytest.mark.parametrize("size", [1.0, 1e-2, 1e3])
def test_min_cost_buys_hundreds_of_times_a_small_holding_at_the_optimum(size: float) -> None:
    """A fund short 2475 of futures beside 3 of equities (NAV 3103.75: cash 3100.75 + 3) must
    buy equities to 60% and futures to 30% of NAV: B_e = 0.6·3103.75 − 3 = 1859.25 and
    B_f = 0.3·3103.75 + 2470 = 3401.125, each split to minimise Σ c_i·u_i^{3/2} with
    c ∝ σ/√ADV (no spread), so 1.5·c₁·√u₁ = 1.5·c₂·√u₂: equities with σ 0.1875 and 0.25 at
    one ADV take u₁/u₂ = (0.25/0.1875)² = 16/9 — 1859.25·16/25 = 1189.92 and
    1859.25·9/25 = 669.33 — and the two futures, alike but for price, 1700.5625 each. The
    purchases are about 600 times the equity holdings: solved at full accuracy whatever the
    book's size (as fractions of the holdings they were solved only to reduced accuracy, the
    split off by up to a quarter)."""
    future_ = {"asset_class": "equity_future", "instrument": "future", "multiplier": 5.0}
    result = run_case(
        [
            {"asset_id": "e1", "price": 1.0, "vol": 0.1875},
            {"asset_id": "e2", "price": 1.0, "vol": 0.25},
            {"asset_id": "f1", "price": 11.0, "vol": 0.5} | future_,
            {"asset_id": "f2", "price": 1.0, "vol": 0.5} | future_,
        ],
        [{"holder_id": "h", "cash": 3100.75 * size}],
        [("h", a, q * size) for a, q in {"e1": 2.0, "e2": 1.0, "f1": -45.0, "f2": 1.0}.items()],
        [{"kind": "rebalancing_band", "weights": {"equity": 0.6, "equity_future": 0.3}}],
        [{"select": {"all": True}, "price_return": 0.0}],
        "min_cost",
    )
    traded = _traded(result)
    # each split to ~√ε of the solver's 10⁻⁹ (the cost is flat at its minimum), the totals exactly
    assert traded["e1"] == pytest.approx(1189.92 * size, rel=1e-4)
    assert traded["e2"] == pytest.approx(669.33 * size, rel=1e-4)
    assert traded["e1"] + traded["e2"] == pytest.approx(1859.25 * size, rel=1e-9)
    assert traded["f1"] == pytest.approx(1700.5625 * size, rel=1e-4)
    assert traded["f2"] == pytest.approx(1700.5625 * size, rel=1e-4)
    assert traded["f1"] + traded["f2"] == pytest.approx(3401.125 * size, rel=1e-9)
    assert holder(result)["solver_status"] == "optimal"


def test_min_cost_never_sells_a_long_through_zero() -> None:
    # Equities A 50 and B 550, bonds 400: 60/40. Equities +40%: A 70, B 770, V = 1240, equity
    # weight 67.7% > 65%. Back to target: equities 0.6·1240 = 744, sell 96; bonds buy 96. A costs
    # 0.1bp to trade and B 50bp: the cheapest 96 would be A sold 96 — 26 short. A pension does not
    # go short: A is sold in full (70), B the other 26.
    result = run_case(
        [
            _asset("a", "equity") | {"half_spread_bps": 0.1, "adv": 1e12},
            _asset("b", "equity") | {"half_spread_bps": 50.0},
            _asset("ust", "govt_bond"),
        ],
        [{"holder_id": "h", "holder_type": "pension"}],
        [("h", "a", 0.5), ("h", "b", 5.5), ("h", "ust", 4.0)],
        [SIXTY_FORTY],
        _equity_falls(0.40),
        "min_cost",
    )
    assert _traded(result) == pytest.approx({"a": -70.0, "b": -26.0, "ust": 96.0}, rel=1e-6)
    assert holder(result)["compliant"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"band": -0.01}, "greater than or equal to 0"),
        ({"bands": {"equity": -0.02}}, "bands must be ≥ 0"),
        ({"weights": {"equity": 0.7, "govt_bond": 0.4}}, "more than 1"),
        ({"weights": {"equity": 1.2}}, "between 0 and 1"),
        ({"bands": {"cash": 0.02}}, "without a weight"),
        ({"defer": 1.0}, "less than 1"),
        ({"defer": -0.1}, "greater than or equal to 0"),
    ],
)
def test_bad_policy_is_rejected(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Mandate(name="m", rules=[SIXTY_FORTY | spec])


@pytest.mark.parametrize("execution", EXECUTIONS)
@pytest.mark.parametrize(
    ("restore", "moved"),
    [
        # Equities 600 → 450, V = 850. Target: R = 0.6·850 = 510; half deferred, the decided
        # level is L = R + ½(X − R) = 510 − 30 = 480 (buy 30); bonds 340 + ½·60 = 370 (sell 30).
        ("target", 30.0),
        # To the band edge, R = 0.55·850 = 467.5, L = 467.5 − ½·17.5 = 458.75 (buy 8.75); bonds
        # 382.5 + 8.75 = 391.25 (sell 8.75).
        ("edge", 8.75),
    ],
)
def test_a_deferring_share_leaves_part_of_the_rebalance(
    execution: str, restore: str, moved: float
) -> None:
    result = run_case(
        [_asset("eq", "equity"), _asset("ust", "govt_bond")],
        [{"holder_id": "h"}],
        [("h", "eq", 6.0), ("h", "ust", 4.0)],
        [SIXTY_FORTY | {"restore": restore, "defer": 0.5}],
        _equity_falls(-0.25),
        execution,
    )
    assert _traded(result) == pytest.approx({"eq": moved, "ust": -moved}, rel=1e-6)
    h = holder(result)
    assert h["status"] == "forced" and h["compliant"]


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_a_decision_that_stays_outside_the_band_holds_across_rounds(execution: str) -> None:
    # Equities 600 → 300, V = 700, R = 420; 80% deferred: L = 420 − 0.8·120 = 324, below the
    # band's 0.55·700 = 385 — buy 24, bonds 280 + 96 = 376 (sell 24). The holder's own trades
    # move prices (impact), so later rounds see it still outside its band: the decision holds
    # (the kept band reaches L), so it does not go on rebalancing round after round, and it
    # is compliant with what it decided.
    result = run_case(
        [_asset("eq", "equity") | {"adv": 100.0}, _asset("ust", "govt_bond") | {"adv": 100.0}],
        [{"holder_id": "h"}],
        [("h", "eq", 6.0), ("h", "ust", 4.0)],
        [SIXTY_FORTY | {"defer": 0.8}],
        _equity_falls(-0.5),
        execution,
        impact={"models": [{"model": "linear", "coefficient": 1e-3, "per": "value"}]},
    )
    t = result.trades
    assert t.height == 2  # one decision, one round of trades
    assert t["trade_value"].abs().to_list() == pytest.approx([24.0, 24.0], rel=1e-6)
    assert holder(result)["compliant"]


def test_no_deferring_share_is_the_rule_without_one() -> None:
    """``defer = 0`` takes none of the deferral's paths: the same trades and holder table,
    to the last bit, as a rule without the field (the 60/40 of the first test)."""
    runs = [
        run_case(
            [_asset("eq", "equity"), _asset("ust", "govt_bond")],
            [{"holder_id": "h"}],
            [("h", "eq", 6.0), ("h", "ust", 4.0)],
            [SIXTY_FORTY | extra],
            _equity_falls(-0.25),
        )
        for extra in ({}, {"defer": 0.0})
    ]
    assert runs[0].trades.equals(runs[1].trades)
    assert runs[0].holders.equals(runs[1].holders)

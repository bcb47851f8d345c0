"""``index_tracking`` oracles: every trade worked out by hand in the comments."""

from __future__ import annotations

import math
from typing import Any

import polars as pl
import pytest
from oracle_kit import asset_frame, holder, holder_frame

import estimator
from estimator import InputError, Mandate, Scenario
from estimator.api import RunResult
from estimator.rounds import evaluate_round
from rules import index_column

#: Hand-worked books of a few hundred currency units (conftest.hand_sized).
pytestmark = pytest.mark.usefixtures("hand_sized")

EXECUTIONS = ["pro_rata", "min_cost"]


def _stocks(*prices: tuple[str, float]) -> list[dict[str, Any]]:
    return [{"asset_id": a, "price": p} for a, p in prices]


def _run(
    prices: list[tuple[str, float]],
    holdings: dict[str, float],
    weights: dict[str, float],
    *,
    changes: list[dict[str, Any]] | None = None,
    shocks: list[dict[str, Any]] | None = None,
    rules: list[dict[str, Any]] | None = None,
    execution: str = "pro_rata",
    cash: float = 0.0,
) -> RunResult:
    """One holder ``h`` tracking index ``X``; ``holdings`` in units."""
    rules = rules or [{"kind": "index_tracking", "index": "X"}]
    mandate = Mandate(name="m", execution=execution, rules=rules)
    market = estimator.build_market(
        asset_frame(_stocks(*prices)),
        holder_frame([{"holder_id": "h", "cash": cash}]),
        pl.DataFrame(
            {"holder_id": "h", "asset_id": list(holdings), "quantity": list(holdings.values())}
        ),
        {"m": mandate},
        index_weights=_weights(weights),
    )
    scenario = Scenario(name="s", shocks=shocks or [], index_changes=changes or [])
    return estimator.run(scenario, market)


def _weights(weights: dict[str, float], index_id: str = "X") -> pl.DataFrame:
    return pl.DataFrame(
        {"index_id": index_id, "asset_id": list(weights), "weight": list(weights.values())}
    )


def _values(result: RunResult, holder_id: str = "h") -> dict[str, float]:
    t = result.trades.filter(pl.col("holder_id") == holder_id)
    return dict(zip(t["asset_id"], t["trade_value"], strict=True))


def _delete(asset_id: str) -> dict[str, Any]:
    return {"index_id": "X", "asset_id": asset_id, "action": "delete"}


ABC = [("a", 1.0), ("b", 1.0), ("c", 1.0)]


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_deletion_sells_tracked_assets_times_weight(execution: str) -> None:
    # Index a .5, b .3, c .2; the holder is overweight a (60/20/20, A = 100, cash aside).
    # Delete c: the others share 1 in proportion, a .625, b .375; Δw = +.125, +.075, −.2.
    # Trades A·Δw: a +12.5, b +7.5, c −20 — the whole deleted position, deviations kept
    # (a stays 10 over its new index weight, b 10 under).
    result = _run(
        ABC,
        {"a": 60, "b": 20, "c": 20},
        {"a": 0.5, "b": 0.3, "c": 0.2},
        changes=[_delete("c")],
        execution=execution,
        cash=10.0,
    )
    assert _values(result) == pytest.approx({"a": 12.5, "b": 7.5, "c": -20.0}, rel=1e-12)
    h = holder(result)
    assert (h["status"], h["triggered_rules"], h["compliant"]) == ("forced", "index_tracking", True)
    assert math.isclose(h["index_tracking.metric_before"], 0.2, rel_tol=1e-12)  # ½Σ|Δw|
    assert abs(h["index_tracking.metric_after"]) <= 1e-12
    assert math.isclose(h["cash_after"], 10.0, rel_tol=1e-12)  # sales pay for the purchases


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_price_shock_alone_gives_zero_index_flow(execution: str) -> None:
    # a −40%, b +10%, c unchanged: the cap-weighted index drifts with its members, so does the
    # holder; with tolerance 0 nothing trades — even for a holder with its own deviations.
    shocks = [
        {"select": {"asset_ids": ["a"]}, "price_return": -0.4, "vol_multiplier": 2.0},
        {"select": {"asset_ids": ["b"]}, "price_return": 0.1},
    ]
    result = _run(
        ABC,
        {"a": 70, "b": 10, "c": 20},
        {"a": 0.5, "b": 0.3, "c": 0.2},
        shocks=shocks,
        execution=execution,
    )
    assert result.trades.is_empty()
    h = holder(result)
    assert (h["status"], h["triggered_rules"]) == ("ok", "")
    assert h["index_tracking.metric_before"] == 0.0


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_addition_buys_tracked_assets_times_new_weight(execution: str) -> None:
    # Index a .6, b .4 held at 60/40 (A = 100). Add d (price 4, not held) at .2: a .48, b .32.
    # Trades: a −12, b −8, d +20 = 5 units bought from nothing.
    result = _run(
        [("a", 1.0), ("b", 1.0), ("d", 4.0)],
        {"a": 60, "b": 40},
        {"a": 0.6, "b": 0.4},
        changes=[{"index_id": "X", "asset_id": "d", "action": "add", "weight": 0.2}],
        execution=execution,
    )
    assert _values(result) == pytest.approx({"a": -12.0, "b": -8.0, "d": 20.0}, rel=1e-12)
    bought = result.trades.filter(pl.col("asset_id") == "d").row(0, named=True)
    assert (bought["quantity_before"], bought["trade_quantity"]) == (0.0, pytest.approx(5.0))


def test_reweight_scales_the_other_members() -> None:
    # a .5 → .4 in {a .5, b .3, c .2}: b and c share .6 in proportion, .36 and .24.
    # A = 200 (100/60/40): a −20, b +12, c +8.
    result = _run(
        ABC,
        {"a": 100, "b": 60, "c": 40},
        {"a": 0.5, "b": 0.3, "c": 0.2},
        changes=[{"index_id": "X", "asset_id": "a", "action": "reweight", "weight": 0.4}],
    )
    assert _values(result) == pytest.approx({"a": -20.0, "b": 12.0, "c": 8.0}, rel=1e-12)


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_a_member_not_held_whose_weight_falls_is_left_alone(execution: str) -> None:
    # Index a .5, b .3, c .2; the holder owns a and b only (60/40, A = 100). Reweight a to .4:
    # b and c share .6 in proportion, .36 and .24; Δw = −.1, +.06, +.04. Targets τ = x/A + Δw:
    # a .5, b .46, c .04 (sum 1). Trades: a −10, b +6, c +4 — c, not held, rises and is
    # bought. A member not held whose weight falls (c cut from .2 to .1 below) has target
    # max(0 − .1, 0) = 0 and never trades.
    result = _run(
        ABC,
        {"a": 60, "b": 40},
        {"a": 0.5, "b": 0.3, "c": 0.2},
        changes=[{"index_id": "X", "asset_id": "a", "action": "reweight", "weight": 0.4}],
        execution=execution,
    )
    assert _values(result) == pytest.approx({"a": -10.0, "b": 6.0, "c": 4.0}, rel=1e-12)
    # c cut to .1: a and b share .9 in proportion, .5625 and .3375; Δw a +.0625, b +.0375,
    # c −.1 on a book without c: τ = .6625, .4375, 0 renormalised by 1.1 → a .60227…, b .39772…
    # trades A·τ − x: a +.227…, b −.227…: the holder's own split moves, c stays untouched.
    cut = _run(
        ABC,
        {"a": 60, "b": 40},
        {"a": 0.5, "b": 0.3, "c": 0.2},
        changes=[{"index_id": "X", "asset_id": "c", "action": "reweight", "weight": 0.1}],
        execution=execution,
    )
    values = _values(cut)
    assert "c" not in values
    assert values == pytest.approx({"a": 100 * 0.6625 / 1.1 - 60, "b": 100 * 0.4375 / 1.1 - 40})


def test_deletion_after_a_price_fall_sells_the_drifted_weight() -> None:
    # a, b at .5 each, held 50/50. a falls 20%: a is 40, b 50, A = 90; the index drifts to
    # a .4/.9 = 4/9. Deleting a sells A·4/9 = 40 (all of it) and buys 40 of b.
    result = _run(
        [("a", 1.0), ("b", 1.0)],
        {"a": 50, "b": 50},
        {"a": 0.5, "b": 0.5},
        changes=[_delete("a")],
        shocks=[{"select": {"asset_ids": ["a"]}, "price_return": -0.2}],
    )
    assert _values(result) == pytest.approx({"a": -40.0, "b": 40.0}, rel=1e-12)


@pytest.mark.parametrize(("tolerance", "trades"), [(0.15, False), (0.05, True)])
def test_tolerance_decides_whether_not_how_far(tolerance: float, trades: bool) -> None:
    # The reweight above has one-way turnover ½(.1 + .06 + .04) = .1: a tolerance of 15%
    # absorbs it; one of 5% does not, and then the holder trades all the way (a −20).
    result = _run(
        ABC,
        {"a": 100, "b": 60, "c": 40},
        {"a": 0.5, "b": 0.3, "c": 0.2},
        changes=[{"index_id": "X", "asset_id": "a", "action": "reweight", "weight": 0.4}],
        rules=[{"kind": "index_tracking", "index": "X", "tolerance": tolerance}],
    )
    if trades:
        assert _values(result) == pytest.approx({"a": -20.0, "b": 12.0, "c": 8.0}, rel=1e-12)
    else:
        assert result.trades.is_empty()
        assert holder(result)["compliant"]


def test_a_cut_never_takes_a_holding_short() -> None:
    # Index a .5, b .3, c .2; the holder owns no c (A = 100, a 50, b 50). c is cut to .1, so
    # a .5625, b .3375 and Δw = +.0625, +.0375, −.1. Targets x/A + Δw: a .5625, b .5375,
    # c −.1 → 0; renormalised by 1.1: a .5625/1.1, b .5375/1.1. Trades: a 51.1364 − 50 = +1.1364,
    # b 48.8636 − 50 = −1.1364; no short sale of c.
    result = _run(
        ABC,
        {"a": 50, "b": 50},
        {"a": 0.5, "b": 0.3, "c": 0.2},
        changes=[{"index_id": "X", "asset_id": "c", "action": "reweight", "weight": 0.1}],
    )
    expected_a = 100 * 0.5625 / 1.1 - 50
    assert _values(result) == pytest.approx({"a": expected_a, "b": -expected_a}, rel=1e-12)


def test_a_change_to_another_index_moves_nothing() -> None:
    mandate = Mandate(name="m", rules=[{"kind": "index_tracking", "index": "X"}])
    weights = pl.concat([_weights({"a": 0.5, "b": 0.5}), _weights({"a": 0.4, "c": 0.6}, "Y")])
    market = estimator.build_market(
        asset_frame(_stocks(*ABC)),
        holder_frame([{"holder_id": "h"}]),
        pl.DataFrame({"holder_id": "h", "asset_id": ["a", "b"], "quantity": [50.0, 50.0]}),
        {"m": mandate},
        index_weights=weights,
    )
    changes = [{"index_id": "Y", "asset_id": "a", "action": "delete"}]
    result = estimator.run(Scenario(name="s", index_changes=changes), market)
    assert result.trades.is_empty()


def test_index_change_then_leverage_scales_the_whole_book() -> None:
    # Deletion of c as in the first test, holder 60/20/20 with cash −50: E = 50, A = 100,
    # leverage 100/50 = 2 > max 1.6 → target 1.5. The index trades leave every sum unchanged
    # (a 72.5, b 27.5, c 0); then the whole book scales by f: G = 100f, cash −50 + 100(1−f),
    # E = 50 whatever f (trades at market), so 100f = 1.5·50 → f = .75: a 54.375, b 20.625.
    # Trades from the start: a −5.625, b +0.625, c −20.
    result = _run(
        ABC,
        {"a": 60, "b": 20, "c": 20},
        {"a": 0.5, "b": 0.3, "c": 0.2},
        changes=[_delete("c")],
        rules=[
            {"kind": "index_tracking", "index": "X"},
            {"kind": "leverage", "max": 1.6, "target": 1.5},
        ],
        cash=-50.0,
    )
    assert _values(result) == pytest.approx({"a": -5.625, "b": 0.625, "c": -20.0}, rel=1e-12)
    assert holder(result)["compliant"]


def test_min_cost_tracker_sells_its_sleeve_proportionally() -> None:
    # No index change; a leverage breach forces a sale. Cheapest alone would be the stock with
    # the tightest spread (a), but a tracker at tolerance 0 keeps its sleeve on the index: every
    # member sells the same fraction. 50/30/20 at price 1, cash −50: E = 50, leverage 2 → 1.5:
    # sell 25, i.e. a quarter of each member.
    prices = [("a", 1.0), ("b", 1.0), ("c", 1.0)]
    spreads = {"a": 1.0, "b": 20.0, "c": 40.0}
    mandate = Mandate(
        name="m",
        execution="min_cost",
        rules=[
            {"kind": "index_tracking", "index": "X"},
            {"kind": "leverage", "max": 1.6, "target": 1.5},
        ],
    )
    assets = asset_frame(
        [{"asset_id": a, "price": p, "half_spread_bps": spreads[a]} for a, p in prices]
    )
    market = estimator.build_market(
        assets,
        holder_frame([{"holder_id": "h", "cash": -50.0}]),
        pl.DataFrame(
            {"holder_id": "h", "asset_id": ["a", "b", "c"], "quantity": [50.0, 30.0, 20.0]}
        ),
        {"m": mandate},
        index_weights=_weights({"a": 0.5, "b": 0.3, "c": 0.2}),
    )
    result = estimator.run(Scenario(name="s"), market)
    assert _values(result) == pytest.approx({"a": -12.5, "b": -7.5, "c": -5.0}, rel=1e-6)
    assert holder(result)["triggered_rules"] == "leverage"


def test_a_short_member_does_not_stop_a_min_cost_solve() -> None:
    # 1/1/−1 in an equal-weight index, cash 0.2: E = 1.2, exposure G = 3, leverage 2.5 > 2 →
    # 1.8. The tracker's targets include a negative one (the short); the solve must still run
    # and leave the sleeve within its 2% tolerance.
    mandate = Mandate(
        name="m",
        execution="min_cost",
        rules=[
            {"kind": "index_tracking", "index": "X", "tolerance": 0.02},
            {"kind": "leverage", "max": 2.0, "target": 1.8, "measure": "exposure"},
        ],
    )
    market = estimator.build_market(
        asset_frame(_stocks(*ABC)),
        holder_frame([{"holder_id": "h", "cash": 0.2}]),
        pl.DataFrame({"holder_id": "h", "asset_id": ["a", "b", "c"], "quantity": [1.0, 1.0, -1.0]}),
        {"m": mandate},
        index_weights=_weights({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}),
    )
    h = holder(estimator.run(Scenario(name="s"), market))
    assert (h["status"], h["solver_status"], h["compliant"]) == ("forced", "optimal", True)
    assert math.isclose(h["leverage.metric_after"], 1.8, rel_tol=1e-6)
    assert h["index_tracking.metric_after"] <= 0.02 + 1e-9


# --- bad input ---------------------------------------------------------------------------------


def _market_with(weights: pl.DataFrame, rules: list[dict[str, Any]] | None = None) -> Any:
    mandate = Mandate(name="m", rules=rules or [{"kind": "index_tracking", "index": "X"}])
    return estimator.build_market(
        asset_frame(_stocks(*ABC)),
        holder_frame([{"holder_id": "h"}]),
        pl.DataFrame({"holder_id": "h", "asset_id": ["a"], "quantity": [1.0]}),
        {"m": mandate},
        index_weights=weights,
    )


def test_weights_naming_unknown_assets_are_an_error() -> None:
    with pytest.raises(InputError) as info:
        _market_with(_weights({"a": 0.5, "zz": 0.5}))
    (problem,) = info.value.problems
    assert (problem.file, problem.row, problem.field) == ("index_weights", 2, "asset_id")
    assert "unknown asset 'zz'" in problem.message


def test_weights_not_summing_to_one_are_normalised_with_a_warning() -> None:
    # .6 + .6 = 1.2 → .5 each.
    market = _market_with(_weights({"a": 0.6, "b": 0.6}))
    assert any("sum to 1.2" in str(w) and "normalised" in str(w) for w in market.warnings.items)
    assert market.index_weights["weight"].to_list() == [0.5, 0.5]


@pytest.mark.parametrize(
    ("weights", "field"),
    [
        (pl.DataFrame({"index_id": "X", "asset_id": ["a"], "weight": [-0.1]}), "weight"),
        (
            pl.DataFrame({"index_id": "X", "asset_id": ["a", "a"], "weight": [0.5, 0.5]}),
            "index_id, asset_id",
        ),
    ],
)
def test_bad_weight_rows(weights: pl.DataFrame, field: str) -> None:
    with pytest.raises(InputError) as info:
        _market_with(weights)
    assert {p.field for p in info.value.problems} == {field}


def test_tracking_an_unknown_index_is_an_error() -> None:
    with pytest.raises(InputError) as info:
        _market_with(_weights({"a": 1.0}), [{"kind": "index_tracking", "index": "NOPE"}])
    (problem,) = info.value.problems
    assert problem.field == "mandate" and "tracks index 'NOPE'" in problem.message


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"index_id": "Y", "asset_id": "a", "action": "delete"}, "unknown index 'Y'"),
        ({"index_id": "X", "asset_id": "zz", "action": "add", "weight": 0.1}, "unknown asset 'zz'"),
        ({"index_id": "X", "asset_id": "c", "action": "delete"}, "not a member"),
        ({"index_id": "X", "asset_id": "a", "action": "add", "weight": 0.1}, "use reweight"),
        ({"index_id": "X", "asset_id": "c", "action": "add", "weight": 1.0}, "sum to 1"),
    ],
)
def test_bad_index_change(change: dict[str, Any], fragment: str) -> None:
    market = _market_with(_weights({"a": 0.5, "b": 0.5}))
    with pytest.raises(InputError) as info:
        estimator.run(Scenario(name="s", index_changes=[change]), market)
    assert any(fragment in p.message for p in info.value.problems), info.value
    assert all(p.field and p.field.startswith("index_changes") for p in info.value.problems)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"action": "delete", "weight": 0.1}, "takes no weight"),
        ({"action": "add"}, "needs the new weight"),
        ({"action": "reweight", "weight": 1.5}, "less than or equal to 1"),
        ({"action": "rename"}, "'delete', 'add' or 'reweight'"),
    ],
)
def test_index_change_fields_are_checked(change: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        Scenario(name="s", index_changes=[{"index_id": "X", "asset_id": "a", **change}])


def test_one_change_per_member() -> None:
    twice = [_delete("a"), {"index_id": "X", "asset_id": "a", "action": "reweight", "weight": 0.2}]
    with pytest.raises(ValueError, match="repeated"):
        Scenario(name="s", index_changes=twice)


def test_index_with_no_old_weight_left_becomes_the_given_weights() -> None:
    # Weights a 1, b 0. Delete a, add c at 1: nothing is left for b to share, so the index is
    # c alone. The holder (a 100) sells a and buys c, 100 each.
    result = _run(
        [("a", 1.0), ("b", 1.0), ("c", 1.0)],
        {"a": 100},
        {"a": 1.0, "b": 0.0},
        changes=[
            _delete("a"),
            {"index_id": "X", "asset_id": "c", "action": "add", "weight": 1.0},
        ],
    )
    assert _values(result) == pytest.approx({"a": -100.0, "c": 100.0}, rel=1e-12)
    market = _market_with(_weights({"a": 1.0, "b": 0.0}))
    changes = [_delete("a"), {"index_id": "X", "asset_id": "c", "action": "add", "weight": 1.0}]
    shocked = estimator.apply_scenario(
        market.assets, Scenario(name="s", index_changes=changes), index_weights=market.index_weights
    )
    dw = dict(zip(shocked["asset_id"], shocked[index_column("X", "dw")], strict=True))
    assert dw == {"a": -1.0, "b": 0.0, "c": 1.0}  # no NaN for the weightless member


def test_index_tracking_cannot_share_a_mandate_with_another_position_rule() -> None:
    with pytest.raises(ValueError, match="cannot share a mandate"):
        Mandate(
            name="m",
            rules=[{"kind": "index_tracking", "index": "X"}, {"kind": "rating_floor"}],
        )


def test_a_later_effective_day_is_traded_now_with_a_warning() -> None:
    change = {**_delete("c"), "effective_day": 3}
    result = _run(
        ABC, {"a": 60, "b": 20, "c": 20}, {"a": 0.5, "b": 0.3, "c": 0.2}, changes=[change]
    )
    assert _values(result)["c"] == pytest.approx(-20.0, rel=1e-12)
    assert any("effective_day 3" in str(w) for w in result.warnings.items)


def test_assets_without_the_tracked_index_columns_are_an_input_error() -> None:
    market = _market_with(_weights({"a": 0.5, "b": 0.5}))
    shocked = estimator.apply_scenario(market.assets, Scenario(name="s"))  # no index weights
    with pytest.raises(InputError, match="no columns for it"):
        evaluate_round(shocked, market.holders, market.positions, market.mandates)


def test_a_tracking_mandate_no_holder_follows_needs_no_index_columns() -> None:
    market = _market_with(_weights({"a": 0.5, "b": 0.5}))
    nobody = market.holders.with_columns(mandate=pl.lit("other"))
    mandates = market.mandates | {
        "other": Mandate(name="other", rules=[{"kind": "leverage", "max": 10.0}])
    }
    shocked = estimator.apply_scenario(market.assets, Scenario(name="s"))  # no index weights
    result = evaluate_round(shocked, nobody, market.positions, mandates)
    assert set(result.holders["status"]) == {"ok"}

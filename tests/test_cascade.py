"""Rounds of the cascade: hand-computed two-holder example and the invariants of the rounds."""

from __future__ import annotations

import itertools
import math
from io import StringIO
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle_kit import asset_frame, holder_frame
from rich.console import Console
from typer.testing import CliRunner

import estimator
from estimator import Mandate, Scenario, attribution, console, keys, rounds
from estimator.cascade import CascadeResult, cascade
from estimator.cli import app
from estimator.errors import InputError, InputWarnings
from estimator.explain import explain
from estimator.impact import Impact
from estimator.inputs import prepare
from estimator.market import Market, load_market
from estimator.paths import resolve_market
from estimator.rounds import evaluate_round
from estimator.scenario import load_scenario

SMALL_CRASH = Path(__file__).parents[1] / "scenarios" / "small_crash.toml"

LEVERAGE_2 = Mandate(name="m", rules=[{"kind": "leverage", "max": 2.0}])


def _ab_market(order: int = 1, adv: float = 1e9, vol: float = 0.2) -> Market:
    """One stock X at 100; A: 10 units on 600 borrowed (leverage 2.5), B: 20 units on 1000
    borrowed (leverage 2.0, at its limit); ``order = -1`` lists rows backwards."""
    holders = [
        {"holder_id": "A", "cash": -600.0},
        {"holder_id": "B", "cash": -1000.0},
    ][::order]
    return estimator.build_market(
        asset_frame([{"asset_id": "X", "price": 100.0, "adv": adv, "vol": vol}]),
        holder_frame(holders),
        pl.DataFrame(
            {"holder_id": ["A", "B"][::order], "asset_id": "X", "quantity": [10.0, 20.0][::order]}
        ),
        {"m": LEVERAGE_2},
    )


def _two_holders(
    impact: dict[str, Any],
    max_rounds: int = 50,
    order: int = 1,
    fall: float = 0.0,
    **asset: float,
) -> CascadeResult:
    """The cascade on :func:`_ab_market`, after a fall of ``fall`` if any."""
    market = _ab_market(order, **asset)
    shocks = [{"select": {"all": True}, "price_return": -fall}] if fall else []
    spec = Scenario(name="s", impact=impact, shocks=shocks)
    shocked, prepared = prepare(spec, market, "s", InputWarnings())
    return cascade(
        shocked, prepared, market.positions, market.mandates, spec.impact, max_rounds=max_rounds
    )


LINEAR = {"models": [{"model": "linear", "coefficient": 1e-4, "per": "value"}]}


def _sold(result: CascadeResult, r: int) -> dict[str, float]:
    t = result.trades.filter(pl.col("round") == r)
    return dict(zip(t["holder_id"], -t["trade_value"], strict=True))


def test_two_holders_one_asset_linear_impact_round_by_round() -> None:
    # Round 1 at P = 100: A (E = 400, A = 1000) sells to leverage 2: 1000 − 2·400 = 200 (2
    # units); B sits at exactly 2.0 and does nothing. Linear ℓ = 1e-4 per currency unit, on the
    # cumulative flow: Q = 2·100 = 200 → −2% → P₁ = 98; executed at the mid, 99: A's cash
    # −600 + 2·99 = −402.
    # Round 2 at P₁ = 98: A holds 8 (784), E = 784 − 402 = 382 → sells 784 − 764 = 20;
    # B holds 20 (1960), E = 960 → sells 1960 − 1920 = 40. Units: 20/98 + 40/98 = 60/98;
    # cumulative 2 + 60/98 = 2.6122… units, Q = 261.22… → P₂ = 100·(1 − 0.026122…) = 97.3878
    result = _two_holders(LINEAR, max_rounds=2)
    assert _sold(result, 1) == pytest.approx({"A": 200.0}, rel=1e-12)
    assert _sold(result, 2) == pytest.approx({"A": 20.0, "B": 40.0}, rel=1e-9)
    prices = result.rounds.filter(pl.col("asset_id") == "X").sort("round")
    assert prices["price_end"].to_list() == pytest.approx([98.0, 100 * (1 - 1e-2 * (2 + 60 / 98))])
    assert prices["execution_price"][0] == pytest.approx(99.0, rel=1e-12)
    cash = dict(result.holders_after.select("holder_id", "cash").iter_rows())
    p2 = prices["price_end"][1]
    assert cash["A"] == pytest.approx(-402.0 + 20 / 98 * (98 + p2) / 2, rel=1e-12)
    assert cash["B"] == pytest.approx(-1000.0 + 40 / 98 * (98 + p2) / 2, rel=1e-12)
    assert not result.converged  # stopped at max_rounds with selling still going on
    assert result.amplification == pytest.approx(260.0 / 200.0, rel=1e-9)


# σ_d = 0.01 exactly and ADV 5000: round 1's sale Q = 200 is 4% of a day's volume
HAND = {"vol": 0.01 * math.sqrt(252), "adv": 5000.0}
SQRT = {"models": [{"model": "sqrt", "kappa": 10.0}]}  # 10 · 0.01 · √0.04 = 2%
# B = 50 and δ = (1 − 0.5)·c·5000·√1/0.01 = 200/ln(25/24): round 1 gives 1 − e^{−Q/δ} = 1/25,
# Δp/p = −(1 − 50/100)/25 = −2%
DELTA = 200 / math.log(25 / 24)
EXPONENTIAL = {"models": [{"model": "exponential", "floor": 0.5, "c": DELTA / 250_000}]}
# Round 2 sells 20 (A) and 40 (B) at P₁ = 98 whatever the model: 60/98 units, 128/49 in all.
ROUND_2_PRICE = {
    # cumulative: Q = (128/49)·100 at P₀; Q/ADV = 2.56/49, √ = 1.6/7
    ("linear", "cumulative"): 100 * (1 - 1e-4 * 12800 / 49),
    ("sqrt", "cumulative"): 100 * (1 - 0.1 * 1.6 / 7),
    ("exponential", "cumulative"): 50 + 50 * (24 / 25) ** ((12800 / 49) / 200),
    # per round: Q = (60/98)·98 = 60 at P₁ = 98
    ("linear", "per_round"): 98 * (1 - 1e-4 * 60),
    ("sqrt", "per_round"): 98 * (1 - 0.1 * math.sqrt(60 / 5000)),
    ("exponential", "per_round"): 50 + 48 * (24 / 25) ** (60 / 200),
}


@pytest.mark.parametrize("model", ["linear", "sqrt", "exponential"])
@pytest.mark.parametrize("mode", ["cumulative", "per_round"])
def test_two_holders_one_asset_every_model_round_by_round(model: str, mode: str) -> None:
    # Each model is set so that round 1 (A sells 2 units, Q = 200) moves X 100 → 98, as in the
    # linear example above; round 2 (A 20, B 40 at 98) then moves it as ROUND_2_PRICE works out.
    impact = {"linear": LINEAR, "sqrt": SQRT, "exponential": EXPONENTIAL}[model] | {"mode": mode}
    result = _two_holders(impact, max_rounds=2, **HAND)
    assert _sold(result, 1) == pytest.approx({"A": 200.0}, rel=1e-12)
    assert _sold(result, 2) == pytest.approx({"A": 20.0, "B": 40.0}, rel=1e-9)
    prices = result.rounds.filter(pl.col("asset_id") == "X").sort("round")["price_end"]
    p2 = ROUND_2_PRICE[(model, mode)]
    assert prices.to_list() == pytest.approx([98.0, p2], rel=1e-12)
    cash = dict(result.holders_after.select("holder_id", "cash").iter_rows())
    assert cash["A"] == pytest.approx(-402.0 + 20 / 98 * (98 + p2) / 2, rel=1e-12)
    assert cash["B"] == pytest.approx(-1000.0 + 40 / 98 * (98 + p2) / 2, rel=1e-12)


@pytest.mark.usefixtures("hand_sized")
def test_the_cascade_converges_and_each_round_sells_less() -> None:
    result = _two_holders(LINEAR)
    assert result.converged
    sold = result.rounds.group_by("round").agg(pl.col("sell_value").sum()).sort("round")
    values = sold["sell_value"].to_list()
    assert all(b < a for a, b in itertools.pairwise(values))
    # every holder ends at (or within noise of) its limit at the final price
    price = result.prices["price"].item()
    books = result.positions.join(result.holders_after, on="holder_id").with_columns(
        exposure=pl.col("quantity") * price
    )
    leverage = books.select(pl.col("exposure") / (pl.col("exposure") + pl.col("cash")))
    assert leverage.max().item() <= 2.0 * (1 + 1e-6)


def test_per_asset_flows_sum_to_the_holders_trades_in_every_round() -> None:
    result = _two_holders(LINEAR)
    by_trades = (
        result.trades.group_by("round", "asset_id")
        .agg(q=pl.col("trade_quantity").sum())
        .sort("round")
    )
    by_rounds = result.rounds.select("round", "asset_id", q="round_quantity").sort("round")
    assert by_trades["q"].to_list() == pytest.approx(by_rounds["q"].to_list(), rel=1e-12)


def test_holder_order_does_not_change_the_cascade() -> None:
    forward, backward = _two_holders(LINEAR), _two_holders(LINEAR, order=-1)
    assert forward.rounds_traded == backward.rounds_traded
    assert forward.prices["price"].item() == backward.prices["price"].item()


def test_without_impact_one_round_and_amplification_exactly_one() -> None:
    spec = load_scenario(SMALL_CRASH)
    market = load_market(resolve_market(spec.market, SMALL_CRASH.parent))
    shocked, holders = prepare(spec, market, "small_crash", InputWarnings())
    result = cascade(shocked, holders, market.positions, market.mandates, Impact())
    single = estimator.run(spec, market)
    assert result.converged
    assert result.rounds_traded == 1
    assert result.amplification == 1.0
    assert result.trades.height == single.trades.height
    assert result.prices.filter(pl.col("price") != pl.col("price_0")).is_empty()


def test_run_with_impact_reports_every_round(tmp_path: Path) -> None:
    market = _ab_market()
    result = estimator.run(Scenario(name="s", impact=LINEAR), market)
    chain = _two_holders(LINEAR)
    cascade_info = result.manifest.dump()["cascade"]
    assert cascade_info["rounds_traded"] == chain.rounds_traded > 2
    assert cascade_info["converged"] is True
    assert cascade_info["amplification"] == pytest.approx(chain.amplification, rel=1e-12)
    # the asset's total flow is every round's, and its price the cascade's last
    x = result.assets.row(0, named=True)
    assert x["sell_value"] == pytest.approx(chain.rounds["sell_value"].sum(), rel=1e-12)
    assert x["price_end"] == pytest.approx(chain.prices["price"].item(), rel=1e-12)
    assert x["price_change"] == pytest.approx(x["price_end"] / 100 - 1, rel=1e-12)
    # A was forced from round 1, B from round 2; both in every later round with selling
    h = {r["holder_id"]: r for r in result.holders.iter_rows(named=True)}
    assert (h["A"]["first_round"], h["B"]["first_round"]) == (1, 2)
    assert h["A"]["rounds_forced"] == chain.rounds_traded
    assert h["B"]["sold"] == pytest.approx(
        -chain.trades.filter(pl.col("holder_id") == "B")["trade_value"].sum(), rel=1e-12
    )
    written = {p.name for p in result.write(tmp_path / "out")}
    assert "rounds.csv" in written
    assert set(pl.read_csv(tmp_path / "out" / "trades.csv")["round"]) == set(
        range(1, chain.rounds_traded + 1)
    )


def test_the_shipped_cascade_scenario_forces_a_second_round() -> None:
    result = estimator.run("small_cascade")
    info = result.manifest.dump()["cascade"]
    assert info["converged"] is True
    assert info["rounds_traded"] >= 2
    assert info["amplification"] > 1.0
    assert result.rounds is not None
    assert result.rounds["round"].max() == info["rounds_traded"]


def test_losses_and_attribution_of_the_first_round_by_hand() -> None:
    # Round 1 only: A sells 2 units, the price falls 100 → 98 (ΔP = −2), executed at 99.
    # Holdings after: A 8, B 20. Impact losses L_A = 8·2 = 16, L_B = 20·2 = 40; A made all the
    # flow (share 1): own 16 for A, 0 for B; A caused C = (8 + 20)·2 = 56. Execution: A's 2 units
    # at 99 instead of 100: 2. Totals: A 18 (E 400 → 8·98 − 402 = 382), B 40 (1000 → 960).
    # E = 1400: systemicness A 56/1400 = 0.04, B 0; vulnerability 16/400 = 40/1000 = 0.04.
    result = _two_holders(LINEAR, max_rounds=1)
    rows = {r["holder_id"]: r for r in result.losses.iter_rows(named=True)}
    a, b = rows["A"], rows["B"]
    assert (a["loss_impact"], a["loss_own_impact"], a["loss_others_impact"]) == pytest.approx(
        (16.0, 16.0, 0.0)
    )
    assert (b["loss_impact"], b["loss_own_impact"], b["loss_others_impact"]) == pytest.approx(
        (40.0, 0.0, 40.0)
    )
    assert (a["loss_execution"], b["loss_execution"]) == pytest.approx((2.0, 0.0))
    assert (a["loss_total"], b["loss_total"]) == pytest.approx((18.0, 40.0))
    assert (a["cascade_systemicness"], b["cascade_systemicness"]) == pytest.approx((0.04, 0.0))
    vulnerability = (a["cascade_indirect_vulnerability"], b["cascade_indirect_vulnerability"])
    assert vulnerability == pytest.approx((0.04, 0.04))
    assert result.aggregate_vulnerability == pytest.approx(0.04)


def _equity(positions: pl.DataFrame, holders: pl.DataFrame, prices: pl.DataFrame) -> dict:
    value = (
        positions.join(prices, on="asset_id")
        .group_by("holder_id")
        .agg(v=(pl.col("quantity") * pl.col("price")).sum())
    )
    books = holders.join(value, on="holder_id", how="left").with_columns(pl.col("v").fill_null(0.0))
    return dict(books.select("holder_id", pl.col("v") + pl.col("cash")).iter_rows())


@pytest.mark.parametrize("fall", [0.0, 0.01])
@pytest.mark.parametrize("mode", ["cumulative", "per_round"])
def test_attribution_identities_over_the_whole_cascade(mode: str, fall: float) -> None:
    impact = LINEAR | {"mode": mode}
    result = _two_holders(impact, fall=fall)
    table = result.losses
    # Σ systemicness = aggregate vulnerability = Σ vulnerability·E_h / E
    total_equity = table["equity_start"].sum()
    weighted = (
        table["cascade_indirect_vulnerability"] * table["equity_start"]
    ).sum() / total_equity
    assert table["cascade_systemicness"].sum() == pytest.approx(
        result.aggregate_vulnerability, rel=1e-12
    )
    assert weighted == pytest.approx(result.aggregate_vulnerability, rel=1e-12)
    # every holder's loss is the change in its equity from before the shock; the shock's part
    # is direct: 10 and 20 units × 100 × fall
    start = {"A": 400.0, "B": 1000.0}
    end = _equity(result.positions, result.holders_after, result.prices.select("asset_id", "price"))
    for row in table.iter_rows(named=True):
        h = row["holder_id"]
        units = {"A": 10.0, "B": 20.0}[h]
        assert row["loss_direct"] == pytest.approx(units * 100 * fall, abs=1e-12)
        assert start[h] - end[h] == pytest.approx(row["loss_total"], rel=1e-9)


def test_an_insolvent_holder_sells_everything_and_then_nothing() -> None:
    # Z holds 10 units on 950 borrowed; a 6% fall leaves E = 940 − 950 = −10: insolvent in
    # round 1, it liquidates all 10 units, and no later round finds anything left to sell.
    market = estimator.build_market(
        asset_frame([{"asset_id": "X", "price": 100.0}]),
        holder_frame([{"holder_id": "Z", "cash": -950.0}]),
        pl.DataFrame({"holder_id": ["Z"], "asset_id": "X", "quantity": [10.0]}),
        {"m": LEVERAGE_2},
    )
    spec = Scenario(
        name="s", impact=LINEAR, shocks=[{"select": {"all": True}, "price_return": -0.06}]
    )
    shocked, holders = prepare(spec, market, "s", InputWarnings())
    result = cascade(shocked, holders, market.positions, market.mandates, spec.impact)
    assert result.converged
    assert result.trades["round"].to_list() == [1]
    assert result.trades["trade_quantity"].to_list() == pytest.approx([-10.0])
    assert result.positions.filter(pl.col("quantity") != 0).is_empty()
    assert result.holders.filter(pl.col("round") == 1)["status"].to_list() == ["insolvent"]


def test_the_chain_names_who_pushed_whom() -> None:
    # A1 (10 units on 600 borrowed) sells 2 units, A2 (5 on 300) sells 1; B (20 on 1000) sits
    # at its limit. Round 1: 3 units, Q = 300 → −3%, P₁ = 97. B: 1940 − 1000 = 940, leverage
    # 2.06: forced in round 2. Its push is 20·3 = 60, from A1's two thirds of the flow (40)
    # and A2's third (20); both edges are needed to cover 80% of it.
    market = estimator.build_market(
        asset_frame([{"asset_id": "X", "price": 100.0}]),
        holder_frame(
            [
                {"holder_id": "A1", "cash": -600.0},
                {"holder_id": "A2", "cash": -300.0},
                {"holder_id": "B", "cash": -1000.0},
            ]
        ),
        pl.DataFrame(
            {"holder_id": ["A1", "A2", "B"], "asset_id": "X", "quantity": [10.0, 5.0, 20.0]}
        ),
        {"m": LEVERAGE_2},
    )
    result = estimator.run(Scenario(name="s", impact=LINEAR), market)
    assert result.chain is not None
    edges = result.chain.filter(pl.col("target_id") == "B").sort("contribution", descending=True)
    assert edges["source_id"].to_list() == ["A1", "A2"]
    assert edges["contribution"].to_list() == pytest.approx([40.0, 20.0], rel=1e-12)
    assert edges["price_return"].to_list() == pytest.approx([-0.03, -0.03], rel=1e-12)
    assert set(edges["round"]) == {2}
    assert set(edges["target_rules"]) == {"leverage"}
    forced_by = dict(result.holders.select("holder_id", "forced_by").iter_rows())
    assert forced_by["A1"] == forced_by["A2"] == "scenario"
    assert forced_by["B"] == "A1 (X, round 1, 67%); A2 (X, round 1, 33%)"


def test_explain_tells_one_holders_story() -> None:
    market = _ab_market()
    result = estimator.run(Scenario(name="s", impact=LINEAR), market)
    story = explain(result, "B")
    assert "status: forced, forced by A (X, round 1, 100%)" in story
    assert "round 2: X: -0.4082 units, -40 (leverage)" in story  # 40/98 units, by hand
    assert "its sales pushed" not in story
    assert "its sales pushed: B" in explain(result, "A")
    with pytest.raises(InputError, match="no holder 'C'"):
        explain(result, "C")


book_strategy = st.lists(
    st.tuples(
        st.sampled_from(["X", "Y"]),  # asset
        st.floats(1.0, 50.0),  # units
        st.floats(0.0, 0.8),  # share of the position borrowed
    ),
    min_size=1,
    max_size=5,
)


def _threshold_book(book: list[tuple[str, float, float]], fall: float, shuffle: bool) -> float:
    """Units sold over a cascade with linear impact on long-only leverage-capped books."""
    assets = asset_frame(
        [
            {"asset_id": "X", "price": 100.0, "adv": 5e4},
            {"asset_id": "Y", "price": 40.0, "adv": 2e4},
        ]
    )
    prices = {"X": 100.0, "Y": 40.0}
    holders = [
        {"holder_id": f"H{i}", "cash": -borrowed * units * prices[asset]}
        for i, (asset, units, borrowed) in enumerate(book)
    ]
    positions = pl.DataFrame(
        {
            "holder_id": [f"H{i}" for i in range(len(book))],
            "asset_id": [a for a, _, _ in book],
            "quantity": [u for _, u, _ in book],
        }
    )
    if shuffle:
        positions, holders = positions.reverse(), holders[::-1]
    market = estimator.build_market(assets, holder_frame(holders), positions, {"m": LEVERAGE_2})
    impact = {"models": [{"model": "linear", "coefficient": 0.5}]}
    shocks = [{"select": {"all": True}, "price_return": -fall}]
    result = estimator.run(Scenario(name="s", impact=impact, shocks=shocks), market)
    return float(-result.trades["trade_quantity"].clip(upper_bound=0).sum())


@settings(max_examples=25)
@given(book=book_strategy, small=st.floats(0.0, 0.5), extra=st.floats(0.0, 0.4))
def test_a_bigger_shock_never_forces_less_selling(
    book: list[tuple[str, float, float]], small: float, extra: float
) -> None:
    """Threshold rules on long-only books: more shock, at least as many units sold."""
    less, more = _threshold_book(book, small, False), _threshold_book(book, small + extra, False)
    assert more >= less - 1e-9 * max(1.0, less)


@settings(max_examples=15)
@given(book=book_strategy, fall=st.floats(0.0, 0.5))
def test_the_cascade_does_not_depend_on_row_or_holder_order(
    book: list[tuple[str, float, float]], fall: float
) -> None:
    forward, backward = _threshold_book(book, fall, False), _threshold_book(book, fall, True)
    assert forward == pytest.approx(backward, rel=1e-12, abs=1e-12)


def test_a_shortfall_is_booked_as_the_lenders_loss() -> None:
    # Z: 10 units on 950 borrowed from PB; a 6% fall (P₀ = 94) leaves E = −10: insolvent, it
    # sells all 10. Linear impact ℓ = 1e-4 per currency unit: Q = 940 → −9.4%, P₁ = 85.164,
    # executed at the mid 89.582: cash −950 + 895.82 = −54.18, nothing left — PB forgives
    # 54.18 and books it as other debt. Z's loss: direct 60 + execution 10·(94 − 89.582) =
    # 44.18 − lending 54.18 = 50, its whole equity before the shock (1000 − 950).
    market = estimator.build_market(
        asset_frame([{"asset_id": "X", "price": 100.0}]),
        holder_frame(
            [
                {"holder_id": "Z", "cash": -950.0, "lender": "PB"},
                {"holder_id": "PB", "cash": 1000.0, "lender": None},
            ]
        ),
        pl.DataFrame({"holder_id": ["Z"], "asset_id": "X", "quantity": [10.0]}),
        {"m": LEVERAGE_2},
    )
    falls = [{"select": {"all": True}, "price_return": -0.06}]
    result = estimator.run(
        Scenario(name="s", impact=LINEAR, shocks=falls, lender_losses=True), market
    )
    h = {r["holder_id"]: r for r in result.holders.iter_rows(named=True)}
    shortfall = 950 - 10 * (94 + 94 * (1 - 1e-4 * 940)) / 2
    assert shortfall == pytest.approx(54.18, rel=1e-12)
    assert h["PB"]["loss_lending"] == pytest.approx(shortfall, rel=1e-12)
    assert h["Z"]["loss_lending"] == pytest.approx(-shortfall, rel=1e-12)
    assert h["Z"]["loss_total"] == pytest.approx(50.0, rel=1e-12)
    assert h["PB"]["loss_total"] == pytest.approx(shortfall, rel=1e-12)
    assert result.manifest.dump()["cascade"]["lender_losses"] is True
    # without the flag the shortfall stays with Z, and PB loses nothing
    kept = estimator.run(Scenario(name="s", impact=LINEAR, shocks=falls), market)
    assert kept.holders.filter(pl.col("holder_id") == "PB")["loss_total"].item() == 0.0


def test_a_lender_must_be_another_holder() -> None:
    with pytest.raises(InputError) as err:
        estimator.build_market(
            asset_frame([{"asset_id": "X", "price": 100.0}]),
            holder_frame(
                [
                    {"holder_id": "Z", "cash": 0.0, "lender": "NOBODY"},
                    {"holder_id": "Y", "cash": 0.0, "lender": "Y"},
                ]
            ),
            pl.DataFrame({"holder_id": ["Z"], "asset_id": "X", "quantity": [1.0]}),
            {"m": LEVERAGE_2},
        )
    message = str(err.value)
    assert "row 1, field 'lender': lender 'NOBODY' is not another holder" in message
    assert "row 2, field 'lender': lender 'Y' is not another holder" in message


def test_a_lenders_own_shortfall_passes_on_in_the_same_round() -> None:
    # As above, Z's shortfall of 54.18 falls on PB1, which has 20 of equity: PB1 ends at −34.18
    # and passes that on to PB2. Losses: PB1 54.18 − 34.18 = 20 (its equity), PB2 34.18.
    market = estimator.build_market(
        asset_frame([{"asset_id": "X", "price": 100.0}]),
        holder_frame(
            [
                {"holder_id": "Z", "cash": -950.0, "lender": "PB1"},
                {"holder_id": "PB1", "cash": 20.0, "lender": "PB2"},
                {"holder_id": "PB2", "cash": 1000.0, "lender": None},
            ]
        ),
        pl.DataFrame({"holder_id": ["Z"], "asset_id": "X", "quantity": [10.0]}),
        {"m": LEVERAGE_2},
    )
    falls = [{"select": {"all": True}, "price_return": -0.06}]
    result = estimator.run(
        Scenario(name="s", impact=LINEAR, shocks=falls, lender_losses=True), market
    )
    lending = dict(result.holders.select("holder_id", "loss_lending").iter_rows())
    shortfall = 950 - 10 * (94 + 94 * (1 - 1e-4 * 940)) / 2
    assert lending["Z"] == pytest.approx(-shortfall, rel=1e-12)
    assert lending["PB1"] == pytest.approx(20.0, rel=1e-9)
    assert lending["PB2"] == pytest.approx(shortfall - 20.0, rel=1e-12)


def test_cures_are_used_up_and_not_drawn_again() -> None:
    # The README's margin account: exposure 72k, account equity 12k, requirement 18k after a
    # 40% fall: 5k comes from its reserve, which is then spent.
    market = estimator.build_market(
        asset_frame([{"asset_id": "AAA", "price": 100.0}, {"asset_id": "BBB", "price": 50.0}]),
        holder_frame([{"holder_id": "ACCT_1", "cash": -60_000.0, "cash_reserve": 5_000.0}]),
        pl.DataFrame(
            {"holder_id": "ACCT_1", "asset_id": ["AAA", "BBB"], "quantity": [800.0, 800.0]}
        ),
        {"m": Mandate(name="m", rules=[{"kind": "margin", "maintenance_rate": 0.25}])},
    )
    spec = Scenario(name="s", shocks=[{"select": {"all": True}, "price_return": -0.4}])
    shocked, holders = prepare(spec, market, "s", InputWarnings())
    result = evaluate_round(shocked, holders, market.positions, market.mandates)
    after = result.holders_after.row(0, named=True)
    assert result.holders["cure_reserve"].item() == 5_000.0
    assert (after["cash_reserve"], after["credit_line"]) == (0.0, 0.0)


def test_shares_of_flows_that_net_out_stay_bounded() -> None:
    # +0.3, −0.1, −0.2 net to rounding noise: the shares fall back to the gross flow,
    # |q| / Σ|q| = 0.5, 1/6, 1/3, instead of dividing by ~1e-17
    flows = pl.DataFrame(
        {
            "holder_id": [0, 1, 2],
            "asset_id": [0, 0, 0],
            "episode_q": [0.3, -0.1, -0.2],
            "round_q": [0.3, -0.1, -0.2],
        },
        schema_overrides={"holder_id": keys.CODE, "asset_id": keys.CODE},
    )
    for mode in ("cumulative", "per_round"):
        shares = attribution.flow_shares(flows, mode)["share"].to_list()
        assert shares == pytest.approx([0.5, 1 / 6, 1 / 3], rel=1e-12)


def test_loss_amplification_and_first_round_columns_by_hand() -> None:
    # Two rounds of the linear example. Round 1 (P 100 → 98, A's 2 units executed at 99):
    # impact losses 8·2 + 20·2 = 56, execution 2·1 = 2: 58 (no shock, no direct loss).
    # Round 2 (P₁ = 98 → P₂): holdings 8 − 20/98 and 20 − 40/98 lose ΔP = 98 − P₂ each; the
    # 60/98 units sold execute at the mid, (98 − P₂)/2 below 98.
    result = _two_holders(LINEAR, max_rounds=2)
    p2 = 100 * (1 - 1e-2 * (2 + 60 / 98))
    impact_2 = (8 - 20 / 98 + 20 - 40 / 98) * (98 - p2)
    execution_2 = 60 / 98 * (98 - p2) / 2
    assert result.loss_amplification == pytest.approx((58 + impact_2 + execution_2) / 58)
    run = estimator.run(Scenario(name="s", impact=LINEAR | {"max_rounds": 2}), _ab_market())
    x = run.assets.row(0, named=True)
    assert (x["first_round_sell_value"], x["first_round_net_value"]) == pytest.approx((200, -200))
    assert x["first_round_price_change"] == pytest.approx(-0.02)
    assert run.manifest.dump()["cascade"]["loss_amplification"] == pytest.approx(
        result.loss_amplification
    )


def test_progress_is_told_every_round_and_the_output_stays_clean(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    result = estimator.run("fire_sale", progress=lambda n, day: calls.append((n, day)))
    rounds = result.manifest.dump()["cascade"]["rounds_traded"]
    assert [n for n, _ in calls] == list(range(1, rounds + 1))  # every round that traded
    assert {day for _, day in calls} == {0}
    piped = CliRunner().invoke(app, ["run", "fire_sale", "--out", str(tmp_path / "r")])
    assert piped.exit_code == 0, piped.output
    assert "cascade: round" not in piped.output  # no spinner when output is not a terminal


def test_the_spinner_shows_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for terminal in (True, False):
        screen = StringIO()
        monkeypatch.setattr(console, "err", Console(file=screen, force_terminal=terminal, width=80))
        with console.rounds_progress() as progress:
            assert (progress is not None) == terminal
            if progress is not None:
                progress(3, 1)
                console.err.print("")  # let the live display draw at least once
        assert ("cascade: round 3, day 1" in screen.getvalue()) == terminal
        assert ("━" in screen.getvalue()) == terminal  # the pulsing bar


def test_dust_is_not_a_trade() -> None:
    """A book sold in full leaves rounding residue: trades worth less than 1e-9 of the
    holder's size are not made, so in the Archegos run the accounts liquidated in round 1 make
    no second round of 1e-9-unit trades (a pension pushed past its funding trigger by the
    fall trades in round 2, in full-sized trades)."""
    result = estimator.run("archegos_2021")
    trades = result.trades.join(
        result.holders.select("holder_id", "holder_type", "gross_assets_before"), on="holder_id"
    )
    office = trades.filter(pl.col("holder_type") == "family_office")
    assert set(office["round"]) == {1}
    assert office["trade_value"].abs().min() > 1e6  # block sales, not residue
    threshold = (1e-9 * pl.col("gross_assets_before")).clip(lower_bound=1.0)
    assert trades.filter(pl.col("trade_value").abs() < threshold).is_empty()


def test_dust_threshold_by_hand() -> None:
    values = pl.DataFrame(
        {"u": [0.99, -0.99, 1.01, 999.0, -1001.0, 0.0], "g": [1e3] * 3 + [1e12] * 3}
    )
    # max(1e-9·1e3, 1) = 1 (a currency unit) and max(1e-9·1e12, 1) = 1000
    found = values.select(rounds.dust(pl.col("u"), pl.col("g")))["u"].to_list()
    assert found == [True, True, False, True, False, True]


def test_a_paced_trade_leaves_no_dust_days() -> None:
    """The fire sale over days: no trade of any day is worth less than a currency unit."""
    result = estimator.run("fire_sale_days")
    assert result.trades["trade_value"].abs().min() >= 1.0

"""A stacked round (many holder × multiple × cash points in one round) against one round per
point, on shipped scenarios with rate shocks, rating actions, holder shocks and index changes."""

from __future__ import annotations

import dataclasses
import random

import polars as pl
import pytest

from estimator import stack
from estimator.api import load_inputs
from estimator.errors import InputWarnings
from estimator.inputs import prepare
from estimator.mandates import Execution
from estimator.market import Market
from estimator.rounds import evaluate_round
from estimator.scenario import Scenario

COMPARED = ["status", "binding_rules", "triggered_rules"]
#: The round's numbers (the book before and after its trades, the holder shocks, each rule's
#: metric): each point's equal to its own round's, to rounding.
NUMBERS = [
    "equity_before",
    "cash_before",
    "risk_before",
    "leverage_before",
    "equity_after",
    "sold",
    "bought",
    "redemption_shock",
    "margin_multiplier",
    "liabilities",
    "credit_line",
    "non_tradable",
]


def _alone(spec: Scenario, market: Market, holder: str, m: float, cash: float) -> dict:
    """One round of one holder at multiple ``m`` with ``cash`` added: the oracle."""
    scaled = spec.scaled(m)
    wanted = pl.col("holder_id") == holder
    part = dataclasses.replace(
        market,
        holders=market.holders.filter(wanted).with_columns(pl.col("cash") + cash),
        positions=market.positions.filter(wanted),
    )
    shocked, holders = prepare(scaled, part, scaled.name, InputWarnings())
    result = evaluate_round(
        shocked, holders, part.positions, part.mandates, execution=Execution.PRO_RATA
    )
    return result.holders.select(*COMPARED, *NUMBERS, _metrics(result.holders)).row(0, named=True)


def _metrics(holders: pl.DataFrame) -> pl.Expr:
    """Every rule's metric before the trades, by rule (null where a rule is not the holder's)."""
    return pl.struct(pl.col("^.*\\.metric_before$")).alias("metrics")


def _stacked(spec: Scenario, market: Market, points: pl.DataFrame) -> pl.DataFrame:
    big, scaled = stack.stacked(market, spec, points)
    shocked, holders = prepare(scaled, big, scaled.name, InputWarnings(), multiple=stack.MULTIPLE)
    result = evaluate_round(
        shocked, holders, big.positions, big.mandates, execution=Execution.PRO_RATA
    )
    return stack.points_of(
        result.holders.select("holder_id", *COMPARED, *NUMBERS, _metrics(result.holders))
    ).sort("point")


@pytest.mark.parametrize("name", ["small_crash", "tesla_2020", "march_2020", "gilt_2022"])
def test_a_stacked_round_gives_each_point_its_own_round(name: str) -> None:
    spec, _, market = load_inputs(name, None)
    if "lender" in market.holders.columns:  # one round of a holder alone: no lender
        market = dataclasses.replace(
            market, holders=market.holders.with_columns(lender=pl.lit(None, dtype=pl.String))
        )
    rng = random.Random(7)
    top = min(2.0, spec.max_multiple * 0.99)
    ids = sorted(market.holders["holder_id"])
    gross = dict(
        market.positions.join(market.assets.select("asset_id", "price"), on="asset_id")
        .group_by("holder_id")
        .agg((pl.col("quantity") * pl.col("price")).abs().sum())
        .iter_rows()
    )
    points = [
        (holder, m, rng.choice([0.0, 0.2 * gross.get(holder, 1.0)]))
        for holder in rng.sample(ids, min(12, len(ids)))
        for m in (rng.uniform(0.05, top), 1.0, top)
    ]
    frame = pl.DataFrame(points, schema=stack.POINT_SCHEMA, orient="row")
    got = _stacked(spec, market, frame)
    assert got["point"].to_list() == list(range(len(points)))
    for (holder, m, cash), row in zip(points, got.iter_rows(named=True), strict=True):
        assert row["holder_id"] == holder
        alone = _alone(spec, market, holder, m, cash)
        assert {c: row[c] for c in COMPARED} == {c: alone[c] for c in COMPARED}, (holder, m)
        for column in NUMBERS:
            want = alone[column]
            assert row[column] == (want and pytest.approx(want, rel=1e-12, abs=1e-6)), (
                column,
                holder,
                m,
                cash,
            )
        for rule, metric in alone["metrics"].items():
            if metric is not None:
                assert row["metrics"][rule] == pytest.approx(metric, rel=1e-12), rule


def test_marks_are_taken_off_ids_that_hold_the_separator_themselves() -> None:
    ids = pl.DataFrame({"holder_id": [f"a{stack.SEP}1{stack.SEP}12", f"b{stack.SEP}3"]})
    back = stack.points_of(ids)
    assert back["holder_id"].to_list() == [f"a{stack.SEP}1", "b"]
    assert back["point"].to_list() == [12, 3]


def test_copies_are_one_per_distinct_multiple_in_increasing_order() -> None:
    table = stack.copies(pl.Series([1.5, 0.5, 1.5, 1.0]))
    assert table.rows() == [(0, 0.5), (1, 1.0), (2, 1.5)]

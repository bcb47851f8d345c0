"""Generated benchmark books and process-parallel solves."""

from __future__ import annotations

import time

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import estimator
from estimator import solve, synthetic
from estimator.bench import prepared_inputs
from estimator.mandates import Execution
from estimator.rounds import evaluate_round
from rules import RULE_KINDS


def test_generated_market_forces_every_rule_kind_and_every_holder_complies() -> None:
    market = synthetic.market(120, per_holder=30)
    assert market.positions.group_by("holder_id").len()["len"].max() == 30
    result = estimator.run(synthetic.scenario(market), market, execution="pro_rata")
    triggered = set(";".join(result.holders["triggered_rules"]).split(";")) - {""}
    assert triggered == set(RULE_KINDS)
    done = result.holders.filter(~pl.col("status").is_in(["liquidated", "insolvent"]))
    assert done["compliant"].all(), done.filter(~pl.col("compliant"))


def test_generated_market_is_deterministic() -> None:
    a, b = synthetic.market(30, per_holder=10), synthetic.market(30, per_holder=10)
    assert_frame_equal(a.positions, b.positions)
    assert_frame_equal(a.holders, b.holders)
    assert not a.positions.equals(synthetic.market(30, per_holder=10, seed=8).positions)


def test_parallel_solves_match_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(solve, "PARALLEL_MIN_PER_WORKER", 1)  # small book, a real cluster
    market = synthetic.market(40, per_holder=12, seed=3)
    scenario = synthetic.scenario(market)
    one = estimator.run(scenario, market, execution="min_cost")
    two = estimator.run(scenario, market, execution="min_cost", workers=2)
    assert (one.holders["solver_status"].str.starts_with("optimal")).sum() >= 10
    assert one.holders["status"].to_list() == two.holders["status"].to_list()
    # a process solves its own sequence of holders: equal to the solver's accuracy, ~10⁻⁶ of
    # the book (in one process the same sequence gives identical trades)
    keys = ["holder_id", "asset_id"]
    both = one.trades.join(two.trades, on=keys, how="full", coalesce=True, suffix="_2")
    both = both.join(one.holders.select("holder_id", "gross_assets_before"), on="holder_id")
    gap = (pl.col("trade_value").fill_null(0.0) - pl.col("trade_value_2").fill_null(0.0)).abs()
    assert both.select((gap <= 1e-5 * pl.col("gross_assets_before")).all()).item()
    assert (
        one.manifest.dump()["counts"]["compiled_problems"]
        == two.manifest.dump()["counts"]["compiled_problems"]
    )


def test_workers_must_be_positive() -> None:
    market = synthetic.market(6, per_holder=5)
    with pytest.raises(estimator.InputError, match="workers"):
        estimator.run(synthetic.scenario(market), market, workers=0)


def test_direct_re_solves_match_cvxpy_solves() -> None:
    market = synthetic.market(30, per_holder=12, seed=5)
    shocked, holders = prepared_inputs(market)
    k = sum(c.startswith("risk_g") for c in shocked.columns)
    results = []
    for direct in (True, False):
        with solve.ProblemCache(k, direct=direct) as cache:
            result = evaluate_round(
                shocked,
                holders,
                market.positions,
                market.mandates,
                execution=Execution.MIN_COST,
                cache=cache,
            )
            assert all((p.program is not None) is direct for p in cache._problems.values()), (
                "the switch is not honoured"
            )
        results.append(result)
    fast, slow = results
    assert fast.holders["solved"].fill_null(False).sum() >= 10
    assert fast.holders["status"].to_list() == slow.holders["status"].to_list()
    keys = ["holder_id", "asset_id"]
    both = fast.trades.join(slow.trades, on=keys, how="full", coalesce=True, suffix="_2")
    both = both.join(fast.holders.select("holder_id", "gross_assets_before"), on="holder_id")
    gap = (pl.col("trade_value").fill_null(0.0) - pl.col("trade_value_2").fill_null(0.0)).abs()
    assert both.select((gap <= 1e-6 * pl.col("gross_assets_before")).all()).item()


def test_round_reports_the_seconds_of_its_two_stages() -> None:
    market = synthetic.market(20, per_holder=8, seed=2)
    shocked, holders = prepared_inputs(market)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    plain = evaluate_round(shocked, holders, market.positions, market.mandates)
    timed = evaluate_round(shocked, holders, market.positions, market.mandates, timings=timings)
    whole = time.perf_counter() - started
    assert set(timings) == {"trades", "settle"}
    assert all(t > 0 for t in timings.values())
    assert sum(timings.values()) <= whole
    assert_frame_equal(plain.trades, timed.trades)  # timing changes nothing

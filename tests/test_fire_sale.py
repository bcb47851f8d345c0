"""The shipped fire-sale scenario: small fast sellers set off larger ones."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import estimator
from estimator.impact import Impact
from estimator.scenario import load_scenario

SCENARIO = Path(__file__).parents[1] / "scenarios" / "fire_sale.toml"
MARKET = SCENARIO.parent / "markets" / "fire_sale"
RETAIL = [f"RETAIL_{i}" for i in range(1, 7)]


@pytest.fixture(scope="module")
def result() -> estimator.RunResult:
    return estimator.run(SCENARIO)


def _leverage(holder: str, prices: dict[str, float]) -> float:
    """Gross assets over equity from the market's own files at ``prices`` (no trades yet)."""
    positions = pl.read_csv(MARKET / "positions.csv").filter(pl.col("holder_id") == holder)
    cash = pl.read_csv(MARKET / "holders.csv").filter(pl.col("holder_id") == holder)["cash"]
    assets = sum(q * prices[a] for a, q in positions.select("asset_id", "quantity").iter_rows())
    return assets / (assets + cash.item())


def test_each_link_of_the_chain_is_forced_one_round_after_the_last(
    result: estimator.RunResult,
) -> None:
    first = dict(result.holders.select("holder_id", "first_round").iter_rows())
    assert {h: first[h] for h in RETAIL} == dict.fromkeys(RETAIL, 1)
    assert (first["HF_SMALLCAP"], first["HF_MULTI"]) == (2, 3)
    assert result.chain is not None
    sources = result.chain.group_by("target_id").agg(pl.col("source_id").unique())
    pushed = {t: set(s) for t, s in sources.iter_rows()}
    assert pushed["HF_SMALLCAP"] <= set(RETAIL)
    assert pushed["HF_MULTI"] == {"HF_SMALLCAP"}


def test_the_larger_sellers_sell_far_more_than_the_first(result: estimator.RunResult) -> None:
    sold = dict(result.holders.select("holder_id", "sold").iter_rows())
    first = result.trades.filter(pl.col("round") == 1)
    assert set(first["holder_id"]) == set(RETAIL)
    round_1 = -first["trade_value"].sum()
    assert sold["HF_SMALLCAP"] > 5 * round_1
    assert sold["HF_MULTI"] > 10 * sold["HF_SMALLCAP"]
    assert result.manifest.dump()["cascade"]["amplification"] > 50


def test_the_small_cap_fund_crosses_its_limit_only_at_the_prices_after_round_one(
    result: estimator.RunResult,
) -> None:
    """Leverage recomputed from the input files at each round's start prices (its book is
    untouched until it is forced): within 3.5 at the shocked prices, beyond it after the retail
    accounts' sales."""
    assert result.rounds is not None
    starts = result.rounds.filter(pl.col("round") <= 2).select("round", "asset_id", "price_start")
    shocked = dict(result.assets.select("asset_id", "price").iter_rows())
    after_one = shocked | dict(
        starts.filter(pl.col("round") == 2).select("asset_id", "price_start").iter_rows()
    )
    assert _leverage("HF_SMALLCAP", shocked) <= 3.5 < _leverage("HF_SMALLCAP", after_one)
    assert _leverage("HF_MULTI", after_one) <= 3.5  # not yet: it waits for the mid caps


def test_without_price_impact_only_the_retail_accounts_are_forced() -> None:
    spec = load_scenario(SCENARIO)
    calm = estimator.run(spec.model_copy(update={"impact": Impact()}), MARKET)
    forced = set(calm.holders.filter(pl.col("status") != "ok")["holder_id"])
    assert forced == set(RETAIL)


def test_the_round_summary_counts_holders_newly_forced(result: estimator.RunResult) -> None:
    summary = pl.DataFrame(result.manifest.dump()["cascade"]["rounds"])
    assert summary["holders_newly_forced"].to_list()[:3] == [6, 1, 1]
    assert summary["holders_newly_forced"].sum() == result.trades["holder_id"].n_unique()
    assert result.rounds is not None
    by_asset = result.rounds.group_by("round").agg(pl.col("sell_value").sum()).sort("round")
    assert summary["sell_value"].to_list() == pytest.approx(by_asset["sell_value"].to_list())


def test_on_a_day_clock_the_funds_spread_their_sales_and_prices_rebound() -> None:
    result = estimator.run(SCENARIO.parent / "fire_sale_days.toml")
    days = result.trades.group_by("holder_id").agg(pl.col("day").unique().sort())
    spread = dict(days.iter_rows())
    assert all(spread[h] == [0] for h in RETAIL)  # sold out by their brokers on the day
    assert spread["HF_SMALLCAP"] == spread["HF_MULTI"] == [0, 1, 2]  # three-day horizon
    info = result.manifest.dump()["days"]
    assert (info["capitulation_day"], info["days_traded"]) == (2, 3)
    # the funds keep under 20% of a day's volume in every stock
    assert result.days is not None
    adv = dict(result.assets.select("asset_id", "adv").iter_rows())
    funds = result.trades.filter(pl.col("holder_id").str.starts_with("HF_"))
    daily = funds.group_by("holder_id", "day", "asset_id").agg(pl.col("trade_value").sum())
    for _, _, asset, value in daily.iter_rows():
        assert abs(value) <= 0.2 * adv[asset] * (1 + 1e-9)
    # half the impact is temporary: every traded asset is expected to rebound
    traded = result.assets.filter(pl.col("net_value") != 0)
    assert (traded["rebound"] > 0).all()

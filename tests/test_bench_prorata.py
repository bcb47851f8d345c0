"""The closed-form pro-rata baseline (:mod:`estimator.bench.prorata`) against the production
round, joined by (holder_id, asset_id), and against books worked by hand."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest

import estimator
from estimator import inputs, synthetic
from estimator.bench import prorata
from estimator.errors import InputWarnings
from estimator.mandates import Execution, Mandate
from estimator.market import Market
from estimator.rounds import evaluate_round
from estimator.scenario import Scenario

CALM = Scenario(name="calm")
#: Every parametrisation the closed form covers, on the bench book's three mandates.
VARIANTS = {
    "vt": [{"kind": "vol_target", "target": 0.1, "tolerance": 0.05, "relever": True}],
    "hf": [
        {"kind": "leverage", "measure": "balance_sheet", "mode": "targeting", "tolerance": 0.02},
        {"kind": "margin", "maintenance_rate": 0.25, "restore": "initial", "initial_rate": 0.5},
    ],
    "combo": [
        {"kind": "vol_target", "target": 0.3, "tolerance": 0.05, "relever": True},
        {"kind": "leverage", "measure": "exposure", "mode": "targeting"},
        {"kind": "margin", "maintenance_rate": 0.4, "restore": "initial", "initial_ratio": 1.6},
    ],
}
RALLY = Scenario(
    name="rally",
    shocks=[
        {
            "select": {"asset_classes": ["equity", "equity_future"]},
            "price_return": 0.1,
            "vol_multiplier": 0.5,
        }
    ],
)


def _compared(market: Market, scenario: Scenario | None = None) -> pl.DataFrame:
    """Per row: the baseline's and the round's trade quantities, the unit value ``P·mult``
    and the holder's gross exposure ``G`` at the shocked prices, joined by id."""
    spec = synthetic.scenario(market) if scenario is None else scenario
    base = prorata.prepared(market, spec)
    shocked, holders = inputs.prepare(spec, market, "test", InputWarnings())
    result = evaluate_round(
        shocked, holders, market.positions, market.mandates, execution=Execution.PRO_RATA
    )
    mine = pl.DataFrame(
        {"holder_id": base.holder_id, "asset_id": base.asset_id, "baseline": prorata.trades(base)}
    )
    theirs = result.trades.select("holder_id", "asset_id", "trade_quantity")
    unit = shocked.select("asset_id", unit=pl.col("price") * pl.col("multiplier").fill_null(1.0))
    rows = market.positions.join(unit, on="asset_id").with_columns(
        G=(pl.col("quantity") * pl.col("unit")).abs().sum().over("holder_id")
    )
    joined = mine.join(theirs, on=["holder_id", "asset_id"], how="full", coalesce=True)
    assert joined["baseline"].null_count() == 0, "the round traded a row the book lacks"
    return joined.with_columns(pl.col("trade_quantity").fill_null(0.0)).join(
        rows.select("holder_id", "asset_id", "unit", "G"), on=["holder_id", "asset_id"]
    )


def _worst(compared: pl.DataFrame) -> float:
    """The largest trade difference in value, relative to its holder's gross exposure."""
    gap = (pl.col("baseline") - pl.col("trade_quantity")).abs() * pl.col("unit") / pl.col("G")
    return compared.select(gap.max()).item()


def test_bench_market_is_three_pro_rata_mandates_without_cures() -> None:
    market = prorata.bench_market(90, per_holder=20, seed=5)
    assert market.holders.height == 90
    assert set(market.holders["mandate"]) <= set(prorata.MANDATES)
    for mandate in market.mandates.values():
        assert mandate.execution is Execution.PRO_RATA
        assert mandate.cure == []
        assert {r.kind for r in mandate.rules} <= prorata.KINDS
    assert market.holders.select(pl.col("cash_reserve", "credit_line").abs().max()).row(0) == (0, 0)
    again = prorata.bench_market(90, per_holder=20, seed=5)
    assert market.positions.equals(again.positions)
    assert market.holders.equals(again.holders)


@pytest.mark.parametrize(
    ("n", "per_holder", "seed"), [(300, 100, 7), (150, 40, 1), (150, 40, 2), (150, 60, 3)]
)
def test_trades_equal_the_production_round(n: int, per_holder: int, seed: int) -> None:
    compared = _compared(prorata.bench_market(n, per_holder, seed))
    assert (compared["trade_quantity"] != 0).sum() > compared.height // 2  # the crash forces
    assert _worst(compared) <= 1e-9


@pytest.mark.parametrize("scenario", ["crash", "rally"])
def test_every_parametrisation_equals_the_production_round(scenario: str) -> None:
    """Re-levering, leverage targeting under both measures, initial margin (the rule's rate
    and the ratio), assets' own margin rates, a margin multiplier, non-tradables and debt."""
    market = prorata.bench_market(240, per_holder=40, seed=3)
    rng = np.random.default_rng(11)
    n_a, n_h = market.assets.height, market.holders.height

    def some(low: float, high: float) -> pl.Series:
        rate = np.where(rng.random(n_a) < 0.3, rng.uniform(low, high, n_a), np.nan)
        return pl.Series(rate, nan_to_null=True)

    market = dataclasses.replace(
        market,
        mandates={k: Mandate(name=k, rules=v, cure=[]) for k, v in VARIANTS.items()},
        assets=market.assets.with_columns(
            margin_rate=some(0.1, 0.5), initial_margin_rate=some(0.2, 0.6)
        ),
        holders=market.holders.with_columns(
            non_tradable=pl.Series(rng.uniform(0, 1e6, n_h)),
            other_debt=pl.Series(rng.uniform(0, 1e6, n_h)),
        ),
    )
    spec = synthetic.scenario(market) if scenario == "crash" else RALLY
    spec = Scenario.model_validate(
        spec.model_dump() | {"holder_shocks": [{"holder_types": ["hf"], "margin_multiplier": 1.5}]}
    )
    compared = _compared(market, spec)
    if scenario == "rally":  # re-levering buys
        assert (compared["trade_quantity"] > 0).sum() > 0
    assert _worst(compared) <= 1e-9


def _one_holder(rules: list[dict], cash: float, quantities: dict[str, float]) -> Market:
    """One holder of ``rules`` (no cures) with ``quantities`` of uncorrelated equities: ``a``
    (price 10) and ``b`` (price 20) of volatility 18%, ``c`` (price 1) of 30%."""
    assets = pl.DataFrame(
        {"asset_id": ["a", "b", "c"], "price": [10.0, 20.0, 1.0], "vol": [0.18, 0.18, 0.3]}
    ).with_columns(asset_class=pl.lit("equity"), instrument=pl.lit("cash"), adv=pl.lit(1e12))
    holder = {"holder_id": "h", "holder_type": "fund", "mandate": "m", "cash": cash}
    positions = pl.DataFrame(
        {"holder_id": "h", "asset_id": list(quantities), "quantity": list(quantities.values())}
    )
    mandate = Mandate(name="m", rules=rules, cure=[])
    return estimator.build_market(assets, pl.DataFrame([holder]), positions, {"m": mandate})


def test_a_vol_target_sells_the_share_its_excess_volatility_asks() -> None:
    # x_a = 6,000 × 10 = 60,000 and x_b = 4,000 × 20 = 80,000 at 18% apiece, uncorrelated:
    # σ = √(10,800² + 14,400²) = 18,000 (a 3-4-5 triangle); E = 140,000 − 40,000 = 100,000,
    # so σ/E = 18% against a 10% target: keep 10/18 of the book, sell 1 − 10/18 = 4/9 of each
    market = _one_holder([{"kind": "vol_target", "target": 0.1}], -40_000.0, {"a": 6e3, "b": 4e3})
    base = prorata.prepared(market, CALM)
    sold = dict(zip(base.asset_id, prorata.trades(base), strict=True))
    assert sold["a"] == pytest.approx(-6_000 * 4 / 9, rel=1e-12)
    assert sold["b"] == pytest.approx(-4_000 * 4 / 9, rel=1e-12)
    assert _worst(_compared(market, CALM)) <= 1e-12


@pytest.mark.parametrize(
    ("margin", "kept"),
    [
        (0.25, 0.625),  # R = 100,000 = AE: no call; leverage 4× → 2.5× keeps 250/400
        (0.5, 0.5),  # R = 200,000 > AE: the call keeps AE/R = ½, below leverage's 0.625
    ],
)
def test_the_strictest_rule_sets_the_scale(margin: float, kept: float) -> None:
    # x = 400,000 on cash −300,000: E = AE = 100,000, G = 400,000, exposure leverage 4×
    rules = [
        {"kind": "leverage", "measure": "exposure", "max": 3.0, "target": 2.5},
        {"kind": "margin", "maintenance_rate": margin},
    ]
    market = _one_holder(rules, -300_000.0, {"c": 400_000.0})
    base = prorata.prepared(market, CALM)
    assert prorata.trades(base) == pytest.approx([-(1 - kept) * 400_000], rel=1e-12)
    assert _worst(_compared(market, CALM)) <= 1e-12


def test_a_rule_without_a_closed_form_is_refused() -> None:
    market = _one_holder([{"kind": "stop_loss", "threshold": 0.08, "cut": 0.5}], 0.0, {"c": 1.0})
    with pytest.raises(ValueError, match="stop_loss"):
        prorata.prepared(market, CALM)

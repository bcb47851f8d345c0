"""The census market: generated from its parameter file, every aggregate with its source, sized
to those aggregates, and every holder compliant before any shock."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import estimator
from estimator import Scenario
from estimator.census import census
from estimator.generator import generate, load_parameters, universe

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "scenarios" / "markets" / "census"
PARAMS = tomllib.loads((BUNDLE / "parameters.toml").read_text())


@pytest.fixture(scope="module")
def market() -> estimator.Market:
    return estimator.load_market(BUNDLE)


def _figures(node: object) -> list[dict]:
    """Every aggregate of the parameter file: tables with a value, a kind and a source."""
    if isinstance(node, dict):
        if {"value", "kind", "source"} <= node.keys():
            return [node]
        return [f for v in node.values() for f in _figures(v)]
    if isinstance(node, list):
        return [f for v in node for f in _figures(v)]
    return []


def test_every_aggregate_names_its_source_date_and_kind() -> None:
    figures = _figures(PARAMS)
    assert len(figures) >= 15
    for f in figures:
        assert f["kind"] in ("estimate", "assumption"), f
        assert len(f["source"]) > 20 and f["date"], f


def test_the_shipped_bundle_is_what_the_parameters_generate(tmp_path: Path) -> None:
    generate(PARAMS).write(tmp_path)
    shipped = {p.relative_to(BUNDLE) for p in BUNDLE.rglob("*") if p.is_file()}
    fresh = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    assert fresh == shipped - {Path("parameters.toml")}
    for path in sorted(fresh):
        assert (tmp_path / path).read_text() == (BUNDLE / path).read_text(), path


def test_the_census_built_in_memory_is_the_shipped_one(market: estimator.Market) -> None:
    fresh = generate(load_parameters()).market()
    for table in ("assets", "holders", "positions"):
        assert getattr(fresh, table).equals(getattr(market, table)), table
    assert fresh.mandates == market.mandates


def test_another_seed_draws_another_census_of_the_same_aggregates() -> None:
    one, two = generate(PARAMS), generate(PARAMS, seed=7)
    assert not one.positions.equals(two.positions)
    assert one.holders["holder_id"].to_list() == two.holders["holder_id"].to_list()
    by_type = {r["holder_type"]: r for r in census(two.market()).by_type.iter_rows(named=True)}
    for t in PARAMS["holders"]:
        column = "equity" if t.get("measure") == "equity" else "total_assets"
        assert math.isclose(by_type[t["type"]][column], t["total_assets"]["value"], rel_tol=1e-6)


def test_each_holder_type_adds_up_to_its_aggregate(market: estimator.Market) -> None:
    by_type = {r["holder_type"]: r for r in census(market).by_type.iter_rows(named=True)}
    for t in PARAMS["holders"]:
        column = "equity" if t.get("measure") == "equity" else "total_assets"
        got = by_type[t["type"]]
        assert got["holders"] == t["count"], t["type"]
        assert math.isclose(got[column], t["total_assets"]["value"], rel_tol=1e-6), t["type"]


def test_holders_hold_less_than_is_outstanding(market: estimator.Market) -> None:
    # equities' market caps and corporate bonds' amounts as the generator draws them (same
    # seed), government bonds' from the parameter file; futures have no amount outstanding
    sizes, _ = universe.assets(PARAMS, np.random.default_rng(PARAMS["seed"]))
    fx = {k: v["value"] for k, v in PARAMS["fx"].items()} | {"USD": 1.0}
    govt = {b["id"]: b["outstanding"] * fx[b["currency"]] for b in PARAMS["government_bonds"]}
    held = (
        estimator.book.position_frame(market.positions, market.assets)
        .group_by("asset_id")
        .agg(long=pl.col("exposure").clip(lower_bound=0).sum())
        .join(sizes.select("asset_id", "size", "asset_class", "price"), on="asset_id")
        .filter(pl.col("size") > 0)
        .with_columns(  # bonds: amounts outstanding are face values, holdings market values
            size=pl.when(pl.col("asset_class") == "equity")
            .then(pl.col("size"))
            .otherwise(pl.col("size") * pl.col("price") / 100)
        )
        .select("asset_id", "long", "size")
    )
    assert held.height > 400
    for asset_id, value, size in held.iter_rows():
        assert value <= size, asset_id
        if asset_id in govt:  # the sizes are the parameter file's
            price = market.assets.filter(pl.col("asset_id") == asset_id)["price"].item()
            assert math.isclose(size, govt[asset_id] * price / 100, rel_tol=1e-12)


def test_every_holder_starts_compliant_and_a_crash_forces_many(market: estimator.Market) -> None:
    calm = estimator.run(Scenario(name="calm"), market)
    assert set(calm.holders["status"]) == {"ok"}
    crash = Scenario(
        name="crash",
        shocks=[
            {
                "select": {"asset_classes": ["equity", "equity_future"]},
                "price_return": -0.15,
                "vol_multiplier": 2.0,
            },
            {"select": {"asset_ids": ["GILT30Y", "GILT10Y"]}, "yield_change_bp": 60},
        ],
    )
    hit = estimator.run(crash, market).holders
    forced = hit.filter(~pl.col("status").is_in(["ok", "cured"]))
    assert {"vol_control_fund", "risk_parity_fund", "ldi_fund"} <= set(forced["holder_type"])


def test_the_bundle_is_small(market: estimator.Market) -> None:
    size = sum(p.stat().st_size for p in BUNDLE.rglob("*") if p.is_file())
    assert size < 3_000_000
    assert market.holders.height == sum(t["count"] for t in PARAMS["holders"])

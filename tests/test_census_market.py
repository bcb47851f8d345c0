"""The census market: each vintage generated from its parameter file, every aggregate with its
source, sized to those aggregates, and every holder compliant before any shock."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import estimator
from estimator import Scenario
from estimator.census import census
from estimator.generator import generate, load_parameters, universe, vintages
from estimator.generator.vintages import resolve

ROOT = Path(__file__).resolve().parent.parent
CENSUS = ROOT / "scenarios" / "markets" / "census"
PARAMS = tomllib.loads((CENSUS / "parameters.toml").read_text())
VINTAGES = vintages(PARAMS)


@pytest.fixture(scope="module", params=VINTAGES)
def vintage(request: pytest.FixtureRequest) -> tuple[str, dict, estimator.Market]:
    """A vintage: its name, the parameter file as of it, and its shipped bundle."""
    resolved, _ = resolve(PARAMS, request.param)
    return request.param, resolved, estimator.load_market(CENSUS / request.param)


def test_every_aggregate_names_its_source_date_and_label() -> None:
    for v in VINTAGES:
        _, figures = resolve(PARAMS, v)
        assert len(figures) >= 15
        for f in figures:
            assert f.kind in ("estimate", "assumption") or f.kind.startswith(
                "assumption: scaled from "
            ), f
            assert len(f.source) > 20 and f.date, f
            if f.kind == "assumption":  # an assumption argues its plausible range
                assert f.low is not None and f.high is not None and f.low <= f.value <= f.high, f
                assert len(f.range_source) > 20, f


def test_each_vintage_is_in_force_for_its_episodes() -> None:
    """Each episode runs on the latest vintage at or before its date."""
    from estimator.generator import latest_at  # noqa: PLC0415
    from estimator.scenario import load_scenario  # noqa: PLC0415

    dates = {
        "volmageddon_2018": "2018-02-05", "march_2020": "2020-03-09",
        "fallen_angels_2020": "2020-03-26", "tesla_2020": "2020-12-18",
        "archegos_2021": "2021-03-26", "gilt_2022": "2022-09-23", "aug_2024": "2024-08-05",
    }  # fmt: skip
    for name, day in dates.items():
        spec = load_scenario(ROOT / "scenarios" / f"{name}.toml")
        assert spec.market == f"census/{latest_at(VINTAGES, day)}", name


def test_the_shipped_bundles_are_what_the_parameters_generate(tmp_path: Path) -> None:
    shipped = {p.relative_to(CENSUS) for p in CENSUS.rglob("*") if p.is_file()}
    fresh = set()
    for v in VINTAGES:
        written = generate(PARAMS, vintage=v).write(tmp_path / v)
        fresh |= {p.relative_to(tmp_path) for p in written}
    assert fresh == shipped - {Path("parameters.toml")}
    for path in sorted(fresh):
        if path.suffix != ".csv":
            assert (tmp_path / path).read_text() == (CENSUS / path).read_text(), path
            continue
        got, kept = (
            pl.read_csv(root / path, infer_schema_length=None) for root in (tmp_path, CENSUS)
        )
        _same(got, kept, str(path))


def _same(got: pl.DataFrame, kept: pl.DataFrame, what: str) -> None:
    """Equal text, integers and types; floats to 1e-12, relative (1e-9 absolute near zero):
    linear algebra may differ in the last bits from one processor to another (BLAS kernels are
    chosen by the CPU), so the shipped census is what the parameters generate on any machine
    to that precision."""
    try:
        assert_frame_equal(got, kept, check_exact=False, rel_tol=1e-12, abs_tol=1e-9)
    except AssertionError as e:
        raise AssertionError(f"{what}: {e}") from e


def test_the_census_built_in_memory_is_the_shipped_one() -> None:
    latest = VINTAGES[-1]
    fresh = generate(load_parameters()).market()  # the latest vintage by default
    market = estimator.load_market(CENSUS / latest)
    for table in ("assets", "holders", "positions"):
        _same(getattr(fresh, table), getattr(market, table), table)
    assert fresh.mandates == market.mandates
    assert (fresh.name, fresh.as_of) == (market.name, market.as_of) == (f"census/{latest}", latest)


def _types(params: dict, market: estimator.Market) -> None:
    """Each holder type of ``params`` adds up to its aggregate in ``market``."""
    by_type = {r["holder_type"]: r for r in census(market).by_type.iter_rows(named=True)}
    assert set(by_type) == {t["type"] for t in params["holders"]}
    for t in params["holders"]:
        column = "equity" if t.get("measure") == "equity" else "total_assets"
        got = by_type[t["type"]]
        assert got["holders"] == t["count"], t["type"]
        assert math.isclose(got[column], t["total_assets"]["value"], rel_tol=1e-6), t["type"]


def test_another_seed_draws_another_census_of_the_same_aggregates() -> None:
    one, two = generate(PARAMS), generate(PARAMS, seed=7)
    assert not one.positions.equals(two.positions)
    assert one.holders["holder_id"].to_list() == two.holders["holder_id"].to_list()
    _types(resolve(PARAMS, VINTAGES[-1])[0], two.market())


def test_each_holder_type_adds_up_to_its_aggregate(vintage: tuple) -> None:
    _, params, market = vintage
    _types(params, market)


def test_holders_hold_less_than_is_outstanding(vintage: tuple) -> None:
    # equities' market caps and corporate bonds' amounts as the generator draws them (same
    # seed), government bonds' from the parameter file; futures have no amount outstanding
    _, params, market = vintage
    sizes, _ = universe.assets(params, np.random.default_rng(params["seed"]))
    fx = {k: v["value"] for k, v in params["fx"].items()} | {"USD": 1.0}
    govt = {b["id"]: b["outstanding"] * fx[b["currency"]] for b in params["government_bonds"]}
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


def test_every_holder_starts_compliant_and_a_crash_forces_many(vintage: tuple) -> None:
    name, _, market = vintage
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
    forced = set(hit.filter(~pl.col("status").is_in(["ok", "cured"]))["holder_type"])
    assert {"vol_control_fund", "risk_parity_fund"} <= forced
    # +60bp breaches some LDI buffers of 89–250bp against 80–100bp floors; from 2024 the
    # floors are 250bp and buffers start at floor / utilisation = 278–625bp, and in this draw
    # none falls below its floor
    assert ("ldi_fund" in forced) == (name < "2024-06"), name


def test_each_bundle_is_small(vintage: tuple) -> None:
    name, params, market = vintage
    size = sum(p.stat().st_size for p in (CENSUS / name).rglob("*") if p.is_file())
    assert size < 3_000_000
    assert market.holders.height == sum(t["count"] for t in params["holders"])


def test_a_folder_of_vintages_resolves_to_its_latest_or_the_one_in_force() -> None:
    from estimator.paths import resolve_market, vintage_at  # noqa: PLC0415

    latest = CENSUS / VINTAGES[-1]
    assert resolve_market("census").resolve() == latest.resolve()
    assert resolve_market(str(CENSUS)).resolve() == latest.resolve()  # a path as well as a name
    assert resolve_market("census/2019-12").resolve() == (CENSUS / "2019-12").resolve()
    assert vintage_at(CENSUS, "2020-12-18").name == "2020-09"  # 2020-12 is the month's end
    assert vintage_at(CENSUS, "2021-01-04").name == "2020-12"
    assert vintage_at(CENSUS, "2010-01-01").name == VINTAGES[0]  # none before: the earliest


def test_no_account_is_larger_than_the_largest_known_institution(vintage: tuple) -> None:
    """Each row's size per account — equity for the types sized by equity, total assets for
    the others — is at most the type's `largest`; each type's rows stand for its `accounts`."""
    _, params, market = vintage
    pos = estimator.book.position_frame(market.positions, market.assets)
    books = estimator.book.holder_book(pos, market.holders).join(
        market.holders.select("holder_id", "holder_type"), on="holder_id"
    )
    capped = 0
    for t in params["holders"]:
        rows = books.filter(pl.col("holder_type") == t["type"])
        accounts = t.get("accounts", {"value": t["count"]})["value"]
        assert rows["accounts"].sum() == accounts, t["type"]
        if "largest" not in t:
            continue
        column = "equity" if t.get("measure") == "equity" else "gross_assets"
        per_account = rows.select(pl.col(column) / pl.col("accounts")).to_series()
        assert per_account.max() <= t["largest"]["value"] * (1 + 1e-9), t["type"]
        capped += 1
    assert capped >= 5

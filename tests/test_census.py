"""The census: totals by holder type and asset class, by hand and against the bundle's files."""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path

import polars as pl
import pytest
from oracle_kit import asset_frame, future, holder_frame
from typer.testing import CliRunner

import estimator
from estimator import Mandate
from estimator.census import census
from estimator.cli import app

SMALL = Path(__file__).resolve().parent.parent / "scenarios" / "markets" / "small"


def _tiny() -> estimator.Market:
    # Fund f: 10 of a (price 50) long, 4 of b (price 100) short, 1 future (4,000 × 10 = 40,000
    # notional), cash 600. Pension p: 20 of a, cash 0, liabilities 900.
    assets = [
        {"asset_id": "a", "price": 50.0, "adv": 1e4},
        {"asset_id": "b", "asset_class": "govt_bond", "price": 100.0, "adv": 3e4},
        future("f1", 4000.0, 10.0) | {"asset_class": "equity_future", "adv": 2e6},
    ]
    holders = [
        {"holder_id": "f", "holder_type": "fund", "cash": 600.0},
        {"holder_id": "p", "holder_type": "pension", "liabilities": 900.0},
    ]
    positions = pl.DataFrame(
        [("f", "a", 10.0), ("f", "b", -4.0), ("f", "f1", 1.0), ("p", "a", 20.0)],
        schema=["holder_id", "asset_id", "quantity"],
        orient="row",
    )
    mandate = Mandate(name="m", rules=[{"kind": "leverage", "max": 100.0}])
    return estimator.build_market(
        asset_frame(assets), holder_frame(holders), positions, {"m": mandate}
    )


def test_a_tiny_market_by_hand() -> None:
    c = census(_tiny())
    types = {r["holder_type"]: r for r in c.by_type.iter_rows(named=True)}
    # fund: G = 500 + 400 + 40,000 = 40,900; A = G + max(600, 0) = 41,500;
    # E = AE = 500 − 400 + 600 = 700 (the future's value is settled to cash)
    fund = types["fund"]
    assert (fund["holders"], fund["gross_exposure"]) == (1, pytest.approx(40_900.0))
    assert fund["total_assets"] == pytest.approx(41_500.0)
    assert fund["equity"] == pytest.approx(700.0)
    assert fund["leverage"] == pytest.approx(41_500 / 700)
    pension = types["pension"]
    assert (pension["total_assets"], pension["liabilities"]) == pytest.approx((1000.0, 900.0))
    classes = {r["asset_class"]: r for r in c.by_class.iter_rows(named=True)}
    equity = classes["equity"]  # a: 500 + 1,000, two holders; ADV 10,000
    assert (equity["holders"], equity["long"], equity["short"]) == (2, 1500.0, 0.0)
    assert equity["gross_adv_days"] == pytest.approx(0.15)
    bonds = classes["govt_bond"]
    assert (bonds["long"], bonds["short"], bonds["net"], bonds["gross"]) == (
        0.0,
        -400.0,
        -400.0,
        400.0,
    )
    assert classes["equity_future"]["gross"] == pytest.approx(40_000.0)
    cross = {
        (r["holder_type"], r["asset_class"]): r for r in c.by_type_and_class.iter_rows(named=True)
    }
    assert cross[("pension", "equity")]["net"] == pytest.approx(1000.0)
    assert ("pension", "govt_bond") not in cross


def test_the_small_bundle_against_its_files() -> None:
    # long and short exposure per asset class summed row by row from the CSV files themselves
    assets = {r["asset_id"]: r for r in csv.DictReader((SMALL / "assets.csv").open())}
    long: dict[str, float] = defaultdict(float)
    short: dict[str, float] = defaultdict(float)
    for row in csv.DictReader((SMALL / "positions.csv").open()):
        a = assets[row["asset_id"]]
        x = float(row["quantity"]) * float(a["price"]) * float(a["multiplier"] or 1.0)
        (long if x > 0 else short)[a["asset_class"]] += x
    c = census(estimator.load_market(SMALL))
    for row in c.by_class.iter_rows(named=True):
        assert math.isclose(row["long"], long[row["asset_class"]], rel_tol=1e-12)
        assert math.isclose(row["short"], short[row["asset_class"]], rel_tol=1e-12, abs_tol=0)
    n_holders = sum(1 for _ in csv.DictReader((SMALL / "holders.csv").open()))
    assert c.by_type["holders"].sum() == n_holders


def test_census_command_reads_the_default_market_without_an_argument() -> None:
    result = CliRunner().invoke(app, ["census"])
    assert result.exit_code == 0, result.output
    assert "market 'census/2024-06'" in result.output and "ldi_fund" in result.output
    assert "Aggregates of census/2024-06" in result.output  # a census vintage's sources


def test_census_as_of_a_date_picks_the_vintage_in_force(tmp_path: Path) -> None:
    """On 16 March 2020 the vintage in force is December 2019's; its family office did not
    exist yet (from 2020-12 only). The sources table lists every aggregate with its label."""
    out = tmp_path / "c"
    result = CliRunner().invoke(app, ["census", "--as-of", "2020-03-16", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "market 'census/2019-12'" in result.output and "family_office" not in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["as_of"] == "2019-12"
    sources = pl.read_csv(out / "census_sources.csv")
    assert sum(manifest["aggregates"].values()) == sources.height
    ldi = sources.filter(pl.col("path") == "holders[ldi_fund].total_assets").row(0, named=True)
    assert ldi["kind"] == "assumption: scaled from 2022-08"  # no LDI source before 2022
    index = sources.filter(pl.col("path") == "holders[index_fund].total_assets")
    assert index["kind"].to_list() == ["estimate"] and index["value"].item() == 4.6e12
    later = CliRunner().invoke(app, ["census", "--as-of", "2021-03-26"])
    assert "market 'census/2020-12'" in later.output and "family_office" in later.output


def test_census_as_of_bad_input_exits_2() -> None:
    for args in (["--as-of", "16/03/2020"], ["small", "--as-of", "2020-03-16"]):
        result = CliRunner().invoke(app, ["census", *args])
        assert result.exit_code == 2, result.output
        assert "--as-of" in result.output


def test_census_command_prints_and_writes(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["census", "small", "--out", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert "Holders by type" in result.output and "ldi_fund" in result.output
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        "census.csv",
        "census_classes.csv",
        "census_types.csv",
        "manifest.json",
    ]


def test_census_of_a_missing_market_is_an_input_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["census", str(tmp_path / "nowhere"), "-o", str(tmp_path / "c")]
    )
    assert result.exit_code == 2
    assert not (tmp_path / "c").exists()

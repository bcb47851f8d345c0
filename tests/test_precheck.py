"""Holders that break their rules before any shock are named in a warning by ``validate`` and
``run``; books that keep them are not."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from oracle_kit import run_case
from typer.testing import CliRunner

from estimator.cli import app

MARGIN = [{"kind": "margin", "maintenance_rate": 0.3}]


def test_a_short_whose_cash_leaves_out_the_proceeds() -> None:
    # short 40 at 50 with the 50% deposit only (1000): AE = 1000 − 2000 < 0 before any price
    # move. With the proceeds in cash (3000) AE = 1000, R = 0.3·2000 = 600: compliant.
    def warnings(cash: float) -> list[str]:
        result = run_case(
            [{"asset_id": "a", "price": 50.0}],
            [{"holder_id": "h", "cash": cash}],
            [("h", "a", -40.0)],
            MARGIN,
            [],
        )
        return [str(w) for w in result.warnings.items if "before any shock" in str(w)]

    (left_out,) = warnings(1000.0)
    assert "holder h" in left_out and "equity (metric -1000" in left_out
    assert warnings(3000.0) == []


def test_each_rule_past_its_trigger_is_named_with_its_metric() -> None:
    # long 100 at 50 on cash −4000: AE = E = 1000, R = 0.3·5000 = 1500 (500 short of it);
    # leverage 5000/1000 = 5 against a limit of 4 (1000 over 4·E)
    result = run_case(
        [{"asset_id": "a", "price": 50.0}],
        [{"holder_id": "h", "cash": -4000.0}],
        [("h", "a", 100.0)],
        [*MARGIN, {"kind": "leverage", "max": 4.0}],
        [],
    )
    (text,) = [str(w) for w in result.warnings.items if "before any shock" in str(w)]
    assert "leverage (metric 5, 1.00k past its trigger)" in text
    assert "margin (metric -500, 500 past its trigger)" in text


def test_validate_and_run_name_the_holder(bundle: Path, tmp_path: Path) -> None:
    # HF_MACRO: about 3.2× gross over equity; borrowing 300m more takes it past its 3.5×
    # exposure limit: (G + N)/(E − 300m), marked here from the bundle's files
    held = (
        pl.read_csv(bundle / "positions.csv")
        .filter(pl.col("holder_id") == "HF_MACRO")
        .join(pl.read_csv(bundle / "assets.csv"), on="asset_id")
        .select(
            x=pl.col("quantity") * pl.col("price") * pl.col("multiplier").fill_null(1.0),
            cash_instrument=pl.col("instrument") == "cash",
        )
    )
    holders = pl.read_csv(bundle / "holders.csv")
    row = holders.filter(pl.col("holder_id") == "HF_MACRO").row(0, named=True)
    gross = held["x"].abs().sum() + row["non_tradable"]
    equity = held.filter("cash_instrument")["x"].sum() + row["cash"] + row["non_tradable"]
    equity -= row["other_debt"] + 3e8
    assert gross / equity > 3.5
    holders.with_columns(
        cash=pl.when(pl.col("holder_id") == "HF_MACRO")
        .then(pl.col("cash") - 3e8)
        .otherwise(pl.col("cash"))
    ).write_csv(bundle / "holders.csv")
    runner = CliRunner()
    scenario = str(tmp_path / "calm.toml")
    checked = runner.invoke(app, ["validate", scenario])
    assert checked.exit_code == 0, checked.output
    expected = f"HF_MACRO breaks its rules before any shock: leverage (metric {gross / equity:.4g}"
    assert expected in checked.output
    ran = runner.invoke(app, ["run", scenario, "--out", str(tmp_path / "out")])
    assert ran.exit_code == 0, ran.output
    assert "HF_MACRO breaks its rules before any shock" in ran.output


@pytest.mark.parametrize("scenario", ["small_crash", "march_2020", "fire_sale"])
def test_shipped_markets_keep_their_rules_before_the_shock(scenario: str) -> None:
    runner = CliRunner()
    checked = runner.invoke(app, ["validate", scenario])
    assert checked.exit_code == 0 and "before any shock" not in checked.output


def test_an_empty_holder_is_not_warned_of() -> None:
    # "e" holds nothing and owes nothing (E = 0); "n" owes 10 and holds nothing (E = −10)
    result = run_case(
        [{"asset_id": "a", "price": 50.0}],
        [{"holder_id": "h", "cash": 0.0}, {"holder_id": "e"}, {"holder_id": "n", "cash": -10.0}],
        [("h", "a", 1.0)],
        MARGIN,
        [],
    )
    named = [str(w) for w in result.warnings.items if "before any shock" in str(w)]
    assert named == ["holders: holder n breaks its rules before any shock: equity (metric -10, "
                     "10 past its trigger)"]  # fmt: skip

"""The command line: exit codes, messages, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from estimator import api, cli
from estimator.errors import RunError
from rules import RULE_KINDS

runner = CliRunner()


@pytest.mark.parametrize(
    "command", [[], ["run"], ["validate"], ["schema"], ["scenarios"], ["explain"]]
)
def test_help(command: list[str]) -> None:
    result = runner.invoke(cli.app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_run_writes_reports(tmp_path: Path) -> None:
    result = runner.invoke(cli.app, ["run", "small_crash", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "net forced and systematic flow" in result.output
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assets = pl.read_csv(tmp_path / "r" / "assets.csv")
    # the manifest's total equals the report's column sum
    assert manifest["totals"]["sell_value"] == pytest.approx(assets["sell_value"].sum(), rel=1e-9)
    assert set(manifest["market"]["inputs"]) >= {"assets", "holders", "positions", "market"}
    assert assets["asset_id"].to_list() == sorted(assets["asset_id"].to_list())


def test_run_parquet_and_execution_override(tmp_path: Path) -> None:
    args = ["run", "small_crash", "-o", str(tmp_path / "p"), "-f", "parquet", "-e", "min_cost"]
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    holders = pl.read_parquet(tmp_path / "p" / "holders.parquet")
    assert set(holders["mandate_execution"]) == {"min_cost"}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "small_crash", "--format", "xlsx"], "csv or parquet"),
        (["run", "small_crash", "--participation", "1.5"], "participation"),
        (["run", "no_such_scenario"], "neither a scenario file nor a shipped scenario"),
        (["run", "no_such.toml"], "file not found"),
        (["run", "small_crash", "--market", "no_such_market"], "shipped: census, census/2017-12"),
        (["run", "small_crash", "--execution", "fastest"], "fastest"),
        (["schema", "portfolio"], "mandate"),
    ],
)
def test_bad_usage_exits_2(args: list[str], fragment: str, tmp_path: Path) -> None:
    result = runner.invoke(
        cli.app, [*args, "--out", str(tmp_path / "x")] if args[0] == "run" else args
    )
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert not (tmp_path / "x").exists()


def test_run_failure_exits_1(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RunError("boom")

    monkeypatch.setattr(api, "run", broken)  # the command imports it when it runs
    result = runner.invoke(cli.app, ["run", "small_crash", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert "boom" in result.output
    assert not (tmp_path / "x").exists()


def test_validate_default_and_scenario() -> None:
    result = runner.invoke(cli.app, ["validate"])
    assert result.exit_code == 0, result.output
    assert "ok: market 'census/2024-06'" in result.output  # the census's latest vintage
    result = runner.invoke(cli.app, ["validate", "small_crash"])
    assert result.exit_code == 0, result.output


def test_schema_lists_every_rule_kind() -> None:
    result = runner.invoke(cli.app, ["schema", "mandate"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    kinds = {
        d["properties"]["kind"]["const"]
        for d in schema["$defs"].values()
        if "kind" in d.get("properties", {})
    }
    assert kinds == {*RULE_KINDS, "lookback", "ewma", "max"}  # rules, and risk estimators


def test_scenarios_lists_the_shipped_ones() -> None:
    result = runner.invoke(cli.app, ["scenarios"])
    assert result.exit_code == 0
    for name in ("march_2020", "gilt_2022", "small_crash", "small_cascade"):
        assert name in result.output


def test_explain_a_holder_and_an_unknown_one() -> None:
    told = runner.invoke(cli.app, ["explain", "IG_FUND", "--scenario", "small_crash"])
    assert told.exit_code == 0, told.output
    assert "IG_FUND: ig_bond_fund" in told.output
    assert "rating_floor" in told.output
    unknown = runner.invoke(cli.app, ["explain", "NOBODY", "-s", "small_crash"])
    assert unknown.exit_code == 2
    assert "no holder 'NOBODY'" in unknown.output

"""Distance to forced selling: closed forms, agreement with direct runs, and the command."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from oracle_kit import asset_frame, holder_frame
from typer.testing import CliRunner

import estimator
from estimator import Mandate, Scenario
from estimator.cli import app
from estimator.status import NOT_FORCED
from estimator.survival import COLUMNS, Search, survival

#: Hand-worked books of a few hundred currency units (conftest.hand_sized).
pytestmark = pytest.mark.usefixtures("hand_sized")

TOL = 1e-6
PRECISE = Search(max_multiple=2.0, grid=8, tolerance=TOL)


def _market(
    holders: list[dict[str, Any]],
    positions: list[tuple[str, str, float]],
    mandates: dict[str, list[dict[str, Any]]],
    assets: list[dict[str, Any]] | None = None,
) -> estimator.Market:
    frames = {name: Mandate(name=name, rules=rules, cure=[]) for name, rules in mandates.items()}
    return estimator.build_market(
        asset_frame(assets or [{"asset_id": "a", "price": 50.0}]),
        holder_frame(holders),
        pl.DataFrame(positions, schema=["holder_id", "asset_id", "quantity"], orient="row"),
        frames,
    )


def _row(table: pl.DataFrame, holder_id: str) -> dict[str, Any]:
    return table.filter(pl.col("holder_id") == holder_id).row(0, named=True)


FALL = Scenario(name="fall", shocks=[{"select": {"all": True}, "price_return": -0.5}])


def test_margin_call_price_of_a_single_stock() -> None:
    # 100 shares at 50 on cash −3000: AE = 100·P − 3000. Maintenance 25%: a call when
    # AE < 0.25·100·P, at P* = 3000 / (100·(1 − 0.25)) = 40 — the classic D / (q(1 − m)).
    # The scenario takes P to 50·(1 − 0.5·m): P* = 40 at m* = 0.4.
    market = _market(
        [{"holder_id": "h", "cash": -3000.0, "mandate": "margin"}],
        [("h", "a", 100.0)],
        {"margin": [{"kind": "margin", "maintenance_rate": 0.25}]},
    )
    row = _row(survival(FALL, market, search=PRECISE).holders, "h")
    assert row["forced_when"] == "moves"
    assert row["forced_by"] == "margin"
    assert math.isclose(row["forced_multiple"], 0.4, rel_tol=2 * TOL)
    assert row["level_asset"] == "a"
    assert math.isclose(row["level_price"], 40.0, rel_tol=2 * TOL)
    # the whole scenario (P = 25): AE = −500, insolvent. Cash c keeps it clear when
    # 2500 − 3000 + c ≥ 0.25·2500, c* = 1125.
    assert row["status_at_scenario"] == "insolvent"
    assert math.isclose(row["cure_cash"], 1125.0, rel_tol=2 * TOL)


def test_progress_counts_every_evaluation() -> None:
    market = _market(
        [{"holder_id": "h", "cash": -3000.0, "mandate": "margin"}],
        [("h", "a", 100.0)],
        {"margin": [{"kind": "margin", "maintenance_rate": 0.25}]},
    )
    told: list[int] = []
    result = survival(FALL, market, search=Search(grid=6), progress=told.append)
    assert told == list(range(1, result.evaluations + 1))


def test_leverage_cap_distance_in_closed_form() -> None:
    # 10 at 100 on cash −600: A = 1000·(1 + r), E = 1000·(1 + r) − 600. A ≤ 4·E until
    # 1000·(1 + r)·3 = 2400, r* = −0.2; the scenario's return is −0.3·m, so m* = 2/3.
    # Whole scenario: A = 700, E = 100. Cash c added now (still borrowing): A = 700,
    # E = 100 + c, and A ≤ 4·E from c* = 75.
    market = _market(
        [{"holder_id": "h", "cash": -600.0, "mandate": "lev"}],
        [("h", "a", 10.0)],
        {"lev": [{"kind": "leverage", "max": 4.0}]},
        [{"asset_id": "a", "price": 100.0}],
    )
    spec = Scenario(name="s", shocks=[{"select": {"all": True}, "price_return": -0.3}])
    row = _row(survival(spec, market, search=PRECISE).holders, "h")
    assert row["forced_by"] == "leverage"
    assert math.isclose(row["forced_multiple"], 2 / 3, rel_tol=2 * TOL)
    assert math.isclose(row["level_return"], -0.2, rel_tol=4 * TOL)
    assert math.isclose(row["cure_cash"], 75.0, rel_tol=2 * TOL)


def _direct_forced(spec: Scenario, market: estimator.Market, m: float, cash: float = 0.0) -> dict:
    """Each holder's forced flag by a plain run of the scaled scenario (cash added to all)."""
    if cash:
        market = dataclasses.replace(
            market, holders=market.holders.with_columns(pl.col("cash") + cash)
        )
    result = estimator.run(spec.scaled(m), market)
    return dict(
        zip(
            result.holders["holder_id"],
            ~result.holders["status"].is_in(NOT_FORCED),
            strict=True,
        )
    )


def test_search_agrees_with_direct_runs_at_the_found_multiple_and_cure() -> None:
    assets = [
        {"asset_id": "a", "price": 100.0, "vol": 0.2},
        {"asset_id": "b", "price": 20.0, "vol": 0.3},
    ]
    market = _market(
        [
            {"holder_id": "margin", "cash": -700.0, "mandate": "margin"},
            {"holder_id": "lever", "cash": -900.0, "mandate": "lever"},
            {"holder_id": "vol", "cash": 0.0, "mandate": "vol"},
        ],
        [("margin", "a", 10.0), ("lever", "a", 8.0), ("lever", "b", 40.0), ("vol", "b", 50.0)],
        {
            "margin": [{"kind": "margin", "maintenance_rate": 0.3}],
            "lever": [{"kind": "leverage", "max": 3.0}],
            "vol": [{"kind": "vol_target", "target": 0.35}],
        },
        assets,
    )
    spec = Scenario(
        name="s",
        shocks=[
            {"select": {"asset_ids": ["a"]}, "price_return": -0.25},
            {"select": {"asset_ids": ["b"]}, "price_return": -0.1, "vol_multiplier": 1.8},
        ],
    )
    search = Search(max_multiple=3.0, grid=12, tolerance=1e-4)
    table = survival(spec, market, search=search).holders
    assert set(table["forced_when"].drop_nulls()) == {"moves"}
    for row in table.iter_rows(named=True):
        m = row["forced_multiple"]
        assert m is not None and 0 < m < 3, row
        assert _direct_forced(spec, market, m)[row["holder_id"]], row
        below = m - 2 * search.tolerance * max(1.0, m)
        assert not _direct_forced(spec, market, below)[row["holder_id"]], row
        if row["status_at_scenario"] not in NOT_FORCED:
            cure = row["cure_cash"]
            assert cure is not None and cure > 0
            assert not _direct_forced(spec, market, 1.0, cure)[row["holder_id"]], row
            assert _direct_forced(spec, market, 1.0, cure * (1 - 3 * search.tolerance))[
                row["holder_id"]
            ], row


def test_events_already_and_never() -> None:
    assets = [
        {"asset_id": "bond", "price": 100.0, "rating_sp": "BBB-"},
        {"asset_id": "a", "price": 50.0},
    ]
    market = _market(
        [
            {"holder_id": "ig", "mandate": "ig"},  # its bond falls to junk: the event forces it
            {"holder_id": "over", "cash": -900.0, "mandate": "lev"},  # 10× already over 3×
            {"holder_id": "calm", "mandate": "lev"},  # unlevered: never forced
        ],
        [("ig", "bond", 10.0), ("over", "a", 20.0), ("calm", "a", 10.0)],
        {"ig": [{"kind": "rating_floor"}], "lev": [{"kind": "leverage", "max": 3.0}]},
        assets,
    )
    spec = Scenario(
        name="s",
        shocks=[
            {"select": {"asset_ids": ["a"]}, "price_return": -0.1},
            {"select": {"asset_ids": ["bond"]}, "downgrade_notches": 1},
        ],
    )
    table = survival(spec, market, search=Search(max_multiple=2.0, grid=4)).holders
    assert table.columns == COLUMNS
    ig, over, calm = (_row(table, h) for h in ("ig", "over", "calm"))
    assert (ig["forced_multiple"], ig["forced_when"], ig["forced_by"]) == (
        0.0,
        "events",
        "rating_floor",
    )
    assert ig["cure_cash"] is None  # a tolerance of 0 below the floor: no cash cures it
    assert (over["forced_multiple"], over["forced_when"]) == (0.0, "already")
    assert calm["forced_multiple"] is None and calm["forced_when"] is None
    assert calm["cure_cash"] == 0.0 and calm["status_at_scenario"] == "ok"


def test_scaled_scenario_by_hand() -> None:
    spec = Scenario(
        name="s",
        shocks=[
            {
                "select": {"all": True},
                "price_return": -0.2,
                "vol_multiplier": 2.0,
                "spread_change_bp": 100,
                "downgrade_notches": 1,
            }
        ],
        impact={"models": [{"model": "sqrt"}]},
    )
    half = spec.scaled(0.5).shocks[0]
    assert (half.price_return, half.vol_multiplier, half.spread_change_bp) == (-0.1, 1.5, 50.0)
    assert half.downgrade_notches == 1  # an event stays whole
    assert not spec.scaled(0.5).cascades  # one round, no impact
    assert spec.scaled(0.0, events=False).shocks == []
    assert spec.scaled(0.0).shocks[0].price_return == 0.0
    assert spec.max_multiple == 5.0  # −0.2·m > −1


def test_bad_search_settings_are_input_errors() -> None:
    bad_settings = (
        {"max_multiple": 0.0},
        {"max_multiple": math.inf},  # a grid needs an end
        {"grid": 0},
        {"tolerance": 1.5},
        {"tolerance": 1e-17},  # finer than floats split: a bisection would not end
    )
    for bad in bad_settings:
        with pytest.raises(estimator.InputError, match=next(iter(bad))):
            Search(**bad)


def test_holders_with_a_lender_are_searched_alone() -> None:
    # one round, no lender losses: a holder whose lender is outside the probe is no matter
    market = _market(
        [
            {"holder_id": "h", "cash": -3000.0, "mandate": "margin", "lender": "pb"},
            {"holder_id": "pb", "cash": 1e6, "mandate": "margin"},
        ],
        [("h", "a", 100.0)],
        {"margin": [{"kind": "margin", "maintenance_rate": 0.25}]},
    )
    result = survival(FALL, market, search=PRECISE, holder_id="h")
    assert math.isclose(_row(result.holders, "h")["forced_multiple"], 0.4, rel_tol=2 * TOL)


def test_a_holder_of_cash_alone_is_never_forced() -> None:
    # "pb" holds no position: searched alone, its points' round has no asset it holds; it is
    # not forced anywhere (no level asset, no cure needed), and "h" is searched as ever
    market = _market(
        [
            {"holder_id": "h", "cash": -3000.0, "mandate": "margin"},
            {"holder_id": "pb", "cash": 1e6, "mandate": "margin"},
        ],
        [("h", "a", 100.0)],
        {"margin": [{"kind": "margin", "maintenance_rate": 0.25}]},
    )
    alone = _row(survival(FALL, market, search=PRECISE, holder_id="pb").holders, "pb")
    assert alone["status_at_scenario"] == "ok"
    assert alone["forced_multiple"] is None and alone["level_asset"] is None
    assert alone["cure_cash"] == 0.0
    both = survival(FALL, market, search=PRECISE).holders
    assert _row(both, "pb")["forced_multiple"] is None
    assert math.isclose(_row(both, "h")["forced_multiple"], 0.4, rel_tol=2 * TOL)


def test_a_rate_shock_that_would_drive_a_yield_below_minus_f_ends_the_search_early() -> None:
    # a bond (duration 0.1, yield 4% by default, f = 2) and −5,000bp: the yield 0.04 − 0.5·m
    # reaches −f = −2 at m = 4.08; the grid over (0, 6] stops at its last point below, 4.0
    # (where the bond, a zero coupon of 0.204 half-years, is at 100·(1.02/0.02)^0.204 ≈ 223),
    # and the unlevered holder is never forced
    assets = [{"asset_id": "bond", "price": 100.0, "duration": 0.1, "asset_class": "govt"}]
    market = _market(
        [{"holder_id": "h", "mandate": "lev"}],
        [("h", "bond", 10.0)],
        {"lev": [{"kind": "leverage", "max": 3.0}]},
        assets,
    )
    spec = Scenario(name="s", shocks=[{"select": {"all": True}, "yield_change_bp": -5000}])
    result = survival(spec, market, search=Search(max_multiple=6.0, grid=12))
    assert result.searched_to == 4.0
    assert result.manifest.dump()["searched_to"] == 4.0
    row = _row(result.holders, "h")
    assert row["forced_multiple"] is None and row["status_at_scenario"] == "ok"


runner = CliRunner()


def test_survival_command_writes_the_table_and_tells_one_holder(tmp_path: Path) -> None:
    out = tmp_path / "surv"
    args = ["survival", "small_crash", "--grid", "6", "--tolerance", "0.01"]
    one = runner.invoke(app, [*args, "--holder", "RETAIL_1", "--out", str(out)])
    assert one.exit_code == 0, one.output
    assert "RETAIL_1" in one.output and "First forced at" in one.output
    table = pl.read_csv(out / "survival.csv")
    assert table.columns == COLUMNS and table["holder_id"].to_list() == ["RETAIL_1"]
    assert (out / "manifest.json").is_file()


def test_survival_command_refuses_bad_input_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "surv"
    unknown = runner.invoke(app, ["survival", "small_crash", "--holder", "NOPE", "--out", str(out)])
    assert unknown.exit_code == 2
    assert "unknown holder 'NOPE'" in unknown.output
    bad = runner.invoke(app, ["survival", "small_crash", "--max-multiple", "-1", "--out", str(out)])
    assert bad.exit_code == 2
    assert "max_multiple" in bad.output
    assert not out.exists()

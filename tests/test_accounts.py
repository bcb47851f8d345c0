"""A holder row that stands for k identical accounts: exactly the flows of k identical rows."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import estimator
from estimator.cli import app
from estimator.errors import InputError
from estimator.html import render
from estimator.mandates import load_mandates
from estimator.paths import mandates_dir, markets_dir

SMALL = markets_dir() / "small"
ASSETS = pl.read_csv(SMALL / "assets.csv")
HOLDERS = pl.read_csv(SMALL / "holders.csv", infer_schema_length=None)
POSITIONS = pl.read_csv(SMALL / "positions.csv")
MANDATES = load_mandates(mandates_dir())


def _markets(counts: dict[str, int]) -> tuple[estimator.Market, estimator.Market]:
    """The small market with holder h as ``counts[h]`` identical rows (``h#1``, ``h#2``, …),
    and as one row of ``counts[h]`` accounts."""
    k = pl.DataFrame({"holder_id": list(counts), "k": list(counts.values())})
    copies = k.with_columns(copy=pl.int_ranges(1, pl.col("k") + 1)).explode("copy")
    rename = pl.format("{}#{}", pl.col("holder_id"), pl.col("copy")).alias("new_id")
    rows = HOLDERS.join(copies, on="holder_id").with_columns(rename)
    spread = POSITIONS.join(copies.with_columns(rename), on="holder_id")
    many = estimator.build_market(
        ASSETS,
        rows.drop("holder_id", "k", "copy").rename({"new_id": "holder_id"}),
        spread.select(pl.col("new_id").alias("holder_id"), "asset_id", "quantity"),
        MANDATES,
        index_weights=pl.read_csv(SMALL / "index_weights.csv"),
    )
    one = estimator.build_market(
        ASSETS,
        HOLDERS.join(k, on="holder_id").rename({"k": "accounts"}).cast({"accounts": pl.Float64}),
        POSITIONS,
        MANDATES,
        index_weights=pl.read_csv(SMALL / "index_weights.csv"),
    )
    return many, one


def _same_flows(many: estimator.RunResult, one: estimator.RunResult, rel: float) -> None:
    columns = ["asset_id", "sell_value", "buy_value", "net_value"]
    a, b = many.assets.select(columns), one.assets.select(columns)
    assert a["asset_id"].to_list() == b["asset_id"].to_list()
    # a net flow of large sales and purchases is compared at the accuracy of the flows
    floor = rel * float(a.select(pl.max_horizontal("sell_value", "buy_value").max()).item())
    for c in columns[1:]:
        assert a[c].to_list() == pytest.approx(b[c].to_list(), rel=rel, abs=floor), c
    assert many.flows is not None and one.flows is not None
    assert many.flows["net_value"].to_list() == pytest.approx(
        one.flows["net_value"].to_list(), rel=rel, abs=floor
    )
    if many.rounds is not None and one.rounds is not None:
        end = ["asset_id", "price_end"]
        last = [r.rounds.filter(pl.col("round") == pl.col("round").max()).select(end).sort(
            "asset_id") for r in (many, one)]  # fmt: skip
        assert last[0]["price_end"].to_list() == pytest.approx(
            last[1]["price_end"].to_list(), rel=rel
        )


#: Tight solver tolerances: identical rows and one row of accounts are solved as differently
#: scaled problems, whose optima agree to the solver's accuracy — about 1e-5 of a flow on the
#: small market's risk-parity problem, where Clarabel stops at "optimal (inaccurate)".
TIGHT = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "tol_ktratio": 1e-10}
SCENARIO = Path(__file__).parents[1] / "scenarios" / "small_cascade.toml"


def _check(ks: list[int], execution: str | None, rel: float) -> None:
    """Every rule kind of the small market (vol targets, leverage, margin, rating floor,
    rebalancing, index tracking, VaR and stop-loss, redemptions and buffers, LDI, funding
    ratio) through a cascade with impact: the per-asset flows, the flows by kind and the prices
    are those of k identical rows — exactly pro rata (every rule is homogeneous), and to the
    solver's accuracy min-cost (each account pays β·|u/k|^{3/2}, the row β·|u|^{3/2}/√k)."""
    counts = dict(zip(HOLDERS["holder_id"], ks, strict=True))
    many, one = _markets(counts)
    scenario = estimator.load_scenario(SCENARIO)
    runs = [estimator.run(scenario, m, execution=execution, solver_options=TIGHT)
            for m in (many, one)]  # fmt: skip
    _same_flows(*runs, rel=rel)


KS = [2, 3, 1, 2, 4, 2, 3, 1, 2, 4, 2, 3, 2, 2, 3, 2, 4, 3, 2]


def test_rows_of_accounts_trade_as_identical_rows_pro_rata() -> None:
    _check(KS, "pro_rata", rel=1e-9)


def test_rows_of_accounts_trade_as_identical_rows_min_cost() -> None:
    _check(KS, None, rel=1e-4)  # the mandates' own execution: hedge funds, risk parity solve


@pytest.mark.slow
@settings(max_examples=6)
@given(st.lists(st.integers(1, 5), min_size=HOLDERS.height, max_size=HOLDERS.height))
def test_a_row_of_k_accounts_trades_as_k_identical_rows(ks: list[int]) -> None:
    _check(ks, "pro_rata", rel=1e-9)
    _check(ks, None, rel=1e-4)


def test_a_margin_account_row_by_hand() -> None:
    """Three accounts, each 100 shares at 50 on 4000 of borrowing: after −10% each sells
    2500 to get back to its 25% maintenance (as in the two-seller market), 7500 together."""
    assets = pl.DataFrame(
        {"asset_id": ["a"], "asset_class": "equity", "instrument": "cash", "price": 50.0}
        | {"adv": 1e9, "vol": 0.1}
    )
    holders = pl.DataFrame(
        {"holder_id": ["h"], "holder_type": ["retail"], "mandate": ["mar"], "cash": [-4000.0]}
        | {"accounts": [3.0]}
    )
    positions = pl.DataFrame({"holder_id": ["h"], "asset_id": "a", "quantity": 100.0})
    mandates = {"mar": estimator.Mandate(name="mar", rules=[{"kind": "margin"}], cure=[])}
    market = estimator.build_market(assets, holders, positions, mandates)
    assert market.holders["cash"].item() == -12000.0  # the row holds its accounts' amounts
    assert market.positions["quantity"].item() == 300.0
    spec = estimator.Scenario(name="s", shocks=[{"select": {"all": True}, "price_return": -0.1}])
    result = estimator.run(spec, market)
    assert result.trades["trade_value"].sum() == pytest.approx(-7500.0, rel=1e-12)
    assert result.holders["accounts"].item() == 3.0


def test_accounts_must_be_whole_and_within_bounds() -> None:
    holders = HOLDERS.with_columns(accounts=pl.lit(1.0)).with_columns(
        pl.when(pl.col("holder_id") == "RETAIL_2").then(2.5).otherwise("accounts").alias("accounts")
    )
    with pytest.raises(InputError) as bad:
        estimator.build_market(ASSETS, holders, POSITIONS, MANDATES,
                               index_weights=pl.read_csv(SMALL / "index_weights.csv"))  # fmt: skip
    text = str(bad.value)
    assert "row 8" in text and "'accounts'" in text and "whole number" in text
    huge = HOLDERS.with_columns(accounts=pl.lit(1e9))
    with pytest.raises(InputError, match="larger than"):
        estimator.build_market(ASSETS, huge, POSITIONS, MANDATES,
                               index_weights=pl.read_csv(SMALL / "index_weights.csv"))  # fmt: skip


def test_the_census_counts_holders_and_accounts(tmp_path: Path) -> None:
    _, one = _markets({h: 2 if h.startswith("RETAIL") else 1 for h in HOLDERS["holder_id"]})
    by_type = estimator.census(one).by_type.filter(pl.col("holder_type") == "margin_account")
    assert by_type.select("holders", "accounts").row(0) == (4, 8)
    ran = CliRunner().invoke(app, ["census", "small"])
    assert ran.exit_code == 0 and "accounts" in ran.output


def test_the_report_counts_the_accounts_forced() -> None:
    _, one = _markets({h: 3 if h.startswith("RETAIL") else 1 for h in HOLDERS["holder_id"]})
    result = estimator.run("small_crash", one)
    hit = result.holders.filter(~pl.col("status").is_in(["ok", "cured"]))["accounts"].sum()
    assert f"accounts forced<b>{hit:,.0f} of {HOLDERS.height + 8:,.0f}</b>" in render(result)
    assert result.manifest.dump()["counts"]["holders"] == HOLDERS.height
    assert result.manifest.dump()["counts"]["accounts"] == HOLDERS.height + 8  # four rows of three


def test_explain_says_a_row_stands_for_many_accounts() -> None:
    from estimator.explain import explain  # noqa: PLC0415

    _, one = _markets({h: 3 if h.startswith("RETAIL") else 1 for h in HOLDERS["holder_id"]})
    result = estimator.run("small_crash", one)
    assert "3 identical accounts: the figures below are theirs together" in explain(
        result, "RETAIL_1"
    )
    assert "identical accounts" not in explain(result, "IG_FUND")

"""Per-round balance sheets of a cascade: the accounting identities that tie them to the
rounds, the holders' totals and the files written."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import estimator


@pytest.fixture(scope="module")
def fire_sale() -> estimator.RunResult:
    return estimator.run("fire_sale")


def test_each_round_ends_where_the_next_begins(fire_sale: estimator.RunResult) -> None:
    sheets = fire_sale.balance_sheets
    assert sheets is not None and sheets["round"].max() >= 3
    assert sheets.height == sheets["round"].n_unique() * fire_sale.holders.height
    following = sheets.select("holder_id", round=pl.col("round") - 1, next_equity="equity")
    joined = sheets.join(following, on=["holder_id", "round"])
    assert joined.height == sheets.height - fire_sale.holders.height
    gap = (joined["equity_end"] - joined["next_equity"]).abs().max()
    assert gap <= 1e-9 * sheets["equity"].abs().max()
    # the fire-sale market's books are long on borrowed cash: the accounting's leverage and
    # the leverage rule's two measures read the same
    levered = sheets.filter(pl.col("equity") > 0)
    for measure in ("balance_sheet_leverage", "exposure_leverage"):
        gap = (levered[measure] - levered["leverage"]).abs().max()
        assert gap <= 1e-12 * levered["leverage"].max(), measure


def test_losses_by_round_add_up_to_the_holders(fire_sale: estimator.RunResult) -> None:
    assert fire_sale.balance_sheets is not None
    summed = fire_sale.balance_sheets.group_by("holder_id").agg(
        pl.col("loss_shock", "loss_impact", "loss_execution", "loss_lending").sum()
    )
    joined = fire_sale.holders.join(summed, on="holder_id", suffix="_r")
    assert joined.height == fire_sale.holders.height
    for a, b in [
        ("loss_direct", "loss_shock"),
        ("loss_impact", "loss_impact_r"),
        ("loss_execution", "loss_execution_r"),
        ("loss_lending", "loss_lending_r"),
    ]:
        scale = max(joined[a].abs().max(), 1.0)
        assert (joined[a] - joined[b]).abs().max() <= 1e-9 * scale, a
    # what each round sold is the trade log's
    sold = fire_sale.trades.group_by("round").agg(s=(-pl.col("trade_value")).clip(0).sum())
    by_round = fire_sale.balance_sheets.group_by("round").agg(pl.col("sold").sum())
    check = by_round.join(sold, on="round", how="left").fill_null(0.0)
    assert (check["sold"] - check["s"]).abs().max() <= 1e-9 * check["sold"].max()


def test_written_with_a_cascade_and_not_without(tmp_path: Path) -> None:
    cascade = estimator.run("small_cascade")
    files = {p.name for p in cascade.write(tmp_path / "c")}
    assert "balance_sheets.csv" in files
    read = pl.read_csv(tmp_path / "c" / "balance_sheets.csv")
    assert read.columns == cascade.balance_sheets.columns  # type: ignore[union-attr]
    one = estimator.run("small_crash")
    assert one.balance_sheets is None
    assert "balance_sheets.csv" not in {p.name for p in one.write(tmp_path / "o")}


def test_redemptions_paid_at_a_rounds_start_close_the_gap() -> None:
    """A bond fund paying redemptions round after round: equity_end(r) = equity(r + 1) +
    outflow(r + 1), and the outflows add up to the cash it paid (``redemption.paid``)."""
    result = estimator.run("small_cascade")
    sheets = result.balance_sheets
    assert sheets is not None
    fund = sheets.filter(pl.col("holder_id") == "BOND_FUND").sort("round")
    assert fund["outflow"].sum() > 0 and fund.height >= 2
    end, start, out = fund["equity_end"], fund["equity"], fund["outflow"]
    gaps = (end.head(-1) - start.tail(-1) - out.tail(-1)).abs()
    assert gaps.max() <= 1e-9 * start.abs().max()
    paid = result.holders.filter(pl.col("holder_id") == "BOND_FUND")["redemption.paid"].item()
    assert fund["outflow"].sum() == pytest.approx(paid, rel=1e-12)

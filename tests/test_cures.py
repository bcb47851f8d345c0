"""The cures report: how much of each deficiency was cured with cash and how much traded."""

from __future__ import annotations

from collections import defaultdict

import polars as pl
import pytest
from oracle_kit import asset_frame, holder, holder_frame, run_case

import estimator

MARGIN_CALL = [{"select": {"all": True}, "price_return": -0.3}]


def test_a_margin_call_part_cured_from_a_reserve() -> None:
    # 100 shares at 100 on a loan of 6,000, 25% maintenance. A 30% fall: x = 7,000, AE = 1,000,
    # R = 1,750: the call needs 750 of cash. The reserve of 300 covers part; 450 is left to the
    # sale: AE = 1,300 carries R = 0.25·x⁺ up to x⁺ = 5,200, a sale of 1,800.
    result = run_case(
        [{"asset_id": "a", "price": 100.0}],
        [{"holder_id": "h", "cash": -6000.0, "cash_reserve": 300.0}],
        [("h", "a", 100.0)],
        [{"kind": "margin", "maintenance_rate": 0.25}],
        MARGIN_CALL,
    )
    row = result.cures.row(0, named=True)
    assert result.cures.height == 1
    assert (row["holder_id"], row["round"], row["rule"]) == ("h", 1, "margin")
    assert row["need"] == pytest.approx(750.0, rel=1e-12)
    assert row["cured"] == pytest.approx(300.0, rel=1e-12)
    assert row["remaining"] == pytest.approx(450.0, rel=1e-12)
    assert row["traded"] == pytest.approx(1800.0, rel=1e-12)


def test_a_reserve_that_covers_the_call_leaves_nothing_to_trade() -> None:
    result = run_case(
        [{"asset_id": "a", "price": 100.0}],
        [{"holder_id": "h", "cash": -6000.0, "cash_reserve": 1000.0}],
        [("h", "a", 100.0)],
        [{"kind": "margin", "maintenance_rate": 0.25}],
        MARGIN_CALL,
    )
    row = result.cures.row(0, named=True)
    assert (row["need"], row["cured"], row["remaining"], row["traded"]) == pytest.approx(
        (750.0, 750.0, 0.0, 0.0), rel=1e-12
    )


def test_rules_cash_cannot_restore_have_no_need() -> None:
    # Leverage 10,000 / 4,000 = 2.5 > 2 with no move at all. The leverage rule is not cured
    # with cash (it sells), so it has no need, whatever the reserve.
    result = run_case(
        [{"asset_id": "a", "price": 100.0}],
        [{"holder_id": "h", "cash": -6000.0, "cash_reserve": 1e6}],
        [("h", "a", 100.0)],
        [{"kind": "leverage", "max": 2.0}],
        [{"select": {"all": True}, "price_return": 0.0}],
    )
    row = result.cures.row(0, named=True)
    assert row["rule"] == "leverage"
    assert row["need"] is None and row["cured"] is None and row["remaining"] is None
    assert row["traded"] == pytest.approx(2000.0, rel=1e-12)  # A = 2E: 10,000 → 8,000


GILTS = [{"asset_id": "g", "asset_class": "govt_bond", "price": 100.0, "duration": 20.0}]
# yields up about 30bp, given as the 6% fall duration alone makes of it (20·0.003), so that the
# arithmetic stays linear (exact repricing: tests/test_rates.py)
YIELDS_UP_30 = [{"select": {"all": True}, "price_return": -0.06}]
BUFFER = {"kind": "collateral_buffer", "floor_bp": 100.0}


def _gilt_fund(rules: list[dict], cure: list[str], **holder: float) -> estimator.RunResult:
    """Gilts 1,000 (duration 20) on 800 of repo; yields +30bp: x = 940, E = AE = 140, a yield
    buffer of 74.5bp, a 100bp floor needs 48 of cash (see test_collateral_buffer)."""
    mandate = estimator.Mandate(name="m", cure=cure, rules=rules)
    market = estimator.build_market(
        asset_frame(GILTS),
        holder_frame([{"holder_id": "h", "cash": -800.0, **holder}]),
        pl.DataFrame({"holder_id": ["h"], "asset_id": ["g"], "quantity": [10.0]}),
        {"m": mandate},
    )
    return estimator.run(estimator.Scenario(name="s", shocks=YIELDS_UP_30), market)


def _rows(result: estimator.RunResult) -> dict[str, tuple]:
    return {
        r["rule"]: (r["need"], r["cured"], r["remaining"])
        for r in result.cures.iter_rows(named=True)
    }


def test_a_credit_line_does_not_cure_a_yield_buffer() -> None:
    # Borrowed cash adds as much debt: E stays 140. Nothing is drawn; the fund sells 240.
    result = _gilt_fund([BUFFER], ["cash_reserve", "credit_line"], credit_line=1000.0)
    assert result.trades["trade_value"].sum() == pytest.approx(-240.0, rel=1e-9)
    assert holder(result)["cure_credit"] == 0.0
    assert _rows(result) == {"collateral_buffer": pytest.approx((48.0, 0.0, 48.0))}


def test_each_source_serves_the_rules_it_restores() -> None:
    # A 25% margin on the same book: R = 235 against AE = 140, a need of 95; the buffer needs
    # 48. The credit line (first) restores the margin only: 95 drawn, the buffer still needs
    # 48. The reserve restores both: 30 of 48. E = 170 carries 10⁴·170/(100·20) = 850 of
    # gilts: a sale of 90 (the margin then needs 212.5 ≤ AE = 265).
    margin = {"kind": "margin", "maintenance_rate": 0.25}
    result = _gilt_fund(
        [BUFFER, margin], ["credit_line", "cash_reserve"], credit_line=1000.0, cash_reserve=30.0
    )
    h = holder(result)
    assert (h["cure_credit"], h["cure_reserve"]) == pytest.approx((95.0, 30.0), rel=1e-12)
    assert result.trades["trade_value"].sum() == pytest.approx(-90.0, rel=1e-9)
    assert _rows(result) == {
        "collateral_buffer": pytest.approx((48.0, 30.0, 18.0)),
        "margin": pytest.approx((95.0, 95.0, 0.0)),
    }
    assert result.manifest.dump()["cures"] == pytest.approx({"drawn": 125.0, "short": 18.0})


def test_a_cascade_reports_every_round_and_the_trades_that_name_each_rule() -> None:
    result = estimator.run("fire_sale")
    cures = result.cures
    assert cures["round"].n_unique() > 1
    assert (cures["need"].fill_null(0.0) > 0).any()  # the retail margin calls
    # traded, recomputed from the trades table row by row
    expected: dict[tuple[str, int, str], float] = defaultdict(float)
    for hid, rnd, rules, value in result.trades.select(
        "holder_id", "round", pl.col("rules").cast(pl.String), "trade_value"
    ).iter_rows():
        for rule in rules.split(";"):
            expected[(hid, rnd, rule)] += abs(value)
    for row in cures.iter_rows(named=True):
        key = (row["holder_id"], row["round"], row["rule"])
        assert row["traded"] == pytest.approx(expected.get(key, 0.0), rel=1e-12, abs=1e-9)
        if row["need"] is not None:
            assert 0 <= row["cured"] <= row["need"] + 1e-9
            assert row["remaining"] == pytest.approx(row["need"] - row["cured"], abs=1e-9)
    # every holder that traded in a round has a row for the rule its trades name
    assert {k for k, v in expected.items() if v > 0} <= {
        (r["holder_id"], r["round"], r["rule"]) for r in cures.iter_rows(named=True)
    }

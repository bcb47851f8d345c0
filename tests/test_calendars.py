"""Trading on a calendar over a dated path: rebalancing at month or quarter end, index changes
at the close of the trading day before their effective date. Oracles: the exchange's calendar
counted by hand, and a 60/40 rebalance worked out by hand."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from oracle_kit import asset_frame, holder_frame
from pydantic import ValidationError

import estimator
from estimator.cascade import calendar_flags
from estimator.mandates import Mandate
from estimator.scenario import Scenario

D = dt.date


def test_month_and_quarter_ends_by_hand() -> None:
    days = [
        D(2020, 3, 30),
        D(2020, 3, 31),
        D(2020, 4, 1),
        D(2020, 4, 29),
        D(2020, 4, 30),
        D(2020, 5, 1),
    ]
    flags = calendar_flags(days)
    assert [f["month_end"] for f in flags.values()] == [0.0, 1.0, 0.0, 0.0, 1.0]
    assert [f["quarter_end"] for f in flags.values()] == [0.0, 1.0, 0.0, 0.0, 0.0]


def pension(calendar: str) -> estimator.Market:
    """A 60/40 pension: 60 of equity, 40 of a government bond, bands ±5%."""
    rule = {
        "kind": "rebalancing_band",
        "weights": {"equity": 0.6, "govt_bond": 0.4},
        "calendar": calendar,
    }
    assets = asset_frame(
        [
            {"asset_id": "e", "price": 1.0},
            {"asset_id": "g", "price": 1.0, "asset_class": "govt_bond", "duration": 7.0},
        ]
    )
    pos = pl.DataFrame({"holder_id": ["p", "p"], "asset_id": ["e", "g"], "quantity": [60.0, 40.0]})
    return estimator.build_market(
        assets, holder_frame([{"holder_id": "p"}]), pos, {"m": Mandate(name="m", rules=[rule])}
    )


def crash(end: str = "2020-04-30") -> Scenario:
    """Equities −20% on Monday 2 March 2020."""
    return Scenario(
        name="p",
        path={
            "start": "2020-03-02",
            "end": end,
            "moves": [{"date": "2020-03-02", "select": {"asset_ids": ["e"]}, "price_return": -0.2}],
        },
    )


@pytest.mark.parametrize(
    ("calendar", "day"),
    [("breach", D(2020, 3, 2)), ("month_end", D(2020, 3, 31)), ("quarter_end", D(2020, 3, 31))],
)
def test_a_pension_rebalances_on_its_calendar(calendar: str, day: dt.date) -> None:
    """Equities 60 → 48, V = 88, weight 54.5% < 55%: out of band. Back to 60/40 it buys
    0.6·88 − 48 = 4.8 of equity and sells 4.8 of the bond — on the day (breach) or on the last
    trading day of March, 31 March 2020, month or quarter end alike."""
    result = estimator.run(crash(), pension(calendar))
    trades = dict(zip(result.trades["asset_id"], result.trades["trade_value"], strict=True))
    assert trades == pytest.approx({"e": 4.8, "g": -4.8}, rel=1e-12)
    assert set(result.trades["date"]) == {day}


def test_an_undated_day_is_a_rebalancing_day() -> None:
    """Without a path a calendar rebalancer acts at once, as a breach one does."""
    shot = Scenario(name="s", shocks=[{"select": {"asset_ids": ["e"]}, "price_return": -0.2}])
    one = estimator.run(shot, pension("quarter_end")).trades
    other = estimator.run(shot, pension("breach")).trades
    assert one.equals(other) and one.height == 2


def index_fund() -> estimator.Market:
    """An index fund holding a and b of index X (weights ½, ½), 50 each."""
    weights = pl.DataFrame({"index_id": "X", "asset_id": ["a", "b"], "weight": [0.5, 0.5]})
    pos = pl.DataFrame({"holder_id": "h", "asset_id": ["a", "b"], "quantity": [50.0, 50.0]})
    return estimator.build_market(
        asset_frame([{"asset_id": "a", "price": 1.0}, {"asset_id": "b", "price": 1.0}]),
        holder_frame([{"holder_id": "h"}]),
        pos,
        {"m": Mandate(name="m", rules=[{"kind": "index_tracking", "index": "X"}])},
        index_weights=weights,
    )


def test_an_index_change_trades_the_close_before_its_date() -> None:
    """b deleted effective Monday 9 March 2020: the fund sells its 50 of b (and buys 50 of a)
    at the close of Friday 6 March, day 4 of a path from Monday 2 March."""
    scenario = Scenario(
        name="i",
        path={"start": "2020-03-02", "end": "2020-03-10"},
        index_changes=[
            {"index_id": "X", "asset_id": "b", "action": "delete", "effective_date": "2020-03-09"}
        ],
    )
    result = estimator.run(scenario, index_fund())
    trades = dict(zip(result.trades["asset_id"], result.trades["trade_value"], strict=True))
    assert trades == pytest.approx({"a": 50.0, "b": -50.0}, rel=1e-12)
    assert set(result.trades["date"]) == {D(2020, 3, 6)}
    assert set(result.trades["day"]) == {4}


def test_a_dated_change_needs_a_path_and_a_later_date() -> None:
    change = {"index_id": "X", "asset_id": "b", "action": "delete", "effective_date": "2020-03-09"}
    with pytest.raises(ValidationError, match="needs a dated path"):
        Scenario(name="i", index_changes=[change])
    with pytest.raises(ValidationError, match="after the path's start"):
        Scenario(name="i", path={"start": "2020-03-09"}, index_changes=[change])
    with pytest.raises(ValidationError, match="not both"):
        Scenario(
            name="i", path={"start": "2020-03-02"}, index_changes=[{**change, "effective_day": 2}]
        )


def test_between_its_dates_a_calendar_band_binds_no_solve() -> None:
    """A 60/40 fund that must also keep 10% in cash (exposure leverage ≤ 0.9) and whose
    equities fall 30% mid-month: min-cost sells what leverage asks (370 of 4,200 + 4,000 +
    500 of cash, 0.9·8,700 = 7,830 kept, 8,200 held) without buying equities back into band —
    its band waits for the month's end; every solve ends optimal."""
    rules = [
        {
            "kind": "rebalancing_band",
            "weights": {"equity": 0.6, "govt_bond": 0.4},
            "calendar": "month_end",
        },
        {"kind": "leverage", "measure": "exposure", "max": 0.9},
    ]
    assets = asset_frame(
        [
            {"asset_id": "e", "price": 100.0},
            {"asset_id": "g", "price": 100.0, "asset_class": "govt_bond"},
        ]
    )
    pos = pl.DataFrame({"holder_id": ["h", "h"], "asset_id": ["e", "g"], "quantity": [60.0, 40.0]})
    market = estimator.build_market(
        assets,
        holder_frame([{"holder_id": "h", "cash": 500.0}]),
        pos,
        {"m": Mandate(name="m", execution="min_cost", rules=rules)},
    )
    path = {
        "start": "2020-03-10",
        "end": "2020-03-11",
        "moves": [{"date": "2020-03-10", "select": {"asset_ids": ["e"]}, "price_return": -0.3}],
    }
    result = estimator.run(Scenario(name="p", path=path), market)
    assert (result.trades["trade_value"] < 0).all()  # sales only
    assert -result.trades["trade_value"].sum() == pytest.approx(8_200 - 0.9 * 8_700, rel=1e-6)
    assert result.holders["solver_status"].str.starts_with("optimal").all()


def test_a_paced_rebalance_goes_on_to_target_after_its_date() -> None:
    """A pension fund's typical horizon is 20 trading days. The quarter-end rebalance of
    ``test_a_pension_rebalances_on_its_calendar`` (4.8 of every 88, here ×10⁶) starts on 31
    March 2020 and is done in 20 equal installments of 4.8·10⁶/20 = 240,000 — prices do not
    move, so each day's share (u + e)/L − e is the same — ending on 28 April, the 20th trading
    day (Good Friday, 10 April, is closed). On the days after the 31st its equities sit back
    inside their ±5% band after the first installment, yet it goes on to target."""
    market = pension("quarter_end")
    scaled = market.positions.with_columns(pl.col("quantity") * 1e6)
    held = estimator.build_market(
        market.assets,
        market.holders.with_columns(holder_type=pl.lit("pension_fund")),
        scaled,
        market.mandates,
    )
    result = estimator.run(crash("2020-05-29"), held)
    bought = result.trades.filter(pl.col("asset_id") == "e")
    assert bought["trade_value"].to_list() == pytest.approx([240_000.0] * 20, rel=1e-9)
    assert (bought["date"].min(), bought["date"].max()) == (D(2020, 3, 31), D(2020, 4, 28))
    assert D(2020, 4, 10) not in bought["date"].to_list()
    assert result.holders.row(0, named=True)["pending"] == pytest.approx(0.0, abs=1e-6)


def ig_fund(calendar: str, execution: str) -> estimator.Market:
    """An investment-grade fund: 70 of a BBB- bond ``f``, 30 of an A bond ``a`` at 1, no cash;
    nothing below BBB- may be held."""
    rule = {"kind": "rating_floor", "floor": "BBB-", "calendar": calendar}
    assets = asset_frame(
        [
            {"asset_id": a, "price": 1.0, "asset_class": "corp_bond", "duration": 5.0,
             "rating_sp": rating, "rating_moodys": moodys}
            for a, rating, moodys in (("f", "BBB-", "Baa3"), ("a", "A", "A2"))
        ]
    )  # fmt: skip
    pos = pl.DataFrame({"holder_id": ["i", "i"], "asset_id": ["f", "a"], "quantity": [70.0, 30.0]})
    mandate = Mandate(name="m", execution=execution, rules=[rule])
    return estimator.build_market(assets, holder_frame([{"holder_id": "i"}]), pos, {"m": mandate})


def fallen_angel(end: str = "2020-04-03") -> Scenario:
    """``f`` is cut one notch, to BB+, on Wednesday 25 March 2020 (Ford's date)."""
    cut = {"date": "2020-03-25", "select": {"asset_ids": ["f"]}, "downgrade_notches": 1}
    return Scenario(name="f", path={"start": "2020-03-23", "end": end, "moves": [cut]})


@pytest.mark.parametrize("execution", ["pro_rata", "min_cost"])
@pytest.mark.parametrize(
    ("calendar", "day"), [("breach", D(2020, 3, 25)), ("month_end", D(2020, 3, 31))]
)
def test_a_fallen_angel_is_sold_on_the_funds_calendar(
    calendar: str, day: dt.date, execution: str
) -> None:
    """Below the floor with nothing tolerated, the whole 70 of ``f`` goes: on the day of the
    cut (breach), or at the month's end, Tuesday 31 March 2020, when indices drop it."""
    result = estimator.run(fallen_angel(), ig_fund(calendar, execution))
    sold = result.trades.filter(pl.col("trade_value") != 0)
    assert dict(zip(sold["asset_id"], sold["trade_value"], strict=True)) == pytest.approx(
        {"f": -70.0}, rel=1e-6
    )
    assert set(sold["date"]) == {day}


def test_between_month_ends_a_fallen_angel_is_held() -> None:
    """A path that ends on 30 March, before the month's end: the month-end fund still holds it."""
    result = estimator.run(fallen_angel(end="2020-03-30"), ig_fund("month_end", "pro_rata"))
    assert result.trades.filter(pl.col("trade_value") != 0).is_empty()


def test_between_month_ends_a_solve_leaves_the_fallen_angel_to_the_month_end() -> None:
    """At minimum cost a fund that must also cut leverage (50 borrowed on 100 of bonds, at most
    2× equity) when ``a`` falls 20% on Thursday 26 March solves for its leverage alone: the
    month-end rating floor binds no solve before 31 March, so no trade before then names it,
    and on 31 March what is left of the fallen angel goes."""
    rules = [
        {"kind": "rating_floor", "floor": "BBB-", "calendar": "month_end"},
        {"kind": "leverage", "max": 2.0},
    ]
    market = ig_fund("month_end", "min_cost")
    market = estimator.build_market(
        market.assets.drop([c for c in market.assets.columns if c.startswith("risk_g")]),
        holder_frame([{"holder_id": "i", "cash": -50.0}]),
        market.positions,
        {"m": Mandate(name="m", execution="min_cost", rules=rules)},
    )
    cut = {"date": "2020-03-25", "select": {"asset_ids": ["f"]}, "downgrade_notches": 1}
    fall = {"date": "2020-03-26", "select": {"asset_ids": ["a"]}, "price_return": -0.2}
    path = {"start": "2020-03-23", "end": "2020-04-03", "moves": [cut, fall]}
    result = estimator.run(Scenario(name="f", path=path), market)
    early = result.trades.filter(pl.col("date") < D(2020, 3, 31))
    assert not early.is_empty()  # the leverage sale
    assert not early["rules"].str.contains("rating_floor").any()
    left = (
        70.0
        + result.trades.filter((pl.col("asset_id") == "f") & (pl.col("date") < D(2020, 3, 31)))[
            "trade_quantity"
        ].sum()
    )
    on_31 = result.trades.filter((pl.col("asset_id") == "f") & (pl.col("date") == D(2020, 3, 31)))
    assert left > 0 and on_31["trade_quantity"].sum() == pytest.approx(-left, rel=1e-6)


def db_pension(calendar: str) -> estimator.Market:
    """A defined-benefit pension, 60/40 of 100 against liabilities of 95 (duration 10), that
    de-risks to 30/70 below a funding ratio of 0.9, on its ``calendar``."""
    rule = {
        "kind": "funding_ratio",
        "weights": {"equity": 0.6, "govt_bond": 0.4},
        "derisked_weights": {"equity": 0.3, "govt_bond": 0.7},
        "trigger": 0.9,
        "calendar": calendar,
    }
    assets = asset_frame(
        [
            {"asset_id": "e", "price": 1.0},
            {"asset_id": "g", "price": 1.0, "asset_class": "govt_bond", "duration": 7.0},
        ]
    )
    pos = pl.DataFrame({"holder_id": ["p", "p"], "asset_id": ["e", "g"], "quantity": [60.0, 40.0]})
    holders = holder_frame([{"holder_id": "p", "liabilities": 95.0, "liability_duration": 10.0}])
    return estimator.build_market(assets, holders, pos, {"m": Mandate(name="m", rules=[rule])})


@pytest.mark.parametrize(
    ("calendar", "day"), [("breach", D(2020, 3, 2)), ("quarter_end", D(2020, 3, 31))]
)
def test_a_db_pension_de_risks_on_its_calendar(calendar: str, day: dt.date) -> None:
    """Equities −20% and discount rates −30bp on 2 March 2020: V = 88, L = 95·e^0.03 = 97.89,
    FR = 0.899 < 0.9. To 30/70 of 88 it sells 48 − 26.4 = 21.6 of equity and buys 21.6 of the
    bond — on the day (breach) or at the quarter's end, 31 March (the funding-ratio policy is a
    rebalancing one, with its calendar)."""
    hit = {
        "date": "2020-03-02",
        "holder_ids": ["p"],
        "liability_rate_change_bp": -30,
    }
    path = crash().path
    assert path is not None
    scenario = Scenario(
        name="p", path=path.model_dump(exclude_none=True) | {"holder_shocks": [hit]}
    )
    result = estimator.run(scenario, db_pension(calendar))
    trades = dict(zip(result.trades["asset_id"], result.trades["trade_value"], strict=True))
    assert trades == pytest.approx({"e": -21.6, "g": 21.6}, rel=1e-9)
    assert set(result.trades["date"]) == {day}


def test_a_deferring_rebalancer_takes_its_share_of_the_drift_each_day() -> None:
    """A 60/40 pension rebalancing on a breach that defers 80% of each rebalance: equities
    60 → 30 on Monday 2 March 2020, V = 70, target 42. Each day it decides afresh and buys a
    fifth of the drift left, 0.2·12·0.8ᵏ = 2.4, 1.92, 1.536, …, and holds that decision through
    the day's later rounds; equities reach 42 − 12·0.8ᵏ⁺¹, back inside the 55% band (38.5) after
    the sixth purchase (38.85), so it buys on 2, 3, 4, 5, 6 and 9 March and not on the 10th
    (amounts ×10⁶: a trade under one unit of currency is dust)."""
    rule = {
        "kind": "rebalancing_band",
        "weights": {"equity": 0.6, "govt_bond": 0.4},
        "defer": 0.8,
    }
    market = pension("breach")
    deferring = estimator.build_market(
        market.assets,
        market.holders,
        market.positions.with_columns(pl.col("quantity") * 1e6),
        {"m": Mandate(name="m", rules=[rule])},
    )
    path = {
        "start": "2020-03-02",
        "end": "2020-03-10",
        "moves": [{"date": "2020-03-02", "select": {"asset_ids": ["e"]}, "price_return": -0.5}],
    }
    result = estimator.run(Scenario(name="p", path=path), deferring)
    bought = result.trades.filter(pl.col("asset_id") == "e").sort("date")
    assert bought["trade_value"].to_list() == pytest.approx(
        [2.4e6 * 0.8**k for k in range(6)], rel=1e-9
    )
    assert bought["date"].to_list() == [D(2020, 3, d) for d in (2, 3, 4, 5, 6, 9)]


def test_a_paced_deferring_rebalance_goes_on_to_its_decided_level() -> None:
    """The quarter-end rebalance of ``test_a_paced_rebalance_goes_on_to_target_after_its_date``
    with half of it deferred: the decided level is 48 + ½·4.8 (×10⁶), bought in 20 equal
    installments of 2.4·10⁶/20 = 120,000 from 31 March to 28 April — its paced trade goes on
    to the level it decided, not to target, and trades nothing more."""
    rule = {
        "kind": "rebalancing_band",
        "weights": {"equity": 0.6, "govt_bond": 0.4},
        "calendar": "quarter_end",
        "defer": 0.5,
    }
    market = pension("quarter_end")
    held = estimator.build_market(
        market.assets,
        market.holders.with_columns(holder_type=pl.lit("pension_fund")),
        market.positions.with_columns(pl.col("quantity") * 1e6),
        {"m": Mandate(name="m", rules=[rule])},
    )
    result = estimator.run(crash("2020-05-29"), held)
    bought = result.trades.filter(pl.col("asset_id") == "e")
    assert bought["trade_value"].to_list() == pytest.approx([120_000.0] * 20, rel=1e-9)
    assert (bought["date"].min(), bought["date"].max()) == (D(2020, 3, 31), D(2020, 4, 28))


def test_a_class_that_leaves_its_band_during_a_paced_deferring_rebalance_is_taken_in() -> None:
    """50/30/20 equities, government and corporate bonds (±5%) and 10 of cash, half of each
    rebalance deferred, on a pension's 20-day pace. Equities −20% on Tuesday 31 March 2020,
    the quarter's end: V = 100, equities 40% — out, the bonds at target; the purchase is paid
    from cash. On Wednesday 1 April, no rebalancing day, corporate bonds halve while the
    rebalance is under way: V = 90, 10 of corporates against 18 at target, outside their
    4.5-wide band. The class is decided there and then, to 18 − ½·8 = 14: 4 of corporates
    bought (×10⁶) from 1 April, and the holder ends compliant."""
    rule = {
        "kind": "rebalancing_band",
        "weights": {"equity": 0.5, "govt_bond": 0.3, "corp_bond": 0.2},
        "calendar": "quarter_end",
        "defer": 0.5,
    }
    assets = asset_frame(
        [
            {"asset_id": "e", "price": 1.0},
            {"asset_id": "g", "price": 1.0, "asset_class": "govt_bond", "duration": 7.0},
            {"asset_id": "c", "price": 1.0, "asset_class": "corp_bond", "duration": 5.0},
        ]
    )
    pos = pl.DataFrame(
        {"holder_id": "p", "asset_id": ["e", "g", "c"], "quantity": [50e6, 30e6, 20e6]}
    )
    market = estimator.build_market(
        assets,
        holder_frame([{"holder_id": "p", "holder_type": "pension_fund", "cash": 10e6}]),
        pos,
        {"m": Mandate(name="m", rules=[rule])},
    )
    moves = [
        {"date": "2020-03-31", "select": {"asset_ids": ["e"]}, "price_return": -0.2},
        {"date": "2020-04-01", "select": {"asset_ids": ["c"]}, "price_return": -0.5},
    ]
    path = {"start": "2020-03-31", "end": "2020-05-29", "moves": moves}
    result = estimator.run(Scenario(name="p", path=path), market)
    corporates = result.trades.filter(pl.col("asset_id") == "c")
    assert corporates["date"].min() == D(2020, 4, 1)
    assert corporates["trade_value"].sum() == pytest.approx(4e6, rel=1e-9)
    assert result.holders.row(0, named=True)["compliant"]

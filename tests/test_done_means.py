"""Done means: after the estimator's trades every holder complies, is liquidated or insolvent.

The post-trade book is re-marked here from the trades (not taken from the estimator) and the
rules are re-evaluated with their Polars expressions, not with the solver.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import polars as pl
import pytest
from oracle_kit import dealer_hedge

import estimator
from estimator import Mandate, Scenario
from estimator import book as bk
from estimator.mandates import Execution
from estimator.market import Market
from estimator.rounds.frames import with_memory
from rules import (
    RULE_KINDS,
    GammaHedge,
    IndexTracking,
    Level,
    LiquidityBuffer,
    PositionRule,
    RebalancingBand,
    Redemption,
    TrendFollowing,
    placed,
    with_position_columns,
)
from rules.testing import examples

#: Every kind's examples (:mod:`rules.testing`): a new kind with examples is tested here too.
VARIANTS: dict[str, list[dict[str, Any]]] = {kind: examples(kind) for kind in RULE_KINDS}

#: The examples' indexes (rules.testing.INDEXES).
INDEX_WEIGHTS = {"IDX": {"a0": 0.5, "a1": 0.3, "a2": 0.2}, "IDY": {"a0": 0.6, "a1": 0.4}}
#: Δw by hand. IDX: a2 deleted, a3 added at .15, so a0 and a1 share .85 in proportion
#: (.5·.85/.8, .3·.85/.8); IDY: a1 reweighted .4 → .5, a0 takes the rest. All members fall by
#: the same 15%, so the weights do not drift first.
INDEX_CHANGES = {
    "IDX": {"a0": 0.5 * 0.85 / 0.8 - 0.5, "a1": 0.3 * 0.85 / 0.8 - 0.3, "a2": -0.2, "a3": 0.15},
    "IDY": {"a0": -0.1, "a1": 0.1},
}

#: The dealers' gamma (level, dollar gamma per 1%): long at the spot, short below a flip.
DEALER_GAMMA = {"a0": [(-0.25, -400.0), (-0.1, 0.0), (0.0, 300.0)], "a4": [(0.0, -500.0)]}

SCENARIO = Scenario(
    name="stress",
    shocks=[
        {"select": {"all": True}, "price_return": -0.15, "vol_multiplier": 1.6},
        {"select": {"instruments": ["future"]}, "price_return": -0.05},
        {"select": {"all": True}, "downgrade_notches": 1},
    ],
    index_changes=[
        {"index_id": "IDX", "asset_id": "a2", "action": "delete"},
        {"index_id": "IDX", "asset_id": "a3", "action": "add", "weight": 0.15},
        {"index_id": "IDY", "asset_id": "a1", "action": "reweight", "weight": 0.5},
    ],
)


def _market(rng: np.random.Generator, mandates: dict[str, Mandate], n_holders: int) -> Market:
    n_assets = 6
    instrument = ["cash"] * 4 + ["future"] * 2
    aux = np.random.default_rng(1)  # durations and liabilities, apart from the books' draws
    assets = pl.DataFrame(
        {
            "asset_id": [f"a{i}" for i in range(n_assets)],
            "asset_class": ["equity" if i == "cash" else "equity_future" for i in instrument],
            "instrument": instrument,
            "price": rng.uniform(10, 100, n_assets),
            "multiplier": [1.0] * 4 + [10.0] * 2,
            "adv": rng.uniform(1e6, 1e8, n_assets),
            "vol": rng.uniform(0.1, 0.5, n_assets),
            "margin_rate": [None, 0.45, None, 0.55, 0.35, None],
            "half_spread_bps": rng.uniform(1, 20, n_assets),
            "duration": aux.uniform(0, 20, n_assets),
            "rating_sp": ["BBB", "BBB-", "BBB-", None, None, None],
            "rating_moodys": ["Baa3", "Baa2", "A3", "NR", None, None],
            "rating_fitch": ["BBB-", "BBB", None, None, None, None],
        }
    )
    prices = dict(zip(assets["asset_id"], assets["price"] * assets["multiplier"], strict=True))
    holders, positions = [], []
    names = sorted(mandates)
    for h in range(n_holders):
        hid = f"h{h:02d}"
        held = rng.choice(n_assets, size=int(rng.integers(2, 6)), replace=False)
        gross, value = 0.0, 0.0
        for i in sorted(held):
            q = float(rng.uniform(10, 100)) * (-1 if rng.random() < 0.2 else 1)
            positions.append({"holder_id": hid, "asset_id": f"a{i}", "quantity": q})
            gross += abs(q * prices[f"a{i}"])
            value += q * prices[f"a{i}"] if instrument[i] == "cash" else 0.0
        nt, debt = rng.uniform(0, 0.1) * gross, rng.uniform(0, 0.1) * gross
        equity = rng.uniform(0.2, 0.6) * gross
        total = equity + debt  # V = AE + N: funded 85–125% before the scenario
        holders.append(
            {
                "holder_id": hid,
                "holder_type": "fund",
                "mandate": names[h % len(names)],
                "cash": equity - value - nt + debt,
                "other_debt": debt,
                "non_tradable": nt,
                "cash_reserve": rng.uniform(0, 0.03) * gross if rng.random() < 0.5 else 0.0,
                "credit_line": rng.uniform(0, 0.03) * gross if rng.random() < 0.5 else 0.0,
                "liabilities": total / aux.uniform(0.85, 1.25),
                "liability_duration": 12.0,
            }
        )
    weights = pl.DataFrame(
        [(i, a, w) for i, ws in INDEX_WEIGHTS.items() for a, w in ws.items()],
        schema=["index_id", "asset_id", "weight"],
        orient="row",
    )
    # a dealer's position in an underlying is its hedge: none before the scenario
    hedgers = {
        h["holder_id"] for h in holders if isinstance(mandates[h["mandate"]].rules[0], GammaHedge)
    }
    positions = [
        p for p in positions if not (p["holder_id"] in hedgers and p["asset_id"] in DEALER_GAMMA)
    ]
    profile = pl.DataFrame(
        [(a, lv, g) for a, knots in DEALER_GAMMA.items() for lv, g in knots],
        schema=["asset_id", "level", "gamma"],
        orient="row",
    )
    return estimator.build_market(
        assets,
        pl.DataFrame(holders),
        pl.DataFrame(positions),
        mandates,
        index_weights=weights,
        dealer_gamma=profile,
    )


@pytest.mark.parametrize("execution", list(Execution))
@pytest.mark.parametrize("kind", RULE_KINDS)
def test_every_holder_ends_compliant_liquidated_or_insolvent(
    kind: str, execution: Execution
) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{kind}/{execution.value}".encode()))
    mandates = {
        f"{kind}{i}": Mandate(name=f"{kind}{i}", rules=[spec])
        for i, spec in enumerate(VARIANTS[kind])
    }
    market = _market(rng, mandates, n_holders=24)
    result = estimator.run(SCENARIO, market, execution=execution)
    h = result.holders.sort("holder_id")

    # at least half the cases trigger their rule
    triggered = h["triggered_rules"] != ""
    assert triggered.mean() >= 0.5, h.select("holder_id", "triggered_rules")
    assert "solver_failed" not in set(h["status"])

    # re-mark the post-trade book from the trades
    shocked = estimator.apply_scenario(market.assets, SCENARIO, index_weights=market.index_weights)
    pre = bk.holder_book(bk.position_frame(market.positions, market.assets), market.holders)
    trades = result.trades.select("holder_id", "asset_id", "trade_quantity", "trade_value")
    positions_after = (  # an index addition is bought into a position the holder did not have
        market.positions.join(trades, on=["holder_id", "asset_id"], how="full", coalesce=True)
        .with_columns(pl.col("quantity", "trade_quantity", "trade_value").fill_null(0.0))
        .join(shocked.select("asset_id", "instrument"), on="asset_id")
    )
    cash_out = positions_after.group_by("holder_id").agg(
        cash_out=pl.col("trade_value").filter(pl.col("instrument") == "cash").sum()
    )
    holders_after = (
        market.holders.drop("cash")
        .join(h.select("holder_id", "cash_before", "cure_reserve", "cure_credit"), on="holder_id")
        .join(cash_out, on="holder_id", how="left")
        .drop("reference_equity")  # none of the holders has its own: E before the shocks
        .join(
            pre.select(
                "holder_id",
                leverage_pre="leverage",
                # by the leverage rule's measures: (L⁺ + N + max(C, 0))/E and (G + N)/E
                balance_sheet_leverage_pre=(
                    pl.col("long_cash_exposure")
                    + pl.col("non_tradable")
                    + pl.col("cash").clip(lower_bound=0.0)
                )
                / pl.col("equity"),
                exposure_leverage_pre=(pl.col("gross_exposure") + pl.col("non_tradable"))
                / pl.col("equity"),
                equity_pre="equity",
                gross_exposure_pre="gross_exposure",
                reference_equity="equity",
            ),
            on="holder_id",
        )
        .with_columns(
            cash=pl.col("cash_before")
            + pl.col("cure_reserve")
            + pl.col("cure_credit")
            - pl.col("cash_out").fill_null(0.0),
            other_debt=pl.col("other_debt") + pl.col("cure_credit"),
        )
    )
    shocked_book = bk.holder_book(
        bk.position_frame(market.positions, shocked), holders_after
    ).select("holder_id", scale=pl.max_horizontal("gross_exposure", pl.col("equity").abs()))
    start = bk.position_frame(market.positions, shocked).select(
        "holder_id", "asset_id", exposure_start="exposure"
    )
    positions_after_frame = (
        bk.position_frame(
            positions_after.select(
                "holder_id", "asset_id", quantity=pl.col("quantity") + pl.col("trade_quantity")
            ),
            shocked,
        )
        .join(start, on=["holder_id", "asset_id"], how="left")
        .with_columns(pl.col("exposure_start").fill_null(0.0))
    )
    after = bk.holder_book(positions_after_frame, holders_after).join(shocked_book, on="holder_id")

    for name, mandate in mandates.items():
        rule = mandate.rules[0]
        mine = h.filter(pl.col("mandate") == name).select("holder_id", "status", "triggered_rules")
        sub = after.join(mine, on="holder_id")
        if placed(rule):  # the rule's own sums over the post-trade positions
            flagged = _flagged(rule, positions_after_frame, after)
            sums = flagged.group_by("holder_id").agg(**rule.holder_sums())
            sub = sub.join(sums, on="holder_id", how="left").with_columns(
                pl.col(list(rule.holder_sums())).fill_null(0.0)
            )
        if rule.memory():  # the decision the rule took on the shocked book, before trading
            sub = sub.join(_decided(rule, mandates, market, shocked), on="holder_id", how="left")
        sub = sub.with_columns(
            breach_restore=rule.breach(Level.RESTORE), breach_trigger=rule.breach(Level.TRIGGER)
        )
        for row in sub.iter_rows(named=True):
            if row["status"] in ("liquidated", "insolvent"):
                continue
            acted = kind in row["triggered_rules"].split(";")
            breach = row["breach_restore"] if acted else row["breach_trigger"]
            stuck = _out_of_reach(rule, row) or _holds_no_policy_class(
                rule, market.positions, market.assets, row["holder_id"]
            )
            if breach > 1e-6 * row["scale"] and stuck:
                # nothing to spread a purchase over, or every holding the rule may sell is
                # gone: reported, not hidden
                assert not h.filter(pl.col("holder_id") == row["holder_id"])["compliant"][0]
                continue
            assert breach <= 1e-6 * row["scale"], (name, row)

    if execution is Execution.PRO_RATA:
        forced = h.filter(pl.col("status").is_in(["forced", "liquidated"]))["holder_id"]
        assert forced.len() > 0
        before = bk.position_frame(market.positions, shocked)
        for hid in forced:
            held = market.positions.filter(pl.col("holder_id") == hid)
            t = result.trades.filter(pl.col("holder_id") == hid)
            rule = market.mandates[h.filter(pl.col("holder_id") == hid)["mandate"][0]].rules[0]
            if isinstance(rule, IndexTracking):
                expected = _index_trades(before.filter(pl.col("holder_id") == hid), rule.index)
                got = dict(zip(t["asset_id"], t["trade_value"], strict=True))
                assert got.keys() <= expected.keys(), (hid, got, expected)
                for asset, value in expected.items():
                    assert math.isclose(got.get(asset, 0.0), value, rel_tol=1e-9, abs_tol=1e-9)
                continue
            if isinstance(rule, GammaHedge):  # the hedge by quadrature, at the shocked price
                rho = shocked.select("asset_id", rho=pl.col("price") / pl.col("price_pre"))
                rho_of = dict(rho.iter_rows())
                x0 = dict(
                    before.filter(pl.col("holder_id") == hid)
                    .select("asset_id", "exposure")
                    .iter_rows()
                )
                got = dict(zip(t["asset_id"], t["trade_value"], strict=True))
                assert got.keys() <= DEALER_GAMMA.keys(), (hid, got)
                for asset, knots in DEALER_GAMMA.items():
                    levels, gammas = zip(*knots, strict=True)
                    x = rule.share * dealer_hedge(list(levels), list(gammas), rho_of[asset])
                    assert math.isclose(got.get(asset, 0.0), x - x0.get(asset, 0.0), rel_tol=1e-9)
                continue
            if isinstance(rule, TrendFollowing):  # E·b·s/σ on every future, by numpy
                _check_trend(rule, shocked, before, after, hid, t)
                continue
            if isinstance(rule, Redemption) and rule.sale == "waterfall":
                _check_waterfall(rule, _flagged(rule, before.filter(pl.col("holder_id") == hid)), t)
                continue
            if placed(rule):  # one common ratio per class of flagged positions
                flagged = _flagged(rule, before.filter(pl.col("holder_id") == hid))
                selected = rule.column("selected")
                if selected in flagged.columns:
                    flagged = flagged.filter(pl.col(selected))
                    assert sorted(t["asset_id"]) == sorted(flagged["asset_id"])
                by_class = t.join(flagged.select("asset_id", "asset_class"), on="asset_id")
                for _, group in by_class.group_by("asset_class"):
                    ratios = (group["trade_quantity"] / group["quantity_before"]).to_numpy()
                    assert np.ptp(ratios) <= 1e-9, (hid, ratios)
                continue
            assert t.height == held.height  # every position trades
            ratios = (t["trade_quantity"] / t["quantity_before"]).to_numpy()
            assert np.ptp(ratios) <= 1e-9, (hid, ratios)
            assert ratios[0] >= -1 - 1e-12


def _index_trades(held: pl.DataFrame, index: str) -> dict[str, float]:
    """Trades of a tracker by numpy: targets ``x/A + Δw`` floored at ``min(x/A, 0)`` (never
    short for the index's sake), renormalised, times A."""
    dw = INDEX_CHANGES[index]
    members = sorted(set(INDEX_WEIGHTS[index]) | set(dw))
    x0 = dict(zip(held["asset_id"], held["exposure"], strict=True))
    x = np.array([x0.get(a, 0.0) for a in members])
    aum = x.sum()
    held = x / aum
    target = np.maximum(held + np.array([dw.get(a, 0.0) for a in members]), np.minimum(held, 0.0))
    u = aum * target / target.sum() - x
    return {a: float(v) for a, v in zip(members, u, strict=True) if abs(v) > 1e-9 * aum}


def _holds_no_policy_class(
    rule: Any, positions: pl.DataFrame, assets: pl.DataFrame, holder_id: str
) -> bool:
    """True for a rebalancing holder missing a whole policy class."""
    if not isinstance(rule, RebalancingBand):
        return False
    held = positions.filter(pl.col("holder_id") == holder_id).join(assets, on="asset_id")
    return not set(rule.classes) <= set(held["asset_class"])


def _check_waterfall(rule: Redemption, flagged: pl.DataFrame, trades: pl.DataFrame) -> None:
    """Most liquid first: by tier, every holding sold in full up to one tier sold in part, and
    nothing after it; only long holdings of cash instruments sold."""
    sold = dict(zip(trades["asset_id"], trades["trade_value"], strict=True))
    rows = flagged.sort(rule.column("tier")).iter_rows(named=True)
    started_partial = False
    for row in rows:
        held, u = row[rule.column("held")], sold.get(row["asset_id"], 0.0)
        if held <= 0:
            assert u == 0.0, row
            continue
        share = -u / held
        assert -1e-9 <= share <= 1 + 1e-9, row
        if started_partial:
            assert share <= 1e-9, row
        elif share < 1 - 1e-9:
            started_partial = True


def _out_of_reach(rule: Any, row: dict[str, Any]) -> bool:
    """True for a liquidity buffer, or a redemption waterfall, whose rule has sold every holding
    it may sell (illiquid ones; long cash instruments)."""
    if isinstance(rule, LiquidityBuffer):
        return row[rule.illiquid] <= 1e-9 * row["scale"]
    if isinstance(rule, Redemption) and rule.trades_positions:
        return row[rule.column("sellable")] <= 1e-9 * row["scale"]
    return False


def _decided(
    rule: PositionRule, mandates: dict[str, Mandate], market: Market, shocked: pl.DataFrame
) -> pl.DataFrame:
    """The rule's memory (:meth:`rules.RuleBase.memory`) as it is set on the shocked book."""
    positions = bk.position_frame(market.positions, shocked)
    sums = _flagged(rule, positions).group_by("holder_id").agg(**rule.holder_sums())
    book = (
        bk.holder_book(positions, market.holders)
        .join(sums, on="holder_id", how="left")
        .with_columns(pl.col(list(rule.holder_sums())).fill_null(0.0))
    )
    return with_memory(book, mandates).select("holder_id", **rule.memory())


def _check_trend(
    rule: TrendFollowing,
    shocked: pl.DataFrame,
    before: pl.DataFrame,
    after: pl.DataFrame,
    hid: str,
    trades: pl.DataFrame,
) -> None:
    """Trades of a trend follower: ``E·b·s/σ − x`` on the instruments of its classes, ``s``
    the mean sign of the shocked trailing returns (the scenario's move: the windows start
    empty), ``E`` its equity (trades at market leave it)."""
    equity = after.filter(pl.col("holder_id") == hid)["equity"][0]
    x0 = dict(before.filter(pl.col("holder_id") == hid).select("asset_id", "exposure").iter_rows())
    got = dict(zip(trades["asset_id"], trades["trade_value"], strict=True))
    traded = shocked.filter(pl.col("asset_class").is_in(rule.asset_classes))
    for row in traded.iter_rows(named=True):
        signal = np.sign(row["price"] / row["price_pre"] - 1)  # every trend is the move
        size = min(rule.position_vol / row["vol"], rule.cap) if row["vol"] > 0 else 0.0
        target = max(equity, 0.0) * signal * size
        want = target - x0.get(row["asset_id"], 0.0)
        assert math.isclose(got.get(row["asset_id"], 0.0), want, rel_tol=1e-9, abs_tol=1e-6), row
    assert set(got) <= set(traded["asset_id"]), got


def _flagged(
    rule: PositionRule, positions: pl.DataFrame, book: pl.DataFrame | None = None
) -> pl.DataFrame:
    """The rule's flags on ``positions``: one account per holder row, the equity of ``book``
    (the flags may read the holder's accounts and equity)."""
    rows = positions.with_columns(**rule.asset_columns(), accounts=pl.lit(1.0))
    if book is not None:
        rows = rows.join(book.select("holder_id", "equity"), on="holder_id", how="left")
    return rows.pipe(with_position_columns, [rule])


def test_min_cost_clarabel_and_scs_agree() -> None:
    rng = np.random.default_rng(7)
    mandates = {
        "combo": Mandate(
            name="combo",
            execution="min_cost",
            rules=[
                {"kind": "vol_target", "target": 0.12, "gross_cap": 3.0},
                {"kind": "leverage", "max": 3.0, "target": 2.5},
                {"kind": "margin", "maintenance_rate": 0.3},
            ],
        )
    }
    market = _market(rng, mandates, n_holders=6)
    clarabel = estimator.run(SCENARIO, market, solver="CLARABEL")
    scs = estimator.run(
        SCENARIO,
        market,
        solver="SCS",
        solver_options={"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000},
    )
    assert (clarabel.holders["status"] == "forced").sum() >= 3
    assert clarabel.holders["status"].to_list() == scs.holders["status"].to_list()
    a, b = clarabel.assets.sort("asset_id"), scs.assets.sort("asset_id")
    assert a["asset_id"].to_list() == b["asset_id"].to_list()
    biggest = float(a["sell_value"].abs().max())
    assert biggest > 0
    for col in ("sell_value", "buy_value", "net_value"):
        for x, y in zip(a[col], b[col], strict=True):
            assert math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-6 * biggest), (col, x, y)

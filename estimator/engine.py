"""One round: evaluate every rule on the books, cure, decide, trade, re-mark.

``evaluate_round`` is a pure function of the market state (shocked assets) and the holders'
books; a cascade calls it again on the new prices and books.

Decision per holder (vectorised per mandate):

1. ``E ≤ 0`` → ``insolvent``: liquidate everything tradable, shortfall ``−E``.
2. Triggered rules (breach at the trigger level) may first be cured with cash (reserve, credit
   line, in the mandate's order) up to what the restore level needs.
3. Each rule r gives ``f_r``, the largest scale of the whole book at which it holds — at its
   restore level if triggered, at its trigger level otherwise. ``f* = min_r f_r``.
   De-risking: ``f = clip(f*, 0, 1)``; ``f* < 0`` means no sale complies → liquidate.
   Re-risking only (no rule forces a sale): ``f = max(f*, 1)``. A scale within ``NOISE`` of 1
   is 1: a cure that exactly meets the need leaves nothing to sell.
4. ``pro_rata``: ``u = (f − 1)·x``. ``min_cost``: cvxpy (:mod:`estimator.solve`) for de-risking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from estimator import book as bk
from estimator import risk
from estimator.mandates import Cure, Execution, Mandate
from estimator.solve import IMPACT_KAPPA, MIN_DAILY_VOL, ProblemCache
from rules import NOISE, Book, Level, RuleBase, Vec, book_scale

TOLERANCE = 1e-7  # relative: breaches smaller than this × scale count as compliant


class Status:
    OK = "ok"
    CURED = "cured"
    FORCED = "forced"
    LIQUIDATED = "liquidated"
    INSOLVENT = "insolvent"
    SOLVER_FAILED = "solver_failed"


@dataclass
class RoundResult:
    trades: pl.DataFrame  # holder_id, asset_id, quantity_before, trade_quantity, trade_value, rules
    holders: pl.DataFrame  # decisions, before/after metrics, status
    positions_after: pl.DataFrame
    holders_after: pl.DataFrame  # holder table with cash/debt after cures and trades
    compiled_problems: int = 0


def _names(flags: dict[str, pl.Expr]) -> pl.Expr:
    if not flags:
        return pl.lit("")
    parts = [pl.when(v).then(pl.lit(k)) for k, v in flags.items()]
    return pl.concat_list(parts).list.drop_nulls().list.join(";")


def _level_expr(rule: RuleBase, active: pl.Expr, method: str) -> pl.Expr:
    fn = getattr(rule, method)
    return pl.when(active).then(fn(Level.RESTORE)).otherwise(fn(Level.TRIGGER))


def decide(book: pl.DataFrame, mandate: Mandate) -> pl.DataFrame:
    """Decisions for the holders of one mandate (``book`` filtered to them)."""
    rules = mandate.rules
    E = pl.col(Book.EQUITY)
    down = {r.kind: r.triggered() & (E > 0) for r in rules}
    up = {r.kind: r.triggered_up() & (E > 0) for r in rules}
    before = [Book.EQUITY, Book.ACCOUNT_EQUITY, Book.GROSS_ASSETS, Book.CASH, Book.RISK, "leverage"]
    out = book.with_columns(
        *[pl.col(c).alias(f"{c}_before") for c in before],
        insolvent=E <= 0,
        **{f"{k}.down": v for k, v in down.items()},
        **{f"{k}.up": v for k, v in up.items()},
        **{f"{r.kind}.metric_before": r.metric() for r in rules},
    )
    any_down = pl.any_horizontal([pl.col(f"{k}.down") for k in down])
    any_up = pl.any_horizontal([pl.col(f"{k}.up") for k in up]) & ~any_down
    need = pl.max_horizontal(
        [
            pl.when(pl.col(f"{r.kind}.down")).then(r.cure_need(Level.RESTORE)).otherwise(0.0)
            for r in rules
        ]
    )
    out = out.with_columns(any_down=any_down, any_up=any_up, cure_need=need)
    remaining = pl.col("cure_need")
    used: dict[str, pl.Expr] = {}
    for source in mandate.cure:
        take = pl.min_horizontal(pl.col(source.value), remaining)
        used[source.value] = take
        remaining = remaining - take
    reserve = used.get(Cure.CASH_RESERVE.value, pl.lit(0.0))
    credit = used.get(Cure.CREDIT_LINE.value, pl.lit(0.0))
    out = out.with_columns(cure_reserve=reserve, cure_credit=credit).with_columns(
        **{
            Book.CASH: pl.col(Book.CASH) + pl.col("cure_reserve") + pl.col("cure_credit"),
            Book.OTHER_DEBT: pl.col(Book.OTHER_DEBT) + pl.col("cure_credit"),
        }
    )
    out = bk.restate(out)
    active = {r.kind: pl.col(f"{r.kind}.down") | pl.col(f"{r.kind}.up") for r in rules}
    out = out.with_columns(
        **{f"{r.kind}.f": _level_expr(r, active[r.kind], "fraction") for r in rules},
    )
    for r in rules:
        restore, trigger = r.holder_inputs(Level.RESTORE), r.holder_inputs(Level.TRIGGER)
        out = out.with_columns(
            pl.when(active[r.kind]).then(restore[name]).otherwise(trigger[name]).alias(name)
            for name in restore
        )
    f_star = pl.min_horizontal([pl.col(f"{r.kind}.f") for r in rules])
    f = (
        pl.when(pl.col("insolvent"))
        .then(0.0)
        .when((f_star - 1.0).abs() <= NOISE)
        .then(1.0)
        .when(pl.col("any_down"))
        .then(f_star.clip(0.0, 1.0))
        .when(pl.col("any_up"))
        .then(pl.max_horizontal(f_star, 1.0))
        .otherwise(1.0)
    )
    out = out.with_columns(f_star=f_star).with_columns(
        scale_factor=f,
        infeasible=pl.col("any_down") & (pl.col("f_star") < 0),
    )
    tight = {
        r.kind: (pl.col("scale_factor") != 1.0)
        & ~pl.col("insolvent")
        & (
            (pl.col(f"{r.kind}.f") - pl.col("f_star")).abs()
            <= 1e-9 * pl.col("f_star").abs().clip(1.0)
        )
        for r in rules
    }
    return out.with_columns(
        triggered_rules=_names({k: pl.col(f"{k}.down") | pl.col(f"{k}.up") for k in down}),
        binding_rules=_names(tight),
        mandate_execution=pl.lit(mandate.execution.value),
    )


def _min_cost(
    decisions: pl.DataFrame,
    pos: pl.DataFrame,
    mandates: dict[str, Mandate],
    cache: ProblemCache,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Trades (holder_id, asset_id, trade_value) and outcomes for holders solved with cvxpy."""
    chosen = decisions.filter(
        (pl.col("mandate_execution") == Execution.MIN_COST.value)
        & pl.col("any_down")
        & ~pl.col("infeasible")
        & ~pl.col("insolvent")
        & (pl.col("scale_factor") < 1.0)
    )
    trade_frames, outcomes = [], []
    gcols = risk.factor_columns(pos)
    daily_vol = (pl.col("vol") / np.sqrt(252)).clip(lower_bound=MIN_DAILY_VOL)
    base = pos.join(chosen.select("holder_id", "mandate"), on="holder_id", how="semi").with_columns(
        half_spread=pl.col("half_spread_bps").fill_null(5.0) / 10_000,
        impact=IMPACT_KAPPA * daily_vol / pl.col("adv").sqrt(),
        is_cash_f=pl.col("is_cash").cast(pl.Float64),
    )
    for name, mandate in sorted(mandates.items()):
        holders = chosen.filter(pl.col("mandate") == name)
        if holders.is_empty():
            continue
        extra = {k: v for r in mandate.rules for k, v in r.position_inputs().items()}
        mpos = base.join(holders.select("holder_id"), on="holder_id", how="semi").with_columns(
            **extra
        )
        mpos = mpos.sort("holder_id", "asset_id")
        scalar_names = sorted({n for r in mandate.rules for n in r.holder_inputs(Level.RESTORE)})
        vec_cols = {
            Vec.X0: "exposure",
            "half_spread": "half_spread",
            "impact": "impact",
            Vec.IS_CASH: "is_cash_f",
            Vec.RISK_SPECIFIC: risk.SPECIFIC,
            **{k: k for k in extra},
        }
        arrays = {k: mpos[c].to_numpy() for k, c in vec_cols.items()}
        rows = mpos.select(gcols).to_numpy()
        ids = mpos["holder_id"].to_numpy()
        assets = mpos["asset_id"].to_numpy()
        bounds = np.searchsorted(ids, holders["holder_id"].sort().to_numpy(), side="left")
        ends = np.searchsorted(ids, holders["holder_id"].sort().to_numpy(), side="right")
        hrows = holders.sort("holder_id").select("holder_id", Book.EQUITY, *scalar_names)
        for (hid, equity, *svals), a, b in zip(hrows.iter_rows(), bounds, ends, strict=True):
            scalars = {Book.EQUITY: equity, **dict(zip(scalar_names, svals, strict=True))}
            vectors = {k: v[a:b] for k, v in arrays.items()}
            res = cache.solve_holder(mandate.rules, scalars, vectors, rows[a:b])
            kinds = sorted({name.split(".", 1)[0] for name in res.binding})
            outcomes.append((hid, res.ok, res.status, ";".join(kinds), ";".join(res.binding)))
            if res.ok:
                trade_frames.append(
                    pl.DataFrame(
                        {"holder_id": ids[a:b], "asset_id": assets[a:b], "trade_value": res.u}
                    )
                )
    trades = (
        pl.concat(trade_frames)
        if trade_frames
        else pl.DataFrame(
            schema={"holder_id": pl.String, "asset_id": pl.String, "trade_value": pl.Float64}
        )
    )
    result = pl.DataFrame(
        outcomes,
        schema={
            "holder_id": pl.String,
            "solved": pl.Boolean,
            "solver_status": pl.String,
            "solver_binding": pl.String,
            "binding_constraints": pl.String,
        },
        orient="row",
    )
    return trades, result


def evaluate_round(
    assets: pl.DataFrame,
    holders: pl.DataFrame,
    positions: pl.DataFrame,
    mandates: dict[str, Mandate],
    *,
    execution: Execution | None = None,
    cache: ProblemCache | None = None,
) -> RoundResult:
    """Forced trades of every holder at the given prices (one round, all holders at once)."""
    if execution is not None:
        mandates = {n: m.model_copy(update={"execution": execution}) for n, m in mandates.items()}
    cache = cache or ProblemCache(k=len(risk.factor_columns(assets)))
    pos = bk.position_frame(positions, assets)
    book = bk.holder_book(pos, holders)
    parts = [
        decide(book.filter(pl.col("mandate") == name), mandate)
        for name, mandate in sorted(mandates.items())
    ]
    decisions = pl.concat([p for p in parts if p.height], how="diagonal_relaxed").sort("holder_id")
    prorata = pos.join(decisions.select("holder_id", "scale_factor"), on="holder_id").select(
        "holder_id", "asset_id", trade_value=(pl.col("scale_factor") - 1.0) * pl.col("exposure")
    )
    solved_trades, outcomes = _min_cost(decisions, pos, mandates, cache)
    decisions = decisions.join(outcomes, on="holder_id", how="left")
    solved_ok = outcomes.filter(pl.col("solved")).select("holder_id")
    trades = pl.concat([prorata.join(solved_ok, on="holder_id", how="anti"), solved_trades])
    decisions = decisions.with_columns(
        binding_rules=pl.when(pl.col("solved"))
        .then(pl.col("solver_binding"))
        .otherwise(pl.col("binding_rules"))
    )
    return _settle(pos, decisions, trades, holders, mandates, cache.compiled)


def _settle(
    pos: pl.DataFrame,
    decisions: pl.DataFrame,
    trades: pl.DataFrame,
    holders: pl.DataFrame,
    mandates: dict[str, Mandate],
    compiled: int,
) -> RoundResult:
    traded = (
        pos.join(trades, on=["holder_id", "asset_id"], how="left")
        .with_columns(pl.col("trade_value").fill_null(0.0))
        .with_columns(
            trade_quantity=pl.col("trade_value") / (pl.col("price") * pl.col("multiplier")),
        )
    )
    cash_moves = traded.group_by("holder_id").agg(
        cash_out=(pl.col("trade_value") * pl.col("is_cash")).sum()
    )
    holders_after = (
        holders.drop(Book.CASH, Book.OTHER_DEBT)
        .join(decisions.select("holder_id", Book.CASH, Book.OTHER_DEBT), on="holder_id")
        .join(cash_moves, on="holder_id", how="left")
        .with_columns(pl.col(Book.CASH) - pl.col("cash_out").fill_null(0.0))
        .drop("cash_out")
        .select(holders.columns)
        .sort("holder_id")
    )
    positions_after = traded.select(
        "holder_id", "asset_id", quantity=pl.col("quantity") + pl.col("trade_quantity")
    ).sort("holder_id", "asset_id")
    assets = pos.drop("holder_id", "quantity", "exposure", "value", "is_cash").unique("asset_id")
    after = bk.holder_book(bk.position_frame(positions_after, assets), holders_after)
    after = check_compliance(after, decisions, mandates)
    holders_out = _status(decisions, after, traded)
    trades_out = (
        traded.filter(pl.col("trade_value") != 0)
        .join(holders_out.select("holder_id", "binding_rules", "triggered_rules"), on="holder_id")
        .select(
            "holder_id",
            "asset_id",
            quantity_before=pl.col("quantity"),
            trade_quantity=pl.col("trade_quantity"),
            trade_value=pl.col("trade_value"),
            rules=pl.when(pl.col("binding_rules") != "")
            .then("binding_rules")
            .otherwise("triggered_rules"),
        )
        .sort("holder_id", "asset_id")
    )
    return RoundResult(trades_out, holders_out, positions_after, holders_after, compiled)


def check_compliance(
    after: pl.DataFrame, decisions: pl.DataFrame, mandates: dict[str, Mandate]
) -> pl.DataFrame:
    """Re-evaluate every rule on the post-trade book with the Polars expressions.

    Each rule is checked at the level it was enforced at (restore if it acted, trigger otherwise);
    ``breach_after`` is the largest remaining breach in currency, ``compliant`` allows
    :data:`TOLERANCE` × max(Σ|x| before, |E|).
    """
    levels = [c for c in decisions.columns if c.endswith((".down", ".up"))]
    scale = pl.max_horizontal(book_scale(), 1e-9)
    flags = decisions.select("holder_id", "mandate", *levels, scale=scale)
    joined = after.drop("mandate").join(flags, on="holder_id")
    parts = []
    for name, mandate in sorted(mandates.items()):
        sub = joined.filter(pl.col("mandate") == name)
        if sub.is_empty():
            continue
        breaches = [
            _level_expr(r, pl.col(f"{r.kind}.down") | pl.col(f"{r.kind}.up"), "breach")
            for r in mandate.rules
        ]
        sub = sub.with_columns(
            breach_after=pl.max_horizontal(breaches),
            **{f"{r.kind}.metric_after": r.metric() for r in mandate.rules},
        )
        parts.append(sub)
    out = pl.concat(parts, how="diagonal_relaxed")
    return out.with_columns(compliant=pl.col("breach_after") <= TOLERANCE * pl.col("scale"))


def _status(decisions: pl.DataFrame, after: pl.DataFrame, traded: pl.DataFrame) -> pl.DataFrame:
    """Holder results: status, shortfall, rules and the balance sheet before and after."""
    moved = traded.group_by("holder_id").agg(
        sold=(-pl.col("trade_value")).clip(lower_bound=0).sum(),
        bought=pl.col("trade_value").clip(lower_bound=0).sum(),
        remaining=(pl.col("exposure") + pl.col("trade_value")).abs().sum(),
    )
    keep_after = [
        Book.EQUITY,
        Book.ACCOUNT_EQUITY,
        Book.GROSS_ASSETS,
        Book.GROSS_EXPOSURE,
        Book.CASH,
        Book.RISK,
        "leverage",
        "breach_after",
        "compliant",
    ]
    metrics_after = [c for c in after.columns if c.endswith(".metric_after")]
    a = after.select(
        "holder_id",
        *[pl.col(c).alias(f"{c}_after") for c in keep_after[:-2]],
        "breach_after",
        "compliant",
        *metrics_after,
    )
    d = (
        decisions.join(a, on="holder_id")
        .join(moved, on="holder_id", how="left")
        .with_columns(pl.col("sold", "bought", "remaining").fill_null(0.0))
    )
    traded_any = (pl.col("sold") + pl.col("bought")) > 0
    all_sold = traded_any & (pl.col("remaining") <= TOLERANCE * pl.col(f"{Book.GROSS_EXPOSURE}"))
    status = (
        pl.when(pl.col("insolvent"))
        .then(pl.lit(Status.INSOLVENT))
        .when(pl.col("solved").fill_null(True).not_())
        .then(pl.lit(Status.SOLVER_FAILED))
        .when(all_sold)
        .then(pl.lit(Status.LIQUIDATED))
        .when(traded_any)
        .then(pl.lit(Status.FORCED))
        .when((pl.col("cure_reserve") + pl.col("cure_credit")) > 0)
        .then(pl.lit(Status.CURED))
        .otherwise(pl.lit(Status.OK))
    )
    shortfall = (
        pl.when(pl.col("insolvent"))
        .then(-pl.col(Book.EQUITY))
        .when(~pl.col("compliant"))
        .then(pl.col("breach_after"))
        .otherwise(0.0)
    )
    return d.with_columns(status=status, shortfall=shortfall).sort("holder_id")

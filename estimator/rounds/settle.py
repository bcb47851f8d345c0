"""Settle: apply the round's trades, re-check every rule on the books they leave, and give
each holder its status."""

from __future__ import annotations

import numpy as np
import polars as pl

from estimator import book as bk
from estimator import keys
from estimator.mandates import CURE_COLUMNS, Mandate
from estimator.rounds.contract import (
    BEFORE,
    ROW,
    SCALE_BEFORE,
    TOLERANCE,
    MandateRound,
    RoundResult,
    dust,
)
from estimator.rounds.decide import at_level
from estimator.rounds.frames import by_mandate, position_rules, rule_frames
from estimator.rounds.positions import sums_names
from estimator.status import Status
from rules import Book, RuleColumns


def fill_trades(
    out: np.ndarray, placed: np.ndarray, pos_m: pl.DataFrame, result: MandateRound
) -> None:
    """Write one mandate's trades into ``out`` and their position rules' parts into
    ``placed`` (an entry per row of the round, by row number): ``u = (f − 1)·x`` with ``f``
    its holder's common scale and no position part, except on the rows a position rule or a
    solve traded (``result.traded``; it covers all of ``pos_m`` if it has as many rows)."""
    traded = result.traded
    if traded is None or traded.height < pos_m.height:
        f = keys.broadcast(result.decisions, ["scale_factor"], pos_m.select("holder_id", ROW))
        _put(out, pos_m[ROW], (f["scale_factor"].fill_null(1.0) - 1.0) * pos_m["exposure"])
    if traded is not None:
        _put(out, traded[ROW], traded["trade_value"])
        _put(placed, traded[ROW], traded["position_value"])


def _put(out: np.ndarray, rows: pl.Series, values: pl.Series) -> None:
    """``out[rows] = values``: a copy into a slice when the rows are a run ``a, a+1, …``."""
    at = rows.to_numpy().astype(np.int64)
    if at.size and np.all(np.diff(at) == 1):
        out[at[0] : at[-1] + 1] = values.to_numpy()
    else:
        out[at] = values.to_numpy()


def _by_code(holders: pl.DataFrame, column: str, default: float, n: int) -> np.ndarray:
    """``column`` of the (coded) ``holders`` as an array indexed by holder code, ``default``
    where a holder or the column is missing."""
    out = np.full(n, default)
    if column in holders.columns:
        at = holders["holder_id"].to_numpy()
        inside = at < n
        out[at[inside]] = holders[column].fill_null(default).to_numpy()[inside]
    return out


def settle(
    decisions: pl.DataFrame,
    trades: pl.DataFrame,
    holders: pl.DataFrame,
    mandates: dict[str, Mandate],
    assets: pl.DataFrame,
    pattern: bk.Pattern,
    known: dict[str, pl.DataFrame],
    compiled: int,
) -> RoundResult:
    """Apply the trades ``u`` (``trades``: the round's rows in (holder, asset) order, with
    ``pattern`` their :class:`book.Pattern`), re-check every rule and assemble the result.

    Per holder: cash out ``Σ u·c`` (``c`` = 1 for cash instruments; futures move no cash),
    sold ``Σ max(−u, 0)``, bought ``Σ max(u, 0)`` and the gross exposure left ``Σ|x + u|``."""
    gross = pattern.sums(trades["exposure"].abs())
    gross = np.maximum(
        gross, _by_code(holders, Book.GROSS_PRE, 0.0, gross.size)
    )  # size pre-scenario
    accounts = _by_code(holders, bk.ACCOUNTS, 1.0, gross.size)
    value = pl.col("trade_value")
    rows = trades["holder_id"].to_numpy()
    size, count = pl.Series(gross[rows]), pl.Series(accounts[rows])
    traded = trades.with_columns(
        pl.when(dust(value, pl.lit(size), pl.lit(count)))
        .then(0.0)
        .otherwise(value)
        .alias("trade_value")
    ).with_columns(
        trade_quantity=pl.col("trade_value") / (pl.col("price") * pl.col("multiplier")),
        # the position rules' share of the trade: a paced or partial trade keeps it
        position_share=pl.when(value != 0).then(pl.col("position_value") / value).otherwise(0.0),
    )
    u = pl.col("trade_value")
    flows = traded.select(u, sold=(-u).clip(lower_bound=0.0), bought=u.clip(lower_bound=0.0))
    cash = bk.per_asset(assets, c=(pl.col("instrument") == "cash").cast(pl.Float64))
    moved = pl.DataFrame(
        {
            "holder_id": np.arange(pattern.n_holders, dtype=np.uint32),
            "cash_out": pattern.times(flows["trade_value"], cash)[:, 0],
            "sold": pattern.sums(flows["sold"]),
            "bought": pattern.sums(flows["bought"]),
        }
    )
    memo = [c for c in holders.columns if c.endswith(RuleColumns.MEMO)]  # as the round set it
    holders_after = (  # cures drawn are used up: a later round cannot draw them again
        holders.drop(Book.CASH, Book.OTHER_DEBT, *memo)
        .join(
            decisions.select(
                "holder_id", Book.CASH, Book.OTHER_DEBT, *CURE_COLUMNS.values(), *memo
            ),
            on="holder_id",
        )
        .join(moved.select("holder_id", "cash_out"), on="holder_id", how="left")
        .with_columns(
            pl.col(Book.CASH) - pl.col("cash_out").fill_null(0.0),
            pl.col(Book.CAPITAL_CALLED) + pl.col("cure_capital"),
            *[
                (pl.col(source) - pl.col(f"cure_{short}")).alias(source)
                for source, short in (("cash_reserve", "reserve"), ("credit_line", "credit"))
                if source in holders.columns
            ],
        )
        .select(holders.columns)
        .sort("holder_id")
    )
    pos_after = traded.with_columns(  # x⁺ = x + u; positions keep their asset columns
        quantity=pl.col("quantity") + pl.col("trade_quantity"),
        exposure=pl.col("exposure") + pl.col("trade_value"),
    )
    positions_after = (
        pos_after.select("holder_id", "asset_id", "quantity", "trade_value")
        .filter(  # not the zero rows an index tracker did not trade
            (pl.col("quantity") != 0) | (pl.col("trade_value") != 0)
        )
        .drop("trade_value")
    )
    book_after = bk.holder_book(pos_after, holders_after, assets, pattern)
    after = check_compliance(pos_after, book_after, decisions, mandates, assets, known)
    flows = moved.drop("cash_out").join(
        book_after.select("holder_id", remaining=Book.GROSS_EXPOSURE), on="holder_id"
    )
    holders_out = _status(decisions, after, flows)
    rules = holders_out.select(  # a few distinct labels over many rows
        "holder_id",
        rules=pl.when(pl.col("binding_rules") != "")
        .then("binding_rules")
        .otherwise("triggered_rules")
        .cast(pl.Categorical),
        position_rules=pl.col("position_rules").fill_null("").cast(pl.Categorical),
    )
    made = traded.select(  # the report's columns first: the filter copies only them
        "holder_id",
        "asset_id",
        quantity_before=pl.col("quantity"),
        trade_quantity=pl.col("trade_quantity"),
        trade_value=pl.col("trade_value"),
        position_share=pl.col("position_share"),
    ).filter(pl.col("trade_value") != 0)
    trades_out = keys.broadcast(rules, ["rules", "position_rules"], made)
    return RoundResult(trades_out, holders_out, positions_after, holders_after, compiled)


def check_compliance(
    pos_after: pl.DataFrame,
    after: pl.DataFrame,
    decisions: pl.DataFrame,
    mandates: dict[str, Mandate],
    assets: pl.DataFrame,
    known: dict[str, pl.DataFrame] | None = None,
) -> pl.DataFrame:
    """Re-evaluate every rule on the post-trade book with the Polars expressions.

    Each rule is checked at the level it was enforced at (restore if it acted, trigger otherwise);
    ``breach_after`` is the largest remaining breach in currency, ``compliant`` allows
    :data:`TOLERANCE` × max(Σ|x|, |E|) before the round. ``known``: per mandate,
    (holder_id, position rules' sums) already summed over those holders' rows after the round;
    the other holders' rows are summed here.
    """
    levels = [c for c in decisions.columns if c.endswith(RuleColumns.FLAGS)]
    flags = decisions.select("holder_id", *levels, scale=pl.col(SCALE_BEFORE))
    parts = []
    placed = {n for n, m in mandates.items() if position_rules(m)}
    for name, (pos_m, book_part) in by_mandate(pos_after, after, placed).items():
        mandate = mandates[name]
        book_m = (
            book_part
            if pos_m is None
            else _rule_sums(pos_m, book_part, mandate, assets, (known or {}).get(name))
        )
        sub = book_m.join(flags, on="holder_id")

        def active(kind: str, sub: pl.DataFrame = sub) -> pl.Expr:
            col = RuleColumns.of(kind)
            up = pl.col(col.up) if col.up in sub.columns else pl.lit(False)
            return pl.col(col.down).fill_null(False) | up.fill_null(False)

        breaches = [at_level(r, active(r.kind), "breach") for r in mandate.rules]
        sub = sub.with_columns(
            breach_after=pl.max_horizontal(breaches),
            **{r.col.metric_after: r.metric() for r in mandate.rules},
        )
        parts.append(sub)
    out = pl.concat(parts, how="diagonal_relaxed")
    return out.with_columns(compliant=pl.col("breach_after") <= TOLERANCE * pl.col("scale"))


def _rule_sums(
    pos_m: pl.DataFrame,
    book_m: pl.DataFrame,
    mandate: Mandate,
    assets: pl.DataFrame,
    known: pl.DataFrame | None,
) -> pl.DataFrame:
    """``book_m`` with its position rules' sums: taken from ``known`` where it has them,
    summed over ``pos_m`` (the mandate's rows) for the other holders."""
    if known is None or known.is_empty():
        return rule_frames(pos_m, book_m, mandate, assets)[1]
    reused = known.select("holder_id", *sums_names(mandate))
    done = book_m.join(reused, on="holder_id", how="inner")
    rest = book_m.join(reused, on="holder_id", how="anti")
    if rest.is_empty():
        return done
    rows = pos_m.filter(pl.col("holder_id").is_in(rest["holder_id"].implode()))
    return pl.concat([done, rule_frames(rows, rest, mandate, assets)[1]]).sort("holder_id")


def _status(decisions: pl.DataFrame, after: pl.DataFrame, moved: pl.DataFrame) -> pl.DataFrame:
    """Holder results: status, shortfall, rules and the balance sheet before and after
    (``moved``: per holder ``sold``, ``bought`` and the ``remaining`` gross exposure)."""
    metrics_after = [c for c in after.columns if c.endswith(RuleColumns.METRICS[1])]
    a = after.select(
        "holder_id",
        *[pl.col(c).alias(f"{c}_after") for c in BEFORE],
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
    gross = pl.col(f"{Book.GROSS_EXPOSURE}_before")
    all_sold = traded_any & (pl.col("remaining") <= TOLERANCE * gross)
    status = (
        pl.when(pl.col("insolvent"))
        .then(pl.lit(Status.INSOLVENT))
        .when(pl.col("solved").fill_null(True).not_())
        .then(pl.lit(Status.SOLVER_FAILED))
        .when(all_sold)
        .then(pl.lit(Status.LIQUIDATED))
        .when(traded_any)
        .then(pl.lit(Status.FORCED))
        .when(pl.sum_horizontal(list(CURE_COLUMNS.values())) > 0)
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

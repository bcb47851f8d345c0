"""One round: evaluate every rule on the books, cure, decide, trade, re-mark.

``evaluate_round`` is a pure function of the market state (shocked assets) and the holders'
books; a cascade calls it again on the new prices and books.

Decision per holder (vectorised per mandate):

1. ``E ≤ 0`` → ``insolvent``: liquidate everything tradable, shortfall ``−E``.
2. Triggered rules (breach at the trigger level) that cash restores may first be cured (reserve,
   credit line, capital call, in the mandate's order) up to what the restore level needs:
   position rules' needs before they trade, whole-book rules' after (:func:`scoped.draw_cures`).
3. Each rule r gives ``f_r``, the largest scale of the whole book at which it holds — at its
   restore level if triggered, at its trigger level otherwise. ``f* = min_r f_r``.
   De-risking: ``f = clip(f*, 0, 1)``; ``f* < 0`` means no sale complies → liquidate.
   Re-risking only (no rule forces a sale): ``f = max(f*, 1)``. A scale within ``NOISE`` of 1
   is 1: a cure that exactly meets the need leaves nothing to sell.
4. ``pro_rata``: ``u = (f − 1)·x``. ``min_cost``: cvxpy (:mod:`estimator.solve`) for de-risking.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl

from estimator import book as bk
from estimator import indices, keys, risk, scoped
from estimator.mandates import CURE_COLUMNS, Execution, Mandate
from estimator.solve import IMPACT_KAPPA, MIN_DAILY_VOL, Job, ProblemCache
from estimator.status import Status
from rules import NOISE, Book, Level, RuleBase, RuleColumns, Vec, exceeds

#: Holder column (optional): True for a holder that has started a forced sale it must finish.
COMMITTED = "committed"

_ROW = "row"  # index of a position row in the round's frame
TOLERANCE = 1e-7  # relative: breaches smaller than this × scale count as compliant
#: A trade worth less than ``max(DUST_SHARE·G, k·DUST_VALUE)``, with ``G`` the larger of its
#: holder's gross exposure ``Σ|x|`` before the trade and before the scenario and ``k`` the
#: accounts the holder row stands for, is rounding residue (what is left of a book sold in
#: full, the last sliver of a trade paced over days), not a trade: it is not made — the same
#: test for each of ``k`` identical accounts. ``DUST_VALUE`` is one unit of the base currency.
DUST_SHARE = 1e-9
DUST_VALUE = 1.0


def dust(value: pl.Expr, gross: pl.Expr, accounts: pl.Expr | None = None) -> pl.Expr:
    """Whether a trade of ``value`` by a holder of size ``gross`` (``G`` above) standing for
    ``accounts`` accounts (default one) is dust."""
    floor = DUST_VALUE if accounts is None else accounts * DUST_VALUE
    return value.abs() < pl.max_horizontal(DUST_SHARE * gross, floor)


@dataclass
class RoundResult:
    trades: pl.DataFrame  # holder_id, asset_id, quantity_before, trade_quantity, trade_value, rules
    holders: pl.DataFrame  # decisions, before/after metrics, status
    books_after: pl.DataFrame  # positions after the trades, coded if ``codes`` is given
    holders_after: pl.DataFrame  # holder table with cash/debt after cures and trades
    compiled_problems: int = 0
    codes: keys.Keys | None = None

    def decoded(self, codes: keys.Keys) -> RoundResult:
        """The result of a round on coded frames with its ids back (the books after stay
        coded until :attr:`positions_after` is asked for)."""
        return RoundResult(
            codes.decode(self.trades, order=[keys.HOLDER, keys.ASSET]),
            codes.decode(self.holders, order=[keys.HOLDER]),
            self.books_after,
            codes.decode(self.holders_after, order=[keys.HOLDER]),
            self.compiled_problems,
            codes,
        )

    @cached_property
    def positions_after(self) -> pl.DataFrame:
        """Positions after the trades (holder_id, asset_id, quantity): decoded when first
        asked for — a single round's report does not need the whole book in ids."""
        if self.codes is None:
            return self.books_after
        return self.codes.decode(self.books_after, order=[keys.HOLDER, keys.ASSET])


def _names(flags: dict[str, pl.Expr]) -> pl.Expr:
    if not flags:
        return pl.lit("")
    parts = [pl.when(v).then(pl.lit(k)) for k, v in flags.items()]
    return pl.concat_str(parts, separator=";", ignore_nulls=True)  # "" when no flag is set


def _level_expr(rule: RuleBase, active: pl.Expr, method: str) -> pl.Expr:
    fn = getattr(rule, method)
    return pl.when(active).then(fn(Level.RESTORE)).otherwise(fn(Level.TRIGGER))


def decide(book: pl.DataFrame, mandate: Mandate, *, cure_positions: bool = True) -> pl.DataFrame:
    """Decisions for the holders of one mandate (``book``: their rows, :func:`scoped.annotate`d).

    Position rules come with their trigger flags (``{kind}.down``); whole-book rules are
    evaluated here on ``book`` and give the common scale. Cures are drawn for the whole-book
    rules' needs and, with ``cure_positions``, for the position rules' too (without: they were
    drawn before the position rules traded, :func:`scoped.draw_cures`).
    """
    rules = scoped.scale_rules(mandate)
    placed = scoped.position_rules(mandate)
    E = pl.col(Book.EQUITY)
    # a holder part-way through a paced sale (the day clock) goes on to its restore level
    committed = pl.col(COMMITTED) if COMMITTED in book.columns else pl.lit(False)
    out = book.with_columns(
        insolvent=E <= 0,
        **{
            r.col.down: (r.triggered() | (committed & exceeds(r.breach(Level.RESTORE)))) & (E > 0)
            for r in rules
        },
        **{r.col.up: r.triggered_up() & (E > 0) for r in rules},
    )
    kinds = [r.kind for r in mandate.rules]
    any_down = pl.any_horizontal([pl.col(RuleColumns.of(k).down) for k in kinds])
    any_up = pl.any_horizontal([pl.lit(False), *[pl.col(r.col.up) for r in rules]])
    out = out.with_columns(
        any_down=any_down,
        any_up=any_up & ~any_down,
        positions_down=pl.any_horizontal([pl.lit(False), *[pl.col(r.col.down) for r in placed]]),
    )
    out = scoped.draw_cures(out, mandate, [*rules, *(placed if cure_positions else [])])
    active = {r.kind: pl.col(r.col.down) | pl.col(r.col.up) for r in rules}
    active |= {r.kind: pl.col(r.col.down) for r in placed}
    out = out.with_columns(
        **{r.col.f: _level_expr(r, active[r.kind], "fraction") for r in rules},
    )
    for r in mandate.rules:
        restore, trigger = r.holder_inputs(Level.RESTORE), r.holder_inputs(Level.TRIGGER)
        out = out.with_columns(
            pl.when(active[r.kind]).then(restore[name]).otherwise(trigger[name]).alias(name)
            for name in restore
        )
    f_star = pl.min_horizontal([pl.lit(float("inf")), *[pl.col(r.col.f) for r in rules]])
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
        infeasible=pl.col("any_down") & (pl.col("f_star") < 0)
        | pl.any_horizontal(
            [
                pl.lit(False),
                *[pl.col(r.col.down) & ~r.attainable(Level.RESTORE) for r in placed],
            ]
        ),
    )
    tight = {
        r.kind: (pl.col("scale_factor") != 1.0)
        & ~pl.col("insolvent")
        & ((pl.col(r.col.f) - pl.col("f_star")).abs() <= 1e-9 * pl.col("f_star").abs().clip(1.0))
        for r in rules
    }
    tight |= {r.kind: pl.col(r.col.down) & ~pl.col("insolvent") for r in placed}
    return out.with_columns(
        triggered_rules=_names({k: active[k] for k in kinds}),
        binding_rules=_names({k: tight[k] for k in kinds}),
        position_rules=_names({r.kind: tight[r.kind] for r in placed}),
        mandate_execution=pl.lit(mandate.execution.value),
    )


def _solve_mandate(
    chosen: pl.DataFrame,
    pos_m: pl.DataFrame,
    mandate: Mandate,
    cache: ProblemCache,
    assets: pl.DataFrame,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Trades (holder_id, asset_id, trade_value) and outcomes for ``chosen`` holders, by cvxpy.

    ``chosen`` are decision rows (book at the start of the round, cures applied), ``pos_m`` their
    position rows; every rule
    enters at its level (restore where it acted, trigger otherwise).
    """
    gcols = risk.factor_columns(assets)
    pos_m = scoped.with_asset_columns(
        pos_m, assets, ["adv", "vol", "half_spread_bps", risk.SPECIFIC, *gcols]
    )
    daily_vol = (pl.col("vol") / np.sqrt(252)).clip(lower_bound=MIN_DAILY_VOL)
    scalar_names = sorted({n for r in mandate.rules for n in r.holder_inputs(Level.RESTORE)})
    levels = {}
    for r in mandate.rules:
        active = pl.col(r.col.down)
        if r.col.up in chosen.columns:
            active = active | pl.col(r.col.up)
        restore, trigger = r.position_inputs(Level.RESTORE), r.position_inputs(Level.TRIGGER)
        levels |= {k: pl.when(active).then(restore[k]).otherwise(trigger[k]) for k in restore}
    flags = [c for c in chosen.columns if c.endswith(RuleColumns.FLAGS)]
    sums = [c for r in scoped.position_rules(mandate) for c in r.holder_sums()]
    reads = {n for e in levels.values() for n in e.meta.root_names()}  # e.g. a multiplier
    extra = [c for c in chosen.columns if c in reads and c not in pos_m.columns]
    holder_cols = list(
        dict.fromkeys([Book.CASH, Book.NON_TRADABLE, bk.ACCOUNTS, *flags, *sums, *extra])
    )
    mpos = (
        pos_m.join(chosen.select("holder_id", *holder_cols), on="holder_id")
        .with_columns(
            half_spread=pl.col("half_spread_bps").fill_null(5.0) / 10_000,
            # k identical accounts trading u/k each pay β·|u|^{3/2}/√k together
            impact=IMPACT_KAPPA * daily_vol / (pl.col("adv") * pl.col(bk.ACCOUNTS)).sqrt(),
            is_cash_f=pl.col("is_cash").cast(pl.Float64),
            **levels,
        )
        .sort("holder_id", "asset_id")
    )
    vec_cols = {
        Vec.X0: "exposure",
        "half_spread": "half_spread",
        "impact": "impact",
        Vec.IS_CASH: "is_cash_f",
        Vec.RISK_SPECIFIC: risk.SPECIFIC,
        **{k: k for k in levels},
    }
    arrays = {k: mpos[c].to_numpy() for k, c in vec_cols.items()}
    rows = mpos.select(gcols).to_numpy()
    ids = mpos["holder_id"].to_numpy()
    assets = mpos["asset_id"].to_numpy()
    hrows = chosen.sort("holder_id").select("holder_id", Book.EQUITY, *scalar_names)
    order = hrows["holder_id"].to_numpy()
    starts = np.searchsorted(ids, order, side="left")
    ends = np.searchsorted(ids, order, side="right")
    jobs = [
        Job(
            {Book.EQUITY: equity, **dict(zip(scalar_names, svals, strict=True))},
            {k: v[a:b] for k, v in arrays.items()},
            rows[a:b],
        )
        for (equity, *svals), a, b in zip(
            hrows.drop("holder_id").iter_rows(), starts, ends, strict=True
        )
    ]
    trade_frames, outcomes = [], []
    results = cache.solve_many(mandate.rules, jobs)
    for hid, res, a, b in zip(order, results, starts, ends, strict=True):
        kinds = sorted({name.split(".", 1)[0] for name in res.binding})
        outcomes.append((hid, res.ok, res.status, ";".join(kinds), ";".join(res.binding)))
        if res.ok:
            trade_frames.append(
                pl.DataFrame({"holder_id": ids[a:b], "asset_id": assets[a:b], "trade_value": res.u})
            )
    trades = pl.concat(trade_frames) if trade_frames else _EMPTY_TRADES
    result = pl.DataFrame(outcomes, schema=_OUTCOME_SCHEMA, orient="row")
    return trades, result


_EMPTY_TRADES = pl.DataFrame(
    schema={"holder_id": keys.CODE, "asset_id": keys.CODE, "trade_value": pl.Float64}
)
_OUTCOME_SCHEMA = {
    "holder_id": keys.CODE,
    "solved": pl.Boolean,
    "solver_status": pl.String,
    "solver_binding": pl.String,
    "binding_constraints": pl.String,
}


@dataclass
class _MandateRound:
    decisions: pl.DataFrame
    #: (holder_id, row, trade_value, position_value) for rows whose trade is not ``(f − 1)·x``
    #: — the holder's common scale of its book — because a position rule or a solve set it;
    #: ``position_value`` is the position rules' part ``x¹ − x⁰`` (0 for a solve); None if none.
    traded: pl.DataFrame | None = None
    #: (holder_id, the position rules' holder sums) after the round, for holders whose
    #: positions after the round are those the position rules left (``f = 1``, not solved):
    #: the compliance check reuses them instead of summing the same rows again.
    sums_after: pl.DataFrame | None = None


def _pro_rata(
    pos_m: pl.DataFrame | None,
    book_m: pl.DataFrame,
    holders_m: pl.DataFrame,
    mandate: Mandate,
    assets: pl.DataFrame,
) -> _MandateRound:
    """Position rules' trades, then the common scale of the re-marked book:
    ``u = f·x¹ − x⁰ = (x¹ − x⁰) + (f − 1)·x¹`` with ``x¹`` the exposures after the position
    rules (``pos_m`` is None for a mandate without position rules: then ``x¹ = x⁰``); the
    first term is the position rules' part of the trade, the second the whole-book scaling's."""
    if pos_m is None:
        return _MandateRound(decide(book_m, mandate))
    book_m, holders_m = scoped.cure_positions(book_m, holders_m, mandate)
    pos1, book1, moved = scoped.allocate(pos_m, book_m, holders_m, mandate, assets)
    decisions = decide(book1, mandate, cure_positions=False)
    decisions = (  # cash before any trade (cures included); the trades settle in _settle
        decisions.join(moved, on="holder_id", how="left")
        .with_columns(pl.col(Book.CASH) + pl.col("cash_moved").fill_null(0.0))
        .drop("cash_moved")
    )
    traded = keys.broadcast(decisions, ["scale_factor"], pos1).select(
        "holder_id",
        _ROW,
        trade_value=pl.col("scale_factor") * pl.col("exposure") - pl.col("exposure_start"),
        position_value=pl.col("exposure") - pl.col("exposure_start"),
    )
    unscaled = decisions.filter(pl.col("scale_factor") == 1.0).select("holder_id")
    sums = book1.join(unscaled, on="holder_id", how="semi").select("holder_id", *_sums(mandate))
    return _MandateRound(decisions, traded, sums)


def _sums(mandate: Mandate) -> list[str]:
    """Names of the position rules' per-holder sums."""
    return [k for r in scoped.position_rules(mandate) for k in r.holder_sums()]


def _min_cost(
    rows: pl.DataFrame,
    book_m: pl.DataFrame,
    mandate: Mandate,
    cache: ProblemCache,
    fallback: _MandateRound,
    assets: pl.DataFrame,
) -> _MandateRound:
    """cvxpy trades for holders a rule forces to sell; the pro-rata result for everyone else,
    for holders whose prescribed rule acted (:attr:`rules.RuleBase.prescribed`) or whose acting
    rules all leave no choice (:attr:`rules.RuleBase.leaves_no_choice`), and for any holder whose
    solve fails (status ``solver_failed``). ``rows``: position rows that include the mandate's
    holders."""
    decisions = decide(book_m, mandate)
    prescribed = [pl.col(r.col.down) for r in mandate.rules if r.prescribed]
    choice = [pl.col(r.col.down) for r in mandate.rules if not r.leaves_no_choice]
    chosen = decisions.filter(
        pl.col("any_down")
        & ~pl.col("infeasible")
        & ~pl.col("insolvent")
        & ((pl.col("scale_factor") < 1.0) | pl.col("positions_down"))
        & ~pl.any_horizontal([pl.lit(False), *prescribed])
        & pl.any_horizontal([pl.lit(False), *choice])
    )
    if chosen.is_empty():
        return fallback
    pos_c = keys.by_holder(rows.filter(pl.col("holder_id").is_in(chosen["holder_id"].implode())))
    pos_c = scoped.with_asset_columns(pos_c, assets, scoped.asset_reads(mandate, assets))
    trades, outcomes = _solve_mandate(chosen, pos_c, mandate, cache, assets)
    solved = outcomes.filter(pl.col("solved")).select("holder_id")
    merged = pl.concat(
        [
            decisions.join(solved, on="holder_id", how="semi"),
            fallback.decisions.join(solved, on="holder_id", how="anti"),
        ],
        how="diagonal_relaxed",
    ).join(outcomes, on="holder_id", how="left")
    merged = merged.with_columns(  # a solved trade is one, by every binding rule
        binding_rules=pl.when(pl.col("solved"))
        .then(pl.col("solver_binding"))
        .otherwise(pl.col("binding_rules")),
        position_rules=pl.when(pl.col("solved")).then(pl.lit("")).otherwise("position_rules"),
    )
    solved_rows = (
        pos_c.join(solved, on="holder_id", how="semi")
        .join(trades, on=["holder_id", "asset_id"], how="left")
        .select("holder_id", _ROW, pl.col("trade_value").fill_null(0.0), position_value=pl.lit(0.0))
    )
    if fallback.traded is not None:
        kept = fallback.traded.join(solved, on="holder_id", how="anti")
        solved_rows = pl.concat([kept, solved_rows])
    sums = fallback.sums_after
    if sums is not None:
        sums = sums.join(solved, on="holder_id", how="anti")
    return _MandateRound(merged, solved_rows, sums)


def evaluate_round(
    assets: pl.DataFrame,
    holders: pl.DataFrame,
    positions: pl.DataFrame,
    mandates: dict[str, Mandate],
    *,
    execution: Execution | None = None,
    cache: ProblemCache | None = None,
    coded: bool = False,
    timings: dict[str, float] | None = None,
) -> RoundResult:
    """Forced trades of every holder at the given prices (one round, all holders at once).

    ``coded``: the frames' ids are already codes (:mod:`estimator.keys`, as a cascade keeps
    them from round to round) and so are the result's; otherwise ids go in and come out.
    ``timings``, if given, receives the seconds of the round's two stages: ``"trades"`` (every
    rule evaluated, the trades decided) and ``"settle"`` (the trades applied, every rule
    re-checked on the post-trade book, the result assembled)."""
    started = time.perf_counter()
    if execution is not None:
        mandates = {n: m.model_copy(update={"execution": execution}) for n, m in mandates.items()}
    cache = cache or ProblemCache(k=len(risk.factor_columns(assets)))
    codes = None if coded else keys.Keys.of(holders, assets)
    if codes is not None:
        assets, holders, positions = (codes.encode(f) for f in (assets, holders, positions))
    positions = indices.pad_positions(positions, holders, mandates, assets)  # (holder, asset) order
    pos = bk.position_frame(positions, assets, columns=[]).with_columns(  # keeps the order
        pl.col(keys.HOLDER).set_sorted(), exposure_start=pl.col("exposure")
    )
    pos = pos.with_row_index(_ROW)
    pattern = bk.Pattern(pos)  # the same rows before and after the trades
    _check_pre_columns(holders, mandates)
    holders = bk.with_defaults(holders)
    book = bk.holder_book(pos, holders, assets, pattern)
    book, holders = pay_outflows(book, holders, mandates)
    rounds: dict[str, _MandateRound] = {}
    trade_value = np.zeros(pos.height)  # u, by row number
    position_value = np.zeros(pos.height)  # the position rules' part of u
    for name, (pos_part, book_part) in scoped.by_mandate(pos, book, set(mandates)).items():
        mandate = mandates[name]
        pos_m, book_m = (
            scoped.rule_frames(pos_part, book_part, mandate, assets)
            if scoped.position_rules(mandate)
            else (None, book_part)
        )
        book_m = scoped.annotate(book_m, mandate)
        holders_m = holders.join(book_m.select("holder_id"), on="holder_id", how="semi")
        result = _pro_rata(pos_m, book_m, holders_m, mandate, assets)
        if mandate.execution is Execution.MIN_COST:
            rows = pos_m if pos_m is not None else pos_part
            result = _min_cost(rows, book_m, mandate, cache, result, assets)
        rounds[name] = result
        _fill_trades(trade_value, position_value, pos_part, result)
    parts = [r.decisions for r in rounds.values()]
    decisions = pl.concat(parts, how="diagonal_relaxed").sort("holder_id")
    for col, dtype in _OUTCOME_SCHEMA.items():
        if col not in decisions.columns:
            decisions = decisions.with_columns(pl.lit(None, dtype=dtype).alias(col))
    traded = pos.drop(_ROW).with_columns(trade_value=trade_value, position_value=position_value)
    known = {n: r.sums_after for n, r in rounds.items() if r.sums_after is not None}
    decided = time.perf_counter()
    result = _settle(decisions, traded, holders, mandates, assets, pattern, known, cache.compiled)
    if timings is not None:
        timings.update(trades=decided - started, settle=time.perf_counter() - decided)
    return result if codes is None else result.decoded(codes)


def _check_pre_columns(holders: pl.DataFrame, mandates: dict[str, Mandate]) -> None:
    """Rules that read the book before the scenario need it on the holders."""
    read = {c for m in mandates.values() for r in m.rules for c in r.reads()}
    if any(m.capital_call is not None for m in mandates.values()):  # its limit is a share of E₀
        read.add(Book.EQUITY_PRE)
    missing = sorted(set(Book.PRE) & read - set(holders.columns))
    if missing:
        raise ValueError(
            f"the holders lack {', '.join(missing)}: their book before the scenario, which "
            "estimator.api.prepare adds (estimator.run does)"
        )


def pay_outflows(
    book: pl.DataFrame, holders: pl.DataFrame, mandates: dict[str, Mandate]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Pay the round's outflows (:meth:`rules.RuleBase.outflow`, e.g. redemptions) out of cash
    before any rule is evaluated: ``C ← C − R`` on the book (re-stated: ``E``, ``AE``, ``A``
    fall with it) and on the holders, whose rule state moves on (:meth:`state_after`)."""
    paying = {name: [r for r in m.rules if r.outflow() is not None] for name, m in mandates.items()}
    paying = {name: rules for name, rules in paying.items() if rules}
    if not paying:
        return book, holders
    mine = {name: pl.col("mandate") == name for name in paying}
    outflow = pl.lit(0.0)
    state: dict[str, pl.Expr] = {}
    for name, rules in paying.items():
        for rule in rules:
            outflow = outflow + pl.when(mine[name]).then(rule.outflow()).otherwise(0.0)
            for col, expr in rule.state_after().items():
                state[col] = pl.when(mine[name]).then(expr).otherwise(state.get(col, pl.col(col)))
    paid = book.select("holder_id", _paid=outflow.fill_null(0.0), **state)
    book = bk.restate(  # every expression reads the book as it was: state before the payment
        book.with_columns(**state, **{Book.CASH: pl.col(Book.CASH) - outflow.fill_null(0.0)})
    )
    holders = (
        holders.drop(*state)
        .join(paid, on="holder_id", how="left", maintain_order="left")
        .with_columns(pl.col(Book.CASH) - pl.col("_paid").fill_null(0.0))
        .select(holders.columns)
    )
    return book, holders


def _fill_trades(
    out: np.ndarray, placed: np.ndarray, pos_m: pl.DataFrame, result: _MandateRound
) -> None:
    """Write one mandate's trades into ``out`` and their position rules' parts into
    ``placed`` (an entry per row of the round, by row number): ``u = (f − 1)·x`` with ``f``
    its holder's common scale and no position part, except on the rows a position rule or a
    solve traded (``result.traded``; it covers all of ``pos_m`` if it has as many rows)."""
    traded = result.traded
    if traded is None or traded.height < pos_m.height:
        f = keys.broadcast(result.decisions, ["scale_factor"], pos_m.select("holder_id", _ROW))
        _put(out, pos_m[_ROW], (f["scale_factor"].fill_null(1.0) - 1.0) * pos_m["exposure"])
    if traded is not None:
        _put(out, traded[_ROW], traded["trade_value"])
        _put(placed, traded[_ROW], traded["position_value"])


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


def _settle(
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
    holders_after = (  # cures drawn are used up: a later round cannot draw them again
        holders.drop(Book.CASH, Book.OTHER_DEBT)
        .join(
            decisions.select("holder_id", Book.CASH, Book.OTHER_DEBT, *CURE_COLUMNS.values()),
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
    flags = decisions.select("holder_id", *levels, scale=pl.col(scoped.SCALE_BEFORE))
    parts = []
    placed = {n for n, m in mandates.items() if scoped.position_rules(m)}
    for name, (pos_m, book_part) in scoped.by_mandate(pos_after, after, placed).items():
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

        breaches = [_level_expr(r, active(r.kind), "breach") for r in mandate.rules]
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
        return scoped.rule_frames(pos_m, book_m, mandate, assets)[1]
    reused = known.select("holder_id", *_sums(mandate))
    done = book_m.join(reused, on="holder_id", how="inner")
    rest = book_m.join(reused, on="holder_id", how="anti")
    if rest.is_empty():
        return done
    rows = pos_m.filter(pl.col("holder_id").is_in(rest["holder_id"].implode()))
    return pl.concat([done, scoped.rule_frames(rows, rest, mandate, assets)[1]]).sort("holder_id")


def _status(decisions: pl.DataFrame, after: pl.DataFrame, moved: pl.DataFrame) -> pl.DataFrame:
    """Holder results: status, shortfall, rules and the balance sheet before and after
    (``moved``: per holder ``sold``, ``bought`` and the ``remaining`` gross exposure)."""
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
    metrics_after = [c for c in after.columns if c.endswith(RuleColumns.METRICS[1])]
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

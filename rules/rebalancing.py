"""``rebalancing_band`` — policy weights per asset class with tolerance bands (pensions, balanced
and target-date funds).

Math. Weights are fractions of total assets ``V = Σ value + N + C``: securities at market,
non-tradable holdings and cash (net of any account borrowing) — not of equity, which for a
pension is its surplus over liabilities. Futures are worth nothing on the balance sheet (their
P&L is settled to cash) but their notional counts in their class's exposure, as an overlay does.
Every trade at market leaves ``V`` unchanged: a security bought for cash, or a future. For each
policy class c with target weight ``t_c`` and band ``b_c``::

    X_c = Σ_{i ∈ c} x_i,      deviation  δ_c = X_c − t_c·V

* trigger: some class outside its band, ``|δ_c| > b_c·V`` — on any day (``calendar =
  "breach"``), or only on the last trading day of a month or quarter (``"month_end"``,
  ``"quarter_end"``: pensions and balanced funds rebalancing on their calendar; on a dated
  path, :mod:`estimator.path`; a day without a date counts as a rebalancing day);
* restore: every class inside its band. Classes outside it move to ``R_c = t_c·V`` (``restore =
  "target"``) or to the nearer band edge, ``R_c = clip(X_c, (t_c − b_c)V, (t_c + b_c)V)``
  (``"edge"``): class trade ``D_c = R_c − X_c``. Classes inside their band do not move, except
  to fund purchases;
* on a day clock, while a paced rebalance the rule started is under way (the holder column
  ``committed.rebalancing_band`` is 1: :meth:`rules.Book.committed_by`), every class with
  ``|δ_c| > ε`` moves to ``t_c·V`` whatever its band and the calendar (``restore =
  "target"``): a rebalance decided is finished over the holder's horizon.

Deferring share ``d`` (``defer``): on a rebalancing day a class outside its band moves only
``(1 − d)`` of the way, to ``L_c = R_c + d·(X_c − R_c)``. The decision is remembered as the
weight ``w_c = L_c/V`` (the holder column ``rebalancing_band.{c}.memo``,
:meth:`RebalancingBand.memory`), and while it stands the class's band is widened to reach it,
``[min((t_c − b_c)V, L_c), max((t_c + b_c)V, L_c)]``: the rounds after do not take a new share
of the drift left (a class outside the widened band on a rebalancing day is decided again). A
paced rebalance goes on to ``L_c`` (``"target"``) or to the widened band (``"edge"``); the
decision is forgotten at the open of a day on which no paced trade of the rule is under way.
``d = 0`` is the rule without any of this. Example: the 60/40 pension below with ``d = ½``
moves equities to ``L = 51 + ½·(45 − 51) = 48`` and bonds to ``34 + ½·(40 − 34) = 37``: it
buys 3 and sells 3, half the rebalance.

Funding: a class trade moves cash by ``κ_c·T_c``, with ``κ_c = X_c^sec / X_c`` the share of the
class held in securities (futures settle no purchase price). Net purchases ``Σ κ_c·D_c`` are paid
from cash down to zero, then by selling in-band classes that sit above target — every
overweight ``O_c = max(δ_c, 0)`` by one common share ``f ∈ [0, 1]``, so they move towards target
and stay inside their bands; anything still missing is borrowed in the account. Net sale
proceeds stay in cash.

Pro-rata, each class trade ``T_c`` is spread over the class's positions in proportion to their
holdings, ``u_i = T_c·x_i / X_c``. A policy class the holder does not hold at all has nothing to
spread a purchase over: it stays out of its band and the holder is reported not compliant.
Example: a 60/40 pension with ±5% bands whose equities fall
from 60 to 45 has V = 85 and equity weight 52.9%: both classes are out, equities are bought
``0.6·85 − 45 = 6`` and bonds sold 6, back to 60/40.

Minimal cost: per class ``lo_c ≤ Σ_{i ∈ c} x⁺_i ≤ hi_c`` — the restore interval for classes
that acted, the band for the others — and net purchases ``Σ c_i·u_i ≤ max(C, 0) + L`` with ``L``
the borrowing the pro-rata trades need (so the pro-rata trades are always feasible, and the
solve never borrows where selling an overweight class would do).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import polars as pl
from pydantic import Field, model_validator

from rules._base import NOISE, Book, Level, PositionRule, RuleColumns, book_scale
from rules._exprs import C, X
from rules._space import ProblemSpace, Vec

if TYPE_CHECKING:
    import cvxpy as cp

#: Total assets V = Σ value + N + C (see the module docstring).
TOTAL_ASSETS = pl.col(Book.ACCOUNT_EQUITY) + pl.col(Book.NON_TRADABLE)


def check_policy(weights: dict[str, float], field: str) -> None:
    """Target weights of total assets: each in [0, 1], together at most 1 (the rest is cash)."""
    bad = {c: w for c, w in weights.items() if not 0 <= w <= 1}
    if bad:
        raise ValueError(f"{field} must be between 0 and 1; got {bad}")
    total = sum(weights.values())
    if total > 1 + 1e-9:
        raise ValueError(f"{field} sum to {total:g}, more than 1 (of total assets)")


class RebalancingBand(PositionRule):
    """Keep every policy asset class within its band around the target weight."""

    examples: ClassVar[tuple[dict[str, Any], ...]] = (
        {"weights": {"equity": 0.6, "equity_future": 0.3}},
        {"weights": {"equity": 0.5}, "band": 0.1, "restore": "edge"},
        {"weights": {"equity": 0.7, "equity_future": 0.2}, "bands": {"equity_future": 0.02}},
        {"weights": {"equity": 0.6, "govt_bond": 0.4}, "defer": 0.5},
    )

    flow = "policy"

    kind: Literal["rebalancing_band"] = "rebalancing_band"

    @property
    def restores_to_trigger(self) -> bool:
        return self.restore == "edge"

    weights: dict[str, float] = Field(
        min_length=1, description="target weight t_c of total assets per asset class"
    )
    band: float = Field(0.05, ge=0, le=1, description="b: ± band around every target weight")
    bands: dict[str, float] = Field(
        default_factory=dict, description="per-class bands overriding `band`"
    )
    restore: Literal["target", "edge"] = Field(
        "target", description="classes outside their band return to target or to the band edge"
    )
    calendar: Literal["breach", "month_end", "quarter_end"] = Field(
        "breach",
        description="when a class out of band is rebalanced: on the day (breach), or on the "
        "last trading day of the month or quarter (on a dated path; an undated day counts as one)",
    )
    defer: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="d: the share of a rebalance the holder decides to leave for later "
        "(discretion): a class out of band moves (1 − d) of the way to its restore level",
    )

    buys = True
    convex_levels = (Level.TRIGGER,)

    @model_validator(mode="after")
    def _policy(self) -> Self:
        check_policy(self.weights, "weights")
        negative = {c: b for c, b in self.bands.items() if b < 0}
        if negative:
            raise ValueError(f"bands must be ≥ 0; got {negative}")
        unknown = sorted(set(self.bands) - set(self.classes))
        if unknown:
            raise ValueError(f"`bands` names classes without a weight: {unknown}")
        return self

    @property
    def classes(self) -> list[str]:
        return sorted(self.weights)

    def _target(self, c: str) -> pl.Expr:
        """``t_c``, the holder's target weight of class c."""
        return pl.lit(self.weights.get(c, 0.0))

    def _band(self, c: str) -> float:
        return self.bands.get(c, self.band)

    def _x(self, c: str) -> pl.Expr:
        return pl.col(self.column(f"x.{c}"))

    def _dev(self, c: str) -> pl.Expr:
        return self._x(c) - self._target(c) * TOTAL_ASSETS

    def _excess(self, c: str) -> pl.Expr:
        """``|δ_c| − b_c·V``: how far class c is outside its band (negative inside); with a
        deferring share, outside the band a standing decision leaves, ``[lo_c, hi_c]``
        (:meth:`_kept`)."""
        if self.defer:
            lo, hi = self._kept(c)
            return pl.max_horizontal(lo - self._x(c), self._x(c) - hi)
        return self._dev(c).abs() - self._band(c) * TOTAL_ASSETS

    # --- deferring share: the decision remembered (module docstring) ---------------------------
    def _memo(self, c: str) -> str:
        """The holder column of class c's standing decision, ``w_c`` (null: none)."""
        return self.column(f"{c}{RuleColumns.MEMO}")

    def _level(self, c: str) -> pl.Expr:
        """``L_c = w_c·V``: the level a standing decision moves class c to."""
        return pl.col(self._memo(c)) * TOTAL_ASSETS

    def _kept(self, c: str) -> tuple[pl.Expr, pl.Expr]:
        """The band widened to a standing decision's level, ``[min(lo, L_c), max(hi, L_c)]``
        (the band itself without one)."""
        V, t, b = TOTAL_ASSETS, self._target(c), self._band(c)
        lo, hi = (t - b) * V, (t + b) * V
        level = self._level(c)  # null without a decision: min/max_horizontal skip it
        return pl.min_horizontal(lo, level), pl.max_horizontal(hi, level)

    def _rebalancing_day(self) -> pl.Expr:
        return pl.lit(True) if self.calendar == "breach" else pl.col(self._day) > 0

    def _acting(self) -> pl.Expr:
        """A rebalancing day, or a paced rebalance of the rule under way (a class that leaves
        its band meanwhile is taken in, as without deferral)."""
        return self._rebalancing_day() | self._going()

    def _going(self) -> pl.Expr:
        """A paced rebalance this rule started is under way (:meth:`rules.Book.committed_by`)."""
        return pl.col(Book.committed_by(self.kind)) > 0

    def memory(self) -> dict[str, pl.Expr]:
        """With a deferring share d, each class's decision ``w_c`` (module docstring): taken
        where the class is outside its kept band on a rebalancing day (or while a paced
        rebalance goes on) and no paced rebalance holds a decision of its own,
        ``w_c = (R_c + d·(X_c − R_c))/V``; kept otherwise."""
        if not self.defer:
            return {}
        V = TOTAL_ASSETS
        going = self._going()
        out = {}
        for c in self.classes:
            x, held = self._x(c), going & pl.col(self._memo(c)).is_not_null()
            fresh = ~held & self._beyond_band(c) & self._acting() & (V > 0)
            restore = self._band_restored(c)
            decided = (restore + self.defer * (x - restore)) / V
            out[self._memo(c)] = pl.when(fresh).then(decided).otherwise(pl.col(self._memo(c)))
        return out

    def _beyond_band(self, c: str) -> pl.Expr:
        """``|δ_c| − b_c·V > ε``: class ``c`` is outside its band."""
        return self._excess(c) > NOISE * book_scale()

    def _latched(self, c: str) -> pl.Expr:
        """On a day clock, a holder part-way through a paced rebalance this rule started goes
        on to target with every class not yet there (``restore = "target"``; at the band edge
        a class back inside its band is done)."""
        if self.restore != "target":
            return pl.lit(False)
        going = self._going()
        return going & (self._dev(c).abs() > NOISE * book_scale())

    def _out(self, c: str) -> pl.Expr:
        """Class ``c`` moves: outside its band, or on its way to target. With a deferring
        share: outside its kept band on a rebalancing day (a decision taken this round is), or
        off its decided level while a paced rebalance the rule started is under way; without a
        decision (a book no round has annotated) outside its band while the rule acts."""
        if not self.defer:
            return self._beyond_band(c) | self._latched(c)
        going = self._going()
        if self.restore == "target":
            off = (self._x(c) - self._level(c)).abs() > NOISE * book_scale()
        else:
            off = self._beyond_band(c)
        return (
            pl.when(pl.col(self._memo(c)).is_null())
            .then(self._beyond_band(c) & self._acting())
            .otherwise((going & off) | (self._beyond_band(c) & self._rebalancing_day()))
        )

    def _in_class(self, c: str) -> pl.Expr:
        """Whether a position's asset is of class ``c`` (by its class number, see
        :meth:`asset_columns`: numbers compare faster than strings over millions of rows)."""
        return (pl.col(self.column("class")) == self.classes.index(c)).fill_null(False)

    # --- Polars -------------------------------------------------------------------------------
    def asset_columns(self) -> dict[str, pl.Expr]:
        """The asset's class as its number among the policy classes (null for other classes)."""
        number = {c: i for i, c in enumerate(self.classes)}
        return {
            self.column("class"): pl.col("asset_class").replace_strict(
                number, default=None, return_dtype=pl.UInt16
            )
        }

    def holder_sums(self) -> dict[str, pl.Expr]:
        sums = {}
        for c in self.classes:
            mine = self._in_class(c)
            sums[self.column(f"x.{c}")] = X.filter(mine).sum()
            sums[self.column(f"cash_x.{c}")] = X.filter(mine & pl.col("is_cash")).sum()
        return sums

    def _cash_share(self, c: str) -> pl.Expr:
        """``κ_c``: the share of a class trade that moves cash (its securities, not futures)."""
        x = self._x(c)
        return pl.when(x != 0).then(pl.col(self.column(f"cash_x.{c}")) / x).otherwise(0.0)

    def lhs(self) -> pl.Expr:
        return pl.max_horizontal([self._excess(c) for c in self.classes])

    def bound(self, level: Level) -> pl.Expr:
        return pl.lit(0.0)

    def breach(self, level: Level) -> pl.Expr:
        """Largest ``(|δ_c| − b_c·V)⁺`` (both levels: after a trade every class is in band)."""
        return pl.max_horizontal([*[self._excess(c) for c in self.classes], pl.lit(0.0)])

    def triggered(self) -> pl.Expr:
        """Some class out of its band, on a rebalancing day of the rule's ``calendar``."""
        if self.defer:
            return pl.any_horizontal([self._out(c) for c in self.classes])
        out = pl.any_horizontal([self._beyond_band(c) for c in self.classes])
        going = pl.any_horizontal([self._latched(c) for c in self.classes])
        if self.calendar == "breach":
            return out | going
        return (out & (pl.col(self._day) > 0)) | going

    @property
    def _day(self) -> str:
        """The holder column that flags the rule's rebalancing days."""
        return Book.MONTH_END if self.calendar == "month_end" else Book.QUARTER_END

    def metric(self) -> pl.Expr:
        """Largest drift from policy, ``max_c |X_c/V − t_c|``."""
        V = TOTAL_ASSETS
        return pl.when(V > 0).then(
            pl.max_horizontal([self._dev(c).abs() for c in self.classes]) / V
        )

    def attainable(self, level: Level) -> pl.Expr:
        """False where a policy class outside its band is not held at all: there is nothing
        to spread a purchase over (the module docstring), and the convex form leaves it alone."""
        stuck = [self._out(c) & (self._x(c) == 0) for c in self.classes]
        return ~pl.any_horizontal([pl.lit(False), *stuck])

    def _band_restored(self, c: str) -> pl.Expr:
        """``R_c``: the target, or the nearer band edge (module docstring)."""
        V, t, b = TOTAL_ASSETS, self._target(c), self._band(c)
        if self.restore == "target":
            return t * V
        return self._x(c).clip((t - b) * V, (t + b) * V)

    def _restored(self, c: str) -> pl.Expr:
        """Where class c moves: ``R_c``; with a standing decision, its level ``L_c``
        (``"target"``) or the nearer edge of its kept band (``"edge"``)."""
        if not self.defer:
            return self._band_restored(c)
        lo, hi = self._kept(c)
        decided = self._level(c) if self.restore == "target" else self._x(c).clip(lo, hi)
        memo = pl.col(self._memo(c))
        return pl.when(memo.is_null()).then(self._band_restored(c)).otherwise(decided)

    def _funding(self) -> tuple[dict[str, pl.Expr], pl.Expr, pl.Expr]:
        """Moves ``D_c``, the in-band overweights ``O_c`` and the share ``f`` of them sold."""
        moves = {  # a class with no holdings has nothing to spread a trade over
            c: pl.when(self._out(c) & (self._x(c) != 0))
            .then(self._restored(c) - self._x(c))
            .otherwise(0.0)
            for c in self.classes
        }
        over = {
            c: pl.when(self._out(c)).then(0.0).otherwise(self._dev(c).clip(lower_bound=0.0))
            for c in self.classes
        }
        spend = pl.sum_horizontal([moves[c] * self._cash_share(c) for c in self.classes])
        need = (spend - C.clip(lower_bound=0.0)).clip(lower_bound=0.0)
        pool = pl.sum_horizontal([over[c] * self._cash_share(c) for c in self.classes])
        sold = pl.when(pool > 0).then((need / pool).clip(0.0, 1.0)).otherwise(0.0)
        borrowed = need - sold * pool.clip(lower_bound=0.0)
        return {c: moves[c] - sold * over[c] for c in self.classes}, borrowed, sold

    def class_trades(self) -> dict[str, pl.Expr]:
        """``T_c``: the moves of out-of-band classes plus the funding sales (module docstring)."""
        return self._funding()[0]

    def borrowing(self) -> pl.Expr:
        """New account borrowing of the pro-rata trades: purchases beyond cash and overweights."""
        return self._funding()[1]

    def trade_inputs(self, level: Level) -> dict[str, pl.Expr]:
        """``T_c / X_c``: the fraction of each class's positions traded."""
        trades = self.class_trades()
        return {
            self.column(f"traded.{c}"): pl.when(self._x(c) != 0)
            .then(trades[c] / self._x(c))
            .otherwise(0.0)
            for c in self.classes
        }

    def trade(self, level: Level) -> pl.Expr:
        out = pl.lit(0.0)
        for c in self.classes:
            spread = pl.col(self.column(f"traded.{c}")) * X
            out = pl.when(self._in_class(c)).then(spread).otherwise(out)
        return out

    def holder_inputs(self, level: Level) -> dict[str, pl.Expr]:
        V = TOTAL_ASSETS
        room = C.clip(lower_bound=0.0)
        if level is Level.RESTORE:
            room = room + self.borrowing()
        inputs = {self.column("cash_room"): room}
        for c in self.classes:
            t, b = self._target(c), self._band(c)
            lo, hi = self._kept(c) if self.defer else ((t - b) * V, (t + b) * V)
            if level is Level.RESTORE:
                acted = self._out(c)
                if self.restore == "edge":
                    rlo, rhi = lo, hi
                else:  # a point: the target, or a standing decision's level
                    rlo = rhi = self._restored(c)
                lo = pl.when(acted).then(rlo).otherwise(lo)
                hi = pl.when(acted).then(rhi).otherwise(hi)
            if level is Level.TRIGGER and self.calendar != "breach":  # between its dates a
                # calendar rebalancer holds no class to its band: Σ x⁺ ≥ −G always holds, and
                # no other rule buys
                idle = ~(pl.col(self._day) > 0)
                lo = pl.when(idle).then(-pl.col(Book.GROSS_EXPOSURE)).otherwise(lo)
                hi = pl.when(idle).then(pl.max_horizontal(hi, self._x(c))).otherwise(hi)
            empty = self._x(c) == 0  # nothing held: Σ x⁺ stays 0, leave the class alone
            inputs[self.column(f"lo.{c}")] = pl.when(empty).then(0.0).otherwise(lo)
            inputs[self.column(f"hi.{c}")] = pl.when(empty).then(0.0).otherwise(hi)
        return inputs

    def position_inputs(self, level: Level) -> Mapping[str, pl.Expr]:
        return {
            self.column(f"member.{c}"): self._in_class(c).cast(pl.Float64) for c in self.classes
        }

    # --- cvxpy --------------------------------------------------------------------------------
    @property
    def shape_key(self) -> str:
        return f"{self.kind}:{','.join(self.classes)}"

    def constraints(self, p: ProblemSpace) -> dict[str, cp.Constraint]:
        out: dict[str, cp.Constraint] = {}
        for c in self.classes:
            held = p.vec(self.column(f"member.{c}"), nonneg=True) @ p.x_plus
            out[self.constraint_name(f"{c}>=lower")] = held >= p.param(self.column(f"lo.{c}"))
            out[self.constraint_name(f"{c}<=upper")] = held <= p.param(self.column(f"hi.{c}"))
        cash = p.vec(Vec.IS_CASH, nonneg=True)
        out[self.constraint_name("no_new_borrowing")] = cash @ p.u <= p.param(
            self.column("cash_room")
        )
        return out

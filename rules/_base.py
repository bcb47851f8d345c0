"""What every rule kind shares: the book vocabulary, enforcement levels and the problem space.

A rule sees a holder through the *book*: one row per holder with the balance-sheet columns named
in :class:`Book`, plus per-position vectors named in :class:`Vec` when it is compiled to cvxpy.
The estimator computes both; rules only read them, so this package never imports the estimator.

Notation (the README's table): ``x`` exposures of tradable positions, ``u`` trades (value, at the
post-shock price), ``x⁺ = x + u``, ``E`` holder equity, ``AE`` account equity, ``A`` gross assets,
``G = Σ|x|`` gross exposure, ``c`` indicator of cash instruments (futures settle to cash, so
trading them moves no cash), ``σ(x) = √(xᵀΣx)`` ex-ante volatility in currency.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, TypeGuard

import polars as pl
from pydantic import BaseModel, ConfigDict, PrivateAttr

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import cvxpy as cp

    from rules._space import LinearLimit, ProblemSpace


class Level(StrEnum):
    """Where a rule is enforced: its trigger level (must not be crossed) or its restore level."""

    TRIGGER = "trigger"
    RESTORE = "restore"


class Book:
    """Holder-level columns every rule may read (currency amounts in the base currency)."""

    EQUITY = "equity"  # E = account equity + non-tradable − other debt
    ACCOUNT_EQUITY = "account_equity"  # AE = Σ value + cash
    GROSS_ASSETS = "gross_assets"  # A = G + non-tradable + max(cash, 0)
    GROSS_EXPOSURE = "gross_exposure"  # G = Σ |x|
    CASH = "cash"
    NON_TRADABLE = "non_tradable"
    OTHER_DEBT = "other_debt"
    CASH_EXPOSURE = "cash_exposure"  # V = Σ c·x, net exposure of cash instruments
    LONG_CASH = "long_cash_exposure"  # L⁺ = Σ c·max(x, 0), long holdings of cash instruments
    RISK = "risk"  # σ(x), annualised, currency
    DURATION_EXPOSURE = "duration_exposure"  # Σ D_i x_i (D: modified duration, 0 if none)
    MARGIN_RATED = "margin_rated"  # Σ m_i |x_i| over assets that carry their own margin rate
    MARGIN_UNRATED = "margin_unrated"  # Σ |x_i| over assets without one
    INITIAL_RATED = "initial_rated"  # Σ ι_i |x_i| over assets with their own initial rate ι_i
    INITIAL_FREE = "initial_free"  # Σ |x_i| over assets without one
    INITIAL_FREE_RATED = "initial_free_rated"  # Σ m_i |x_i| over those with a maintenance rate
    INITIAL_FREE_UNRATED = "initial_free_unrated"  # Σ |x_i| over those with neither rate
    LEVERAGE_PRE = "leverage_pre"  # A / E before the scenario's shocks
    BALANCE_SHEET_LEVERAGE_PRE = "balance_sheet_leverage_pre"  # A_bs / E before the shocks
    EXPOSURE_LEVERAGE_PRE = "exposure_leverage_pre"  # (G + N) / E before the shocks
    EQUITY_PRE = "equity_pre"  # E before the scenario's shocks
    GROSS_PRE = "gross_exposure_pre"  # G before the scenario's shocks
    REFERENCE_EQUITY = "reference_equity"  # drawdowns are measured from it (default: E before)
    RESERVE_PRE = "cash_reserve_pre"  # the cash reserve before the scenario
    NON_TRADABLE_PRE = "non_tradable_pre"  # N before the scenario's holder shocks
    REDEMPTION_SHOCK = "redemption_shock"  # the scenario's extra redemption rate (0: none)
    MARGIN_MULTIPLIER = "margin_multiplier"  # the scenario's multiplier of margin (1: none)
    LIABILITIES = "liabilities"  # present value of the holder's liabilities (pensions)
    CAPITAL_CALLED = "capital_called"  # capital investors put in so far in the scenario
    MONTH_END = "month_end"  # 1 on a month's last trading day (and on an undated day), else 0
    QUARTER_END = "quarter_end"  # 1 on a quarter's last trading day (and on an undated day)
    COMMITTED = "committed"  # on a day clock: part-way through a paced trade (True)
    ACCOUNTS = "accounts"  # the identical accounts a holder row stands for (1: one)

    @staticmethod
    def committed_by(kind: str) -> str:
        """The holder column that is 1 while a paced trade a ``kind`` rule started is under
        way (on a day clock), else 0."""
        return f"committed.{kind}"

    #: Columns of the book before the scenario, added to the holders when a run prepares them.
    PRE = (
        LEVERAGE_PRE,
        BALANCE_SHEET_LEVERAGE_PRE,
        EXPOSURE_LEVERAGE_PRE,
        EQUITY_PRE,
        GROSS_PRE,
        REFERENCE_EQUITY,
        RESERVE_PRE,
    )


#: The holder key of position rows (per-holder windows in :meth:`PositionRule.position_columns`).
HOLDER = "holder_id"


#: Relative size of rounding noise. A rule acts only on a breach larger than ``NOISE · S`` with
#: ``S = max(G, |E|)`` the book's scale: a book sitting exactly at its limit (``A = L₀·E`` up to
#: one ulp) is at the limit, not over it.
NOISE = 1e-9

#: Half spread, in basis points, of an asset whose ``half_spread_bps`` is empty: the cost of
#: trading it (:class:`estimator.rounds.min_cost.CostModel`) and its liquidity tier
#: (:mod:`rules.redemption`).
HALF_SPREAD_BPS = 5.0


def book_scale() -> pl.Expr:
    """``S = max(G, |E|)``, the currency size against which rounding noise is judged."""
    return pl.max_horizontal(pl.col(Book.GROSS_EXPOSURE), pl.col(Book.EQUITY).abs())


def exceeds(amount: pl.Expr) -> pl.Expr:
    """True where a currency ``amount`` is more than rounding noise: ``amount > NOISE · S``."""
    return amount > NOISE * book_scale()


def _positive_part(expr: pl.Expr) -> pl.Expr:
    return pl.max_horizontal(expr, pl.lit(0.0))


@dataclass(frozen=True)
class RuleColumns:
    """The columns the machine keeps for one rule kind, ``{kind}.{field}``, named in one place:

    * ``down`` / ``up`` — the rule acts to de-risk / may re-risk this round (flags);
    * ``f`` — the largest common scale of the book at which it holds (:meth:`RuleBase.fraction`);
    * ``metric_before`` / ``metric_after`` — its metric before and after the round's trades;
    * ``cure_need`` / ``cured`` — the cash that would restore it, and what cures covered."""

    down: str
    up: str
    f: str
    metric_before: str
    metric_after: str
    cure_need: str
    cured: str

    #: Suffixes of the flag columns.
    FLAGS: ClassVar[tuple[str, str]] = (".down", ".up")
    #: Suffixes of the metric columns reported per holder.
    METRICS: ClassVar[tuple[str, str]] = (".metric_before", ".metric_after")
    #: Suffixes of the cure columns.
    CURES: ClassVar[tuple[str, str]] = (".cure_need", ".cured")
    #: Suffix of a rule's memory columns (:meth:`RuleBase.memory`).
    MEMO: ClassVar[str] = ".memo"

    @classmethod
    def of(cls, kind: str) -> RuleColumns:
        """The columns of rule kind ``kind``: each field's name after ``{kind}.``."""
        return cls(*(f"{kind}.{f.name}" for f in fields(cls)))


class RuleBase(BaseModel):
    """A declarative mandate rule: its Polars expressions and cvxpy constraints side by side.

    Subclasses document their math and implement :meth:`bound`, :meth:`lhs`, :meth:`fraction`,
    :meth:`triggered` and :meth:`constraints`. A rule is a constraint ``lhs(x) ≤ bound(level)``;
    :meth:`breach` is ``max(lhs − bound, 0)``, equal to cvxpy's ``constraint.violation()``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    kind: str
    _reads: frozenset[str] | None = PrivateAttr(None)
    #: Rule kinds whose forced trades include purchases (min-cost may then add to positions).
    buys: ClassVar[bool] = False
    #: Rule kinds whose convex form assumes no trade flips a position's sign.
    fixed_signs: ClassVar[bool] = False
    #: Rule kinds whose forced trades are fully prescribed (e.g. an index change): a holder whose
    #: prescribed rule acts trades them as computed under either execution style.
    prescribed: ClassVar[bool] = False
    #: Levels at which the rule's convex form (:meth:`constraints`, parameters from
    #: :meth:`holder_inputs` and :meth:`position_inputs`) is violated by exactly :meth:`breach`
    #: on the book. A rule whose restore level is stricter in the solve than in the breach
    #: (a rebalancing policy restores an acted class to target, in band is compliant) or that
    #: enters a solve only where it has not acted (a prescribed rule) lists the trigger only.
    convex_levels: ClassVar[tuple[Level, ...]] = (Level.TRIGGER, Level.RESTORE)
    #: Typical parametrisations of the kind (its fields without ``kind``): the tests that run
    #: over every rule kind run over these (:mod:`rules.testing`).
    examples: ClassVar[tuple[dict[str, Any], ...]] = ()
    #: Position rule kinds that decide the holdings of their sleeve alone (an index tracker
    #: holds what its index holds): a mandate may have no other position rule beside them.
    exclusive: ClassVar[bool] = False

    @property
    def tracked_index(self) -> str | None:
        """The index whose weights the rule's holdings follow (the market must have it, and
        the holder positions to buy into where a weight rises); None for most rules."""
        return None

    def pads(self) -> pl.Expr | None:
        """A condition on the asset table: the assets every holder under the rule has a row
        for, at zero where it holds none (a rule that may buy what the holder does not hold
        yet); None for most rules."""
        return None

    @property
    def leaves_no_choice(self) -> bool:
        """Where this rule acts, its restore level admits one set of trades, the pro-rata one
        (e.g. "no junk": every junk bond sold in full), so the minimal-cost trades are those too.
        A holder whose acting rules all leave no choice is not solved: the solve would have no
        interior to move in (its limit and "a long never goes short" pin the same positions)."""
        return False

    #: Cash sources that restore the rule when it is cured with cash (:meth:`cure_need`): cash
    #: from a reserve or from investors raises equity; a credit line raises cash and debt alike.
    cure_sources: ClassVar[frozenset[str]] = frozenset(
        {"cash_reserve", "credit_line", "capital_call"}
    )
    #: Why the rule's trades happen (:attr:`flow_kind`): ``forced`` — a limit the holder must not
    #: breach (margin, leverage limits, redemptions, rating floors, liquidity and collateral
    #: buffers, stop-losses, VaR limits); ``systematic`` — a strategy that trades on volatility,
    #: leverage or price by design (vol targets, constant leverage, dealers' gamma hedges);
    #: ``policy`` — an allocation kept
    #: to its weights (rebalancing bands, funding-ratio glide paths, index tracking).
    flow: ClassVar[str] = "forced"

    @property
    def flow_kind(self) -> str:
        """``forced``, ``systematic`` or ``policy`` (:attr:`flow`)."""
        return self.flow

    #: Holder columns the rule carries from round to round (name → value before the scenario),
    #: e.g. the share of a fund's units redeemed so far.
    state_columns: ClassVar[dict[str, float]] = {}

    @property
    def restores_to_trigger(self) -> bool:
        """True when the rule, once it acts, restores the book exactly to its trigger level (no
        hysteresis): the trades it requires then depend on the prices, not on the path that
        led there — the condition of the cascade's equilibrium mode."""
        return False

    # --- cash flows at the start of a round ---------------------------------------------------
    def outflow(self) -> pl.Expr | None:
        """Cash the holder pays out at the start of every round, before any rule is evaluated
        (e.g. redemptions), as an expression on its book; None for rules without one."""
        return None

    def state_after(self) -> dict[str, pl.Expr]:
        """The :attr:`state_columns` once the round's :meth:`outflow` is paid, on the book."""
        return {}

    def memory(self) -> dict[str, pl.Expr]:
        """Holder columns (names ending in :attr:`RuleColumns.MEMO`, null before any) the rule
        remembers from round to round: each one's value for this round, an expression on the
        book before the round's trades and on the column's value so far. The round sets them
        before any rule reads the book (:func:`estimator.rounds.frames.annotate`); on a day
        clock they are forgotten at the open of a day on which no paced trade the rule started
        is under way (:mod:`estimator.cascade.day`)."""
        return {}

    # --- Polars -------------------------------------------------------------------------------
    def lhs(self) -> pl.Expr:
        """The constrained quantity, in currency, on the book."""
        raise NotImplementedError

    def bound(self, level: Level) -> pl.Expr:
        """The right-hand side at ``level``, in currency."""
        raise NotImplementedError

    def breach(self, level: Level) -> pl.Expr:
        """How far the book is over the rule at ``level``: ``max(lhs − bound, 0)``."""
        return _positive_part(self.lhs() - self.bound(level))

    def triggered(self) -> pl.Expr:
        """True where the rule forces a de-risking trade: a breach at the trigger level beyond
        rounding noise (:func:`exceeds`)."""
        return exceeds(self.breach(Level.TRIGGER))

    def triggered_up(self) -> pl.Expr:
        """True where the rule forces a re-risking trade (a targeting rule that buys back up to
        its level when it has fallen below it): the holder then scales its book up, to
        ``max(f*, 1)`` with ``f*`` the rules' :meth:`fraction` at their restore levels."""
        return pl.lit(False)

    def fraction(self, level: Level) -> pl.Expr:
        """Largest f ≥ 0 with the rule holding at ``level`` after scaling every position by f.

        A negative value means no such f exists: even selling everything leaves a breach.
        """
        raise NotImplementedError

    def cure_need(self, level: Level) -> pl.Expr:
        """Cash that, added to the account, satisfies the rule at ``level`` (0 if none can)."""
        return pl.lit(0.0)

    @property
    def cured_with_cash(self) -> bool:
        """Whether cash brought in (a mandate's cures) can restore the rule: rules that define
        :meth:`cure_need`."""
        return type(self).cure_need is not RuleBase.cure_need

    def metric(self) -> pl.Expr:
        """A readable headline number for reports (e.g. the vol ratio)."""
        raise NotImplementedError

    def holder_inputs(self, level: Level) -> dict[str, pl.Expr]:
        """Scalar parameters of the constraints at ``level``, in currency, by parameter name."""
        return {self.bound_name: self.bound(level)}

    def position_inputs(self, level: Level) -> Mapping[str, pl.Expr]:
        """Extra per-position columns the constraints need at ``level``, as expressions on the
        positions joined with their holder's book row (weights, not currency amounts)."""
        return {}

    def reads(self) -> frozenset[str]:
        """The holder-level columns the rule's Polars expressions read (found once per rule:
        a rule is frozen)."""
        if self._reads is None:
            self._reads = self._columns_read()
        return self._reads

    def _columns_read(self) -> frozenset[str]:
        exprs = [self.lhs(), self.triggered(), self.triggered_up()]
        for level in Level:
            exprs += [self.bound(level), self.fraction(level), self.cure_need(level)]
            exprs += self.holder_inputs(level).values()
        flow = self.outflow()
        exprs += [*([flow] if flow is not None else []), *self.state_after().values()]
        exprs += self.memory().values()
        return frozenset(name for e in exprs for name in e.meta.root_names())

    # --- cvxpy --------------------------------------------------------------------------------
    @property
    def shape_key(self) -> str:
        """Rules with the same key compile to the same constraint structure."""
        return self.kind

    @property
    def risk_key(self) -> str | None:
        """The volatility estimate the rule's risk reads (:mod:`rules.estimators`), or None:
        the risk model as it stands."""
        return None

    def constraints(self, p: ProblemSpace) -> dict[str, cp.Constraint]:
        """The rule as named cvxpy constraints on ``p.x_plus``/``p.u``, parameters from ``p``.

        Scalar parameters are named after holder-level columns (e.g. ``"vol_target.bound"``)
        and vector parameters after :class:`Vec` or :meth:`position_inputs`; the estimator binds
        them by name, all currency amounts divided by one per-holder scale. By default, the
        rule's :meth:`linear_limits`.
        """
        limits = self.linear_limits()
        if limits is None:
            raise NotImplementedError(f"{self.kind} declares neither constraints nor limits")
        return {limit.name: limit.constraint(p) for limit in limits}

    def linear_limits(self) -> tuple[LinearLimit, ...] | None:
        """The rule's constraints when every one is linear in the trades (:class:`LinearLimit`),
        else None: a min-cost holder whose rules are all linear limits is solved in closed form
        (:mod:`estimator.closed_form`)."""
        return None

    @property
    def bound_name(self) -> str:
        return f"{self.kind}.bound"

    def column(self, name: str) -> str:
        """Name of one of this rule's own columns (positions or book)."""
        return f"{self.kind}.{name}"

    @property
    def col(self) -> RuleColumns:
        """The columns the machine keeps for this rule (:class:`RuleColumns`)."""
        return RuleColumns.of(self.kind)

    def constraint_name(self, relation: str) -> str:
        return f"{self.kind}.{relation}"


class PositionRule(RuleBase):
    """A rule that trades some positions, not the whole book by one common scale.

    Such a rule reads per-holder sums over flagged positions (e.g. exposure rated below a floor),
    so besides the :class:`RuleBase` expressions it declares:

    * :meth:`asset_columns` — per-asset columns, evaluated once on the asset table (e.g. a
      rating flag) and carried to the asset's positions;
    * :meth:`position_columns` — per-position columns on the position frame (the flags),
      evaluated in order, so that each may read the ones before it (see
      :func:`with_position_columns`); they may use per-holder windows, ``expr.over(HOLDER)``;
    * :meth:`holder_sums` — aggregations of those over each holder's positions, joined to the
      book under the names its :meth:`lhs` and :meth:`bound` read;
    * :meth:`trade_inputs` — per-holder numbers of the trade, evaluated once on the book;
    * :meth:`trade` — the closed-form pro-rata trade of every position, on the positions joined
      with their holder's book row and trade inputs.

    Work that depends only on the asset, or only on the holder, belongs in
    :meth:`asset_columns` or :meth:`trade_inputs`: a book has far more positions than either.

    The estimator applies position rules first, re-marks the book, then scales the whole book
    for the remaining (whole-book) rules. A subclass may trade either way, per instance
    (:attr:`trades_positions`).
    """

    @property
    def trades_positions(self) -> bool:
        """True when the rule trades positions in closed form (False: it scales the book)."""
        return True

    def asset_columns(self) -> dict[str, pl.Expr]:
        return {}

    def position_columns(self) -> dict[str, pl.Expr]:
        return {}

    def holder_sums(self) -> dict[str, pl.Expr]:
        raise NotImplementedError

    def trade_inputs(self, level: Level) -> dict[str, pl.Expr]:
        return {}

    def trade(self, level: Level) -> pl.Expr:
        """Pro-rata trade value of every position to restore the rule at ``level``."""
        raise NotImplementedError

    def fraction(self, level: Level) -> pl.Expr:
        """Whole-book scaling does not apply: the rule never limits the common scale."""
        return pl.lit(float("inf"))

    def attainable(self, level: Level) -> pl.Expr:
        """True where the rule's trades can restore it at ``level`` (on the book with the
        rule's sums). Where they cannot, the holder trades the closed form (as far as it goes)
        under either execution style and is reported not compliant."""
        return pl.lit(True)


def placed(rule: RuleBase) -> TypeGuard[PositionRule]:
    """Whether ``rule`` trades positions in closed form: a position rule that does (a
    redemption trades them only as a waterfall, see :attr:`PositionRule.trades_positions`)."""
    return isinstance(rule, PositionRule) and rule.trades_positions


def with_position_columns(frame: pl.DataFrame, rules: Sequence[PositionRule]) -> pl.DataFrame:
    """``frame`` (position rows) with the :meth:`PositionRule.position_columns` of ``rules``,
    each column evaluated after the ones before it — a window shared by several columns is
    then computed once."""
    for rule in rules:
        for name, expr in rule.position_columns().items():
            frame = frame.with_columns(expr.alias(name))
    return frame

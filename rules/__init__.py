"""The rule vocabulary: one module per rule kind, joined in the discriminated union :data:`Rule`.

The union is the registry: a mandate's ``[[rules]]`` entry is parsed by its ``kind``.
"""

from __future__ import annotations

from typing import Annotated, get_args

from pydantic import Field

from rules._base import (
    HALF_SPREAD_BPS,
    NOISE,
    Book,
    Level,
    PositionRule,
    RuleBase,
    RuleColumns,
    book_scale,
    exceeds,
    placed,
    with_position_columns,
)
from rules._space import ProblemSpace, Vec
from rules.collateral_buffer import CollateralBuffer
from rules.funding_ratio import FundingRatio
from rules.gamma_hedge import GammaHedge
from rules.index_tracking import IndexTracking, index_column
from rules.leverage import Leverage
from rules.liquidity_buffer import LiquidityBuffer
from rules.margin import Margin
from rules.rating_floor import RatingFloor
from rules.rebalancing import RebalancingBand
from rules.redemption import Redemption
from rules.stop_loss import StopLoss
from rules.trend_following import TrendFollowing
from rules.var_limit import VarLimit
from rules.vol_target import VolTarget

Rule = Annotated[
    VolTarget
    | Leverage
    | Margin
    | RatingFloor
    | RebalancingBand
    | IndexTracking
    | VarLimit
    | StopLoss
    | Redemption
    | LiquidityBuffer
    | CollateralBuffer
    | FundingRatio
    | GammaHedge
    | TrendFollowing,
    Field(discriminator="kind"),
]

#: Every rule class, in the order the README documents them.
RULE_TYPES: tuple[type[RuleBase], ...] = get_args(get_args(Rule)[0])

#: Every rule kind name.
RULE_KINDS: tuple[str, ...] = tuple(t.model_fields["kind"].default for t in RULE_TYPES)

#: The rule kinds that hold a holder to their own restore level while a paced trade they
#: started is under way (:meth:`Book.committed_by`): the position rules (whole-book rules are
#: held by the holder's ``committed`` flag, :mod:`estimator.rounds.decide`).
LATCHING_KINDS: tuple[str, ...] = tuple(
    t.model_fields["kind"].default for t in RULE_TYPES if issubclass(t, PositionRule)
)

#: Every rule's holder state columns with their values before a scenario.
STATE_COLUMNS: dict[str, float] = {k: v for t in RULE_TYPES for k, v in t.state_columns.items()}

__all__ = [
    "HALF_SPREAD_BPS",
    "LATCHING_KINDS",
    "NOISE",
    "RULE_KINDS",
    "RULE_TYPES",
    "STATE_COLUMNS",
    "Book",
    "CollateralBuffer",
    "FundingRatio",
    "GammaHedge",
    "IndexTracking",
    "Level",
    "Leverage",
    "LiquidityBuffer",
    "Margin",
    "PositionRule",
    "ProblemSpace",
    "RatingFloor",
    "RebalancingBand",
    "Redemption",
    "Rule",
    "RuleBase",
    "RuleColumns",
    "StopLoss",
    "TrendFollowing",
    "VarLimit",
    "Vec",
    "VolTarget",
    "book_scale",
    "exceeds",
    "index_column",
    "placed",
    "with_position_columns",
]

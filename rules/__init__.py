"""The rule vocabulary: one module per rule kind, joined in the discriminated union :data:`Rule`.

The union is the registry: a mandate's ``[[rules]]`` entry is parsed by its ``kind``.
"""

from __future__ import annotations

from typing import Annotated, get_args

from pydantic import Field

from rules._base import (
    NOISE,
    Book,
    Level,
    PositionRule,
    ProblemSpace,
    RuleBase,
    Vec,
    book_scale,
    exceeds,
    with_position_columns,
)
from rules.index_tracking import IndexTracking, index_column
from rules.leverage import Leverage
from rules.margin import Margin
from rules.rating_floor import RatingFloor
from rules.rebalancing import RebalancingBand
from rules.stop_loss import StopLoss
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
    | StopLoss,
    Field(discriminator="kind"),
]

#: Every rule class, in the order the README documents them.
RULE_TYPES: tuple[type[RuleBase], ...] = get_args(get_args(Rule)[0])

#: Every rule kind name.
RULE_KINDS: tuple[str, ...] = tuple(t.model_fields["kind"].default for t in RULE_TYPES)

__all__ = [
    "NOISE",
    "RULE_KINDS",
    "RULE_TYPES",
    "Book",
    "IndexTracking",
    "Level",
    "Leverage",
    "Margin",
    "PositionRule",
    "ProblemSpace",
    "RatingFloor",
    "RebalancingBand",
    "Rule",
    "RuleBase",
    "StopLoss",
    "VarLimit",
    "Vec",
    "VolTarget",
    "book_scale",
    "exceeds",
    "index_column",
    "with_position_columns",
]

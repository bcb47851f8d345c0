"""What the tests that run over every rule kind need from a kind: its examples.

Each rule class carries :attr:`~rules.RuleBase.examples`, typical parametrisations; a new kind
with examples joins those tests (the breach-equals-violation property, the done-means test)
without any change to them. The examples that track an index track one of :data:`INDEXES`,
which a test market defines.
"""

from __future__ import annotations

from typing import Any

from rules import RULE_TYPES

#: Index ids the examples may track: a test market gives them weights.
INDEXES = ("IDX", "IDY")


def examples(kind: str | None = None) -> list[dict[str, Any]]:
    """Every example rule spec (with its ``kind``), of one kind or of all in registry order."""
    out = []
    for rule_type in RULE_TYPES:
        name = rule_type.model_fields["kind"].default
        if kind is None or name == kind:
            out += [{"kind": name, **spec} for spec in rule_type.examples]
    return out

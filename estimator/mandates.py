"""Mandates: which holders a set of rules binds, and how the holder executes forced trades."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Self

import polars as pl
from pydantic import BaseModel, Field, model_validator

from estimator.bounds import MODEL_CONFIG, repeated
from estimator.errors import InputError, Problem
from estimator.execution import Execution
from estimator.toml_files import load_toml
from rules import Book, Rule, placed
from rules.estimators import EstimatedRisk


class Cure(StrEnum):
    """Sources of cash a holder may use to cure a deficiency before trading."""

    CASH_RESERVE = "cash_reserve"
    CREDIT_LINE = "credit_line"
    CAPITAL_CALL = "capital_call"


#: Per cure source, the holder result column of the cash drawn from it in the round.
CURE_COLUMNS = {
    Cure.CASH_RESERVE: "cure_reserve",
    Cure.CREDIT_LINE: "cure_credit",
    Cure.CAPITAL_CALL: "cure_capital",
}


class CapitalCall(BaseModel):
    """Investors' recapitalisation of a fund (e.g. pension schemes topping up a leveraged LDI
    fund): at most ``limit`` of the fund's equity before the scenario ``E₀`` over the whole
    scenario, at most ``per_round`` of that limit in any one round (the speed)::

        available = clip(min(limit·E₀ − called, per_round·limit·E₀), 0)

    with ``called`` the capital put in so far. It raises cash and equity; it is not debt."""

    model_config = MODEL_CONFIG

    limit: float = Field(gt=0, le=100, description="most capital over the scenario, share of E₀")
    per_round: float = Field(
        1.0, gt=0, le=1, description="share of the limit that can arrive in one round"
    )


class AppliesTo(BaseModel):
    """Holders a mandate binds when their own ``mandate`` column is empty."""

    model_config = MODEL_CONFIG

    holder_types: list[str] = Field(default_factory=list)
    holder_ids: list[str] = Field(default_factory=list)


class Mandate(BaseModel):
    """A named set of rules with an execution style."""

    model_config = MODEL_CONFIG

    name: str = Field(min_length=1, description="referenced by the holders' `mandate` column")
    description: str = ""
    applies_to: AppliesTo = Field(default_factory=AppliesTo)
    execution: Execution = Execution.PRO_RATA
    cure: list[Cure] = Field(
        default_factory=lambda: [Cure.CASH_RESERVE, Cure.CREDIT_LINE],
        description="cash sources used, in order, before trading (empty: trade at once)",
    )
    capital_call: CapitalCall | None = Field(
        None, description="investors' recapitalisation, used where `cure` lists capital_call"
    )
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_rule_per_kind(self) -> Self:
        dupes = repeated(r.kind for r in self.rules)
        if dupes:
            raise ValueError(f"at most one rule of each kind per mandate; repeated: {dupes}")
        risk_keys = {r.risk_key for r in self.rules if isinstance(r, EstimatedRisk)}
        if len(risk_keys) > 1:  # one solve reads one risk model
            raise ValueError(
                "vol_target and var_limit in one mandate estimate volatility the same way: "
                f"give them the same estimator (got {sorted(map(str, risk_keys))})"
            )
        if Cure.CAPITAL_CALL in self.cure and self.capital_call is None:
            raise ValueError("`cure` lists capital_call: add a [capital_call] table (limit, …)")
        if self.capital_call is not None and Cure.CAPITAL_CALL not in self.cure:
            raise ValueError("a [capital_call] table needs capital_call in `cure` to be used")
        trading = [r for r in self.rules if placed(r)]
        for rule in trading:
            if rule.exclusive and len(trading) > 1:
                others = sorted(r.kind for r in trading if r is not rule)
                raise ValueError(
                    f"{rule.kind} decides the holdings of its sleeve: it cannot share a "
                    f"mandate with another position rule ({others})"
                )
        return self


def load_mandates(folder: Path) -> dict[str, Mandate]:
    """Every ``*.toml`` in ``folder``, keyed by mandate name (names must be unique)."""
    if not folder.is_dir():
        raise InputError([Problem(str(folder), "mandate folder not found")])
    mandates: dict[str, Mandate] = {}
    problems: list[Problem] = []
    origin: dict[str, Path] = {}
    for path in sorted(folder.glob("*.toml")):
        try:
            mandate = load_toml(path, Mandate)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        if mandate.name in mandates:
            problems.append(
                Problem(
                    str(path), f"mandate name also used in {origin[mandate.name]}", field="name"
                )
            )
        mandates[mandate.name] = mandate
        origin[mandate.name] = path
    if problems:
        raise InputError(problems)
    if not mandates:
        raise InputError([Problem(str(folder), "no mandate files (*.toml) found")])
    return mandates


def available(source: Cure, mandate: Mandate) -> pl.Expr:
    """Cash a holder of ``mandate`` can draw from ``source`` in a round, on its holder row: its
    reserve, its undrawn credit line, or the capital investors will still put in
    (:class:`CapitalCall`)."""
    call = mandate.capital_call
    if source is not Cure.CAPITAL_CALL:
        return pl.col(source.value)
    if call is None:
        return pl.lit(0.0)
    limit = call.limit * pl.col(Book.EQUITY_PRE).clip(lower_bound=0.0)
    room = pl.min_horizontal(limit - pl.col(Book.CAPITAL_CALLED), call.per_round * limit)
    return room.clip(lower_bound=0.0)

"""One error tree. Each class says what the caller should do about it.

* :class:`ForcedFlowError` — the root: everything this library raises on purpose;
* :class:`InputError` — fix the input named in the message (CLI exit code 2);
* :class:`RunError` — the run itself failed; report it as a bug (CLI exit code 1);
* :class:`EquilibriumError` — equilibrium mode's conditions do not hold (a run falls back to
  rounds and says why in a warning).

Pydantic models raise ``ValueError`` inside their validators, as pydantic asks; loading turns
those into an :class:`InputError` naming file and field.

A holder that cannot comply is *not* an error: it is a result with a status.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where it is and what was expected."""

    file: str
    message: str
    row: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.field is not None:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"


class ForcedFlowError(Exception):
    """Anything this library raises on purpose."""


@dataclass
class InputError(ForcedFlowError):
    """Inputs are wrong. Fix each listed problem and run again; nothing was written."""

    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        head = f"{len(self.problems)} problem(s) in the inputs:"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


class RunError(ForcedFlowError):
    """The estimator failed on valid inputs; nothing was written. Please report it."""


class EquilibriumError(RunError):
    """Equilibrium mode's conditions do not hold; the message says which."""


@dataclass
class InputWarnings:
    """Non-fatal findings (e.g. a scenario selector that matches nothing)."""

    items: list[Problem] = field(default_factory=list)

    def add(self, problem: Problem) -> None:
        """Record ``problem`` once (the same finding from two places is one warning)."""
        if problem not in self.items:
            self.items.append(problem)

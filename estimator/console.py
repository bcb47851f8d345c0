"""The terminal: output streams whose reader may go away, exit codes for every failure, and
a spinner while a run goes on — what every ``forced-flow`` command shares.

Exit codes: 0 ok; 1 the run failed (nothing written; an unexpected error is reported as an
internal error, with the traceback under ``FORCED_FLOW_DEBUG=1``); 2 bad usage or bad input,
each problem naming its file, row or field (nothing written).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

import typer
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from estimator.errors import InputError, RunError

#: Set to 1 for the traceback of an internal error.
DEBUG = "FORCED_FLOW_DEBUG"


class Output(Console):
    """A stream whose reader may go away (``forced-flow … 2>&1 | head``): the rest is dropped
    and the command's exit code stands (rich would exit 1)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        closed_pipe(sys.stderr if self.stderr else sys.stdout)


out = Output()
err = Output(stderr=True, soft_wrap=True)


def problems(exc: InputError) -> None:
    err.print(
        f"[bold red]error:[/] {len(exc.problems)} problem(s) in the inputs; nothing was written."
    )
    for problem in exc.problems:
        err.print(f"  • {problem}", markup=False, highlight=False)


def closed_pipe(stream: TextIO | None = None) -> None:
    """The reader of ``stream`` (standard output by default) has gone (``forced-flow … |
    head``): send the rest nowhere, so that the interpreter's last flush does not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, (stream or sys.stdout).fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (e.g. a test's buffer)
        pass


@contextmanager
def exits() -> Iterator[None]:
    """Bad input → its problems and exit 2; a failed run → exit 1; an unexpected error → exit
    1 as an internal error (its traceback with ``FORCED_FLOW_DEBUG=1``); a closed pipe → 0."""
    try:
        yield
    except InputError as exc:
        problems(exc)
        raise typer.Exit(2) from exc
    except RunError as exc:
        err.print(f"[bold red]run failed:[/] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    except BrokenPipeError as exc:
        closed_pipe()
        raise typer.Exit(0) from exc
    except (typer.Exit, typer.Abort, typer.TyperException):
        raise
    except Exception as exc:
        if os.environ.get(DEBUG) == "1":
            raise
        err.print(
            f"[bold red]internal error:[/] {escape(type(exc).__name__)}: {escape(str(exc))}; "
            f"set {DEBUG}=1 for the traceback",
            highlight=False,
        )
        raise typer.Exit(1) from exc


def print_part(part: RenderableType) -> None:
    """``part`` on standard output; a table wider than the terminal is printed whole (the
    terminal wraps its lines) rather than with its numbers cut, and a line of text (a path)
    is not broken."""
    if not isinstance(part, Table):
        out.print(part, soft_wrap=True)
        return
    width = out.width
    try:
        out.width = max(width, part.min_width or 0)
        out.print(part, crop=False)
    finally:
        out.width = width


def show(parts: Callable[[], list[RenderableType]], warnings: Sequence[str] = ()) -> None:
    """Print a completed command's summary: a failure to print does not fail the command."""
    try:
        for part in parts():
            print_part(part)
        for warning in warnings:
            err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    except BrokenPipeError:
        closed_pipe()
    except Exception as exc:  # the reports are written; say what could not be shown
        err.print(f"warning: the summary could not be printed: {exc}", markup=False)


@contextmanager
def spinner(what: str) -> Iterator[Callable[[str], None] | None]:
    """A spinner and a pulsing bar (the number of rounds is not known ahead) on stderr that show
    what the work is at, on a terminal only (None otherwise: piped output stays clean); yields
    the function that updates its text."""
    if not err.is_terminal:
        yield None
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(what, total=None)
        yield lambda text: bar.update(task, description=escape(text))


@contextmanager
def rounds_progress() -> Iterator[Callable[[int, int], None] | None]:
    """The cascade's round and day on a spinner while a run goes on (:func:`spinner`)."""
    with spinner("estimating forced flows") as bar:
        if bar is None:
            yield None
        else:
            yield lambda rounds, day: bar(f"cascade: round {rounds}, day {day}")

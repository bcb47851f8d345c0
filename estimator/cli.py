"""The ``forced-flow`` command line: a thin typer layer over :mod:`estimator`'s public API.

Exit codes: 0 ok; 1 the run failed (nothing written; an unexpected error is reported as an
internal error, with the traceback under ``FORCED_FLOW_DEBUG=1``); 2 bad usage or bad input,
each problem naming its file, row or field (nothing written). A run whose reports are written
is a completed run: a summary that cannot be printed (a closed pipe) does not change that.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from estimator.console import closed_pipe, exits, out, rounds_progress, show, spinner
from estimator.execution import Execution
from estimator.paths import DEFAULT_MARKET, DEMO_SCENARIO, shipped_scenarios
from estimator.search import Search

if TYPE_CHECKING:
    from estimator.outcome import RunResult

app = typer.Typer(
    name="forced-flow",
    help="Estimate forced flows: who must trade under a market scenario, and how much.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


ScenarioArg = Annotated[
    str,
    typer.Argument(
        metavar="SCENARIO",
        help="A shipped scenario's name (e.g. 'march_2020') or a scenario TOML file.",
    ),
]
MarketOpt = Annotated[
    str | None,
    typer.Option(
        "--market",
        "-m",
        metavar="BUNDLE",
        help="Market bundle folder or shipped name; default: the scenario's.",
    ),
]


def _version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"forced-flow {metadata.version('forced-flow')}")
        except BrokenPipeError:
            closed_pipe()
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Estimate forced flows: who must trade under a market scenario, and how much."""


def _target(scenario: str, out_dir: Path | None, suffix: str = "") -> Path:
    """The report folder — ``out_dir``, else ``reports/<scenario name><suffix>`` — checked
    before anything runs, so that a long run does not end on a folder it may not write."""
    from estimator.inputs import read_scenario  # noqa: PLC0415 (loaded when run)
    from estimator.report import check_target  # noqa: PLC0415 (loaded when run)

    if out_dir is None:
        spec, _ = read_scenario(scenario)
        out_dir = Path("reports") / f"{spec.name}{suffix}"
    return check_target(out_dir)


OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        metavar="DIR",
        help="Report folder (new, empty, or an earlier report); default reports/<scenario>.",
    ),
]
TopOpt = Annotated[int, typer.Option(min=0, metavar="N", help="Assets shown in the summary.")]


@app.command("run")
def run_command(
    scenario: ScenarioArg,
    market: MarketOpt = None,
    out_dir: OutOpt = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", metavar="csv|parquet", help="csv or parquet.")
    ] = "csv",
    execution: Annotated[
        Execution | None,
        typer.Option("--execution", "-e", help="Override every mandate's execution style."),
    ] = None,
    participation: Annotated[
        float,
        typer.Option(
            "--participation", "-p", metavar="RHO", help="Share of ADV absorbed per day (0-1]."
        ),
    ] = 0.2,
    solver: Annotated[
        str, typer.Option(metavar="NAME", help="cvxpy solver for min_cost execution.")
    ] = "CLARABEL",
    top: TopOpt = 10,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", "-w", min=1, metavar="N", help="Local Dask workers for min-cost solves."
        ),
    ] = 1,
    scheduler: Annotated[
        str | None,
        typer.Option(
            metavar="ADDRESS", help="A Dask scheduler to solve on (e.g. tcp://host:8786)."
        ),
    ] = None,
    html: Annotated[
        bool, typer.Option("--html", help="Also write report.html (charts and tables).")
    ] = False,
) -> None:
    """Apply SCENARIO, estimate every holder's forced trades and write the reports."""
    from estimator import views  # noqa: PLC0415 (loaded when run)
    from estimator.api import run  # noqa: PLC0415 (loaded when run)

    with exits(), rounds_progress() as progress:
        if fmt not in ("csv", "parquet"):
            raise typer.BadParameter(f"expected csv or parquet, got {fmt!r}", param_hint="--format")
        target = _target(scenario, out_dir)
        result = run(
            scenario,
            market,
            execution=execution,
            participation=participation,
            solver=solver,
            workers=workers,
            scheduler=scheduler,
            progress=progress,
        )
        pages = _page(result, max(top, 15)) if html else None
        written = result.write(target, fmt, pages=pages)  # type: ignore[arg-type]
    done = f"Reports: {target}/ ({', '.join(p.name for p in written)})"
    warnings = [str(w) for w in result.warnings.items]
    show(lambda: [*views.run_summary(result, top), escape(done)], warnings)


def _page(result: RunResult, top: int) -> dict[str, str]:
    """``report.html``: the run as one self-contained page (:mod:`estimator.html`)."""
    from estimator.html import render  # noqa: PLC0415 (altair: 0.4 s, only when asked for)

    return {"report.html": render(result, top=top)}


@app.command("report")
def report_command(
    scenario: ScenarioArg,
    market: MarketOpt = None,
    out_dir: OutOpt = None,
    top: Annotated[
        int, typer.Option(min=1, metavar="N", help="Assets shown in the charts and tables.")
    ] = 15,
) -> None:
    """Run SCENARIO and write its reports with a self-contained report.html to look at."""
    from estimator import views  # noqa: PLC0415 (loaded when run)
    from estimator.api import run  # noqa: PLC0415 (loaded when run)

    with exits(), rounds_progress() as progress:
        target = _target(scenario, out_dir)
        result = run(scenario, market, progress=progress)
        written = result.write(target, pages=_page(result, top))
    done = f"Report: {target / 'report.html'} (with {', '.join(p.name for p in written)})"
    warnings = [str(w) for w in result.warnings.items]
    show(lambda: [*views.run_summary(result, min(top, 10)), escape(done)], warnings)


@app.command("explain")
def explain_command(
    holder: Annotated[str, typer.Argument(metavar="HOLDER", help="holder_id to explain.")],
    scenario: Annotated[
        str,
        typer.Option(
            "--scenario", "-s", metavar="SCENARIO", help="Shipped scenario name or TOML file."
        ),
    ] = DEMO_SCENARIO,
    market: MarketOpt = None,
) -> None:
    """One holder's story: its book before and after, the rules that fired, its trades round by
    round, its losses and who forced it."""
    from estimator.api import run  # noqa: PLC0415 (loaded when run)
    from estimator.explain import explain  # noqa: PLC0415 (loaded when run)

    with exits():
        text = explain(run(scenario, market), holder)
        out.print(text, markup=False, highlight=False)


@app.command("survival")
def survival_command(
    scenario: ScenarioArg,
    market: MarketOpt = None,
    holder: Annotated[
        str | None, typer.Option("--holder", metavar="ID", help="Only this holder_id, in full.")
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", metavar="DIR", help="Report folder; default reports/<scenario>-survival."
        ),
    ] = None,
    max_multiple: Annotated[
        float,
        typer.Option(metavar="M", help="Largest multiple of the scenario searched (> 0)."),
    ] = Search.max_multiple,
    grid: Annotated[
        int, typer.Option(metavar="K", help="Grid points before bisection (≥ 1).")
    ] = Search.grid,
    tolerance: Annotated[
        float, typer.Option(metavar="TOL", help="Relative precision of multiples and cure cash.")
    ] = Search.tolerance,
    top: Annotated[int, typer.Option(min=0, metavar="N", help="Holders shown.")] = 15,
) -> None:
    """How far along SCENARIO each holder can go before a rule forces it to trade, which rule,
    at what price of its largest position, and the cash that would keep it off the chain."""
    from estimator import views  # noqa: PLC0415 (loaded when run)
    from estimator.survival import survival  # noqa: PLC0415 (loaded when run)

    with exits(), spinner("survival search") as bar:
        search = Search(max_multiple=max_multiple, grid=grid, tolerance=tolerance)
        target = _target(scenario, out_dir, "-survival")
        tell = None if bar is None else lambda n: bar(f"survival search: {n} rounds evaluated")
        result = survival(scenario, market, search=search, holder_id=holder, progress=tell)
        written = result.write(target)
    done = escape(f"Reports: {target}/ ({', '.join(p.name for p in written)})")
    if holder is not None:
        story = views.survival_story(result.holders.row(0, named=True), result)
        show(lambda: [escape(story), done])
    else:
        show(lambda: [*views.survival_summary(result, top), done])


@app.command("backtest")
def backtest_command(
    episodes: Annotated[
        list[str] | None,
        typer.Argument(metavar="[EPISODE]...", help="Episodes to run (default: every one)."),
    ] = None,
    out_dir: Annotated[
        Path,
        typer.Option("--out", "-o", metavar="DIR", help="Report folder."),
    ] = Path("reports/backtest"),
) -> None:
    """Run every episode with published figures and set each figure beside the estimate of
    the same quantity: verdicts (in, over, under) and ratios, misses included."""
    from estimator import views  # noqa: PLC0415 (loaded when run)
    from estimator.backtest import backtest  # noqa: PLC0415 (runs every episode: on demand)
    from estimator.report import check_target  # noqa: PLC0415 (loaded when run)

    with exits(), spinner("backtest") as bar:
        check_target(out_dir)
        tell = None if bar is None else lambda name: bar(f"backtest: {name}")
        result = backtest(episodes or None, progress=tell)
        written = result.write(out_dir)
    done = escape(f"Reports: {out_dir}/ ({', '.join(p.name for p in written)})")
    show(lambda: [*views.backtest_summary(result.table), done])


@app.command("census")
def census_command(
    market: Annotated[
        str, typer.Argument(metavar="BUNDLE", help="Market bundle folder or shipped name.")
    ] = DEFAULT_MARKET,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", metavar="DIR", help="Also write the census tables into this folder."
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            metavar="DATE",
            help="The census vintage in force at DATE (YYYY-MM-DD), with its sources.",
        ),
    ] = None,
) -> None:
    """Who holds what in MARKET before any scenario: totals by holder type and asset class;
    for a census vintage, the aggregates it was sized to, with their sources."""
    from estimator import views  # noqa: PLC0415 (loaded when run)
    from estimator.census import census_at  # noqa: PLC0415 (loaded when run)
    from estimator.report import check_target  # noqa: PLC0415 (loaded when run)

    with exits():
        if out_dir is not None:
            check_target(out_dir)
        result = census_at(market, as_of)
        written = result.write(out_dir) if out_dir is not None else []
    done = (
        [escape(f"Reports: {out_dir}/ ({', '.join(p.name for p in written)})")] if written else []
    )
    show(lambda: [*views.census_summary(result), *done])


@app.command("validate")
def validate_command(
    scenario: Annotated[
        str | None,
        typer.Argument(metavar="[SCENARIO]", help="Scenario to check with its market."),
    ] = None,
    market: MarketOpt = None,
) -> None:
    """Check every input (scenario, market tables, indices, risk model, mandates) and list every
    problem; a scenario is also applied to its market and its books checked, as a run would,
    without solving or writing anything."""
    from estimator.inputs import check  # noqa: PLC0415 (loaded when run)

    with exits():
        checked = check(scenario, market)
    spec = f"; scenario {checked.scenario}" if checked.scenario else ""
    m = checked.market
    line = (
        f"ok: market '{m.name}' — {m.assets.height} assets, {m.holders.height} holders, "
        f"{m.positions.height} positions, {len(m.mandates)} mandates{spec}"
    )
    show(lambda: [escape(line)], [str(w) for w in checked.warnings.items])


@app.command("schema")
def schema_command(
    kind: Annotated[str, typer.Argument(metavar="[mandate|scenario]")] = "mandate",
) -> None:
    """Print the JSON schema of mandate or scenario TOML files."""
    from estimator.mandates import Mandate  # noqa: PLC0415 (loaded when run)
    from estimator.scenario import Scenario  # noqa: PLC0415 (loaded when run)

    models = {"mandate": Mandate, "scenario": Scenario}
    with exits():
        if kind not in models:
            raise typer.BadParameter(f"expected 'mandate' or 'scenario', got {kind!r}")
        typer.echo(json.dumps(models[kind].model_json_schema(), indent=2))


@app.command("scenarios")
def scenarios_command() -> None:
    """List the shipped scenarios."""
    from estimator.scenario import load_scenario  # noqa: PLC0415 (loaded when run)

    with exits():
        for name, path in shipped_scenarios().items():
            spec = load_scenario(path)
            out.print(f"[bold]{escape(name)}[/] — {escape(spec.description)}")


def main() -> None:
    try:
        app()
    except BrokenPipeError:
        closed_pipe()

"""The ``forced-flow`` command line: a thin typer layer over :mod:`estimator`'s public API.

Exit codes: 0 ok, 1 the run failed, 2 bad usage or bad input (nothing is written).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from estimator.api import RunResult, run
from estimator.census import census
from estimator.errors import InputError, InputWarnings, RunError
from estimator.explain import explain
from estimator.mandates import Execution, Mandate
from estimator.market import load_market
from estimator.paths import (
    DEFAULT_MARKET,
    DEMO_SCENARIO,
    resolve_market,
    resolve_scenario,
    shipped_scenarios,
)
from estimator.report import money
from estimator.scenario import Scenario, apply_scenario, load_scenario
from estimator.survival import NOT_FORCED, Search, SurvivalResult, survival

app = typer.Typer(
    name="forced-flow",
    help="Estimate forced flows: who must trade under a market scenario, and how much.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True, soft_wrap=True)

ScenarioArg = Annotated[
    str,
    typer.Argument(help="A shipped scenario's name (e.g. 'march_2020') or a scenario TOML file."),
]
MarketOpt = Annotated[
    str | None,
    typer.Option(
        "--market", "-m", help="Market bundle folder or shipped name; default: the scenario's."
    ),
]


def _fail_input(exc: InputError) -> typer.Exit:
    err.print(
        f"[bold red]error:[/] {len(exc.problems)} problem(s) in the inputs; nothing was written."
    )
    for problem in exc.problems:
        err.print(f"  • {problem}", markup=False, highlight=False)
    return typer.Exit(2)


@contextmanager
def _spinner(what: str) -> Iterator[Callable[[str], None] | None]:
    """A spinner and a pulsing bar (the number of rounds is not known ahead) on stderr that show
    what the work is at, on a terminal only (None otherwise: piped output stays clean); yields
    the function that updates its text."""
    if not err.is_terminal:
        yield None
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(what, total=None)
        yield lambda text: bar.update(task, description=text)


@contextmanager
def _rounds_progress() -> Iterator[Callable[[int, int], None] | None]:
    """The cascade's round and day on a spinner while a run goes on (:func:`_spinner`)."""
    with _spinner("estimating forced flows") as bar:
        if bar is None:
            yield None
        else:
            yield lambda rounds, day: bar(f"cascade: round {rounds}, day {day}")


@contextmanager
def _exits() -> Iterator[None]:
    """Bad input → its problems and exit 2; a failed run → exit 1; nothing written either way."""
    try:
        yield
    except InputError as exc:
        raise _fail_input(exc) from exc
    except RunError as exc:
        err.print(f"[bold red]run failed:[/] {exc}")
        raise typer.Exit(1) from exc


def _summary(result: RunResult, top: int) -> None:
    totals = result.manifest["totals"]
    out.print(
        f"[bold]{result.scenario.name}[/]: forced selling {money(totals['sell_value'])}, "
        f"forced buying {money(totals['buy_value'])}"
    )
    table = Table(title=f"Top {top} assets by forced flow as % of ADV")
    for col in ("asset", "class", "net flow", "% ADV", "days"):
        table.add_column(col, justify="right" if col not in ("asset", "class") else "left")
    ranked = result.assets.filter(pl.col("net_value") != 0).sort(
        ["pct_adv", "asset_id"], descending=[True, False]
    )
    for row in ranked.head(top).iter_rows(named=True):
        table.add_row(
            row["asset_id"],
            row["asset_class"],
            money(row["net_value"]),
            f"{row['pct_adv']:.1f}",
            f"{row['days_to_absorb']:.2f}",
        )
    out.print(table)
    by_type = (
        result.holders.group_by("holder_type")
        .agg(holders=pl.len(), forced=(pl.col("status") != "ok").sum(), sold=pl.col("sold").sum())
        .sort("holder_type")
    )
    types = Table(title="Holders by type")
    for col in ("holder type", "holders", "not ok", "sold"):
        types.add_column(col, justify="left" if col == "holder type" else "right")
    for row in by_type.iter_rows(named=True):
        types.add_row(
            row["holder_type"], str(row["holders"]), str(row["forced"]), money(row["sold"])
        )
    out.print(types)
    cascade, days = result.manifest["cascade"], result.manifest["days"]
    if days is not None:
        _days_table(cascade, days)
    elif cascade is not None:
        _rounds_table(cascade)
    statuses = ", ".join(f"{k}: {v}" for k, v in result.manifest["statuses"].items())
    out.print(f"Statuses — {statuses}")
    cures = result.manifest["cures"]
    if cures["drawn"] > 0 or cures["short"] > 0:
        out.print(
            f"Cash drawn to cure: {money(cures['drawn'])}; still short, left to forced "
            f"trades: {money(cures['short'])}"
        )
    for warning in result.warnings.items:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)


def _rounds_table(cascade: dict) -> None:
    state = "converged" if cascade["converged"] else "stopped at max_rounds"
    title = (
        f"Cascade: {cascade['rounds_traded']} rounds ({state}), "
        f"amplification {cascade['amplification']:.2f}"
    )
    _period_table(title, "round", cascade["rounds"], "holders_forced")


def _days_table(cascade: dict, days: dict) -> None:
    state = "converged" if cascade["converged"] else "stopped at max_days"
    title = (
        f"Selling by day ({state}): peak day {days['peak_day']}, "
        f"capitulation {days['capitulation_day']}"
    )
    _period_table(title, "day", days["per_day"], "holders_trading")


def _period_table(title: str, period: str, rows: list[dict], holders: str) -> None:
    table = Table(title=title)
    for col in (period, "sold", "bought", "holders", "newly forced"):
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(
            str(row[period]),
            money(row["sell_value"]),
            money(row["buy_value"]),
            str(row[holders]),
            str(row["holders_newly_forced"]),
        )
    out.print(table)


@app.command("run")
def run_command(
    scenario: ScenarioArg,
    market: MarketOpt = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Report folder; default reports/<scenario>.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv or parquet.")] = "csv",
    execution: Annotated[
        Execution | None,
        typer.Option("--execution", "-e", help="Override every mandate's execution style."),
    ] = None,
    participation: Annotated[
        float, typer.Option("--participation", "-p", help="Share of ADV absorbed per day (0-1].")
    ] = 0.2,
    solver: Annotated[str, typer.Option(help="cvxpy solver for min_cost execution.")] = "CLARABEL",
    top: Annotated[int, typer.Option(help="Assets shown in the summary.")] = 10,
    workers: Annotated[
        int, typer.Option("--workers", "-w", help="Processes for min-cost solves (≥ 1).")
    ] = 1,
    html: Annotated[
        bool, typer.Option("--html", help="Also write report.html (charts and tables).")
    ] = False,
) -> None:
    """Apply SCENARIO, estimate every holder's forced trades and write the reports."""
    if fmt not in ("csv", "parquet"):
        err.print(f"[bold red]error:[/] --format must be csv or parquet, got {fmt!r}")
        raise typer.Exit(2)
    with _exits(), _rounds_progress() as progress:
        result = run(
            scenario,
            market,
            execution=execution,
            participation=participation,
            solver=solver,
            workers=workers,
            progress=progress,
        )
        target = out_dir or Path("reports") / result.scenario.name
        written = result.write(target, fmt, html=html, top=max(top, 15))  # type: ignore[arg-type]
    _summary(result, top)
    out.print(f"Reports: {target}/ ({', '.join(p.name for p in written)})")


@app.command("report")
def report_command(
    scenario: ScenarioArg,
    market: MarketOpt = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Report folder; default reports/<scenario>.")
    ] = None,
    top: Annotated[int, typer.Option(help="Assets shown in the charts and tables.")] = 15,
) -> None:
    """Run SCENARIO and write its reports with a self-contained report.html to look at."""
    with _exits(), _rounds_progress() as progress:
        result = run(scenario, market, progress=progress)
        target = out_dir or Path("reports") / result.scenario.name
        written = result.write(target, html=True, top=top)
    _summary(result, min(top, 10))
    out.print(f"Report: {target / 'report.html'} (with {', '.join(p.name for p in written)})")


@app.command("explain")
def explain_command(
    holder: Annotated[str, typer.Argument(help="holder_id to explain.")],
    scenario: Annotated[
        str, typer.Option("--scenario", "-s", help="Shipped scenario name or TOML file.")
    ] = DEMO_SCENARIO,
    market: MarketOpt = None,
) -> None:
    """One holder's story: its book before and after, the rules that fired, its trades round by
    round, its losses and who forced it."""
    try:
        text = explain(run(scenario, market), holder)
    except InputError as exc:
        raise _fail_input(exc) from exc
    except RunError as exc:
        err.print(f"[bold red]run failed:[/] {exc}")
        raise typer.Exit(1) from exc
    out.print(text, markup=False, highlight=False)


@app.command("survival")
def survival_command(
    scenario: ScenarioArg,
    market: MarketOpt = None,
    holder: Annotated[
        str | None, typer.Option("--holder", help="Only this holder_id, told in full.")
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Report folder; default reports/<scenario>-survival."),
    ] = None,
    max_multiple: Annotated[
        float, typer.Option(help="Largest multiple of the scenario searched (> 0).")
    ] = Search.max_multiple,
    grid: Annotated[int, typer.Option(help="Grid points before bisection (≥ 1).")] = Search.grid,
    tolerance: Annotated[
        float, typer.Option(help="Relative precision of multiples and cure cash.")
    ] = Search.tolerance,
    top: Annotated[int, typer.Option(help="Holders shown in the summary.")] = 15,
) -> None:
    """How far along SCENARIO each holder can go before a rule forces it to trade, which rule,
    at what price of its largest position, and the cash that would keep it off the chain."""
    with _exits(), _spinner("survival search") as bar:
        search = Search(max_multiple=max_multiple, grid=grid, tolerance=tolerance)
        tell = None if bar is None else lambda n: bar(f"survival search: {n} rounds evaluated")
        result = survival(scenario, market, search=search, holder_id=holder, progress=tell)
        target = out_dir or Path("reports") / f"{result.scenario.name}-survival"
        written = result.write(target)
    if holder is not None:
        out.print(_survival_story(result.holders.row(0, named=True), result), markup=False)
    else:
        _survival_summary(result, top)
    out.print(f"Reports: {target}/ ({', '.join(p.name for p in written)})")


def _multiple(row: dict) -> str:
    if row["forced_multiple"] is None:
        return "—"
    return f"{row['forced_multiple']:.3g}×"


def _survival_summary(result: SurvivalResult, top: int) -> None:
    h = result.holders
    forced = h.filter(~pl.col("status_at_scenario").is_in(NOT_FORCED))
    out.print(
        f"[bold]{result.scenario.name}[/]: {forced.height} of {h.height} holders forced by the "
        f"scenario; cash that would keep the curable ones off: "
        f"{money(forced['cure_cash'].fill_null(0.0).sum())}"
    )
    table = Table(title=f"Nearest {top} holders to forced selling (multiple of the scenario)")
    columns = ("holder", "multiple", "forced by", "level", "price", "cure cash")
    for col in columns:
        table.add_column(col, justify="left" if col in ("holder", "forced by") else "right")
    ranked = h.sort(["forced_multiple", "holder_id"], nulls_last=True)
    for row in ranked.head(top).iter_rows(named=True):
        table.add_row(
            row["holder_id"],
            _multiple(row) + (f" ({row['forced_when']})" if row["forced_when"] != "moves" else ""),
            row["forced_by"] or "",
            row["level_asset"] or "",
            "" if row["level_price"] is None else f"{row['level_price']:,.4g}",
            "—" if row["cure_cash"] is None else money(row["cure_cash"]),
        )
    out.print(table)


def _survival_story(row: dict, result: SurvivalResult) -> str:
    name, multiple = row["holder_id"], row["forced_multiple"]
    lines = [
        f"{name} ({row['holder_type']}, mandate {row['mandate']}) under "
        f"{result.scenario.name}: {row['status_at_scenario']}."
    ]
    if multiple is None:
        lines.append(f"Not forced up to {result.searched_to:.4g}× the scenario.")
    elif row["forced_when"] == "already":
        lines.append(f"Forced before any shock, by {row['forced_by']}.")
    elif row["forced_when"] == "events":
        lines.append(
            "Forced by the scenario's rating actions or index changes alone, "
            f"by {row['forced_by']}."
        )
    else:
        lines.append(
            f"First forced at {multiple:.4g}× the scenario, by {row['forced_by']}: its largest "
            f"position {row['level_asset']} at {row['level_price']:,.6g} "
            f"({row['level_return']:+.2%} from {row['level_price_before']:,.6g})."
        )
    cure = row["cure_cash"]
    if cure is None:
        lines.append("No cash added now keeps it from trading under the scenario.")
    elif cure > 0:
        lines.append(f"Cash that, added now, keeps it from any forced trade: {money(cure)}.")
    else:
        lines.append("It needs no cash: nothing forces it under the scenario.")
    return "\n".join(lines)


@app.command("census")
def census_command(
    market: Annotated[
        str, typer.Argument(help="Market bundle folder or shipped name.")
    ] = DEFAULT_MARKET,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Also write the census tables into this folder."),
    ] = None,
) -> None:
    """Who holds what in MARKET before any scenario: totals by holder type and asset class."""
    try:
        result = census(load_market(resolve_market(market)))
        written = result.write(out_dir) if out_dir is not None else []
    except InputError as exc:
        raise _fail_input(exc) from exc
    types = Table(title=f"Holders by type — market '{result.market}'")
    for col in ("holder type", "holders", "total assets", "equity", "leverage", "liabilities"):
        types.add_column(col, justify="left" if col == "holder type" else "right")
    for row in result.by_type.iter_rows(named=True):
        leverage = "—" if row["leverage"] is None else f"{row['leverage']:.2f}×"
        liabilities = money(row["liabilities"]) if row["liabilities"] else "—"
        types.add_row(
            row["holder_type"],
            str(row["holders"]),
            money(row["total_assets"]),
            money(row["equity"]),
            leverage,
            liabilities,
        )
    out.print(types)
    classes = Table(title="Holdings by asset class")
    for col in ("asset class", "assets", "holders", "long", "short", "gross", "ADV", "days"):
        classes.add_column(col, justify="left" if col == "asset class" else "right")
    for row in result.by_class.iter_rows(named=True):
        classes.add_row(
            row["asset_class"],
            str(row["assets"]),
            str(row["holders"]),
            money(row["long"]),
            money(row["short"]),
            money(row["gross"]),
            money(row["adv"]),
            f"{row['gross_adv_days']:.2f}",
        )
    out.print(classes)
    if written:
        out.print(f"Reports: {out_dir}/ ({', '.join(p.name for p in written)})")


@app.command("validate")
def validate_command(
    scenario: Annotated[
        str | None, typer.Argument(help="Scenario to check with its market.")
    ] = None,
    market: MarketOpt = None,
) -> None:
    """Check every input (scenario, market tables, indices, risk model, mandates) and list every
    problem; a scenario is also applied to its market."""
    try:
        spec_path = None
        if scenario is not None:
            spec_path = resolve_scenario(scenario)
            spec = load_scenario(spec_path)
            where = (
                resolve_market(market) if market else resolve_market(spec.market, spec_path.parent)
            )
        else:
            where = resolve_market(market or DEFAULT_MARKET)
        loaded = load_market(where)
        warnings = InputWarnings(list(loaded.warnings.items))
        if spec_path is not None:  # shocks and index changes against this market
            apply_scenario(loaded.assets, spec, str(spec_path), warnings, loaded.index_weights)
    except InputError as exc:
        raise _fail_input(exc) from exc
    for warning in warnings.items:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    out.print(
        f"ok: market '{loaded.name}' — {loaded.assets.height} assets, "
        f"{loaded.holders.height} holders, "
        f"{loaded.positions.height} positions, {len(loaded.mandates)} mandates"
        + (f"; scenario {spec_path}" if spec_path else "")
    )


@app.command("schema")
def schema_command(
    kind: Annotated[str, typer.Argument(help="mandate or scenario")] = "mandate",
) -> None:
    """Print the JSON schema of mandate or scenario TOML files."""
    models = {"mandate": Mandate, "scenario": Scenario}
    if kind not in models:
        err.print(f"[bold red]error:[/] expected 'mandate' or 'scenario', got {kind!r}")
        raise typer.Exit(2)
    typer.echo(json.dumps(models[kind].model_json_schema(), indent=2))


@app.command("scenarios")
def scenarios_command() -> None:
    """List the shipped scenarios."""
    for name, path in shipped_scenarios().items():
        spec = load_scenario(path)
        out.print(f"[bold]{name}[/] — {spec.description}")


def main() -> None:
    app()

"""A generated bad-input corpus: every numeric field of every input, each given the values
a careless or hostile user might type, must end in exit 2 naming the field — or, where the
value is valid, in a report with no NaN or infinity. Never a traceback, never exit 1.

The fields are enumerated from the schemas themselves (the dataframely contracts of the market
tables, the pydantic models of mandates and scenarios, the command's options), so a new field
joins the corpus without a line here. The base is the small market under ``small_crash``
(every rule kind acts) or, for the price-impact and day-clock settings, under ``small_cascade``
with a day clock. ``make test`` runs a fixed subset; the whole product is marked ``slow``.
"""

from __future__ import annotations

import json
import math
import random
import re
import tomllib
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
import tomli_w
import typer
from pydantic import BaseModel
from typer.testing import CliRunner

from estimator import contracts
from estimator.cli import app
from estimator.days import Days, Pace
from estimator.gamma import GammaProfile
from estimator.impact import Exponential, Impact, Linear, SquareRoot
from estimator.mandates import CapitalCall, Mandate
from estimator.path import HolderMove, Move, StartingVol
from estimator.paths import scenarios_dir
from estimator.published import Published
from estimator.scenario import HolderShock, IndexChange, Scenario, Shock
from estimator.trend import TrendStart
from rules import RULE_TYPES

runner = CliRunner()

VALUES: dict[str, float] = {
    "nan": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "1e308": 1e308,
    "-1e308": -1e308,
    "0": 0.0,
    "tiny": 1e-300,
    "negative": -1.0,
}

TABLES = {
    "assets.csv": contracts.Assets,
    "holders.csv": contracts.Holders,
    "positions.csv": contracts.Positions,
    "index_weights.csv": contracts.IndexWeights,
    "factor_loadings.csv": contracts.FactorLoadings,
    "factor_covariance.csv": contracts.FactorCovariance,
    "specific_risk.csv": contracts.SpecificRisk,
    "dealer_gamma.csv": contracts.DealerGamma,
}

CASCADE_DAYS = {"max_days": 5, "pace": [{"select": {"all": True}, "horizon_days": 2}]}

#: Where each scenario model with numbers is put in a base scenario (see ``_scenario``); the
#: coverage test below fails when the scenario schema gains a model that is not placed here.
SECTIONS: dict[str, type[BaseModel]] = {
    "shocks": Shock,
    "holder_shocks": HolderShock,
    "index_changes": IndexChange,
    "impact": Impact,
    "impact.sqrt": SquareRoot,
    "impact.linear": Linear,
    "impact.exponential": Exponential,
    "days": Days,
    "days.pace": Pace,
    "published": Published,
    "path.moves": Move,
    "path.holder_shocks": HolderMove,
    "path.starting_vol": StartingVol,
    "dealer_gamma": GammaProfile,
    "trend_start": TrendStart,
}

#: A published figure for the corpus to spoil one number of.
FIGURE = {
    "id": "f",
    "what": "a flow",
    "flow": "sales",
    "low": 1.0,
    "high": 2.0,
    "currency": "GBP",
    "fx": 1.25,
    "fx_source": "a rate",
    "period": "a day",
    "source": "a source",
    "published": "2026-01-01",
    "url": "https://example.org",
    "quote": "a quote",
    "kind": "estimate",
}


def _options() -> list[tuple[str, str]]:
    """Every numeric option of every command that runs a scenario, from the typer app."""
    found = []
    for command in typer.main.get_command(app).commands.values():  # type: ignore[attr-defined]
        if command.name not in ("run", "report", "survival"):
            continue
        for param in command.params:
            if param.param_type_name == "option" and param.bare_type() in ("float", "int"):
                found.append((command.name, max(param.opts, key=len)))
    return sorted(found)


OPTIONS = _options()


def _numeric(annotation: object) -> bool:
    """Whether a pydantic field holds a number (or a dict of numbers), booleans excluded."""
    if annotation in (float, int):
        return True
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is dict:
        return _numeric(args[1])
    if origin is list:
        return _numeric(args[0])
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        return any(_numeric(a) for a in args)
    return False


def numeric_fields(model: type[BaseModel]) -> list[str]:
    return [n for n, f in model.model_fields.items() if _numeric(f.annotation)]


@dataclass(frozen=True)
class Case:
    """One input field given one value: where it lives and how to put the value there."""

    where: str  # "table", "mandate", "capital_call", "scenario", "option"
    owner: str  # file, rule kind, scenario section or command
    field: str
    value: str

    @property
    def id(self) -> str:
        return f"{self.where}:{self.owner}.{self.field}={self.value}"


def _cases() -> list[Case]:
    cases: list[Case] = []
    for file, schema in TABLES.items():
        for name, column in contracts.columns(schema).items():
            if column.dtype.is_numeric():
                cases += [Case("table", file, name, v) for v in VALUES]
    for rule in RULE_TYPES:
        kind = rule.model_fields["kind"].default
        cases += [Case("mandate", kind, f, v) for f in numeric_fields(rule) for v in VALUES]
    cases += [Case("capital_call", "ldi_pooled", f, v) for f in numeric_fields(CapitalCall)
              for v in VALUES]  # fmt: skip
    for section, model in SECTIONS.items():
        cases += [Case("scenario", section, f, v) for f in numeric_fields(model) for v in VALUES]
    cases += [Case("option", c, o, v) for c, o in OPTIONS for v in VALUES]
    return cases


CASES = _cases()
#: The subset ``make test`` runs: every field given infinity (it must be refused by name),
#: and a fixed draw of 24 other cases over the whole product.
FAST = [c for c in CASES if c.value == "inf"] + random.Random(19).sample(
    [c for c in CASES if c.value != "inf"], 24
)


def _with(rules: list[dict], kind: str) -> dict | None:
    return next((r for r in rules if r.get("kind") == kind), None)


def _mandate_for(folder: Path, kind: str) -> tuple[Path, dict]:
    for path in sorted(folder.glob("*.toml")):
        data = tomllib.loads(path.read_text())
        if _with(data["rules"], kind) is not None:
            return path, data
    raise AssertionError(f"no shipped mandate has a {kind} rule")


def _put(table: dict, field: str, value: float) -> None:
    """``table[field] = value``; a dict of numbers gets it at its first key (a dict not given,
    such as a rebalancing rule's ``bands``, at the first asset class of its ``weights``)."""
    current = table.get(field)
    if isinstance(current, dict):
        current[next(iter(current))] = value
    elif isinstance(current, list) and current and not isinstance(current[0], dict):
        current[0] = value
    elif field == "bands":
        table[field] = {next(iter(table["weights"])): value}
    else:
        table[field] = value


def _scenario(section: str, field: str, value: float) -> dict:
    base = (
        "small_crash"
        if section
        in (
            "shocks",
            "holder_shocks",
            "index_changes",
            "published",
            "path.moves",
            "path.holder_shocks",
            "path.starting_vol",
            "dealer_gamma",
            "trend_start",
        )
        else ("small_cascade")
    )
    data = tomllib.loads((scenarios_dir() / f"{base}.toml").read_text())
    data["market"] = "market"
    data.pop("days", None)
    if section == "shocks":  # the first shock with the field (a bond shock for a rate change),
        # else the first, which moves volatility too
        shock = next((x for x in data["shocks"] if field in x), data["shocks"][0])
        _put(shock, field, value)
    elif section == "path.moves":  # the small_crash shock with the field, two days on
        shock = next((x for x in data["shocks"] if field in x), data["shocks"][0])
        move = {**json.loads(json.dumps(shock)), "date": "2020-03-04"}
        _put(move, field, value)
        data["path"] = {"start": "2020-03-02", "moves": [move]}
        data["days"] = {"max_days": 3}  # days 0-2: the move's day is the last one run
    elif section == "path.holder_shocks":  # the small_crash holder shock, two days on
        hit = {**json.loads(json.dumps(data["holder_shocks"][0])), "date": "2020-03-04"}
        _put(hit, field, value)
        data["path"] = {"start": "2020-03-02", "holder_shocks": [hit]}
        data["days"] = {"max_days": 3}
    elif section == "path.starting_vol":  # a starting level for every asset's estimates
        level = {"select": {"all": True}, "vol": 0.1, "source": "s", "label": "assumption"}
        _put(level, field, value)
        data["path"] = {"start": "2020-03-02", "starting_vol": [level]}
        data["days"] = {"max_days": 2}
    elif (
        section == "dealer_gamma"
    ):  # the dealers' gamma on the S&P future, in place of the market's
        profile = {"asset_id": "ES_FUT", "levels": [-0.1, 0.0], "gammas": [-1e8, 1e8]}
        data["dealer_gamma"] = [{**profile, "kind": "assumption", "date": "d", "source": "s"}]
        _put(data["dealer_gamma"][0], field, value)
    elif section == "trend_start":  # a trailing month for every future
        start = {"select": {"instruments": ["future"]}, "returns": {"21": 0.05, "63": 0.1}}
        data["trend_start"] = [{**start, "kind": "assumption", "date": "d", "source": "s"}]
        _put(data["trend_start"][0], field, value)
    elif section == "holder_shocks":
        _put(data["holder_shocks"][0], field, value)
    elif section == "index_changes":
        _put(data["index_changes"][1], field, value)  # the addition, with its weight
    elif section == "published":
        data["published"] = [dict(FIGURE)]
        _put(data["published"][0], field, value)
    elif section == "impact":
        _put(data["impact"], field, value)
    elif section.startswith("impact."):
        model = {"model": section.split(".")[1], "select": {"all": True}}
        model |= {"exponential": {"floor": 0.5}, "linear": {"coefficient": 0.05}}.get(
            model["model"], {}
        )
        _put(model, field, value)
        data["impact"]["models"] = [model]
    else:
        data["days"] = json.loads(json.dumps(CASCADE_DAYS))
        target = data["days"] if section == "days" else data["days"]["pace"][0]
        _put(target, field, value)
    return data


def _cell(value: str) -> str:
    return {"negative": "-1", "0": "0"}.get(value, value)


def _arrange(case: Case, bundle: Path) -> tuple[list[str], str]:
    """Put the case's value in place; the command to run and the name the error must give."""
    scenario = bundle.parent / "case.toml"
    value = VALUES[case.value]
    data = tomllib.loads((scenarios_dir() / "small_crash.toml").read_text()) | {"market": "market"}
    name = re.escape(case.field)
    if case.where == "table":
        path = bundle / case.owner
        frame = pl.read_csv(path, infer_schema=False)  # every row gets the value: every
        # holder type, asset class and rule meets it
        cells = pl.Series(case.field, [_cell(case.value)] * frame.height, dtype=pl.String)
        frame.with_columns(cells).write_csv(path)
    elif case.where in ("mandate", "capital_call"):
        if case.where == "mandate":
            path, mandate = _mandate_for(bundle.parent / "mandates", case.owner)
            _put(_with(mandate["rules"], case.owner), case.field, value)  # type: ignore[arg-type]
        else:
            path = bundle.parent / "mandates" / f"{case.owner}.toml"
            mandate = tomllib.loads(path.read_text())
            _put(mandate["capital_call"], case.field, value)
        path.write_text(tomli_w.dumps(mandate))
    elif case.where == "scenario":
        data = _scenario(case.owner, case.field, value)
    scenario.write_text(tomli_w.dumps(data))
    out = bundle.parent / "out"
    if case.where == "option":
        number = "-1" if case.value == "negative" else case.value
        args = [case.owner, str(scenario), "--out", str(out), f"{case.field}={number}"]
        if case.owner == "survival" and case.field != "--grid":
            args.append("--grid=4")  # a short search: the option under test is another
        return args, f"{case.field}|{case.field.lstrip('-').replace('-', '_')}"
    return ["run", str(scenario), "--out", str(out)], name


def _finite_reports(out: Path) -> None:
    def refuse(token: str) -> None:
        raise AssertionError(f"manifest holds {token}")

    json.loads((out / "manifest.json").read_text(), parse_constant=refuse)
    for path in out.glob("*.csv"):
        frame = pl.read_csv(path, infer_schema_length=None)
        floats = [c for c, t in frame.schema.items() if t.is_float()]
        bad = frame.select(pl.col(floats).is_finite().not_().any()).row(0) if floats else ()
        assert not any(bad), f"{path.name} holds non-finite numbers"
        text = [c for c, t in frame.schema.items() if t == pl.String]
        for column in text:
            assert not frame[column].str.contains(r"(?i)^-?(nan|inf)").any(), (path.name, column)


#: What an exit 2 says of a value that is not finite, or too large: in the project's words,
#: or (an integer option or field) that it is not an integer.
INTEGER = "expected a whole number|valid integer"  # a table's or an option's
SAYS = {
    "nan": f"not finite|{INTEGER}",
    "inf": f"not finite|{INTEGER}",
    "-inf": f"not finite|{INTEGER}",
    "1e308": f"too large|{INTEGER}|between 0 and 1",  # (weights: a share)
}


def check(case: Case, bundle: Path) -> None:
    args, name = _arrange(case, bundle)
    result = runner.invoke(app, args)
    output = result.output
    # an exception that escaped the command (a traceback for a user) is never a SystemExit
    assert result.exception is None or isinstance(result.exception, SystemExit), output
    assert result.exit_code in (0, 2), f"exit {result.exit_code}: {output}"
    if result.exit_code == 2:
        assert re.search(rf"(?<![\w-])({name})(?![\w-])", output), f"{name} not named: {output}"
        if case.value in SAYS:
            assert re.search(SAYS[case.value], output), output
        assert not (bundle.parent / "out").exists()
    else:
        _finite_reports(bundle.parent / "out")
    if case.where != "option":  # validate checks what run checks before solving
        checked = runner.invoke(app, ["validate", args[1]])
        assert checked.exit_code == result.exit_code, checked.output


def _ids(cases: list[Case]) -> Iterator[str]:
    return (c.id for c in cases)


@pytest.mark.parametrize("case", FAST, ids=list(_ids(FAST)))
def test_bad_value_is_refused_by_name_or_gives_a_finite_report(case: Case, bundle: Path) -> None:
    check(case, bundle)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=list(_ids(CASES)))
def test_whole_corpus(case: Case, bundle: Path) -> None:
    check(case, bundle)


def _models(model: type[BaseModel]) -> set[type[BaseModel]]:
    """Every pydantic model reachable from ``model``'s fields (lists, unions, options)."""
    found: set[type[BaseModel]] = set()

    def walk(annotation: object) -> None:
        is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if is_model and annotation not in found:
            found.add(annotation)
            for f in annotation.model_fields.values():
                walk(f.annotation)
        for arg in typing.get_args(annotation):
            walk(arg)

    walk(model)
    return found


def test_the_corpus_covers_every_schema() -> None:
    """Fields are enumerated from the schemas: every table, rule kind and scenario section,
    and every numeric option of the commands that run a scenario."""
    placed = set(SECTIONS.values())
    with_numbers = {m for m in _models(Scenario) if numeric_fields(m)}
    assert with_numbers <= placed, with_numbers - placed
    assert ("report", "--top") in OPTIONS and ("survival", "--grid") in OPTIONS
    owners = {(c.where, c.owner) for c in CASES}
    assert {o for w, o in owners if w == "table"} == set(TABLES)
    assert {o for w, o in owners if w == "mandate"} == {
        r.model_fields["kind"].default for r in RULE_TYPES if numeric_fields(r)
    }
    assert ("capital_call", "ldi_pooled") in owners
    assert numeric_fields(Mandate) == []  # a mandate's numbers are in its rules and tables
    assert len(CASES) == len({c.id for c in CASES})

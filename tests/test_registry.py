"""The rule vocabulary: every kind registered, documented, shipped and compiled (DPP)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import estimator
import rules
from estimator.mandates import Execution, Mandate, load_mandates
from estimator.paths import mandates_dir, shipped_scenarios
from estimator.solve import CompiledProblem
from rules.testing import INDEXES, examples

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("rule_type", rules.RULE_TYPES, ids=rules.RULE_KINDS)
def test_rule_is_documented_and_frozen(rule_type: type[rules.RuleBase]) -> None:
    module = __import__(rule_type.__module__, fromlist=["_"])
    assert module.__doc__ and "Math." in module.__doc__
    assert rule_type.model_config["frozen"] and rule_type.model_config["extra"] == "forbid"
    kind = rule_type.model_fields["kind"].default
    assert f"`{kind}`" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("kind", rules.RULE_KINDS)
def test_rule_kind_has_examples_the_tests_run_over(kind: str) -> None:
    """The breach property and the done-means test run over every kind's examples."""
    specs = examples(kind)
    assert specs, f"{kind} has no examples"
    assert all(Mandate(name="m", rules=[spec]).rules[0].kind == kind for spec in specs)
    tracked = {Mandate(name="m", rules=[s]).rules[0].tracked_index for s in specs} - {None}
    assert tracked <= set(INDEXES)  # test markets define these


@pytest.mark.parametrize("kind", rules.RULE_KINDS)
def test_rule_kind_is_shipped_in_a_mandate(kind: str) -> None:
    shipped = {r.kind for m in load_mandates(mandates_dir()).values() for r in m.rules}
    assert kind in shipped


def test_rules_never_import_estimator() -> None:
    for path in (ROOT / "rules").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] == "estimator" for n in names), path


def test_every_shape_compiles_as_dpp() -> None:
    """One problem per shape; CompiledProblem refuses a non-DPP one."""
    for mandate in load_mandates(mandates_dir()).values():
        problem = CompiledProblem(mandate.rules, n=8, k=3)
        assert problem.problem.is_dcp(dpp=True)
        assert all(name.split(".")[0] in rules.RULE_KINDS for name in problem.constraints)


#: Episodes that run for weeks of trading days (on the census about a minute each; every holder
#: solved at minimum cost every round of 33 days would take many): their own slow tests run
#: them (tests/test_episode_paths.py, tests/test_backtest.py, tests/test_path.py).
LONG = {
    "march_2020_path",
    "volmageddon_2018_path",
    "tesla_2020_path",
    "fallen_angels_2020_path",
    "archegos_2021_path",
    "aug_2024_path",
    "gilt_2022_path",
    "small_crash_week",
}


def _cases() -> list:
    names = sorted(set(shipped_scenarios()) - LONG)
    return [pytest.param(name, execution) for name in names for execution in Execution]


@pytest.mark.parametrize(("name", "execution"), _cases())
def test_every_shipped_scenario_runs(name: str, execution: Execution) -> None:
    result = estimator.run(name, execution=execution)
    assert result.holders.height > 0
    assert set(result.holders["status"]) <= {
        "ok",
        "cured",
        "forced",
        "liquidated",
        "insolvent",
        "solver_failed",
    }
    assert "solver_failed" not in set(result.holders["status"])


def test_the_machine_names_a_rules_columns_in_one_place() -> None:
    from rules import RuleColumns  # noqa: PLC0415

    col = RuleColumns.of("margin")
    names = [col.down, col.up, col.f, col.metric_before, col.metric_after, col.cure_need, col.cured]
    assert names == ["margin.down", "margin.up", "margin.f", "margin.metric_before",
                     "margin.metric_after", "margin.cure_need", "margin.cured"]  # fmt: skip
    assert names[0].endswith(RuleColumns.FLAGS[0]) and names[1].endswith(RuleColumns.FLAGS[1])
    assert names[3:5] == [f"margin{s}" for s in RuleColumns.METRICS]
    assert names[5:] == [f"margin{s}" for s in RuleColumns.CURES]
    market = estimator.load_market("scenarios/markets/small")
    used = set(market.holders["mandate"])
    kinds = {r.kind for name, m in market.mandates.items() if name in used for r in m.rules}
    result = estimator.run("small_crash", market)
    reported = {c for c in result.holders.columns if c.endswith(RuleColumns.METRICS)}
    expected = {
        n for k in kinds for n in (RuleColumns.of(k).metric_before, RuleColumns.of(k).metric_after)
    }
    assert reported == expected


def test_the_solver_stack_is_imported_only_to_solve() -> None:
    """``import estimator`` (every command line run) reads the rules without cvxpy: it is
    imported when a min-cost problem is built."""
    code = "import sys, estimator; assert 'cvxpy' not in sys.modules, 'cvxpy imported'"
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert ran.returncode == 0, ran.stderr


def test_one_error_tree() -> None:
    """Every error the library raises on purpose is a ForcedFlowError; an equilibrium that
    does not hold is a run error the run turns into a warning."""
    assert issubclass(estimator.InputError, estimator.ForcedFlowError)
    assert issubclass(estimator.RunError, estimator.ForcedFlowError)
    assert issubclass(estimator.EquilibriumError, estimator.RunError)


def test_the_command_line_starts_without_the_data_stack() -> None:
    """``forced-flow --help`` (and any command, before it runs) loads neither polars nor the
    solver stack: they are imported by the commands that use them."""
    code = (
        "import sys, estimator.cli; "
        "heavy = ('polars', 'cvxpy', 'numpy', 'scipy', 'altair'); "
        "loaded = [m for m in heavy if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert ran.returncode == 0, ran.stderr

"""Errors, not tracebacks: every way a user can get it wrong is exit 2 naming what to fix (or
exit 1 for a run that failed), user text is never read as markup, numbers are never cut."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from estimator import api, console
from estimator.cli import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    """Exit code and output; no exception may escape the command (a user's traceback)."""
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_version() -> None:
    code, output = invoke("--version")
    assert code == 0
    assert re.fullmatch(r"forced-flow \d+\.\d+\.\d+\S*\n", output)


@pytest.mark.parametrize("command", ["run", "report", "survival", "census"])
def test_help_shows_flags_as_flags(command: str) -> None:
    code, output = invoke(command, "--help")
    assert code == 0
    assert "<bool>" not in output
    assert re.search(r"--help\s+Show this message", output)


@pytest.mark.parametrize("solver", ["NOPE", "SCIPY", "HIGHS"])
def test_a_solver_that_cannot_solve_lists_those_that_can(solver: str, tmp_path: Path) -> None:
    """An unknown name, or an installed solver without power cones (a linear one)."""
    code, output = invoke("run", "small_crash", "--solver", solver, "-o", str(tmp_path / "x"))
    assert code == 2
    assert f"field '--solver': '{solver}' is not a solver" in output
    assert "able to: CLARABEL, SCS" in output
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "small_crash", "--top", "-1"], "--top"),
        (["run", "small_crash", "--workers", "0"], "--workers"),
        (["run", "small_crash", "--scheduler", "host:8786"], "--scheduler"),
        (["run", "small_crash", "--participation", "nan"], "'--participation': not finite"),
        (["run", "small_crash", "--participation", "inf"], "'--participation': not finite"),
        (["run", "small_crash", "--participation", "2"], "'--participation': too large"),
        (["run", "small_crash", "--participation", "0"], "'--participation': expected a value > 0"),
        (["survival", "small_crash", "--max-multiple", "inf"], "max_multiple"),
        (["survival", "small_crash", "--grid", "100000000"], "grid"),
        (["survival", "small_crash", "--tolerance", "nan"], "tolerance"),
        (["survival", "small_crash", "--top", "-3"], "--top"),
        (["report", "small_crash", "--top", "0"], "--top"),
    ],
)
def test_bad_options_are_exit_2(args: list[str], fragment: str, tmp_path: Path) -> None:
    code, output = invoke(*args, "--out", str(tmp_path / "x"))
    assert code == 2, output
    assert fragment in output
    assert not (tmp_path / "x").exists()


def _run(bundle: Path) -> tuple[int, str]:
    return invoke("run", str(bundle.parent / "calm.toml"), "--out", str(bundle.parent / "out"))


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"\n", "only blank lines"),
        (b"\n\n  \n", "only blank lines"),
        (b"asset_id,asset_class\n\xff\xfe,x\n", "not UTF-8"),
    ],
)
def test_unreadable_csv_is_exit_2(bundle: Path, content: bytes, fragment: str) -> None:
    (bundle / "assets.csv").write_bytes(content)
    code, output = _run(bundle)
    assert code == 2, output
    assert "assets.csv" in output and fragment in output
    assert not (bundle.parent / "out").exists()


def test_a_ragged_csv_names_its_row_in_the_projects_words(bundle: Path) -> None:
    path = bundle / "positions.csv"
    lines = path.read_text().splitlines()
    lines[3] += ",7"
    path.write_text("\n".join(lines) + "\n")
    code, output = _run(bundle)
    assert code == 2, output
    assert "positions.csv, row 4: has 4 fields where the header has 3" in output
    assert "truncate_ragged_lines" not in output


def test_a_toml_file_that_is_not_utf8_is_exit_2(bundle: Path) -> None:
    (bundle.parent / "calm.toml").write_bytes(b'name = "caf\xe9"\n')
    code, output = _run(bundle)
    assert code == 2, output
    assert "calm.toml, row 1: not UTF-8 text" in output


def test_markup_in_user_text_is_printed_as_written(bundle: Path) -> None:
    """Ids and types that look like rich markup are shown literally by every command."""
    renames = {"IG_BBBM_10Y": "IG[/]BBBM", "HF_MACRO": "[bold]HF[/bold]"}
    for path in bundle.glob("*.csv"):
        text = path.read_text()
        for old, new in renames.items():
            text = text.replace(old, new)
        path.write_text(text.replace(",hedge_fund,", ",[/hedge],"))
    crash = Path(__file__).parents[1] / "scenarios" / "small_crash.toml"
    scenario = bundle.parent / "crash.toml"
    text = crash.read_text().replace("IG_BBBM_10Y", "IG[/]BBBM")
    scenario.write_text(re.sub(r"^market = .*$", 'market = "market"', text, flags=re.M))
    code, output = invoke("run", str(scenario), "--out", str(bundle.parent / "out"))
    assert code == 0, output
    assert "IG[/]BBBM" in output
    assert "[/hedge]" in output
    code, output = invoke("census", str(bundle))
    assert code == 0, output
    assert "[/hedge]" in output
    code, output = invoke("explain", "[bold]HF[/bold]", "-s", str(scenario))
    assert code == 0, output
    assert "[bold]HF[/bold]" in output
    code, output = invoke("survival", str(scenario), "--out", str(bundle.parent / "surv"))
    assert code == 0, output
    code, output = invoke("validate", str(scenario))
    assert code == 0, output


def test_an_unexpected_error_is_exit_1_with_a_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(api, "run", broken)  # the command imports it when it runs
    monkeypatch.delenv(console.DEBUG, raising=False)
    code, output = invoke("run", "small_crash", "--out", str(tmp_path / "x"))
    assert code == 1
    assert "internal error: ZeroDivisionError: a bug" in output
    assert "FORCED_FLOW_DEBUG=1" in output
    monkeypatch.setenv(console.DEBUG, "1")
    result = runner.invoke(app, ["run", "small_crash", "--out", str(tmp_path / "x")])
    assert isinstance(result.exception, ZeroDivisionError)


def test_narrow_and_piped_output_never_cuts_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console.out, "_width", 40)
    code, output = invoke("census", "small")
    assert code == 0, output
    assert "…" not in output
    for number in ("3.92bn", "20.10bn", "14.97bn", "789.00m", "1.77m", "85.00bn", "-726.00m"):
        assert number in output


def test_a_misspelt_column_beside_the_real_one_is_an_error(bundle: Path) -> None:
    path = bundle / "assets.csv"
    lines = path.read_text().splitlines()
    lines = [lines[0] + ",prise"] + [line + ",1" for line in lines[1:]]
    path.write_text("\n".join(lines) + "\n")
    code, output = _run(bundle)
    assert code == 2, output
    assert "assets.csv, field 'prise': unknown column (did you mean 'price'?)" in output


def test_an_unrelated_extra_column_is_a_warning(bundle: Path) -> None:
    path = bundle / "assets.csv"
    lines = path.read_text().splitlines()
    lines = [lines[0] + ",sector_name"] + [line + ",x" for line in lines[1:]]
    path.write_text("\n".join(lines) + "\n")
    code, output = _run(bundle)
    assert code == 0, output
    assert "field 'sector_name': unknown column, ignored" in output


def test_a_selector_rating_off_every_scale_is_an_error(bundle: Path) -> None:
    scenario = bundle.parent / "calm.toml"
    scenario.write_text(
        scenario.read_text()
        + '\n[[shocks]]\nselect = { ratings = ["BBB--"] }\nprice_return = -0.1\n'
    )
    code, output = _run(bundle)
    assert code == 2, output
    assert "shocks.0.select.ratings" in output and "'BBB--'" in output

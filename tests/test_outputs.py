"""Output folders: the tool writes only where nothing of the user's can be lost.

Every case lists the files under the working folder before and after: a refused target keeps
every file as it was, and no temporary folder is left behind.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner, Result

from estimator import cli, views
from estimator.errors import InputError, RunError
from estimator.manifest import Manifest
from estimator.report import write_reports

runner = CliRunner()
TABLE = {"a": pl.DataFrame({"x": [1.5]})}


def listing(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its content (None for folders)."""
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
    }


def run_small(out: Path | str) -> Result:
    """``forced-flow run small_crash --out OUT``; no exception may escape the command."""
    result = runner.invoke(cli.app, ["run", "small_crash", "--out", str(out)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_new_folder_gets_the_report_and_its_manifest_lists_it(work: Path) -> None:
    result = run_small(work / "new" / "deep")
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (work / "new" / "deep").iterdir())
    manifest = json.loads((work / "new" / "deep" / "manifest.json").read_text())
    assert manifest["files"] == files
    assert files == ["assets.csv", "cures.csv", "flows.csv", "holders.csv", "manifest.json",
                     "summary.csv", "trades.csv"]  # fmt: skip


def test_an_empty_folder_is_used(work: Path) -> None:
    (work / "empty").mkdir()
    assert run_small(work / "empty").exit_code == 0
    assert (work / "empty" / "assets.csv").is_file()


def test_an_earlier_report_is_replaced_whole(work: Path) -> None:
    target = work / "r"
    write_reports(target, {"a": TABLE["a"], "b": TABLE["a"]}, Manifest())
    assert sorted(p.name for p in target.iterdir()) == ["a.csv", "b.csv", "manifest.json"]
    write_reports(target, TABLE, Manifest(), fmt="parquet")
    assert sorted(p.name for p in target.iterdir()) == ["a.parquet", "manifest.json"]
    assert sorted(p.name for p in work.iterdir()) == ["r"]  # no temporary folder left


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"analysis.py": b"print(1)\n"}, "analysis.py"),
        ({"data/prices.csv": b"a\n1\n"}, "data"),
        ({"notes.txt": b"mine"}, "notes.txt"),
    ],
)
def test_a_folder_with_other_files_is_refused(work: Path, extra: dict, fragment: str) -> None:
    target = work / "r"
    assert run_small(target).exit_code == 0  # an earlier report …
    for name, content in extra.items():  # … beside which the user keeps their own files
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(content)
    before = listing(work)
    result = run_small(target)
    assert result.exit_code == 2, result.output
    assert "did not write" in result.output and fragment in result.output
    assert "choose a new or empty folder" in result.output
    assert listing(work) == before


def test_a_folder_of_user_files_without_a_manifest_is_refused(work: Path) -> None:
    (work / "mine").mkdir()
    (work / "mine" / "assets.csv").write_text("my,own\n1,2\n")
    before = listing(work)
    assert run_small(work / "mine").exit_code == 2
    assert listing(work) == before


def test_a_manifest_of_another_tool_does_not_make_a_folder_ours(work: Path) -> None:
    (work / "other").mkdir()
    (work / "other" / "manifest.json").write_text(json.dumps({"tool": "x", "files": ["a.csv"]}))
    (work / "other" / "a.csv").write_text("a\n")
    before = listing(work)
    assert run_small(work / "other").exit_code == 2
    assert listing(work) == before


def test_a_file_as_target_is_refused_and_kept(work: Path) -> None:
    (work / "report").write_text("keep me")
    before = listing(work)
    result = run_small(work / "report")
    assert result.exit_code == 2
    assert "it is a file" in result.output
    assert listing(work) == before


@pytest.mark.parametrize("target", [".", "..", "sub/..", "./"])
def test_the_working_folder_and_its_parents_are_refused(work: Path, target: str) -> None:
    (work / "sub").mkdir()
    (work / "keep.txt").write_text("x")
    before = listing(work)
    result = run_small(target)
    assert result.exit_code == 2, result.output
    assert "working directory" in result.output
    assert listing(work) == before


def test_a_path_under_a_file_is_refused(work: Path) -> None:
    (work / "afile").write_text("x")
    result = run_small(work / "afile" / "r")
    assert result.exit_code == 2
    assert "is a file, not a folder" in result.output
    assert (work / "afile").read_text() == "x"


def test_a_symbolic_link_is_refused(work: Path) -> None:
    (work / "real").mkdir()
    (work / "link").symlink_to(work / "real")
    result = run_small(work / "link")
    assert result.exit_code == 2
    assert "symbolic link" in result.output
    assert (work / "link").is_symlink() and not any((work / "real").iterdir())


@pytest.mark.skipif(sys.platform != "linux", reason="/proc and /sys are Linux's")
@pytest.mark.parametrize("parent", ["/proc", "/sys"])
def test_an_unwritable_place_is_exit_2_without_a_traceback(parent: str, work: Path) -> None:
    result = run_small(f"{parent}/forced_flow_reports")
    assert result.exit_code == 2, result.output
    assert "cannot write the reports here" in result.output


def test_a_failure_while_writing_is_exit_1_and_keeps_the_earlier_report(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = work / "r"
    assert run_small(target).exit_code == 0
    before = listing(work)

    def disk_full(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pl.DataFrame, "write_csv", disk_full)
    result = run_small(target)
    assert result.exit_code == 1, result.output
    assert "No space left on device" in result.output
    assert listing(work) == before


def test_created_parents_are_removed_when_writing_fails(work: Path) -> None:
    with pytest.raises(RunError):
        write_reports(
            work / "a" / "b" / "r", TABLE, Manifest(), texts={"x/y.html": "no such folder"}
        )
    assert list(work.iterdir()) == []


def test_library_refusal_is_an_input_error(work: Path) -> None:
    (work / "r").mkdir()
    (work / "r" / "mine.py").write_text("x = 1")
    with pytest.raises(InputError) as caught:
        write_reports(work / "r", TABLE, Manifest())
    assert caught.value.problems[0].field == "out"


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_reports_take_the_users_umask(work: Path, mask: int) -> None:
    old = os.umask(mask)
    try:
        written = write_reports(work / "r", TABLE, Manifest())
    finally:
        os.umask(old)
    assert stat.S_IMODE((work / "r").stat().st_mode) == 0o777 & ~mask
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_a_summary_that_cannot_be_printed_does_not_fail_a_written_run(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise ValueError("terminal trouble")

    monkeypatch.setattr(views, "run_summary", broken)
    result = run_small(work / "r")
    assert result.exit_code == 0, result.output
    assert "summary could not be printed" in result.output
    assert (work / "r" / "manifest.json").is_file()


def _forced_flow(*args: str, stderr: int) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("forced-flow")
    return subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=stderr)


def test_a_closed_pipe_is_not_a_failed_run(work: Path) -> None:
    reader = _forced_flow("run", "small_crash", "--out", str(work / "r"), stderr=subprocess.PIPE)
    assert reader.stdout is not None and reader.stderr is not None
    reader.stdout.close()  # the reader (`| head -1`) has gone before the summary is printed
    err = reader.stderr.read().decode()
    assert reader.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert (work / "r" / "manifest.json").is_file()


def test_a_closed_pipe_on_both_streams_is_not_a_failed_run(work: Path) -> None:
    """`forced-flow run X 2>&1 | head -1` on a scenario that warns: the summary and the
    warnings both go to a reader that has gone."""
    (work / "warns.toml").write_text(
        'name = "warns"\nmarket = "small"\n[[shocks]]\nselect = { asset_ids = ["NONE"] }\n'
        "price_return = -0.1\n"
    )
    reader = _forced_flow("run", "warns.toml", "--out", str(work / "r"), stderr=subprocess.STDOUT)
    assert reader.stdout is not None
    reader.stdout.close()
    assert reader.wait(timeout=120) == 0
    assert (work / "r" / "manifest.json").is_file()


def test_a_report_from_before_manifests_listed_files_is_replaced(work: Path) -> None:
    earlier = work / "r"
    earlier.mkdir()
    (earlier / "manifest.json").write_text(json.dumps({"tool": "forced-flow"}))
    for name in ("assets.csv", "holders.csv", "report.html"):
        (earlier / name).write_text("old")
    assert run_small(earlier).exit_code == 0
    assert (earlier / "assets.csv").read_text() != "old"
    (earlier / "notes.txt").write_text("mine")  # not a file a report can have
    assert run_small(earlier).exit_code == 2


def test_the_default_folder_is_checked_before_the_run(work: Path) -> None:
    (work / "reports").mkdir()
    (work / "reports" / "small_crash").write_text("a file where the folder would go")
    result = runner.invoke(cli.app, ["run", "small_crash"])
    assert result.exit_code == 2
    assert "reports/small_crash" in result.output and "it is a file" in result.output
    assert "forced selling" not in result.output  # refused before the run, not after


def test_a_scenario_name_cannot_lead_out_of_the_reports_folder(work: Path) -> None:
    (work / "escape.toml").write_text('name = "../../escaped"\nmarket = "small"\n')
    result = runner.invoke(cli.app, ["run", "escape.toml"])
    assert result.exit_code == 2
    assert "field 'name'" in result.output
    assert not (work.parent / "escaped").exists() and not (work / "reports").exists()

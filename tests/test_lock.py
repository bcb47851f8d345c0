"""The lock: what it pins for this interpreter, whether the environment matches it, and that it
satisfies every requirement of pyproject.toml (each capped below its next major version)."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from estimator.lock import LOCK_FILE, lock_state, pins, runtime_closure

ROOT = Path(__file__).resolve().parents[1]

LOCK_TEXT = """\
# comment line
Polars==2.1.0 \\
    --hash=sha256:aaaa \\
    --hash=sha256:bbbb
    # via forced-flow (pyproject.toml)
numpy==1.0.0 ; python_full_version < '3.0' \\
    --hash=sha256:cccc
numpy==9.9.9 ; python_full_version >= '3.0' \\
    --hash=sha256:dddd
colorama==0.4.6 ; sys_platform == 'no-such-platform' \\
    --hash=sha256:eeee
typing_extensions==4.0.0
"""


def test_pins_are_those_whose_markers_hold_with_canonical_names() -> None:
    assert pins(LOCK_TEXT) == {
        "polars": "2.1.0",
        "numpy": "9.9.9",
        "typing-extensions": "4.0.0",
    }


def _checkout(tmp_path: Path, text: str, *, pyproject: bool = True) -> Path:
    if pyproject:
        (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    lock = tmp_path / "requirements.lock"
    lock.write_text(text)
    return lock


def test_a_lock_of_the_installed_versions_matches(tmp_path: Path) -> None:
    names = ("polars", "cvxpy", "numpy")
    text = "".join(f"{n}=={metadata.version(n)} \\\n    --hash=sha256:00\n" for n in names)
    assert lock_state(_checkout(tmp_path, text)) == "match"


def test_a_pin_of_another_version_is_named(tmp_path: Path) -> None:
    text = f"polars==0.0.1\ncvxpy=={metadata.version('cvxpy')}\nscs==0.0.2\n"
    installed = metadata.version("polars"), metadata.version("scs")
    assert lock_state(_checkout(tmp_path, text)) == (
        f"differs (polars {installed[0]}≠0.0.1, scs {installed[1]}≠0.0.2)"
    )


def test_only_what_a_run_needs_is_compared(tmp_path: Path) -> None:
    """pytest is a test tool (not in the run's closure); a missing runtime package is named."""
    closure = runtime_closure()
    assert {"polars", "cvxpy", "clarabel", "numpy", "scipy", "packaging"} <= closure
    assert "pytest" not in closure and "hypothesis" not in closure
    text = f"pytest==0.0.1\npolars=={metadata.version('polars')}\n"
    assert lock_state(_checkout(tmp_path, text)) == "match"


def test_a_required_package_not_installed_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    real = metadata.version

    def version(name: str) -> str:
        if name == "scs":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "version", version)
    assert lock_state.__wrapped__(LOCK_FILE).startswith("differs (scs missing≠")


@pytest.mark.parametrize("pyproject", [True, False])
def test_no_lock_or_no_checkout_is_unknown(tmp_path: Path, pyproject: bool) -> None:
    lock = _checkout(tmp_path, "polars==0.0.1\n", pyproject=pyproject)
    if pyproject:
        lock.unlink()
    assert lock_state(lock) == "unknown"


def test_this_environment_is_the_lock() -> None:
    """`make` installs exactly the lock: a run from this checkout says so in its manifest."""
    assert lock_state() == "match"


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + project["optional-dependencies"]["dev"]
    return [Requirement(r) for r in listed]


def test_the_lock_pins_every_requirement_within_its_range() -> None:
    """A lock older than a change to pyproject.toml fails here: refresh it with `make lock`."""
    text = (ROOT / "requirements.lock").read_text()
    locked = pins(text)
    for req in _requirements():
        name = canonicalize_name(req.name)
        assert name in locked, f"{name} is required but not locked"
        assert req.specifier.contains(locked[name], prereleases=True), (
            f"{name}=={locked[name]} is outside {req.specifier}"
        )


def test_every_requirement_has_a_major_version_cap() -> None:
    for req in _requirements():
        assert any(s.operator == "<" for s in req.specifier), f"{req.name} has no upper bound"


@pytest.mark.parametrize("platform", [("linux", "Linux"), ("darwin", "Darwin")])
@pytest.mark.parametrize("minor", [11, 12, 13])
def test_the_lock_covers_every_supported_python(platform: tuple[str, str], minor: int) -> None:
    """Universal: on Linux and macOS, for each Python 3.11–3.13, exactly one pin of every package
    applies (forks by Python version are complete), and each pin carries its hashes."""
    env = {
        "python_version": f"3.{minor}",
        "python_full_version": f"3.{minor}.0",
        "sys_platform": platform[0],
        "platform_system": platform[1],
    }
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    chosen: dict[str, list[str]] = {}
    for i, line in enumerate(lines):
        if line and line[0] not in " #":
            req = Requirement(line.removesuffix("\\").strip())
            if req.marker is None or req.marker.evaluate(env):
                chosen.setdefault(canonicalize_name(req.name), []).append(str(req.specifier))
                assert lines[i + 1].strip().startswith("--hash=sha256:"), line
    assert {k: v for k, v in chosen.items() if len(v) > 1} == {}
    assert {canonicalize_name(r.name) for r in _requirements()} <= chosen.keys()

"""Is this environment the one the tests passed in? The installed versions against the lock.

A checkout carries ``requirements.lock`` beside ``pyproject.toml``: every package of the runtime
and development environment pinned to one version (and its hashes), universal over platforms and
Python versions, each pin under an environment marker where the resolution forks (``numpy==2.4.6
; python_full_version < '3.12'``). For this interpreter the pins that apply are those whose marker
holds; the environment *matches* when each of them that a run needs (the runtime closure of
``forced-flow``'s requirements; test and lint tools are not part of a run) is installed at exactly
its pinned version.

:func:`lock_state` says ``match``, ``differs (name installed≠locked, …)`` or ``unknown`` — the last
when no lock is found, as for an installed wheel, which carries none. A run records it in its
manifest, beside the versions themselves, so a report says whether it came from the environment
the tests passed in.
"""

from __future__ import annotations

from functools import cache
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

#: The lock of a checkout: the folder above this package holds it and its pyproject.toml.
LOCK_FILE = Path(__file__).resolve().parents[1] / "requirements.lock"


def pins(text: str) -> dict[str, str]:
    """``{name: version}`` of the pins in a lock's ``text`` that apply to this interpreter.

    A pin is a line ``name==version [; marker] [\\]``; hash lines, comments and ``# via``
    notes are skipped. Names are canonical (PEP 503: lower case, runs of ``-_.`` as ``-``).
    """
    found: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line[0] in " #\t-":
            continue
        try:
            req = Requirement(line.removesuffix("\\").strip())
        except InvalidRequirement:
            continue
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==":
            continue
        if req.marker is None or req.marker.evaluate():
            found[canonicalize_name(req.name)] = specs[0].version
    return found


def runtime_closure(root: str = "forced-flow") -> set[str]:
    """Canonical names of ``root`` and every package it requires, transitively, as installed.

    Requirements are read from the installed metadata, each under its marker evaluated for this
    interpreter with no extra selected (development tools are not part of a run); a required
    package that is not installed is in the set, and its own requirements are not.
    """
    seen: set[str] = set()
    todo = [canonicalize_name(root)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


def differences(locked: dict[str, str], names: set[str]) -> list[str]:
    """``name installed≠locked`` (``missing``: not installed) for each unmet pin of ``names``."""
    out = []
    for name in sorted(names & locked.keys()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed != locked[name]:
            out.append(f"{name} {installed}≠{locked[name]}")
    return out


@cache
def lock_state(path: Path = LOCK_FILE) -> str:
    """``match``, ``differs (…)`` or ``unknown`` (no lock at ``path`` beside a pyproject.toml)."""
    if not (path.parent / "pyproject.toml").is_file():  # not a checkout (an installed wheel)
        return "unknown"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return "unknown"
    locked = pins(text)
    if not locked:
        return "unknown"
    missed = differences(locked, runtime_closure())
    return "match" if not missed else f"differs ({', '.join(missed)})"

"""Where the shipped scenarios, markets and mandates live (source tree or installed wheel)."""

from __future__ import annotations

import re
from pathlib import Path

from estimator.errors import InputError, Problem

_PACKAGE = Path(__file__).resolve().parent
_VINTAGE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

DEFAULT_MARKET = "census"
"""The shipped market a scenario runs on when it names none: every holder type, sized to public
aggregates (``scenarios/markets/census``)."""

DEMO_SCENARIO = "march_2020"
"""The scenario ``make demo`` runs, and ``explain`` when none is named."""


def data_root() -> Path:
    """Folder holding ``scenarios/`` and ``mandates/``."""
    source_tree = _PACKAGE.parent
    if (source_tree / "scenarios").is_dir() and (source_tree / "mandates").is_dir():
        return source_tree
    return _PACKAGE / "_data"


def scenarios_dir() -> Path:
    return data_root() / "scenarios"


def markets_dir() -> Path:
    return scenarios_dir() / "markets"


def mandates_dir() -> Path:
    return data_root() / "mandates"


def shipped_scenarios() -> dict[str, Path]:
    return {p.stem: p for p in sorted(scenarios_dir().glob("*.toml"))}


def shipped_markets() -> list[str]:
    """Shipped market names: each bundle, and each vintage of a dated one (``census/2019-12``)
    beside its own name."""
    names = {p.parent.name for p in markets_dir().glob("*/market.toml")}
    for folder in markets_dir().iterdir():
        dated = vintage_folders(folder) if folder.is_dir() else {}
        if dated:
            names |= {folder.name, *(f"{folder.name}/{v}" for v in dated)}
    return sorted(names)


def resolve_scenario(name_or_path: str | Path) -> Path:
    """A path to a TOML file, or the name of a shipped scenario (a folder of that name does
    not hide it). Neither: an input error listing the shipped scenarios."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.is_file():
        return path
    shipped = shipped_scenarios()
    if str(name_or_path) not in shipped:
        raise InputError(
            [
                Problem(
                    str(name_or_path),
                    "neither a scenario file nor a shipped scenario; shipped: "
                    + ", ".join(shipped),
                )
            ]
        )
    return shipped[str(name_or_path)]


def vintage_folders(folder: Path) -> dict[str, Path]:
    """A market folder's dated bundles, by vintage (``YYYY-MM`` subfolders with a
    ``market.toml``), oldest first."""
    found = {p.parent.name: p.parent for p in folder.glob("*/market.toml")}
    return {v: found[v] for v in sorted(found) if _VINTAGE.match(v)}


def vintage_at(folder: Path, day: str | None = None) -> Path:
    """The bundle of ``folder`` in force on ``day`` (``YYYY-MM-DD``): its latest vintage that
    describes a month before ``day``'s (a vintage describes its month's end; the earliest if
    none is before); the latest for no day."""
    dated = vintage_folders(folder)
    if not dated:
        raise InputError([Problem(str(folder), "no dated bundles (YYYY-MM folders) in it")])
    if day is None:
        return dated[max(dated)]
    month = day[:7]
    before = [v for v in dated if v < month]
    return dated[max(before) if before else min(dated)]


def resolve_market(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    """A bundle folder: a shipped market's name, or a path (relative to the scenario file).
    A shipped market kept by vintage (the census) resolves to its latest vintage; name one as
    ``census/2019-12``."""
    shipped = markets_dir() / str(name_or_path)
    if shipped.is_dir():
        return _latest_if_dated(shipped)
    path = Path(name_or_path)
    if not path.is_absolute() and relative_to is not None:
        path = relative_to / path
    if not path.exists():
        raise InputError(
            [
                Problem(
                    str(name_or_path),
                    f"no market bundle at {path}, and not a shipped market; shipped: "
                    + ", ".join(shipped_markets()),
                )
            ]
        )
    return _latest_if_dated(path) if path.is_dir() else path


def _latest_if_dated(folder: Path) -> Path:
    """``folder``, or its latest vintage when it is a folder of dated bundles."""
    if not (folder / "market.toml").is_file() and vintage_folders(folder):
        return vintage_at(folder)
    return folder

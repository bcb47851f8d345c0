"""Where the shipped scenarios, markets and mandates live (source tree or installed wheel)."""

from __future__ import annotations

from pathlib import Path

from estimator.errors import InputError, Problem

_PACKAGE = Path(__file__).resolve().parent

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
    return sorted(p.parent.name for p in markets_dir().glob("*/market.toml"))


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


def resolve_market(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    """A bundle folder: a shipped market's name, or a path (relative to the scenario file)."""
    shipped = markets_dir() / str(name_or_path)
    if shipped.is_dir():
        return shipped
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
    return path

"""forced-flow: who must trade in a market scenario, how much, and what it does to liquidity.

>>> import estimator
>>> result = estimator.run("march_2020")    # a shipped scenario on the default (census) market
>>> result.assets.sort("pct_adv", descending=True).head()   # doctest: +SKIP
>>> estimator.survival("small_crash", holder_id="RETAIL_1").holders   # doctest: +SKIP

The names below are imported when first used, so that a command that needs few of them (the
command line's help) starts at once.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from estimator.api import RunResult, run
    from estimator.census import Census, census
    from estimator.errors import EquilibriumError, ForcedFlowError, InputError, Problem, RunError
    from estimator.execution import Execution
    from estimator.mandates import Mandate
    from estimator.market import Market, build_market, load_market
    from estimator.scenario import HolderShock, Scenario, Shock, load_scenario
    from estimator.search import Search
    from estimator.shocks import apply_scenario
    from estimator.survival import SurvivalResult, survival

#: Public name → the module that defines it.
_PUBLIC = {
    "Census": "census",
    "EquilibriumError": "errors",
    "Execution": "execution",
    "ForcedFlowError": "errors",
    "HolderShock": "scenario",
    "InputError": "errors",
    "Mandate": "mandates",
    "Market": "market",
    "Problem": "errors",
    "RunError": "errors",
    "RunResult": "outcome",
    "Scenario": "scenario",
    "Search": "search",
    "Shock": "scenario",
    "SurvivalResult": "survival",
    "apply_scenario": "shocks",
    "build_market": "market",
    "census": "census",
    "load_market": "market",
    "load_scenario": "scenario",
    "run": "api",
    "survival": "survival",
}

__all__ = [
    "Census",
    "EquilibriumError",
    "Execution",
    "ForcedFlowError",
    "HolderShock",
    "InputError",
    "Mandate",
    "Market",
    "Problem",
    "RunError",
    "RunResult",
    "Scenario",
    "Search",
    "Shock",
    "SurvivalResult",
    "apply_scenario",
    "build_market",
    "census",
    "load_market",
    "load_scenario",
    "run",
    "survival",
]


def __getattr__(name: str) -> Any:
    """A public name, or a submodule (``estimator.synthetic``), imported when first asked for."""
    module = _PUBLIC.get(name)
    try:
        value = (
            getattr(importlib.import_module(f"estimator.{module}"), name)
            if module is not None
            else importlib.import_module(f"estimator.{name}")
        )
    except ModuleNotFoundError as exc:
        if exc.name != f"estimator.{name}":
            raise
        raise AttributeError(f"module 'estimator' has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


class _Package(types.ModuleType):
    """The package, whose submodules ``census`` and ``survival`` share their names with public
    functions: importing such a submodule does not bind it over the function."""

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and _PUBLIC.get(name) == name:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

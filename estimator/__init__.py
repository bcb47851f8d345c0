"""forced-flow: who must trade in a market scenario, how much, and what it does to liquidity.

>>> import estimator
>>> result = estimator.run("march_2020")    # a shipped scenario on the default (census) market
>>> result.assets.sort("pct_adv", descending=True).head()   # doctest: +SKIP
>>> estimator.survival("small_crash", holder_id="RETAIL_1").holders   # doctest: +SKIP
"""

from estimator.api import RunResult, run
from estimator.census import Census, census
from estimator.errors import EquilibriumError, ForcedFlowError, InputError, Problem, RunError
from estimator.mandates import Execution, Mandate
from estimator.market import Market, build_market, load_market
from estimator.scenario import HolderShock, Scenario, Shock, load_scenario
from estimator.shocks import apply_scenario
from estimator.survival import Search, SurvivalResult, survival

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

"""forced-flow: who must trade in a market scenario, how much, and what it does to liquidity.

>>> import estimator
>>> result = estimator.run("demo")          # a shipped scenario on the embedded market
>>> result.assets.sort("pct_adv", descending=True).head()   # doctest: +SKIP
"""

from estimator.api import RunResult, run
from estimator.errors import InputError, Problem, RunError
from estimator.mandates import Execution, Mandate
from estimator.market import Market, build_market, load_market
from estimator.scenario import Scenario, Shock, apply_scenario, load_scenario

__all__ = [
    "Execution",
    "InputError",
    "Mandate",
    "Market",
    "Problem",
    "RunError",
    "RunResult",
    "Scenario",
    "Shock",
    "apply_scenario",
    "build_market",
    "load_market",
    "load_scenario",
    "run",
]

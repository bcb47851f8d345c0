"""Small markets for hand-computed oracles: one mandate ``m``, assets and holders with defaults."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

import estimator
from estimator import Mandate, Scenario
from estimator.api import RunResult

REL = 1e-9


def asset_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    base = {"asset_class": "equity", "instrument": "cash", "adv": 1e9, "vol": 0.2}
    return pl.DataFrame([{**base, **r} for r in rows])


def holder_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    base = {"holder_type": "fund", "mandate": "m", "cash": 0.0}
    return pl.DataFrame([{**base, **r} for r in rows])


def run_case(
    assets: list[dict[str, Any]],
    holders: list[dict[str, Any]],
    positions: list[tuple[str, str, float]],
    rules: list[dict[str, Any]],
    shocks: list[dict[str, Any]],
    execution: str = "pro_rata",
    impact: dict[str, Any] | None = None,
    holder_shocks: list[dict[str, Any]] | None = None,
) -> RunResult:
    pos = pl.DataFrame(positions, schema=["holder_id", "asset_id", "quantity"], orient="row")
    mandate = Mandate(name="m", execution=execution, rules=rules)
    market = estimator.build_market(asset_frame(assets), holder_frame(holders), pos, {"m": mandate})
    extra = {"impact": impact} if impact else {}
    scenario = Scenario(name="s", shocks=shocks, holder_shocks=holder_shocks or [], **extra)
    return estimator.run(scenario, market)


def holder(result: RunResult, holder_id: str = "h") -> dict[str, Any]:
    return result.holders.filter(pl.col("holder_id") == holder_id).row(0, named=True)


def trade_quantities(result: RunResult, holder_id: str = "h") -> dict[str, float]:
    t = result.trades.filter(pl.col("holder_id") == holder_id)
    return dict(zip(t["asset_id"], t["trade_quantity"], strict=True))


def future(asset_id: str, price: float, multiplier: float) -> dict[str, Any]:
    return {"asset_id": asset_id, "instrument": "future", "price": price, "multiplier": multiplier}


def everywhere(**effects: float) -> list[dict[str, Any]]:
    return [{"select": {"all": True}, **effects}]


def two_sellers() -> tuple[RunResult, estimator.Market]:
    """A vol-control fund "v" and a margin account "h", each holding 100 at 50 (5000), the
    account on −4000 of cash; equities −10% and their vol × 2. The fund (σ/E = 20% against a
    10% target) halves its book, selling 2250 (systematic); the account (AE = 500,
    R = 0.25·4500 = 1125, back to maintenance: keep 500/0.25) sells 2500 (forced)."""
    assets = pl.DataFrame(
        {"asset_id": ["a"], "asset_class": "equity", "instrument": "cash", "price": 50.0}
        | {"adv": 1e9, "vol": 0.1}
    )
    holders = pl.DataFrame(
        {"holder_id": ["v", "h"], "holder_type": ["vc", "retail"], "mandate": ["vol", "mar"]}
        | {"cash": [0.0, -4000.0]}
    )
    positions = pl.DataFrame({"holder_id": ["v", "h"], "asset_id": "a", "quantity": 100.0})
    mandates = {
        "vol": Mandate(name="vol", rules=[{"kind": "vol_target", "target": 0.1}]),
        "mar": Mandate(name="mar", rules=[{"kind": "margin"}], cure=[]),
    }
    market = estimator.build_market(assets, holders, positions, mandates)
    spec = Scenario(
        name="s", shocks=[{"select": {"all": True}, "price_return": -0.1, "vol_multiplier": 2.0}]
    )
    return estimator.run(spec, market), market


def dealer_hedge(levels: list[float], gammas: list[float], rho: float) -> float:
    """The dealers' hedge ``x* = −100·ρ·∫₁^ρ g(u)/u² du`` by adaptive quadrature, ``g`` linear
    between the knots ``(1 + ℓ, g)`` and flat beyond them (numpy's interpolation) — a method
    independent of the rule's closed form."""
    from scipy.integrate import quad  # noqa: PLC0415

    knots = [1.0 + lv for lv in levels]

    def integrand(u: float) -> float:
        return float(np.interp(u, knots, gammas)) / u**2

    inside = [k for k in knots if min(rho, 1.0) < k < max(rho, 1.0)]
    value, _ = quad(integrand, 1.0, rho, points=inside or None, epsabs=0.0, epsrel=1e-12)
    return -100.0 * rho * value

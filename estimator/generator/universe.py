"""The census's instruments and their risk model, drawn from the parameter file.

A few hundred representative instruments stand for each market: equities, government bonds
by maturity bucket, corporate bonds by rating and futures, with a factor model whose asset
covariance is ``Σ = Λ Σ_f Λᵀ + diag(s²)`` (``Λ`` the loadings on :data:`FACTORS`, ``s`` the
specific vols).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

FACTORS = ["equity", "cyclical", "defensive", "growth", "rates", "credit", "vix"]
GROUPS = {  # sector → the style factor it loads on
    "technology": "growth",
    "communication": "growth",
    "health": "defensive",
    "utilities": "defensive",
    "real_estate": "defensive",
}
IG = {"AAA", "AA+", "AA", "AA-", "A+", "A", "A-", "BBB+", "BBB", "BBB-"}


def assets(p: dict[str, Any], rng: np.random.Generator) -> tuple[pl.DataFrame, np.ndarray]:
    """The asset table and its factor loadings (one row per asset, columns :data:`FACTORS`).

    Equities: ``n`` market caps drawn lognormal (σ = ``cap_dispersion``), sorted and scaled to
    the market's total; daily value in proportion to cap; prices log-uniform; half-spreads and
    specific vols rising linearly from the largest to the smallest. Government bonds as the
    file lists them, converted at its FX rates. Corporate bonds: ratings drawn at the file's
    shares, amounts lognormal scaled to the market's total, durations and prices uniform by
    grade. Futures as listed. Loadings: an equity's beta on the market factor and its style on
    its sector's factor; a bond's −duration on rates (and on credit for corporates); a VIX
    future 1 on the volatility factor."""
    rows: list[dict[str, Any]] = []
    loads: list[list[float]] = []
    eq = p["equities"]
    n = eq["count"]
    caps = np.sort(rng.lognormal(0.0, eq["cap_dispersion"], n))[::-1]
    caps *= eq["market_cap"]["value"] / caps.sum()
    rank = np.arange(n) / max(n - 1, 1)  # 0: the largest, 1: the smallest
    lo, hi = eq["price_range"]
    prices = np.exp(rng.uniform(math.log(lo), math.log(hi), n))
    sectors = rng.choice(eq["sectors"], n)
    betas = rng.uniform(*eq["beta_range"], n)
    style = rng.uniform(0.3, 1.0, n)
    spec_lo, spec_hi = eq["specific_vol"]
    hs_lo, hs_hi = eq["half_spread_bps"]
    for i in range(n):
        rows.append(
            {
                "asset_id": f"EQ{i + 1:03d}",
                "asset_class": "equity",
                "instrument": "cash",
                "price": round(float(prices[i]), 2),
                "multiplier": None,
                "adv": float(eq["daily_value"]["value"] * caps[i] / caps.sum()),
                "duration": None,
                "convexity": None,
                "coupon_frequency": None,
                "rating_sp": None,
                "rating_moodys": None,
                "margin_rate": None,
                "half_spread_bps": round(hs_lo + (hs_hi - hs_lo) * rank[i], 2),
                "specific_vol": spec_lo + (spec_hi - spec_lo) * rank[i],
                "sector": sectors[i],
                "size": float(caps[i]),
            }
        )
        row = [float(betas[i]), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        row[FACTORS.index(GROUPS.get(sectors[i], "cyclical"))] = float(style[i])
        loads.append(row)
    fx = {k: v["value"] for k, v in p["fx"].items()} | {"USD": 1.0}
    for b in p["government_bonds"]:
        rate = fx[b["currency"]]
        rows.append(
            {
                "asset_id": b["id"],
                "asset_class": "govt_bond",
                "instrument": "cash",
                "price": round(b["price"] * rate, 4),
                "multiplier": None,
                "adv": b["adv"] * rate,
                "duration": b["duration"],
                "convexity": b["convexity"],
                "coupon_frequency": 1 if b["currency"] == "EUR" else 2,  # Bunds pay yearly
                "rating_sp": b["rating_sp"],
                "rating_moodys": b["rating_moodys"],
                "margin_rate": None,
                "half_spread_bps": b["half_spread_bps"],
                "specific_vol": 0.002,
                "sector": b["currency"],
                "size": b["outstanding"] * rate,
            }
        )
        loads.append([0.0, 0.0, 0.0, 0.0, -b["duration"], 0.0, 0.0])
    cb = p["corporate_bonds"]
    m = cb["count"]
    grades = list(cb["ratings"])
    shares = np.array([cb["ratings"][g] for g in grades])
    ratings = rng.choice(grades, m, p=shares / shares.sum())
    sizes = rng.lognormal(0.0, cb["dispersion"], m)
    sizes *= cb["outstanding"]["value"] / sizes.sum()
    for i in range(m):
        grade = "investment_grade" if ratings[i] in IG else "high_yield"
        duration = float(rng.uniform(*cb["duration"][grade]))
        price = float(
            rng.uniform(94.0, 102.0) if grade == "investment_grade" else rng.uniform(82.0, 100.0)
        )
        rows.append(
            {
                "asset_id": f"CB{i + 1:03d}",
                "asset_class": "corp_bond",
                "instrument": "cash",
                "price": round(price, 3),
                "multiplier": None,
                "adv": float(cb["daily_value"]["value"] * sizes[i] / sizes.sum()),
                "duration": round(duration, 2),
                "convexity": None,  # no source: repriced by its duration, as a zero coupon
                "coupon_frequency": 2,
                "rating_sp": str(ratings[i]),
                "rating_moodys": None,
                "margin_rate": None,
                "half_spread_bps": round(float(rng.uniform(*cb["half_spread_bps"][grade])), 1),
                "specific_vol": 0.01 if grade == "investment_grade" else 0.03,
                "sector": grade,
                "size": float(sizes[i]),
            }
        )
        loads.append([0.0, 0.0, 0.0, 0.0, -duration, -duration, 0.0])
    for f in p["futures"]:
        rows.append(
            {
                "asset_id": f["id"],
                "asset_class": f["asset_class"],
                "instrument": "future",
                "price": f["price"],
                "multiplier": f["multiplier"],
                "adv": f["adv"],
                "duration": f.get("duration"),
                "convexity": None,
                "coupon_frequency": None if f.get("duration") is None else 2,
                "rating_sp": None,
                "rating_moodys": None,
                "margin_rate": f["margin_rate"],
                "half_spread_bps": 0.5,
                "specific_vol": 0.002,
                "sector": f["tracks"],
                "size": 0.0,
            }
        )
        if f["tracks"] == "equity":
            loads.append([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        elif f["tracks"] == "vix":  # a VIX future: the volatility factor alone
            loads.append([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
        else:
            loads.append([0.0, 0.0, 0.0, 0.0, -f["duration"], 0.0, 0.0])
    share = p["equities"].get("auction_share")  # a typical closing auction's share of ADV
    auction = pl.lit(share["value"] if share else None, dtype=pl.Float64)
    frame = pl.DataFrame(rows, infer_schema_length=None).with_columns(
        auction_share=pl.when(pl.col("asset_class") == "equity").then(auction)
    )
    return frame, np.array(loads)


def covariance(p: dict[str, Any]) -> np.ndarray:
    """Factor covariance ``Σ_f = diag(v)·C·diag(v)``: the file's factor vols ``v`` and a
    correlation ``C`` that is the identity except equity–credit, equity–rates and equity–VIX."""
    r = p["risk_model"]
    vols = np.array([r["vols"][f] for f in FACTORS])
    corr = np.eye(len(FACTORS))
    i, j, k = FACTORS.index("equity"), FACTORS.index("credit"), FACTORS.index("rates")
    corr[i, j] = corr[j, i] = r["equity_credit_correlation"]
    corr[i, k] = corr[k, i] = r["equity_rates_correlation"]
    v = FACTORS.index("vix")
    corr[i, v] = corr[v, i] = r["equity_vix_correlation"]
    return np.outer(vols, vols) * corr

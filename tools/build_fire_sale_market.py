"""Regenerate the fire-sale market in ``scenarios/markets/fire_sale``.

A small equity market built to show a chain of coercion: thinly traded small caps held on
margin by retail accounts, a small-cap hedge fund close to its leverage limit that shares those
names and some mid caps, and a much larger multi-strategy fund, also close to its limit, that
shares the mid caps and holds large caps. Deterministic; every number is an assumption of a
realistic order, not a calibration. Run ``python tools/build_fire_sale_market.py``.
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl

OUT = Path(__file__).resolve().parent.parent / "scenarios" / "markets" / "fire_sale"

# asset_id, price, ADV ($), equity beta, specific vol, half-spread (bps); one equity factor
# with 16% annual vol, total vol √(β²·0.16² + specific²)
MARKET_VOL = 0.16
ASSETS = [
    ("SMALL_A", 12.0, 6e6, 1.4, 0.50, 25.0),
    ("SMALL_B", 18.0, 9e6, 1.3, 0.45, 20.0),
    ("MID_A", 45.0, 1.2e8, 1.2, 0.30, 6.0),
    ("MID_B", 60.0, 1.5e8, 1.1, 0.27, 5.0),
    ("LARGE_A", 180.0, 4e9, 1.0, 0.18, 1.0),
    ("LARGE_B", 240.0, 5e9, 0.9, 0.16, 1.0),
]

# holder_id, type, mandate, equity ($), gross leverage (assets / equity), weights by asset
HOLDERS = [
    *(
        (f"RETAIL_{i}", "margin_account", "", eq, 3.1, {"SMALL_A": 0.6, "SMALL_B": 0.4})
        for i, eq in enumerate([3.6e6, 2.4e6, 4.5e6, 1.8e6, 3.0e6, 2.7e6], start=1)
    ),
    (
        "HF_SMALLCAP",
        "hedge_fund",
        "hedge_fund_pro_rata",
        60e6,
        3.10,
        {"SMALL_A": 0.15, "SMALL_B": 0.15, "MID_A": 0.4, "MID_B": 0.3},
    ),
    (
        "HF_MULTI",
        "hedge_fund",
        "hedge_fund_pro_rata",
        900e6,
        3.325,
        {"MID_A": 0.18, "MID_B": 0.14, "LARGE_A": 0.38, "LARGE_B": 0.30},
    ),
]


def build() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    prices = {a[0]: a[1] for a in ASSETS}
    pl.DataFrame(
        [
            {
                "asset_id": a,
                "asset_class": "equity",
                "instrument": "cash",
                "price": p,
                "adv": adv,
                "vol": round(math.hypot(beta * MARKET_VOL, spec), 6),
                "half_spread_bps": hs,
            }
            for a, p, adv, beta, spec, hs in ASSETS
        ]
    ).write_csv(OUT / "assets.csv")
    pl.DataFrame(
        [{"asset_id": a, "factor": "equity", "loading": beta} for a, _, _, beta, _, _ in ASSETS]
    ).write_csv(OUT / "factor_loadings.csv")
    pl.DataFrame(
        {"factor_i": ["equity"], "factor_j": ["equity"], "covariance": [MARKET_VOL**2]}
    ).write_csv(OUT / "factor_covariance.csv")
    pl.DataFrame(
        [{"asset_id": a, "specific_vol": spec} for a, _, _, _, spec, _ in ASSETS]
    ).write_csv(OUT / "specific_risk.csv")
    holders, positions = [], []
    for holder_id, kind, mandate, equity, leverage, weights in HOLDERS:
        gross = equity * leverage
        holders.append(
            {
                "holder_id": holder_id,
                "holder_type": kind,
                "mandate": mandate,
                "cash": round(equity - gross, 2),  # borrowed: negative cash
            }
        )
        positions += [
            {"holder_id": holder_id, "asset_id": a, "quantity": round(w * gross / prices[a])}
            for a, w in weights.items()
        ]
    pl.DataFrame(holders).write_csv(OUT / "holders.csv")
    pl.DataFrame(positions).write_csv(OUT / "positions.csv")


if __name__ == "__main__":
    build()

"""Regenerate the small teaching market in ``scenarios/markets/small``.

Deterministic: no randomness, every number below is a documented assumption chosen to be of a
realistic order (not a calibration). Run ``python tools/build_small_market.py``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl

OUT = Path(__file__).resolve().parent.parent / "scenarios" / "markets" / "small"

# Factors: equity market return, change in government yield (decimal), change in credit spread.
FACTORS = ["equity", "rates", "credit"]
FACTOR_VOL = np.array(
    [0.16, 0.009, 0.006]
)  # assumption: 16% equity vol, 90bp/60bp yield/spread vol
FACTOR_CORR = np.array([[1.0, 0.2, -0.6], [0.2, 1.0, -0.3], [-0.6, -0.3, 1.0]])

# asset_id, class, instrument, price, multiplier, adv ($), beta_eq, duration, convexity, spec vol,
# rating_sp, rating_moodys, margin_rate, half_spread_bps
ASSETS = [
    ("EQ_MEGA1", "equity", "cash", 420.0, None, 9e9, 1.10, None, None, 0.18, None, None, None, 1.0),
    ("EQ_MEGA2", "equity", "cash", 180.0, None, 7e9, 1.20, None, None, 0.20, None, None, None, 1.0),
    ("EQ_MEGA3", "equity", "cash", 150.0, None, 5e9, 0.95, None, None, 0.17, None, None, None, 1.0),
    ("EQ_BANK1", "equity", "cash", 60.0, None, 2e9, 1.15, None, None, 0.20, None, None, None, 2.0),
    (
        "EQ_BANK2",
        "equity",
        "cash",
        45.0,
        None,
        1.2e9,
        1.25,
        None,
        None,
        0.22,
        None,
        None,
        None,
        2.0,
    ),
    (
        "EQ_ENERGY",
        "equity",
        "cash",
        95.0,
        None,
        1.5e9,
        1.00,
        None,
        None,
        0.25,
        None,
        None,
        None,
        2.0,
    ),
    (
        "EQ_HEALTH",
        "equity",
        "cash",
        140.0,
        None,
        1.1e9,
        0.75,
        None,
        None,
        0.16,
        None,
        None,
        None,
        2.0,
    ),
    ("EQ_STAPLE", "equity", "cash", 70.0, None, 9e8, 0.60, None, None, 0.14, None, None, None, 2.0),
    ("EQ_MID1", "equity", "cash", 38.0, None, 2.5e8, 1.30, None, None, 0.30, None, None, None, 4.0),
    ("EQ_MID2", "equity", "cash", 22.0, None, 1.5e8, 1.35, None, None, 0.32, None, None, None, 5.0),
    (
        "EQ_SMALL1",
        "equity",
        "cash",
        12.0,
        None,
        4e7,
        1.40,
        None,
        None,
        0.40,
        None,
        None,
        0.30,
        10.0,
    ),
    (
        "EQ_SMALL2",
        "equity",
        "cash",
        8.0,
        None,
        2.5e7,
        1.50,
        None,
        None,
        0.45,
        None,
        None,
        0.30,
        12.0,
    ),
    ("UST2Y", "govt_bond", "cash", 99.5, None, 6e10, 0.0, 1.9, 4.5, 0.002, "AA+", "Aaa", None, 0.3),
    (
        "UST10Y",
        "govt_bond",
        "cash",
        97.0,
        None,
        4e10,
        0.0,
        8.3,
        80.0,
        0.004,
        "AA+",
        "Aaa",
        None,
        0.5,
    ),
    (
        "UST30Y",
        "govt_bond",
        "cash",
        92.0,
        None,
        1e10,
        0.0,
        17.5,
        400.0,
        0.006,
        "AA+",
        "Aaa",
        None,
        1.0,
    ),
    (
        "BUND10Y",
        "govt_bond",
        "cash",
        98.0,
        None,
        1.5e10,
        0.0,
        8.6,
        85.0,
        0.005,
        "AAA",
        "Aaa",
        None,
        0.5,
    ),
    (
        "GILT10Y",
        "govt_bond",
        "cash",
        96.0,
        None,
        8e9,
        0.0,
        8.0,
        75.0,
        0.006,
        "AA",
        "Aa3",
        None,
        0.8,
    ),
    # a long-dated gilt, the core holding of UK liability-driven investment (converted to the
    # base currency; price, ADV and spread are assumptions of a realistic order)
    (
        "GILT30Y",
        "govt_bond",
        "cash",
        85.0,
        None,
        3e9,
        0.0,
        19.0,
        450.0,
        0.007,
        "AA",
        "Aa3",
        None,
        1.5,
    ),
    ("IG_A_6Y", "corp_bond", "cash", 99.0, None, 6e7, 0.0, 5.2, 33.0, 0.010, "A", "A2", None, 8.0),
    (
        "IG_BBBP_7Y",
        "corp_bond",
        "cash",
        98.0,
        None,
        5e7,
        0.0,
        5.9,
        41.0,
        0.012,
        "BBB+",
        "Baa1",
        None,
        10.0,
    ),
    (
        "IG_BBB_8Y",
        "corp_bond",
        "cash",
        97.5,
        None,
        4e7,
        0.0,
        6.4,
        48.0,
        0.014,
        "BBB",
        "Baa2",
        None,
        12.0,
    ),
    (
        "IG_BBBM_10Y",
        "corp_bond",
        "cash",
        96.0,
        None,
        3e7,
        0.0,
        7.5,
        66.0,
        0.016,
        "BBB-",
        "Baa3",
        None,
        15.0,
    ),
    (
        "HY_BBP_5Y",
        "corp_bond",
        "cash",
        94.0,
        None,
        2e7,
        0.0,
        4.2,
        21.0,
        0.030,
        "BB+",
        "Ba1",
        None,
        25.0,
    ),
    (
        "HY_B_5Y",
        "corp_bond",
        "cash",
        88.0,
        None,
        1.5e7,
        0.0,
        3.9,
        18.0,
        0.045,
        "B",
        "B2",
        None,
        40.0,
    ),
    (
        "ES_FUT",
        "equity_future",
        "future",
        5000.0,
        50.0,
        2e11,
        1.00,
        None,
        None,
        0.01,
        None,
        None,
        0.06,
        0.3,
    ),
    (
        "NQ_FUT",
        "equity_future",
        "future",
        18000.0,
        20.0,
        8e10,
        1.25,
        None,
        None,
        0.05,
        None,
        None,
        0.07,
        0.4,
    ),
    (
        "TY_FUT",
        "bond_future",
        "future",
        110.0,
        1000.0,
        6e10,
        0.0,
        6.5,
        55.0,
        0.003,
        None,
        None,
        0.025,
        0.3,
    ),
    (
        "FGBL_FUT",
        "bond_future",
        "future",
        132.0,
        1000.0,
        2.5e10,
        0.0,
        8.0,
        75.0,
        0.004,
        None,
        None,
        0.03,
        0.4,
    ),
]

# holder_id, type, mandate (blank: by applies_to), cash, other_debt, non_tradable, reserve, credit
HOLDERS = [
    ("VC_FUND_A", "vol_control_fund", "vol_control", 2.0e9, 0.0, 0.0, 0.0, 0.0),
    ("VC_FUND_B", "vol_control_fund", "vol_control", 1.2e9, 0.0, 0.0, 0.0, 0.0),
    ("RP_FUND_A", "risk_parity_fund", "risk_parity", 3.0e9, 0.0, 0.0, 0.0, 0.0),
    ("HF_MACRO", "hedge_fund", "hedge_fund", -1.5e9, 0.0, 5.0e7, 0.0, 0.0),
    ("HF_CREDIT", "hedge_fund", "hedge_fund_pro_rata", -6.5e8, 0.0, 0.0, 0.0, 0.0),
    ("LETF_2X", "leveraged_etf", "leveraged_etf", -3.945e8, 0.0, 0.0, 0.0, 0.0),
    ("RETAIL_1", "margin_account", "", -3.0e5, 0.0, 0.0, 0.0, 0.0),
    ("RETAIL_2", "margin_account", "", -2.0e5, 0.0, 0.0, 2.0e4, 0.0),
    ("RETAIL_3", "margin_account", "", -1.5e5, 0.0, 0.0, 0.0, 2.0e5),
    ("RETAIL_4", "margin_account", "", -3.3e5, 0.0, 0.0, 0.0, 0.0),
    ("IG_FUND", "ig_bond_fund", "ig_only", 5.0e7, 0.0, 0.0, 0.0, 0.0),
    ("PENSION_60_40", "pension_fund", "pension_60_40", 0.0, 0.0, 0.0, 0.0, 0.0),
    ("INDEX_FUND", "index_fund", "index_fund", 1.0e8, 0.0, 0.0, 0.0, 0.0),
    ("MS_POD", "multi_strategy_fund", "multi_strategy", 9.9e7, 0.0, 0.0, 0.0, 0.0),
    ("BOND_FUND", "open_end_bond_fund", "open_end_bond_fund", 2.6e7, 0.0, 0.0, 0.0, 0.0),
    ("LDI_POOLED", "ldi_fund", "ldi_pooled", -1.1e9, 0.0, 0.0, 0.0, 0.0),
    ("PENSION_DB", "pension_fund", "pension_db", 0.0, 0.0, 0.0, 0.0, 0.0),
    ("DEALERS", "options_dealer", "options_dealer", 5.0e9, 0.0, 0.0, 0.0, 0.0),
    ("CTA", "trend_follower", "trend_follower", 1.0e9, 0.0, 0.0, 0.0, 0.0),
]

# The options dealers' net dollar gamma per 1% move on the S&P future (level S/S₀ − 1, $):
# long at the spot, flat 2% lower, short below — the shape of a book long the calls and short
# the puts investors trade (an assumption of a realistic order).
DEALER_GAMMA = [("ES_FUT", -0.2, -6.0e7), ("ES_FUT", -0.02, 0.0), ("ES_FUT", 0.0, 3.0e7)]

# Liabilities of the holders that have them: present value ($) and modified duration (years).
# The defined-benefit pension is 105% funded before the scenario (an assumption); 16 years is
# of the order of a mature scheme's liability duration (an assumption, not a survey figure).
LIABILITIES = {"PENSION_DB": (4.75e9, 16.0)}

# A cap-weighted large-cap index (weights are assumptions, summing to 1) and a fund of about
# 20bn that replicates it.
INDEX_ID = "LARGE_CAP"
INDEX_WEIGHTS = {
    "EQ_MEGA1": 0.25,
    "EQ_MEGA2": 0.20,
    "EQ_MEGA3": 0.15,
    "EQ_BANK1": 0.09,
    "EQ_BANK2": 0.06,
    "EQ_ENERGY": 0.08,
    "EQ_HEALTH": 0.09,
    "EQ_STAPLE": 0.06,
    "EQ_MID1": 0.02,
}
INDEX_FUND_AUM = 2.0e10

# holder_id, asset_id, quantity
POSITIONS = [
    ("VC_FUND_A", "ES_FUT", 4800.0),
    ("VC_FUND_A", "TY_FUT", 7200.0),
    ("VC_FUND_B", "ES_FUT", 2150.0),
    ("VC_FUND_B", "NQ_FUT", 370.0),
    ("VC_FUND_B", "FGBL_FUT", 3100.0),
    ("RP_FUND_A", "ES_FUT", 3200.0),
    ("RP_FUND_A", "TY_FUT", 32000.0),
    ("RP_FUND_A", "FGBL_FUT", 12000.0),
    ("RP_FUND_A", "IG_A_6Y", 3.2e6),
    ("HF_MACRO", "EQ_MEGA1", 2.0e6),
    ("HF_MACRO", "EQ_MEGA2", 3.0e6),
    ("HF_MACRO", "EQ_BANK1", 5.0e6),
    ("HF_MACRO", "EQ_MID1", 6.0e6),
    ("HF_MACRO", "UST10Y", 5.0e6),
    ("HF_MACRO", "EQ_STAPLE", -2.0e6),
    ("HF_CREDIT", "IG_BBBP_7Y", 3.0e6),
    ("HF_CREDIT", "IG_BBB_8Y", 3.5e6),
    ("HF_CREDIT", "IG_BBBM_10Y", 3.0e6),
    ("HF_CREDIT", "HY_BBP_5Y", 2.0e6),
    ("HF_CREDIT", "HY_B_5Y", 1.0e6),
    ("HF_CREDIT", "EQ_BANK2", -3.0e6),
    ("LETF_2X", "EQ_MEGA1", 7.0e5),
    ("LETF_2X", "EQ_MEGA2", 1.5e6),
    ("LETF_2X", "EQ_MEGA3", 1.5e6),
    ("RETAIL_1", "EQ_MID2", 2.7e4),
    ("RETAIL_2", "EQ_SMALL1", 3.3e4),
    ("RETAIL_3", "EQ_MID1", 8.0e3),
    ("RETAIL_4", "EQ_SMALL2", 6.0e4),
    # investment-grade-only bond fund, about 1bn: its BBB- bond is small_crash's fallen angel
    ("IG_FUND", "IG_A_6Y", 4.0e6),
    ("IG_FUND", "IG_BBBP_7Y", 3.0e6),
    ("IG_FUND", "IG_BBB_8Y", 2.0e6),
    ("IG_FUND", "IG_BBBM_10Y", 5.0e5),
    ("IG_FUND", "UST10Y", 1.0e6),
    # a 60/40 pension of about 10bn, at its policy weights before the shock
    ("PENSION_60_40", "EQ_MEGA1", 3.5e6),
    ("PENSION_60_40", "EQ_MEGA2", 8.5e6),
    ("PENSION_60_40", "EQ_MEGA3", 6.5e6),
    ("PENSION_60_40", "EQ_BANK1", 8.5e6),
    ("PENSION_60_40", "EQ_HEALTH", 5.5e6),
    ("PENSION_60_40", "EQ_STAPLE", 1.0e7),
    ("PENSION_60_40", "UST10Y", 2.1e7),
    ("PENSION_60_40", "UST30Y", 1.1e7),
    ("PENSION_60_40", "BUND10Y", 1.0e7),
    # a multi-strategy fund of 250m equity, 600m long and 450m short equities (net long 150m):
    # a 20% equity fall costs it 30m, a 12% drawdown
    ("MS_POD", "EQ_MEGA3", 2.0e6),
    ("MS_POD", "EQ_ENERGY", 2.0e6),
    ("MS_POD", "EQ_HEALTH", 8.0e5),
    ("MS_POD", "EQ_STAPLE", -4.0e6),
    ("MS_POD", "EQ_BANK2", -3.8e6),
    # an open-ended corporate bond fund of about 400m with 4% in cash: redemptions after its
    # losses are paid from cash, then by selling slices of its bonds
    ("BOND_FUND", "IG_A_6Y", 1.0e6),
    ("BOND_FUND", "IG_BBB_8Y", 1.0e6),
    ("BOND_FUND", "HY_BBP_5Y", 1.0e6),
    ("BOND_FUND", "HY_B_5Y", 5.0e5),
    ("BOND_FUND", "UST10Y", 5.0e5),
    # a defined-benefit pension of about 5bn, 50/50 equities and long government bonds
    ("PENSION_DB", "EQ_MEGA1", 2.0e6),
    ("PENSION_DB", "EQ_MEGA2", 5.0e6),
    ("PENSION_DB", "EQ_MEGA3", 5.0e6),
    ("PENSION_DB", "UST30Y", 1.63e7),
    ("PENSION_DB", "UST10Y", 1.03e7),
    # a pooled LDI fund: 1.36bn of long gilts on 1.1bn of repo, equity 260m; DV01 2.58m, so a
    # yield buffer of about 100bp
    ("LDI_POOLED", "GILT30Y", 1.6e7),
]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    cov = np.outer(FACTOR_VOL, FACTOR_VOL) * FACTOR_CORR
    rows, loads, spec = [], [], []
    for a in ASSETS:
        aid, cls, inst, price, mult, adv, beta, dur, cvx, svol, sp, md, mr, hs = a
        b = np.array([beta, -(dur or 0.0), -(dur or 0.0) if cls == "corp_bond" else 0.0])
        if cls == "bond_future":
            b[1] = -(dur or 0.0)
        vol = math.sqrt(float(b @ cov @ b) + svol**2)
        rows.append(
            dict(
                asset_id=aid,
                asset_class=cls,
                instrument=inst,
                price=price,
                multiplier=mult,
                adv=adv,
                vol=round(vol, 6),
                duration=dur,
                convexity=cvx,
                rating_sp=sp,
                rating_moodys=md,
                margin_rate=mr,
                half_spread_bps=hs,
            )
        )
        loads += [
            dict(asset_id=aid, factor=f, loading=float(v))
            for f, v in zip(FACTORS, b, strict=True)
            if v
        ]
        spec.append(dict(asset_id=aid, specific_vol=svol))
    pl.DataFrame(rows).write_csv(OUT / "assets.csv")
    pl.DataFrame(loads).write_csv(OUT / "factor_loadings.csv")
    pl.DataFrame(spec).write_csv(OUT / "specific_risk.csv")
    fc = [
        dict(factor_i=FACTORS[i], factor_j=FACTORS[j], covariance=float(cov[i, j]))
        for i in range(3)
        for j in range(3)
        if j >= i
    ]
    pl.DataFrame(fc).write_csv(OUT / "factor_covariance.csv")
    cols = [
        "holder_id",
        "holder_type",
        "mandate",
        "cash",
        "other_debt",
        "non_tradable",
        "cash_reserve",
        "credit_line",
    ]
    holders = pl.DataFrame(HOLDERS, schema=cols, orient="row").with_columns(
        liabilities=pl.col("holder_id").replace_strict(
            {h: pv for h, (pv, _) in LIABILITIES.items()}, default=None, return_dtype=pl.Float64
        ),
        liability_duration=pl.col("holder_id").replace_strict(
            {h: d for h, (_, d) in LIABILITIES.items()}, default=None, return_dtype=pl.Float64
        ),
    )
    holders.write_csv(OUT / "holders.csv")
    prices = {a[0]: a[3] for a in ASSETS}
    tracker = [
        ("INDEX_FUND", aid, INDEX_FUND_AUM * w / prices[aid]) for aid, w in INDEX_WEIGHTS.items()
    ]
    pl.DataFrame(
        POSITIONS + tracker, schema=["holder_id", "asset_id", "quantity"], orient="row"
    ).write_csv(OUT / "positions.csv")
    pl.DataFrame(
        [(INDEX_ID, aid, w) for aid, w in INDEX_WEIGHTS.items()],
        schema=["index_id", "asset_id", "weight"],
        orient="row",
    ).write_csv(OUT / "index_weights.csv")
    pl.DataFrame(DEALER_GAMMA, schema=["asset_id", "level", "gamma"], orient="row").write_csv(
        OUT / "dealer_gamma.csv"
    )


if __name__ == "__main__":
    main()

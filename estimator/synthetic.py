"""Generated markets of any size for benchmarks: every rule kind, a factor risk model, an index.

Deterministic for a seed; vectorised (no per-row Python). The universe has 400 equities in
ten sectors, 50 government and 140 corporate bonds rated AA to B (a fifth of them BBB-, on the
edge of investment grade), and equity and bond futures. Holders are spread over nine mandates:

========= ======================================= ==========================================
mandate   rules                                   book
========= ======================================= ==========================================
vt        vol_target 10% ±5%, gross cap 3×         equities and futures, 1.5–2.5× gross
hf        leverage 3× → 2.5×, margin 25%          equities, 2–3.2× gross on borrowed cash
ig        rating_floor BBB- (middle), share 0;     corporate and government bonds
          redemption 1.5× losses, cash floor 2%;
          liquidity_buffer 25% (cash, govt bonds)
bal       rebalancing_band 60/40 ±5%              equities and government bonds at 60/40
db        funding_ratio 50/50, 30/70 below 100%   equities and government bonds at 50/50,
                                                  funded 98–110%, liabilities of duration 15
ldi       collateral_buffer 100bp → 150bp;        government and corporate bonds, bond futures,
          capital calls 25% of equity, ½ a round  4–6× gross on borrowed cash
idx       index_tracking BENCH                    index members (up to per_holder) at index weights
combo     vol_target + leverage + margin          equities, bonds and futures
pod       var_limit 5% + stop_loss 8% → cut ½     equities, 60% long and 40% short, 3–4× gross
========= ======================================= ==========================================

The matching :func:`scenario` is a crash that forces every kind: equities −20% with doubled
volatility, government yields +50bp (and the discount rates of pension liabilities with them),
spreads +150 bp, the BBB- bonds cut a notch, the index's smallest member replaced.
The equity futures carry an illustrative dealers' gamma profile (:func:`_dealer_gamma`).
All amounts are illustrative orders of magnitude, not a calibration.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from estimator.mandates import Mandate
from estimator.market import Market, build_market
from estimator.scenario import Scenario
from rules import RULE_KINDS
from rules.testing import examples

N_EQUITY, N_GOVT, N_CORP, N_FUT = 400, 50, 140, 10
N_INDEX = 100
INDEX_ID = "BENCH"
FACTORS = ["market", "sector_a", "sector_b", "sector_c", "rates", "credit"]
FACTOR_VOL = np.array([0.16, 0.06, 0.06, 0.06, 0.009, 0.006])
CORP_RATINGS = ["AA", "A+", "A", "A-", "BBB+", "BBB", "BBB-", "BB+", "BB", "B"]
CORP_SHARES = [0.04, 0.06, 0.1, 0.1, 0.15, 0.15, 0.2, 0.08, 0.07, 0.05]

MANDATES: dict[str, Mandate] = {
    m.name: m
    for m in [
        Mandate(
            name="vt",
            rules=[{"kind": "vol_target", "target": 0.1, "tolerance": 0.05, "gross_cap": 3.0}],
        ),
        Mandate(
            name="hf",
            execution="min_cost",
            cure=[],
            rules=[
                {"kind": "leverage", "measure": "exposure", "max": 3.0, "target": 2.5},
                {"kind": "margin", "maintenance_rate": 0.25},
            ],
        ),
        Mandate(
            name="ig",
            rules=[
                {"kind": "rating_floor", "floor": "BBB-", "composite": "middle"},
                {"kind": "redemption", "loss_sensitivity": 1.5, "min_cash": 0.02},
                {"kind": "liquidity_buffer", "share": 0.25},
            ],
        ),
        Mandate(
            name="db",
            rules=[
                {
                    "kind": "funding_ratio",
                    "weights": {"equity": 0.5, "govt_bond": 0.5},
                    "derisked_weights": {"equity": 0.3, "govt_bond": 0.7},
                    "trigger": 1.0,
                }
            ],
        ),
        Mandate(
            name="ldi",
            cure=["capital_call"],
            capital_call={"limit": 0.25, "per_round": 0.5},
            rules=[{"kind": "collateral_buffer", "floor_bp": 100.0, "restore_bp": 150.0}],
        ),
        Mandate(
            name="bal",
            rules=[{"kind": "rebalancing_band", "weights": {"equity": 0.6, "govt_bond": 0.4}}],
        ),
        Mandate(name="idx", rules=[{"kind": "index_tracking", "index": INDEX_ID}]),
        Mandate(
            name="combo",
            execution="min_cost",
            rules=[
                {"kind": "vol_target", "target": 0.12, "gross_cap": 3.0},
                {"kind": "leverage", "measure": "exposure", "max": 3.0, "target": 2.5},
                {"kind": "margin", "maintenance_rate": 0.2},
            ],
        ),
        Mandate(
            name="pod",
            rules=[
                {"kind": "var_limit", "limit": 0.05},
                {"kind": "stop_loss", "threshold": 0.08, "cut": 0.5},
            ],
        ),
    ]
}

#: Options dealers (``gamma_hedge``) hold no position before the scenario: one holder, added
#: after the drawn ones, so that adding it moves none of the draws.
DEALERS = Mandate(name="dealers", rules=[{"kind": "gamma_hedge"}])
MANDATES[DEALERS.name] = DEALERS

#: A mandate for each rule kind none of the above uses, with the kind's first example
#: (:mod:`rules.testing`) on a book of any assets: a new kind is in the generated books, the
#: benchmark and the tests over them at once (none today: the mandates above use every kind).
EXTRA: dict[str, Mandate] = {
    kind: Mandate(name=kind, rules=[examples(kind)[0]])
    for kind in RULE_KINDS
    if kind not in {r.kind for m in MANDATES.values() for r in m.rules}
}
MANDATES |= EXTRA


def _assets(rng: np.random.Generator) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Asset table and factor-model rows (asset_id, risk_g*, specific_vol)."""
    n = N_EQUITY + N_GOVT + N_CORP + N_FUT
    kind = np.repeat(
        ["equity", "govt_bond", "corp_bond", "future"], [N_EQUITY, N_GOVT, N_CORP, N_FUT]
    )
    eq, govt, corp, fut = (kind == k for k in ("equity", "govt_bond", "corp_bond", "future"))
    bond_fut = fut & (np.arange(n) % 2 == 1)
    ids = np.array([f"{k[:3].upper()}{i:04d}" for i, k in enumerate(kind)])
    asset_class = np.where(fut, np.where(bond_fut, "bond_future", "equity_future"), kind)
    duration = np.where(govt, rng.uniform(1, 25, n), np.where(corp, rng.uniform(2, 12, n), np.nan))
    duration = np.where(bond_fut, 7.0, duration)
    loadings = np.zeros((n, len(FACTORS)))
    loadings[:, 0] = np.where(eq, rng.uniform(0.6, 1.5, n), np.where(fut & ~bond_fut, 1.0, 0.0))
    sector = rng.integers(0, 3, n)
    loadings[np.arange(n), 1 + sector] = np.where(eq, rng.uniform(0.3, 1.0, n), 0.0)
    loadings[:, 4] = -np.nan_to_num(duration) * (govt | corp | bond_fut)
    loadings[:, 5] = -np.nan_to_num(duration) * corp
    specific = np.where(eq, rng.uniform(0.15, 0.4, n), np.where(corp, 0.01, 0.002))
    corr = np.eye(len(FACTORS))
    corr[0, 5] = corr[5, 0] = -0.5
    cov = np.outer(FACTOR_VOL, FACTOR_VOL) * corr
    root = np.linalg.cholesky(cov)
    g = loadings @ root
    vol = np.sqrt((g**2).sum(axis=1) + specific**2)
    rating = np.where(corp, rng.choice(CORP_RATINGS, n, p=CORP_SHARES), "AA+")
    assets = pl.DataFrame(
        {
            "asset_id": ids,
            "asset_class": asset_class,
            "instrument": np.where(fut, "future", "cash"),
            "price": np.where(eq, rng.lognormal(4.0, 0.8, n), np.where(fut, 4000.0, 100.0)),
            "multiplier": np.where(fut, np.where(bond_fut, 1000.0 / 40, 50.0), 1.0),
            "adv": np.where(eq, rng.lognormal(18.0, 1.2, n), np.where(fut, 2e10, 5e8)),
            "vol": vol,
            "duration": pl.Series(duration, nan_to_null=True),
            "rating_sp": pl.Series(rating).set(pl.Series(~(govt | corp)), None),
            "half_spread_bps": np.where(eq, rng.uniform(1, 10, n), np.where(corp, 20.0, 1.0)),
        }
    )
    risk = pl.DataFrame({"asset_id": ids, "specific_vol": specific}).with_columns(
        pl.Series(f"risk_g{j}", g[:, j]) for j in range(g.shape[1])
    )
    return assets, risk


def _index(assets: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    members = assets.filter(pl.col("asset_class") == "equity").head(N_INDEX)["asset_id"]
    caps = np.sort(rng.lognormal(0.0, 1.0, N_INDEX))[::-1]
    return pl.DataFrame({"index_id": INDEX_ID, "asset_id": members, "weight": caps / caps.sum()})


def market(n_holders: int, per_holder: int = 100, seed: int = 7) -> Market:
    """``n_holders`` spread over the nine mandates, each with up to ``per_holder`` positions,
    and one options dealer."""
    rng = np.random.default_rng(seed)
    assets, risk = _assets(rng)
    weights = _index(assets, rng)
    ids = assets["asset_id"].to_numpy()
    cls = assets["asset_class"].to_numpy()
    price = (assets["price"] * assets["multiplier"]).to_numpy()
    universes = {
        "vt": np.flatnonzero(np.isin(cls, ["equity", "equity_future", "bond_future"])),
        "hf": np.flatnonzero(cls == "equity"),
        "ig": np.flatnonzero(np.isin(cls, ["corp_bond", "govt_bond"])),
        "bal": np.flatnonzero(np.isin(cls, ["equity", "govt_bond"])),
        "db": np.flatnonzero(np.isin(cls, ["equity", "govt_bond"])),
        "ldi": np.flatnonzero(np.isin(cls, ["govt_bond", "corp_bond", "bond_future"])),
        "idx": np.flatnonzero(np.isin(ids, weights["asset_id"].to_numpy())),
        "combo": np.arange(len(ids)),
        "pod": np.flatnonzero(cls == "equity"),
    } | {name: np.arange(len(ids)) for name in EXTRA}  # the dealers' rows are padded in
    names = np.array(sorted(universes))
    mandate = names[rng.integers(0, len(names), n_holders)]
    hid = np.array([f"H{i:07d}" for i in range(n_holders)])
    frames, cash, liabilities = [], np.zeros(n_holders), np.zeros(n_holders)
    for name in names:
        rows = np.flatnonzero(mandate == name)
        if not len(rows):
            continue
        universe = universes[name]
        k = min(per_holder, len(universe))
        picks = universe[np.argsort(rng.random((len(rows), len(universe))), axis=1)[:, :k]]
        size = rng.lognormal(17.0, 1.0, len(rows))  # gross about 24m, spread over two orders
        if name == "idx":  # the index's members at index weights
            w = dict(zip(weights["asset_id"], weights["weight"], strict=True))
            share = np.vectorize(w.__getitem__)(ids[picks])
        elif name in ("bal", "db"):  # 60/40 or 50/50 by class, whatever the picks per class
            target = 0.6 if name == "bal" else 0.5
            is_eq = cls[picks] == "equity"
            n_eq = is_eq.sum(axis=1, keepdims=True).clip(1)
            share = np.where(is_eq, target / n_eq, (1 - target) / (k - n_eq).clip(1))
        else:
            share = rng.dirichlet(np.ones(k), len(rows))
        value = share * size[:, None]
        if name == "pod":  # two in five positions short
            value = np.where(rng.random(value.shape) < 0.4, -value, value)
        is_cash = ~np.isin(cls[picks], ["equity_future", "bond_future"])
        securities = (value * is_cash).sum(axis=1)
        gross = np.abs(value).sum(axis=1)
        leverage = {
            "vt": rng.uniform(1.5, 2.5, len(rows)),
            "hf": rng.uniform(2.0, 3.2, len(rows)),
            "combo": rng.uniform(1.8, 3.0, len(rows)),
            "pod": rng.uniform(3.0, 4.0, len(rows)),
            "ldi": rng.uniform(4.0, 6.0, len(rows)),
        }.get(name, np.full(len(rows), 0.98))  # long-only funds keep 2% cash
        cash[rows] = gross / leverage - securities
        if name == "db":  # funded 98–110% of liabilities
            liabilities[rows] = (securities + cash[rows]) / rng.uniform(0.98, 1.10, len(rows))
        frames.append(
            pl.DataFrame(
                {
                    "holder_id": np.repeat(hid[rows], k),
                    "asset_id": ids[picks].ravel(),
                    "quantity": (value / price[picks]).ravel(),
                }
            )
        )
    dealer = f"H{n_holders:07d}"
    holders = pl.DataFrame(
        {
            "holder_id": [*hid, dealer],
            "holder_type": [*mandate, DEALERS.name],
            "mandate": [*mandate, DEALERS.name],
            "cash": [*cash, 1e8],
            "liabilities": [*liabilities, 0.0],
            "liability_duration": np.full(n_holders + 1, 15.0),
        }
    )
    return build_market(
        assets,
        holders,
        pl.concat(frames),
        MANDATES,
        risk_rows=risk,
        index_weights=weights,
        dealer_gamma=_dealer_gamma(assets),
    )


def _dealer_gamma(assets: pl.DataFrame) -> pl.DataFrame:
    """The dealers' gamma on every equity future: long 10m per 1% at the spot, flat at a 5%
    fall, short 30m per 1% from a 20% fall (illustrative)."""
    futures = assets.filter(pl.col("asset_class") == "equity_future").select("asset_id")
    knots = pl.DataFrame({"level": [-0.2, -0.05, 0.0], "gamma": [-3e7, 0.0, 1e7]})
    return futures.join(knots, how="cross")


def scenario(market: Market) -> Scenario:
    """A crash that forces every rule kind of :data:`MANDATES`."""
    members = market.index_weights.sort("weight")["asset_id"]
    outsider = (
        market.assets.filter(pl.col("asset_class") == "equity")
        .join(market.index_weights, on="asset_id", how="anti")["asset_id"]
        .sort()[0]
    )
    return Scenario(
        name="synthetic crash",
        shocks=[
            {
                "select": {"asset_classes": ["equity", "equity_future"]},
                "price_return": -0.2,
                "vol_multiplier": 2.0,
            },
            {"select": {"asset_classes": ["govt_bond"]}, "yield_change_bp": 50},
            {"select": {"asset_classes": ["corp_bond"]}, "spread_change_bp": 150},
            {"select": {"ratings": ["BBB-"]}, "downgrade_notches": 1},
        ],
        holder_shocks=[{"holder_types": ["db"], "liability_rate_change_bp": 50}],
        index_changes=[
            {"index_id": INDEX_ID, "asset_id": members[0], "action": "delete"},
            {"index_id": INDEX_ID, "asset_id": outsider, "action": "add", "weight": 0.005},
        ],
    )

"""Generate the census market in ``scenarios/markets/census`` from its ``parameters.toml``.

Deterministic for the parameter file's seed; every aggregate and distribution is in that file
with its source or marked as an assumption. Run ``python tools/build_census_market.py``
(``--out DIR`` writes elsewhere, e.g. to check that the shipped bundle is up to date).

Books, by the recipe named in each holder type (x: exposure, E: equity, A: total assets):

* ``index`` — the index's members at index weights, a cash share, leverage L (A = L·E, the
  rest borrowed);
* ``futures`` — futures at fixed shares of gross notional G, sized so that the ex-ante
  volatility is the vol target × utilisation: G = u·τ·E / σ₁ with σ₁ the volatility of one unit
  of gross; E is cash;
* ``balanced`` — equities over the whole universe by market cap and US Treasuries by amount
  outstanding, at the equity share (a pension already below its funding-ratio trigger holds
  its de-risked share); defined-benefit pensions add liabilities E / FR with a duration;
* ``ldi`` — gilts on borrowed cash, leveraged so that the yield buffer is the floor /
  utilisation: A/E = 10⁴·u / (D̄·β) with D̄ the gilts' average duration;
* ``bond_fund`` — a cash share, government bonds, and corporate bonds by amount outstanding;
* ``ig_fund`` — investment-grade corporate bonds by amount outstanding and 10% Treasuries;
* ``long_short`` — thirty longs and thirty shorts among the equities (drawn and weighted by
  market cap), net share n of gross G,
  G sized to leverage max × u (by the rule's measure: G/E, or A/E with the cash the net
  position leaves) or to VaR = limit × u;
* ``basket`` — a fixed basket of equities on margin (a family office's swaps), leverage
  u / maintenance rate, each account borrowing from its prime broker (``lenders``);
* ``concentrated`` — one to three equities (drawn by market cap among those worth at least 20
  times the account) on margin, leverage u / maintenance rate.
"""

from __future__ import annotations

import argparse
import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

OUT = Path(__file__).resolve().parent.parent / "scenarios" / "markets" / "census"
FACTORS = ["equity", "cyclical", "defensive", "growth", "rates", "credit"]
GROUPS = {  # sector → the style factor it loads on
    "technology": "growth",
    "communication": "growth",
    "health": "defensive",
    "utilities": "defensive",
    "real_estate": "defensive",
}
#: Recipes whose size is the holder's equity (futures funds' capital, hedge funds' capital);
#: the others are sized by total assets. A holder type says which with ``measure``.
SIZED_BY_EQUITY = {"futures", "long_short"}
Z99_DAILY = 2.3263478740408408 / math.sqrt(252)  # 99% one-day VaR per unit of annual σ
IG = {"AAA", "AA+", "AA", "AA-", "A+", "A", "A-", "BBB+", "BBB", "BBB-"}


def _assets(p: dict[str, Any], rng: np.random.Generator) -> tuple[pl.DataFrame, np.ndarray]:
    """The asset table and its factor loadings (one row per asset, columns :data:`FACTORS`)."""
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
        row = [float(betas[i]), 0.0, 0.0, 0.0, 0.0, 0.0]
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
        loads.append([0.0, 0.0, 0.0, 0.0, -b["duration"], 0.0])
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
        loads.append([0.0, 0.0, 0.0, 0.0, -duration, -duration])
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
            loads.append([1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        else:
            loads.append([0.0, 0.0, 0.0, 0.0, -f["duration"], 0.0])
    return pl.DataFrame(rows, infer_schema_length=None), np.array(loads)


def _covariance(p: dict[str, Any]) -> np.ndarray:
    r = p["risk_model"]
    vols = np.array([r["vols"][f] for f in FACTORS])
    corr = np.eye(len(FACTORS))
    i, j, k = FACTORS.index("equity"), FACTORS.index("credit"), FACTORS.index("rates")
    corr[i, j] = corr[j, i] = r["equity_credit_correlation"]
    corr[i, k] = corr[k, i] = r["equity_rates_correlation"]
    return np.outer(vols, vols) * corr


class _Books:
    """Holders and positions as they are generated, with the risk model to size them."""

    def __init__(self, assets: pl.DataFrame, loads: np.ndarray, cov: np.ndarray) -> None:
        self.assets = assets
        self.index = {a: i for i, a in enumerate(assets["asset_id"])}
        self.unit = (assets["price"] * assets["multiplier"].fill_null(1.0)).to_numpy()
        self.loads, self.cov = loads, cov
        self.specific = assets["specific_vol"].to_numpy()
        self.holders: list[dict[str, Any]] = []
        self.positions: list[tuple[str, str, float]] = []

    def sigma(self, ids: list[str], x: np.ndarray) -> float:
        """Annual volatility of exposures ``x`` in ``ids``: √(xᵀ(ΛΣΛᵀ + diag s²)x)."""
        at = [self.index[a] for a in ids]
        lam = self.loads[at]
        var = x @ lam @ self.cov @ lam.T @ x + np.sum((self.specific[at] * x) ** 2)
        return float(math.sqrt(var))

    def add(self, holder: dict[str, Any], ids: list[str], x: np.ndarray) -> None:
        self.holders.append(holder)
        for a, value in zip(ids, x, strict=True):
            if value != 0:
                q = value / self.unit[self.index[a]]
                self.positions.append((holder["holder_id"], a, float(q)))

    def duration(self, ids: list[str]) -> np.ndarray:
        return np.array([self.assets["duration"][self.index[a]] or 0.0 for a in ids], dtype=float)


def _ids(
    assets: pl.DataFrame, cls: str, *, grade: str | None = None
) -> tuple[list[str], np.ndarray]:
    rows = assets.filter(pl.col("asset_class") == cls)
    if grade is not None:
        rows = rows.filter(pl.col("sector") == grade)
    return rows["asset_id"].to_list(), rows["size"].to_numpy()


def _holders(
    p: dict[str, Any], books: _Books, weights: dict[str, float], rng: np.random.Generator
) -> dict[str, dict]:
    """Every holder type's holders and positions (into ``books``) and its mandates."""
    assets = books.assets
    eq_ids, eq_caps = _ids(assets, "equity")
    ig_ids, ig_sizes = _ids(assets, "corp_bond", grade="investment_grade")
    hy_ids, hy_sizes = _ids(assets, "corp_bond", grade="high_yield")
    mandates: dict[str, dict] = {}
    for t in p["holders"]:
        n = t["count"]
        sizes = rng.lognormal(0.0, t["size_dispersion"], n)
        sizes *= t["total_assets"]["value"] / sizes.sum()
        measure = "equity" if t["book"] in SIZED_BY_EQUITY else "total_assets"
        if t.get("measure", "total_assets") != measure:
            raise ValueError(f"{t['type']}: a {t['book']!r} book's size is its {measure}")
        buckets = t["mandates"]
        shares = [b["share"] for b in buckets]
        if not math.isclose(sum(shares), 1.0):
            raise ValueError(f"{t['type']}: mandate shares sum to {sum(shares)}, not 1")
        cut = np.cumsum(shares) * n
        prefix = _prefix(t["type"])
        for b in buckets:
            mandates[b["name"]] = {k: v for k, v in b.items() if k not in ("share", "utilisation")}
            mandates[b["name"]].setdefault("description", f"{t['type']}, census bucket")
        for h in range(n):
            bucket = buckets[int(np.searchsorted(cut, h, side="right"))]
            u = float(rng.uniform(*bucket["utilisation"])) if "utilisation" in bucket else 1.0
            holder = {
                "holder_id": f"{prefix}{h + 1:03d}",
                "holder_type": t["type"],
                "mandate": bucket["name"],
                "cash": 0.0,
                "cash_reserve": 0.0,
                "liabilities": None,
                "liability_duration": None,
                "lender": None,
            }
            ids, x, cash = _book(
                t,
                bucket,
                float(sizes[h]),
                u,
                books,
                weights,
                rng,
                (eq_ids, eq_caps),
                (ig_ids, ig_sizes),
                (hy_ids, hy_sizes),
                holder,
            )
            holder["cash"] = float(cash)
            if "lenders" in t:  # the i-th account borrows from the i-th holder of that type
                holder["lender"] = f"{_prefix(t['lenders'])}{h + 1:03d}"
            books.add(holder, ids, x)
    return mandates


def _prefix(holder_type: str) -> str:
    """Holder ids of a type: its initials, e.g. OEBF001 for open_end_bond_fund."""
    return "".join(w[0] for w in holder_type.split("_")).upper()


def _book(t, bucket, size, u, books, weights, rng, equities, ig, hy, holder):
    """One holder's exposures and cash (see the module docstring for the recipes)."""
    rules = {r["kind"]: r for r in bucket["rules"]}
    recipe = t["book"]
    if recipe == "index":
        lev = t.get("leverage", 1.0)
        ids = list(weights)
        w = np.array([weights[a] for a in ids])
        assets = size  # total assets
        x = (1 - t["cash_share"]) * assets * w
        return ids, x, assets / lev - x.sum()  # E = A/L: the rest of A is borrowed
    if recipe == "futures":
        ids = list(t["weights"])
        w = np.array([t["weights"][a] for a in ids])
        equity = size
        unit = books.sigma(ids, w)
        target = rules["vol_target"]["target"]
        return ids, w * (u * target * equity / unit), equity
    if recipe == "balanced":
        ids_eq, caps = equities
        share = t["equity_share"]
        fr = float(rng.uniform(*t["funding_ratio"])) if "funding_ratio" in t else None
        policy = rules.get("funding_ratio")
        if policy is not None and fr is not None and fr < policy["trigger"]:
            share = policy["derisked_weights"]["equity"]  # already below: already de-risked
        x_eq = share * size * caps / caps.sum()
        ust = books.assets.filter(pl.col("asset_id").str.starts_with("UST"))
        bonds, amounts = ust["asset_id"].to_list(), ust["size"].to_numpy()
        x_bd = (1 - share) * size * amounts / amounts.sum()  # Treasuries by amount outstanding
        if fr is not None:
            holder["liabilities"] = size / fr
            holder["liability_duration"] = round(float(rng.uniform(*t["liability_duration"])), 2)
        return [*ids_eq, *bonds], np.concatenate([x_eq, x_bd]), 0.0
    if recipe == "ldi":
        ids = list(t["weights"])
        w = np.array([t["weights"][a] for a in ids])
        if "collateral_buffer" in rules:
            dbar = float(w @ books.duration(ids))
            leverage = 1e4 * u / (dbar * rules["collateral_buffer"]["floor_bp"])
        else:
            leverage = t["leverage"]
        assets = size
        return ids, w * assets, assets / leverage - assets
    if recipe == "basket":
        ids = list(t["weights"])
        w = np.array([t["weights"][a] for a in ids])
        leverage = u / rules["margin"]["maintenance_rate"]
        return ids, w * size, size / leverage - size
    if recipe == "bond_fund":
        cash = float(rng.uniform(*t["cash_share"])) * size
        invested = size - cash
        govt = t["govt_share"] * invested
        ids_c = [*ig[0], *hy[0]]
        sizes = np.concatenate([ig[1], hy[1]])
        x_c = (invested - govt) * sizes / sizes.sum()
        return [*ids_c, "UST2Y", "UST10Y"], np.concatenate([x_c, [govt / 2, govt / 2]]), cash
    if recipe == "ig_fund":
        cash = 0.01 * size
        x_c = 0.89 * size * ig[1] / ig[1].sum()
        return [*ig[0], "UST10Y"], np.concatenate([x_c, [0.10 * size]]), cash
    if recipe == "long_short":
        ids_eq, caps = equities
        picks = rng.choice(len(ids_eq), 60, replace=False, p=caps / caps.sum())
        ids = [ids_eq[i] for i in picks]
        net = t["net_share"]
        longs, shorts = caps[picks[:30]], caps[picks[30:]]  # by market cap within each side
        w = np.concatenate(
            [(1 + net) / 2 * longs / longs.sum(), -(1 - net) / 2 * shorts / shorts.sum()]
        )
        equity = size
        if "leverage" in rules:
            limit = rules["leverage"]["max"] * u
            if rules["leverage"].get("measure", "balance_sheet") == "exposure":
                gross = limit * equity  # G = L·E
            else:  # A = L⁺ + max(C, 0) with L⁺ = (1 + n)/2·G and C = E − n·G
                gross = 2 * (limit - 1) * equity / (1 - net)
                if equity - net * gross < 0:  # the net long is borrowed: A = L⁺
                    gross = 2 * limit * equity / (1 + net)
        else:
            gross = rules["var_limit"]["limit"] * u * equity / (Z99_DAILY * books.sigma(ids, w))
        x = w * gross
        return ids, x, equity - x.sum()
    if recipe == "concentrated":
        ids_eq, caps = equities
        k = int(rng.integers(1, 4))
        # among the equities at least 20 times the account's size (its positions stay within
        # 5% of a company's value), drawn by market cap
        able = np.flatnonzero(caps >= 20 * size)
        able = able if able.size >= k else np.argsort(caps)[::-1][:10]
        picks = rng.choice(able, k, replace=False, p=caps[able] / caps[able].sum())
        ids = [ids_eq[i] for i in picks]
        w = rng.dirichlet(np.ones(k))
        leverage = u / rules["margin"]["maintenance_rate"]
        assets = size
        if bucket.get("cure"):
            holder["cash_reserve"] = float(rng.uniform(0.0, 0.1)) * assets / leverage
        return ids, w * assets, assets / leverage - assets
    raise ValueError(f"unknown book recipe {recipe!r}")


def _toml(value: Any) -> str:
    """A TOML value (strings, numbers, booleans, lists and inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def _mandate_file(name: str, spec: dict[str, Any]) -> str:
    lines = [
        "# Generated by tools/build_census_market.py from parameters.toml; do not edit.",
        f"name = {_toml(name)}",
        f"description = {_toml(spec['description'])}",
        f"execution = {_toml(spec.get('execution', 'pro_rata'))}",
        f"cure = {_toml(spec.get('cure', ['cash_reserve', 'credit_line']))}",
    ]
    if "capital_call" in spec:
        lines += ["", "[capital_call]"]
        lines += [f"{k} = {_toml(v)}" for k, v in spec["capital_call"].items()]
    for rule in spec["rules"]:
        lines += ["", "[[rules]]", *[f"{k} = {_toml(v)}" for k, v in rule.items()]]
    return "\n".join(lines) + "\n"


def build(params: dict[str, Any], out: Path) -> None:
    """Write the bundle generated from ``params`` into ``out``."""
    rng = np.random.default_rng(params["seed"])
    assets, loads = _assets(params, rng)
    cov = _covariance(params)
    members = params["equities"]["index"]
    top = assets.filter(pl.col("asset_class") == "equity").head(members["members"])
    weights = dict(zip(top["asset_id"], (top["size"] / top["size"].sum()).to_list(), strict=True))
    books = _Books(assets, loads, cov)
    mandates = _holders(params, books, weights, rng)
    out.mkdir(parents=True, exist_ok=True)
    (out / "mandates").mkdir(exist_ok=True)
    for old in (out / "mandates").glob("*.toml"):
        old.unlink()
    for name, spec in mandates.items():
        (out / "mandates" / f"{name}.toml").write_text(_mandate_file(name, spec))
    total = np.sqrt(np.einsum("ij,jk,ik->i", loads, cov, loads) + assets["specific_vol"] ** 2)
    assets.with_columns(vol=pl.Series(np.round(total, 6))).drop(
        "specific_vol", "sector", "size"
    ).write_csv(out / "assets.csv")
    pl.DataFrame(books.holders, infer_schema_length=None).write_csv(out / "holders.csv")
    pl.DataFrame(
        books.positions, schema=["holder_id", "asset_id", "quantity"], orient="row"
    ).write_csv(out / "positions.csv")
    pl.DataFrame(
        {"index_id": members["id"], "asset_id": list(weights), "weight": list(weights.values())}
    ).write_csv(out / "index_weights.csv")
    pl.DataFrame(
        [
            {"asset_id": a, "factor": f, "loading": float(v)}
            for a, row in zip(assets["asset_id"], loads, strict=True)
            for f, v in zip(FACTORS, row, strict=True)
            if v
        ]
    ).write_csv(out / "factor_loadings.csv")
    pl.DataFrame(
        [
            {"factor_i": FACTORS[i], "factor_j": FACTORS[j], "covariance": float(cov[i, j])}
            for i in range(len(FACTORS))
            for j in range(i, len(FACTORS))
        ]
    ).write_csv(out / "factor_covariance.csv")
    assets.select("asset_id", "specific_vol").write_csv(out / "specific_risk.csv")
    (out / "market.toml").write_text(MARKET_TOML)


MARKET_TOML = """# The census market: a model of the market and its holders, sized to public
# aggregates. Generated by tools/build_census_market.py from parameters.toml (its sources
# and assumptions are there).
name = "census"
description = "Every holder type's books, sized to public aggregates (see parameters.toml)."
base_currency = "USD"
assets = "assets.csv"
holders = "holders.csv"
positions = "positions.csv"
indices = "index_weights.csv"   # LARGE_CAP: the largest equities, cap-weighted
mandates = "mandates"           # generated: one per holder type and parameter bucket

[risk_model]
factor_loadings = "factor_loadings.csv"      # equity, cyclical, defensive, growth, rates, credit
factor_covariance = "factor_covariance.csv"
specific_risk = "specific_risk.csv"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="bundle folder to write")
    args = parser.parse_args()
    with (OUT / "parameters.toml").open("rb") as f:
        params = tomllib.load(f)
    build(params, args.out)


if __name__ == "__main__":
    main()

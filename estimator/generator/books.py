"""The census's holders and their books, drawn from the parameter file.

Each holder type has ``count`` holders whose sizes are drawn lognormal (σ =
``size_dispersion``) and scaled so the type adds up to its aggregate; holders are split over
the type's mandate buckets by their shares, and each is placed at a utilisation ``u`` of its
binding limit drawn from the bucket's range.

Books, by the recipe named in each holder type (x: exposure, E: equity, A: total assets):

* ``index`` — the index's members at index weights, a cash share, leverage L (A = L·E, the
  rest borrowed);
* ``futures`` — futures at fixed shares of gross notional G, sized so that the ex-ante
  volatility is the vol target × utilisation: G = u·τ·E / σ₁ with σ₁ the volatility of one unit
  of gross, at most the rule's gross cap c·E (a fund at its cap holds less than its target);
  E is cash;
* ``leveraged_futures`` — one future at ``leverage`` times E (−1 for an inverse product,
  short), E in cash: a daily-rebalancing product (``leverage`` targeting);
* ``balanced`` — equities over the whole universe by market cap and US Treasuries by amount
  outstanding, at the equity share (a pension already below its funding-ratio trigger holds
  its de-risked share); defined-benefit pensions add liabilities E / FR with a duration;
* ``ldi`` — gilts on borrowed cash, leveraged so that the yield buffer is the floor /
  utilisation: A/E = 10⁴·u / (D̄·β) with D̄ the gilts' average duration (below 1, the fund
  holds cash beside its gilts);
* ``bond_fund`` — a cash share, government bonds, and corporate bonds by amount outstanding;
* ``ig_fund`` — investment-grade corporate bonds by amount outstanding and 10% Treasuries;
* ``long_short`` — thirty longs and thirty shorts among the equities (drawn and weighted by
  market cap), net share n of gross G,
  G sized to leverage max × u (by the rule's measure: G/E, or A/E with the cash the net
  position leaves) or to VaR = limit × u;
* ``basket`` — a fixed basket of equities on margin (a family office's swaps), leverage
  u / maintenance rate, each account borrowing from its prime broker (``lenders``);
* ``cash`` — no position before the scenario, E in cash (options dealers, whose hedges the
  scenario's dealer gamma sets);
* ``concentrated`` — one to three equities (drawn by market cap among those worth at least 20
  times the account) on margin, leverage u / maintenance rate.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

#: Recipes whose size is the holder's equity (futures funds' capital, hedge funds' capital);
#: the others are sized by total assets. A holder type says which with ``measure``.
SIZED_BY_EQUITY = {"futures", "long_short", "leveraged_futures", "cash"}
Z99_DAILY = 2.3263478740408408 / math.sqrt(252)  # 99% one-day VaR per unit of annual σ


class Books:
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


def holders(
    p: dict[str, Any], books: Books, weights: dict[str, float], rng: np.random.Generator
) -> dict[str, dict]:
    """Every holder type's holders and positions (into ``books``) and its mandates."""
    assets = books.assets
    eq_ids, eq_caps = _ids(assets, "equity")
    ig_ids, ig_sizes = _ids(assets, "corp_bond", grade="investment_grade")
    hy_ids, hy_sizes = _ids(assets, "corp_bond", grade="high_yield")
    mandates: dict[str, dict] = {}
    for t in p["holders"]:
        n = t["count"]
        accounts = split(int(t["accounts"]["value"]) if "accounts" in t else n, n)
        cap = t["largest"]["value"] if "largest" in t else None
        try:
            sizes = fill(
                rng.lognormal(0.0, t["size_dispersion"], n),
                accounts,
                t["total_assets"]["value"],
                cap,
            )
        except ValueError as exc:
            raise ValueError(f"{t['type']}: {exc}") from None
        measure = "equity" if t["book"] in SIZED_BY_EQUITY else "total_assets"
        if t.get("measure", "total_assets") != measure:
            raise ValueError(f"{t['type']}: a {t['book']!r} book's size is its {measure}")
        buckets = t["mandates"]
        shares = [b["share"] for b in buckets]
        if not math.isclose(sum(shares), 1.0):
            raise ValueError(f"{t['type']}: mandate shares sum to {sum(shares)}, not 1")
        cut = np.cumsum(shares) * n
        ids_prefix = prefix(t["type"])
        for b in buckets:
            mandates[b["name"]] = {k: v for k, v in b.items() if k not in ("share", "utilisation")}
            mandates[b["name"]].setdefault("description", f"{t['type']}, census bucket")
        for h in range(n):
            bucket = buckets[int(np.searchsorted(cut, h, side="right"))]
            u = float(rng.uniform(*bucket["utilisation"])) if "utilisation" in bucket else 1.0
            holder = {
                "holder_id": f"{ids_prefix}{h + 1:03d}",
                "holder_type": t["type"],
                "mandate": bucket["name"],
                "cash": 0.0,
                "cash_reserve": 0.0,
                "liabilities": None,
                "liability_duration": None,
                "lender": None,
                "accounts": float(accounts[h]),
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
                holder["lender"] = f"{prefix(t['lenders'])}{h + 1:03d}"
            books.add(holder, ids, x)
    return mandates


def split(accounts: int, rows: int) -> np.ndarray:
    """``accounts`` over ``rows`` rows as evenly as whole numbers go (the first rows take the
    remainder): ``k_i = ⌊N/n⌋ + [i < N mod n]``."""
    if accounts < rows:
        raise ValueError(f"{accounts} accounts cannot fill {rows} rows")
    k = np.full(rows, accounts // rows, dtype=np.int64)
    k[: accounts % rows] += 1
    return k


def fill(draws: np.ndarray, accounts: np.ndarray, total: float, cap: float | None) -> np.ndarray:
    """Each row's account size ``s_i = min(c·d_i, cap)``, with ``d_i`` the row's draw and ``c``
    such that the type adds up to its total, ``Σ k_i·s_i = T`` (``k_i`` the row's accounts).

    ``Σ k_i·min(c·d_i, cap)`` rises with ``c``: with the rows in decreasing ``d``, the first
    ``m`` at the cap, ``c = (T − cap·Σ_{i<m} k_i) / Σ_{i≥m} k_i·d_i`` for the least ``m`` whose
    next row stays below it. No cap: ``c = T / Σ k_i·d_i``. More than ``cap·Σ k_i`` cannot be
    held: an error."""
    k = accounts.astype(float)
    if cap is None:
        return draws * (total / float((k * draws).sum()))
    if cap * k.sum() < total * (1 - 1e-12):
        raise ValueError(
            f"{int(k.sum())} accounts of at most {cap:.4g} each cannot hold {total:.4g}"
        )
    order = np.argsort(-draws, kind="stable")
    d, kk = draws[order], k[order]
    rest = np.cumsum((kk * d)[::-1])[::-1]  # Σ_{i≥m} k_i·d_i
    capped = np.concatenate([[0.0], np.cumsum(kk)])[:-1] * cap  # cap·Σ_{i<m} k_i
    for m in range(d.size):
        c = (total - capped[m]) / rest[m]
        if c * d[m] <= cap:
            out = np.empty_like(draws)
            out[order] = np.minimum(c * d, cap)
            return out
    return np.full_like(draws, cap)


def prefix(holder_type: str) -> str:
    """Holder ids of a type: its initials, e.g. OEBF001 for open_end_bond_fund."""
    return "".join(w[0] for w in holder_type.split("_")).upper()


def _book(
    t: dict[str, Any],
    bucket: dict[str, Any],
    size: float,
    u: float,
    books: Books,
    weights: dict[str, float],
    rng: np.random.Generator,
    equities: tuple[list[str], np.ndarray],
    ig: tuple[list[str], np.ndarray],
    hy: tuple[list[str], np.ndarray],
    holder: dict[str, Any],
) -> tuple[list[str], np.ndarray, float]:
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
        target, cap = rules["vol_target"]["target"], rules["vol_target"].get("gross_cap")
        gross = u * target * equity / unit
        return ids, w * (gross if cap is None else min(gross, cap * equity)), equity
    if recipe == "leveraged_futures":
        return [t["future"]], np.array([t["leverage"] * size]), size
    if recipe == "cash":
        return [], np.array([]), size
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
        # total assets A = Σx + max(C, 0) with C = Σx/L − Σx: Σx = A when the fund borrows
        # (L ≥ 1), Σx = L·A when its buffer leaves cash over (L < 1: A = E)
        exposure = size if leverage >= 1 else leverage * size
        return ids, w * exposure, exposure / leverage - exposure
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
        # among the equities at least 20 times the row's size, its accounts together (their
        # positions stay within 5% of a company's value), drawn by market cap
        able = np.flatnonzero(caps >= 20 * size * holder["accounts"])
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

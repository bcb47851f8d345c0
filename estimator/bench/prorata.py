"""A closed-form pro-rata baseline of one round, in numpy and scipy.sparse alone.

The production round (:func:`estimator.rounds.evaluate_round` with ``Execution.PRO_RATA``) is
timed against :func:`trades`, written apart from it from the rules' math. It covers books whose
mandates hold only ``vol_target``, ``leverage`` and ``margin``: whole-book rules, so a holder
trades ``u = (f − 1)·x`` with one scale ``f`` for all its positions.

Book (per holder ``h``, ``x`` the exposures ``q·P·mult`` at the shocked prices, ``c`` = 1 for
cash instruments, 0 for futures, whose variation margin ``prepare`` has already put in cash
``C``)::

    V = Σ c·x (value in equity)   AE = V + C   E = AE + N − D   G = Σ|x|   L⁺ = Σ c·max(x, 0)
    σ = √(‖Fx‖² + ‖s∘x‖²)  for Σ = FᵀF + diag(s²): factor exposures Fx, then the specific part

all as sparse products of the holder × asset exposure matrix ``X`` (``X Fᵀ``, ``X c``,
``|X| 1``, ``(X∘X) s²``). A rule with trigger bound ``b_T`` and restore bound ``b_R`` acts
(``down``) where its breach at the trigger level exceeds rounding noise, ``NOISE·max(G, |E|)``;
it then limits the scale at its restore level, otherwise at its trigger level. ``f_r`` is the
largest ``f ≥ 0`` with the rule holding on the book scaled by ``f``:

* ``vol_target`` (τ, ε, cap γ): down ``max(σ − τ(1+ε)E, G − γE) > noise``; restore at ``τE``;
  ``f = min(b/σ, γE/G)`` (σ and G are homogeneous); relever: up where ``τ(1−ε)E − σ > noise``
  (and ``σ > 0``), restoring to ``τE``. Example: σ/E = 18% against τ = 10%, ε = 0 → f = 10/18.
* ``leverage`` (``A_x = G + N`` or ``A_bs = L⁺ + N + max(C, 0)``), bound ``L·E`` with ``L``
  = max / target (threshold) or ``L₀(1+ε)`` / ``L₀`` (targeting, ``L₀`` the pre-shock
  leverage, up where ``L₀(1−ε)E − A > noise`` and ``G > 0``): down ``A − L_T·E > noise``;
  exposure ``f = (B − N)/G``; balance sheet ``A_bs(f) = f·L⁺ + N + max(C + (1−f)V, 0)``,
  the larger valid root of ``f₁ = (B − N)/L⁺`` (``C + (1−f₁)V ≤ 0``) and
  ``f₂ = (B − N − C − V)/(L⁺ − V)`` (``C + (1−f₂)V ≥ 0``); a book that scaling cannot change
  (``G = 0``, or futures alone for ``A_bs``) gives ``f = ∞`` if it complies, else −1; no
  valid root gives −1 (no sale complies).
* ``margin`` (maintenance ``R = k·Σ m_i|x_i|``, initial ``I = k·Σ ι_i|x_i|``, ``m_i``/``ι_i``
  the asset's rate else the rule's; ``ι_i = initial_ratio·m_i`` without either): down
  ``R − AE > noise``; restore at ``max(I, R)`` (``restore = "initial"``) or ``R``;
  ``f = AE / requirement`` (∞ if it is 0 and ``AE ≥ 0``, else −1). Trades leave AE unchanged.

Several rules on one holder: ``f* = min_r f_r``; then, in order, ``E ≤ 0`` → f = 0 (insolvent:
everything sold), ``|f* − 1| ≤ NOISE`` → 1, any rule down → ``clip(f*, 0, 1)``, any rule up
(none down) → ``max(f*, 1)``, else 1. A trade ``|u| < max(1e-9·max(G, G_pre), accounts·1)``
is dust and not made; the quantity traded is ``u / (P·mult) = (f − 1)·q``.

Exact where the round is a closed form: no cash cures (margin is the only rule cash cures, so
a mandate with margin may list cure sources only where their room is zero), no sale
part-way through the day clock (``committed``), no position rules. :func:`bench_market` builds
such a book; :func:`prepared` refuses any other.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import polars as pl
from scipy import sparse

from estimator import inputs, risk, synthetic
from estimator.errors import InputWarnings
from estimator.mandates import Execution, Mandate
from estimator.market import Market
from estimator.scenario import Scenario

KINDS = frozenset({"vol_target", "leverage", "margin"})
#: The synthetic mandates whose rules are all in KINDS.
MANDATES = ("combo", "hf", "vt")
NOISE = 1e-9  # relative rounding noise of a breach, and of a scale near 1
DUST_SHARE, DUST_VALUE = 1e-9, 1.0  # a trade below max(share·G, accounts·value) is not made


def bench_market(n_holders: int, per_holder: int = 100, seed: int = 7) -> Market:
    """``n_holders`` holders of the synthetic mandates ``vt``, ``hf`` and ``combo`` (the first
    ones of a synthetic market large enough to have them), every mandate pro-rata without cure
    sources and every cash reserve and credit line zero. Deterministic for its arguments."""
    size = 3 * n_holders + 10 * math.isqrt(n_holders) + 64
    while True:
        full = synthetic.market(size, per_holder, seed)
        holders = full.holders.filter(pl.col("mandate").is_in(MANDATES)).head(n_holders)
        if holders.height == n_holders:
            break
        size *= 2
    zero = [pl.lit(0.0).alias(c) for c in ("cash_reserve", "credit_line") if c in holders.columns]
    mandates = {
        name: full.mandates[name].model_copy(update={"execution": Execution.PRO_RATA, "cure": []})
        for name in MANDATES
    }
    return dataclasses.replace(
        full,
        holders=holders.with_columns(zero),
        positions=full.positions.join(holders.select("holder_id"), on="holder_id", how="semi"),
        mandates=mandates,
    )


NAN, INF = float("nan"), float("inf")


@dataclass(frozen=True)
class Params:
    """Rule parameters, one per holder (module docstring); the defaults are a rule's absence.
    ``exposure``: the leverage measure (else balance sheet); ``lev_*``: multiples of E at the
    trigger, restore and re-levering floor (NaN: none; targeting: × L₀); ``iota`` the margin
    rule's initial rate (NaN: ``ratio`` × maintenance)."""

    vol: Any = False
    tau: Any = NAN
    eps: Any = 0.0
    cap: Any = INF
    relever: Any = False
    lev: Any = False
    exposure: Any = True
    targeting: Any = False
    lev_trigger: Any = NAN
    lev_restore: Any = NAN
    lev_floor: Any = NAN
    margin: Any = False
    m: Any = NAN
    initial: Any = False
    iota: Any = NAN
    ratio: Any = NAN

    @classmethod
    def of(cls, mandate: Mandate) -> Params:
        """One mandate's parameters, as scalars."""
        by_kind = {r.kind: r for r in mandate.rules}
        if set(by_kind) - KINDS:
            raise ValueError(f"mandate {mandate.name!r}: no closed form for {set(by_kind) - KINDS}")
        p: dict[str, Any] = {}
        if (v := by_kind.get("vol_target")) is not None:
            p |= {"vol": True, "tau": v.target, "eps": v.tolerance, "relever": v.relever}
            p["cap"] = v.gross_cap if v.gross_cap is not None else INF
        if (lev := by_kind.get("leverage")) is not None:
            p |= {"lev": True, "exposure": lev.measure == "exposure"}
            if lev.mode == "targeting":
                p |= {"targeting": True, "lev_trigger": 1 + lev.tolerance, "lev_restore": 1.0}
                p["lev_floor"] = 1 - lev.tolerance
            else:
                p |= {"lev_trigger": lev.max, "lev_restore": lev.target or lev.max}
        if (mg := by_kind.get("margin")) is not None:
            p |= {"margin": True, "m": mg.maintenance_rate, "initial": mg.restore == "initial"}
            p |= {"iota": mg.initial_rate or NAN, "ratio": mg.initial_ratio}
        return cls(**p)


@dataclass(frozen=True)
class Vectors:
    """Per-asset vectors (the columns of ``W``) for per-holder sums ``M(data) @ W``, each
    distinct non-zero column multiplied once (a book without margin rates has ``m̃ = 0``,
    ``ν = 1``)."""

    distinct: np.ndarray  # one row per asset
    take: np.ndarray  # column j of W is distinct column take[j] (past the last: zero)

    @classmethod
    def of(cls, *columns: np.ndarray) -> Vectors:
        distinct: list[np.ndarray] = []
        for col in columns:
            if col.any() and not any(np.array_equal(d, col) for d in distinct):
                distinct.append(col)
        same = [[np.array_equal(d, col) for d in distinct] for col in columns]
        take = np.array([row.index(True) if True in row else len(distinct) for row in same])
        return cls(np.column_stack(distinct or [np.empty((columns[0].size, 0))]), take)

    def times(self, M: sparse.csr_array) -> np.ndarray:
        """``M @ W``. scipy's kernel for several vectors costs about five single products,
        so up to five columns go one at a time."""
        W = self.distinct
        out = [M @ W] if W.shape[1] > 5 else [M @ w for w in W.T]
        return np.column_stack([*out, np.zeros(M.shape[0])])[:, self.take]


@dataclass(frozen=True)
class Baseline:
    """A round's inputs as arrays: position rows in (holder, asset) order, keyed by
    ``holder_id``/``asset_id``; holder ``h`` owns rows ``indptr[h]:indptr[h+1]``."""

    holder_id: np.ndarray  # key of each row
    asset_id: np.ndarray  # key of each row
    quantity: np.ndarray  # q per row
    asset: np.ndarray  # asset index per row (int32)
    indptr: np.ndarray  # CSR row pointer over holders (int32)
    counts: np.ndarray  # rows per holder
    unit: np.ndarray  # P·mult per asset
    signed: Vectors  # [c, F₁ … F_k]: X @ signed = [V, Fx]
    absolute: Vectors  # [1, m̃, ν(, ι̃, φ, m̃φ, νφ)]: |X| @ absolute
    specific: Vectors  # [s²]: (X∘X) @ specific
    cash_flag: Vectors | None  # [c]: max(X, 0) @ cash_flag = L⁺ (None: no holder needs it)
    cash: np.ndarray  # C per holder
    non_tradable: np.ndarray  # N per holder
    other_debt: np.ndarray  # D per holder
    dust_floor: np.ndarray  # accounts · DUST_VALUE per holder
    gross_pre: np.ndarray  # G before the scenario per holder
    k: np.ndarray  # margin multiplier per holder
    p: Params


def _check_exact(holders: pl.DataFrame, mandates: dict[str, Mandate]) -> None:
    """Refuse a book the closed form does not cover: a paced sale under way, or a cash cure
    with room for a margin call (margin is the one rule of :data:`KINDS` that cash cures)."""
    if "committed" in holders.columns and holders["committed"].fill_null(False).any():
        raise ValueError("a holder is part-way through a paced sale: no closed form")
    for name, mandate in mandates.items():
        mine = holders.filter(pl.col("mandate") == name)
        for source in mandate.cure if any(r.kind == "margin" for r in mandate.rules) else []:
            room = mine.select(pl.col(source.value).abs().max()) if source.value in mine else None
            if room is None or (room.item() or 0.0) > 0:
                raise ValueError(f"mandate {name!r} cures margin with {source}: no closed form")


def prepared(market: Market, scenario: Scenario | None = None) -> Baseline:
    """The baseline's arrays for ``market`` under ``scenario`` (default: the synthetic crash),
    from the shocked assets and holders of :func:`estimator.inputs.prepare` (not timed)."""
    spec = synthetic.scenario(market) if scenario is None else scenario
    assets, holders = inputs.prepare(spec, market, "bench", InputWarnings())
    holders = holders.sort("holder_id")
    _check_exact(holders, market.mandates)
    assets = assets.sort("asset_id").with_row_index("_a")
    pos = (
        market.positions.sort("holder_id", "asset_id")
        .join(
            holders.select("holder_id").with_row_index("_h"), on="holder_id", maintain_order="left"
        )
        .join(assets.select("asset_id", "_a"), on="asset_id", maintain_order="left")
    )
    n_h = holders.height
    counts = np.bincount(pos["_h"].to_numpy(), minlength=n_h)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)

    def col(name: str, default: float) -> np.ndarray:
        if name not in holders.columns:
            return np.full(n_h, default)
        return holders[name].cast(pl.Float64).fill_null(default).to_numpy()

    def asset(expr: pl.Expr) -> np.ndarray:
        return assets.select(expr.cast(pl.Float64)).to_series().to_numpy()

    factors = sorted(risk.factor_columns(assets))
    c = asset(pl.col("instrument") == "cash")
    m, mr = asset(pl.col("margin_rate").fill_null(0.0)), asset(pl.col("margin_rate").is_null())
    io = asset(pl.col("initial_margin_rate").fill_null(0.0))
    free = asset(pl.col("initial_margin_rate").is_null())
    names = sorted(market.mandates)
    code = holders["mandate"].replace_strict(names, list(range(len(names)))).to_numpy()
    rows = [Params.of(market.mandates[n]) for n in names]
    par = {f.name: np.array([getattr(r, f.name) for r in rows])[code] for f in fields(Params)}
    pre = (col("exposure_leverage_pre", NAN), col("balance_sheet_leverage_pre", NAN))
    l0 = np.where(par["targeting"], np.where(par["exposure"], *pre), 1.0)
    for key in ("lev_trigger", "lev_restore", "lev_floor"):
        par[key] = par[key] * l0
    p = Params(**par)
    absolute = [np.ones_like(c), m, mr]
    if p.initial.any():
        absolute += [io, free, m * free, mr * free]
    return Baseline(
        holder_id=pos["holder_id"].to_numpy(),
        asset_id=pos["asset_id"].to_numpy(),
        quantity=pos["quantity"].to_numpy(),
        asset=pos["_a"].to_numpy().astype(np.int32),
        indptr=indptr,
        counts=counts,
        unit=asset(pl.col("price") * pl.col("multiplier").fill_null(1.0)),
        signed=Vectors.of(c, *(asset(pl.col(f)) for f in factors)),
        absolute=Vectors.of(*absolute),
        specific=Vectors.of(asset(pl.col("specific_vol") ** 2)),
        cash_flag=Vectors.of(c) if (p.lev & ~p.exposure).any() else None,
        cash=col("cash", 0.0),
        non_tradable=col("non_tradable", 0.0),
        other_debt=col("other_debt", 0.0),
        dust_floor=col("accounts", 1.0) * DUST_VALUE,
        gross_pre=col("gross_exposure_pre", 0.0),
        k=col("margin_multiplier", 1.0),
        p=p,
    )


def _sums(b: Baseline, data: np.ndarray, vectors: Vectors) -> np.ndarray:
    """``M(data) @ W``: per holder, ``Σ data_row · W[asset_row]`` over its rows."""
    shape = (b.indptr.size - 1, b.unit.size)
    return vectors.times(sparse.csr_array((data, b.asset, b.indptr), shape=shape, copy=False))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` where ``den > 0``, else +∞."""
    return np.where(den > 0, num / den, np.inf)


def _leverage_scale(b: Baseline, B: np.ndarray, A: np.ndarray, *sums: np.ndarray) -> np.ndarray:
    """Largest f ≥ 0 with ``A(f) ≤ B`` (module docstring), −1 where none, ∞ where any;
    ``sums`` are G, L⁺ and V."""
    (G, L, V), N, C, exposure = sums, b.non_tradable, b.cash, b.p.exposure
    fx = _ratio(B - N, G)
    f1 = np.where(L > 0, (B - N) / L, np.nan)
    f2 = np.where(L - V > 0, (B - N - C - V) / (L - V), np.nan)
    ok1 = (f1 >= 0) & (C + (1 - f1) * V <= 0)
    ok2 = (f2 >= 0) & (C + (1 - f2) * V >= 0)
    balance_sheet = np.fmax(np.where(ok1, f1, np.nan), np.where(ok2, f2, np.nan))
    best = np.where(exposure, np.where(fx >= 0, fx, np.nan), balance_sheet)
    fixed = (G <= 0) | (~exposure & (L <= 0) & (L - V <= 0))
    return np.where(fixed, np.where(B >= A, np.inf, -1.0), np.where(np.isnan(best), -1.0, best))


def scale(b: Baseline, x: np.ndarray, ax: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each holder's common scale ``f`` of its book, and its gross exposure ``G``, on the
    exposures ``x`` and ``ax = |x|`` (one per row): the rules of the module docstring."""
    p = b.p
    signed = _sums(b, x, b.signed)  # [V, Fx]
    gross = _sums(b, ax, b.absolute)  # [G, Σ m̃|x|, Σ ν|x|, …]
    specific = _sums(b, ax * ax, b.specific)[:, 0]
    V, G = signed[:, 0], gross[:, 0]
    risk = np.sqrt((signed[:, 1:] ** 2).sum(axis=1) + specific)
    AE = V + b.cash
    N = b.non_tradable
    E = AE + N - b.other_debt
    noise = NOISE * np.maximum(G, np.abs(E))
    solvent = E > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        cap = np.where(np.isinf(p.cap), np.inf, p.cap * E)
        vol_down = p.vol & (np.maximum(risk - p.tau * (1 + p.eps) * E, G - cap) > noise)
        vol_up = p.vol & p.relever & (risk > 0) & (p.tau * (1 - p.eps) * E - risk > noise)
        bound = np.where(vol_down | vol_up, p.tau, p.tau * (1 + p.eps)) * E
        f_vol = np.where(p.vol, np.minimum(_ratio(bound, risk), _ratio(cap, G)), np.inf)

        L = np.zeros_like(G)
        if b.cash_flag is not None:
            L = _sums(b, np.maximum(x, 0.0), b.cash_flag)[:, 0]
        A = np.where(p.exposure, G + N, L + N + np.maximum(b.cash, 0.0))
        lev_down = p.lev & (A - p.lev_trigger * E > noise)
        lev_up = p.lev & (G > 0) & (p.lev_floor * E - A > noise)  # NaN floor: never
        bound = np.where(lev_down | lev_up, p.lev_restore, p.lev_trigger) * E
        f_lev = np.where(p.lev, _leverage_scale(b, bound, A, G, L, V), np.inf)

        R = b.k * (gross[:, 1] + p.m * gross[:, 2])
        called = R - AE  # the margin call
        mar_down = p.margin & (called > noise)
        req = R
        if gross.shape[1] > 3:  # some rule restores to initial margin
            free = np.where(
                np.isnan(p.iota), p.ratio * (gross[:, 5] + p.m * gross[:, 6]), p.iota * gross[:, 4]
            )
            initial = b.k * (gross[:, 3] + free)
            req = np.where(mar_down & p.initial, np.maximum(initial, R), R)
        f_mar = np.where(req > 0, AE / req, np.where(AE >= 0, np.inf, -1.0))
        f_mar = np.where(p.margin, f_mar, np.inf)

    down = (vol_down | lev_down | mar_down) & solvent
    up = (vol_up | lev_up) & solvent & ~down
    f_star = np.minimum(np.minimum(f_vol, f_lev), f_mar)
    near_one = np.abs(f_star - 1.0) <= NOISE
    cases = [~solvent, near_one, down, up]
    f = np.select(cases, [0.0, 1.0, np.clip(f_star, 0.0, 1.0), np.maximum(f_star, 1.0)], 1.0)
    return f, G


def trades(b: Baseline) -> np.ndarray:
    """The trade quantity of every row (aligned to ``b.holder_id``, ``b.asset_id``):
    ``(f − 1)·q``, zero where the trade ``(f − 1)·x`` is dust."""
    x = np.take(b.unit, b.asset)
    x *= b.quantity
    ax = np.abs(x)
    f, G = scale(b, x, ax)
    step = f - 1.0
    floor = np.maximum(DUST_SHARE * np.maximum(G, b.gross_pre), b.dust_floor)
    with np.errstate(divide="ignore"):
        smallest = np.repeat(floor / np.abs(step), b.counts)  # |x| below it: dust (∞: f = 1)
    out = np.repeat(step, b.counts)
    out *= b.quantity
    np.copyto(out, 0.0, where=ax < smallest)
    return out

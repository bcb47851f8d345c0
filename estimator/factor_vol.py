"""Realised volatility of a factor model's factors, and the risk rows it gives.

With a factor model ``Σ = B Ω Bᵀ + diag(s²)`` (:class:`estimator.risk.FactorModel`), an
estimator at ``level = "factor"`` (:mod:`rules.estimators`) estimates each factor's volatility
from the factors' daily returns and rescales the model by them, with the model's correlations:

    Σ̂ = B D Ω D Bᵀ + diag(s²),   D = diag(σ̂_k/σ_k),   σ_k = √Ω_kk,

so a portfolio's estimate is ``σ̂(x) = √(‖(B D L)ᵀx‖² + ‖s∘x‖²)`` with ``L Lᵀ = Ω``: each
asset's risk rows become ``G̃_i = (B_i ∘ d) L`` (:func:`rows`), its specific risk stays the
model's.

A day's factor returns are the generalised-least-squares fit of the assets' returns ``r`` on
their loadings, weighted by their specific variances (the model's own error variances):

    f̂ = argmin_f Σ_i (r_i − B_i f)²/s̃_i²,   s̃_i = max(s_i, 10⁻⁴),

over the assets the model loads (:func:`returns`). Where the returns are those of a factor
model (``r = B f``) it is exact, whatever the weights. A factor the day's loadings do not pin
down — loaded by no asset with a return (a history of equities only leaves rates and credit
out), or only together with another — is not identified: its squared return that day is the
calm ``σ_k²/252``. The estimators' recursions are the assets'
(:mod:`estimator.realised`), run on one row per factor (:func:`frame`).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from estimator.risk import SPECIFIC, FactorModel, factor_column

#: The floor of the specific volatility in the fit's weights: an asset the factors explain
#: exactly does not get an infinite weight.
MIN_SPECIFIC = 1e-4
#: Trading days a year (as :data:`estimator.realised.YEAR`).
YEAR = 252


def frame(model: FactorModel) -> pl.DataFrame:
    """One row per factor in the shape the estimators' recursions read: ``asset_id`` the
    factor's name, ``vol`` and ``vol_pre`` its volatility σ_k, a constant ``price``."""
    return pl.DataFrame(
        {
            "asset_id": list(model.names),
            "vol": model.vol,
            "vol_pre": model.vol,
            "price": 1.0,
            "price_pre": 1.0,
        }
    )


def returns(market: pl.DataFrame, model: FactorModel, r: pl.Expr) -> tuple[np.ndarray, np.ndarray]:
    """The day's factor returns ``f̂`` (module docstring) from the assets' returns ``r`` (an
    expression on ``market``; null where the day gives none), and whether each factor is
    identified (loaded by some asset with a return)."""
    cols = model.loading_columns()
    rows = (
        market.select("asset_id", r=r)
        .join(model.loadings, on="asset_id", how="inner")
        .join(model.specific, on="asset_id", how="left")
        .filter(pl.col("r").is_not_null() & pl.any_horizontal(pl.col(cols) != 0))
        .sort("asset_id")  # the fit's rows in one order, whatever the market's
    )
    if not rows.height:
        return np.zeros(len(cols)), np.zeros(len(cols), dtype=bool)
    w = 1.0 / np.maximum(rows[SPECIFIC].fill_null(0.0).to_numpy(), MIN_SPECIFIC)
    Bw = rows.select(cols).to_numpy() * w[:, None]
    f = np.linalg.lstsq(Bw, rows["r"].to_numpy() * w, rcond=None)[0]
    return f, _identified(Bw)


def _identified(Bw: np.ndarray) -> np.ndarray:
    """Whether each factor's return is pinned down by the day's (weighted) loadings: its unit
    vector lies in their row space, so every least-squares fit gives it the same value (the
    minimum-norm fit's is then exact). Two factors loaded only together are not."""
    _, s, vt = np.linalg.svd(Bw, full_matrices=False)
    rank = int((s > s.max(initial=0.0) * max(Bw.shape) * np.finfo(float).eps).sum())
    basis = vt[:rank]
    return np.abs(1.0 - (basis**2).sum(axis=0)) <= 1e-9


def squared(model: FactorModel, f: np.ndarray, identified: np.ndarray) -> pl.Expr:
    """The day's ``f̂_k²`` per row of :func:`frame`, the calm ``σ_k²/252`` where ``f̂_k`` is
    not identified."""
    calm = model.vol**2 / YEAR
    return pl.lit(pl.Series(np.where(identified, f**2, calm)))


def rows(market: pl.DataFrame, model: FactorModel, scales: dict[str, np.ndarray]) -> pl.DataFrame:
    """``market`` with each factor estimate's risk rows ``risk_g{j}@{key}`` = ``(B_i ∘ d) L``
    and ``specific_vol@{key}`` = ``s_i`` (``scales``: per key, ``d_k = σ̂_k/σ_k`` in the
    model's factor order), and ``vol_scale@{key}`` = ``√(Σ_j G̃_ij² + s_i²)/σ_i``, the asset's
    own estimate over the model's (0 where ``σ_i`` is 0). Assets outside the model have no
    risk under it."""
    cols = model.loading_columns()
    parts = market.select("asset_id", "vol").join(
        model.loadings.join(model.specific, on="asset_id", how="left"),
        on="asset_id",
        how="left",
        maintain_order="left",
    )
    B = parts.select(pl.col(cols).fill_null(0.0)).to_numpy()
    s = parts[SPECIFIC].fill_null(0.0).to_numpy()
    vol = parts["vol"].to_numpy()
    out = {}
    for key, d in scales.items():
        G = (B * d) @ model.root
        own = np.sqrt((G**2).sum(axis=1) + s**2)
        out |= {f"{factor_column(j)}@{key}": G[:, j] for j in range(G.shape[1])}
        out[f"{SPECIFIC}@{key}"] = s
        out[f"vol_scale@{key}"] = np.divide(own, vol, out=np.zeros_like(own), where=vol > 0)
    return market.with_columns(pl.Series(name, values) for name, values in out.items())


def estimate_keys(frame: pl.DataFrame) -> list[str]:
    """The factor estimates whose risk rows ``frame`` carries."""
    return [c.split("@", 1)[1] for c in frame.columns if c.startswith(f"{SPECIFIC}@")]

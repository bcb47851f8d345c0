"""The risk model as per-asset factor rows: ``Σ = G Gᵀ + diag(s²)``.

A factor model ``Σ = B Ω Bᵀ + diag(s²)`` becomes ``G = B L`` with ``Ω = L Lᵀ`` (eigen
factorisation, so a positive semi-definite Ω with zero eigenvalues is fine). A full covariance is
the special case ``B = I``, ``s = 0``. The rows are joined to assets by ``asset_id``; a holder's
ex-ante volatility is then ``σ(x) = √(‖Gᵀx‖² + ‖s∘x‖²)`` — no N×N matrix is ever formed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from estimator.errors import InputError, Problem

SPECIFIC = "specific_vol"


def factor_column(j: int) -> str:
    return f"risk_g{j}"


def _psd_root(matrix: np.ndarray, label: str) -> np.ndarray:
    """L with ``L Lᵀ = matrix``; refuses a matrix that is not symmetric PSD."""
    if not np.allclose(matrix, matrix.T, rtol=1e-9, atol=1e-12):
        raise InputError([Problem(label, "covariance matrix is not symmetric")])
    values, vectors = np.linalg.eigh(matrix)
    if values.min() < -1e-10 * max(values.max(), 1e-300):
        raise InputError(
            [
                Problem(
                    label,
                    f"covariance is not positive semi-definite (eigenvalue {values.min():.3g})",
                )
            ]
        )
    return vectors * np.sqrt(np.clip(values, 0, None))


def _square(frame: pl.DataFrame, row: str, col: str, names: list[str], label: str) -> np.ndarray:
    """Long (row, col, covariance) → dense matrix ordered by ``names``; symmetric entries filled.

    Every pair given in neither order is one problem of the error, (i, j) with i ≤ j in
    ``names`` order."""
    index = {n: i for i, n in enumerate(names)}
    at = frame.select(
        pl.col(row, col).replace_strict(index, return_dtype=pl.Int64), "covariance"
    ).to_numpy()
    mat = np.full((len(names), len(names)), np.nan)
    mat[at[:, 0].astype(np.int64), at[:, 1].astype(np.int64)] = at[:, 2]
    mat = np.where(np.isnan(mat), mat.T, mat)
    missing = np.argwhere(np.isnan(mat))
    missing = missing[missing[:, 0] <= missing[:, 1]]
    if len(missing):
        raise InputError(
            [Problem(label, f"no covariance for ({names[i]}, {names[j]})") for i, j in missing]
        )
    return mat


@dataclass(frozen=True)
class FactorModel:
    """A factor model ``Σ = B Ω Bᵀ + diag(s²)`` in parts, as the realised-volatility estimates
    rescale it (:mod:`estimator.factor_vol`): ``names`` the factors (sorted), ``loadings``
    (``asset_id`` and one column B_·k per factor, in ``names`` order, 0 where not loaded),
    ``root`` L with ``L Lᵀ = Ω`` (rows in ``names`` order), ``specific`` (``asset_id``,
    ``specific_vol``). The model's rows are ``G = B L`` (:func:`from_factor_model`)."""

    names: tuple[str, ...]
    loadings: pl.DataFrame
    root: np.ndarray
    specific: pl.DataFrame

    @property
    def vol(self) -> np.ndarray:
        """σ_k = √Ω_kk, each factor's volatility."""
        return np.sqrt(np.einsum("kj,kj->k", self.root, self.root))

    def loading_columns(self) -> list[str]:
        return [loading_column(k) for k in range(len(self.names))]


def loading_column(k: int) -> str:
    return f"risk_b{k}"


def factor_model(
    loadings: pl.DataFrame,
    factor_cov: pl.DataFrame,
    specific: pl.DataFrame,
    labels: tuple[str, str, str] = ("factor_loadings", "factor_covariance", "specific_risk"),
) -> FactorModel:
    """The :class:`FactorModel` of long tables (asset_id, factor, loading), (factor_i,
    factor_j, covariance) and (asset_id, specific_vol)."""
    factors = sorted(set(factor_cov["factor_i"]) | set(factor_cov["factor_j"]))
    unknown = sorted(set(loadings["factor"]) - set(factors))
    if unknown:
        raise InputError(
            [Problem(labels[0], f"factors without covariance: {unknown}", field="factor")]
        )
    root = _psd_root(_square(factor_cov, "factor_i", "factor_j", factors, labels[1]), labels[1])
    wide = (
        loadings.pivot(on="factor", index="asset_id", values="loading")
        .join(specific.select("asset_id"), on="asset_id", how="full", coalesce=True)
        .sort("asset_id")
    )
    B = wide.select(
        "asset_id",
        *(
            (pl.col(f).fill_null(0.0) if f in wide.columns else pl.lit(0.0)).alias(
                loading_column(k)
            )
            for k, f in enumerate(factors)
        ),
    )
    spec = wide.select("asset_id").join(
        specific.select("asset_id", SPECIFIC), on="asset_id", how="left"
    )
    return FactorModel(tuple(factors), B, root, spec.with_columns(pl.col(SPECIFIC).fill_null(0.0)))


def from_factor_model(
    loadings: pl.DataFrame,
    factor_cov: pl.DataFrame,
    specific: pl.DataFrame,
    labels: tuple[str, str, str] = ("factor_loadings", "factor_covariance", "specific_risk"),
) -> pl.DataFrame:
    """Per-asset rows ``asset_id, risk_g0…, specific_vol`` of a factor model."""
    return model_rows(factor_model(loadings, factor_cov, specific, labels))


def model_rows(model: FactorModel) -> pl.DataFrame:
    """Per-asset rows ``asset_id, risk_g0…, specific_vol``: ``G = B L``."""
    G = model.loadings.select(model.loading_columns()).to_numpy() @ model.root
    rows = pl.DataFrame({factor_column(j): G[:, j] for j in range(G.shape[1])})
    out = pl.concat([model.loadings.select("asset_id"), rows], how="horizontal")
    return out.join(model.specific, on="asset_id", how="left")


def from_covariance(cov: pl.DataFrame, label: str = "covariance") -> pl.DataFrame:
    """Per-asset rows of a full asset covariance (small universes)."""
    names = sorted(set(cov["asset_i"]) | set(cov["asset_j"]))
    G = _psd_root(_square(cov, "asset_i", "asset_j", names, label), label)
    rows = pl.DataFrame({factor_column(j): G[:, j] for j in range(G.shape[1])})
    return pl.concat([pl.DataFrame({"asset_id": names}), rows], how="horizontal").with_columns(
        pl.lit(0.0).alias(SPECIFIC)
    )


def diagonal(assets: pl.DataFrame) -> pl.DataFrame:
    """Uncorrelated assets with volatility ``vol`` (used when no risk model is given)."""
    return assets.select(
        "asset_id", pl.lit(0.0).alias(factor_column(0)), pl.col("vol").alias(SPECIFIC)
    )


def factor_columns(frame: pl.DataFrame) -> list[str]:
    """The model's risk rows ``risk_g{j}`` (not an estimate's own, ``risk_g{j}@{key}``)."""
    return [c for c in frame.columns if c.startswith("risk_g") and "@" not in c]


def model_vol(frame: pl.DataFrame) -> pl.Expr:
    """Each asset's total volatility under the model: ``√(Σ_j G_ij² + s_i²)``."""
    cols = factor_columns(frame)
    return (pl.sum_horizontal([pl.col(c) ** 2 for c in cols]) + pl.col(SPECIFIC) ** 2).sqrt()

"""The census market generated from its parameter file, in memory or as a bundle.

:func:`generate` draws the census from a parameter file (``scenarios/markets/census/
parameters.toml``: every aggregate with its source, date and label) with the file's seed or
another: the instruments and risk model (:mod:`estimator.generator.universe`), then every
holder type's holders and books (:mod:`estimator.generator.books`). The result is a
:class:`Generated` census that gives a checked :class:`~estimator.market.Market`
(:meth:`Generated.market`) or writes the bundle the shipped census is (:meth:`Generated.write`).
Deterministic: the same parameters and seed give the same bytes.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from estimator.generator import bundle, universe
from estimator.generator.books import Books, holders
from estimator.generator.vintages import Figure, latest_at, resolve
from estimator.mandates import Mandate
from estimator.market import Market, build_market
from estimator.paths import markets_dir
from estimator.risk import factor_model

__all__ = [
    "Figure",
    "Generated",
    "generate",
    "latest_at",
    "load_parameters",
    "parameters_path",
    "sources",
    "vintages",
]


def parameters_path() -> Path:
    """The shipped census's parameter file."""
    return markets_dir() / "census" / "parameters.toml"


def load_parameters(path: str | Path | None = None) -> dict[str, Any]:
    """A census parameter file (default: the shipped one), as read."""
    with Path(path or parameters_path()).open("rb") as f:
        return tomllib.load(f)


def sources(vintage: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
    """The aggregates of the census ``vintage`` (default file: the shipped one), in file
    order: path, value, kind, date, source, and an assumption's range (low, high) with the
    argument for it."""
    _, figures = resolve(params or load_parameters(), vintage)
    return pl.DataFrame(
        [(f.path, f.value, f.kind, f.date, f.source, f.low, f.high, f.range_source)
         for f in figures],
        schema={"path": pl.String, "value": pl.Float64, "kind": pl.String, "date": pl.String,
                "source": pl.String, "low": pl.Float64, "high": pl.Float64,
                "range_source": pl.String},
        orient="row",
    )  # fmt: skip


def vintages(params: dict[str, Any]) -> list[str]:
    """The vintages a parameter file gives, oldest first (:mod:`estimator.generator.vintages`)."""
    return sorted(params.get("vintages", []))


@dataclass(frozen=True)
class Generated:
    """A generated census: the bundle's tables, its mandates by name (as TOML tables), its
    vintage and the aggregate figures it was sized to."""

    assets: pl.DataFrame  # assets.csv: with vol, the instruments' own columns
    holders: pl.DataFrame
    positions: pl.DataFrame
    index_weights: pl.DataFrame
    factor_loadings: pl.DataFrame  # long: asset_id, factor, loading (nonzero only)
    factor_covariance: pl.DataFrame  # long: factor_i, factor_j, covariance (upper triangle)
    specific_risk: pl.DataFrame
    mandates: dict[str, dict[str, Any]]
    vintage: str | None = None
    figures: tuple[Figure, ...] = ()

    @property
    def name(self) -> str:
        """The market's name: ``census``, or ``census/<vintage>``."""
        return "census" if self.vintage is None else f"census/{self.vintage}"

    def market(self) -> Market:
        """The census as a checked market, in memory (as :func:`estimator.load_market` would
        give from the written bundle)."""
        mandates = {
            n: Mandate.model_validate(bundle.mandate_table(n, s)) for n, s in self.mandates.items()
        }
        factors = factor_model(
            self.factor_loadings, self.factor_covariance, self.specific_risk, ("", "", "")
        )
        market = build_market(
            self.assets,
            self.holders,
            self.positions,
            mandates,
            factors=factors,
            index_weights=self.index_weights,
        )
        market.name, market.as_of = self.name, self.vintage
        return market

    def write(self, out: str | Path) -> list[Path]:
        """Write the bundle into ``out`` (its generated files only: a ``parameters.toml``
        there is left as it is; stale generated mandate files are removed)."""
        return bundle.write(self, Path(out))


def generate(
    params: dict[str, Any], *, vintage: str | None = None, seed: int | None = None
) -> Generated:
    """The census drawn from ``params`` as of ``vintage`` (a file with vintages: default its
    latest) with ``seed`` (default: the file's ``seed``)."""
    figures: list[Figure] = []
    if params.get("vintages"):
        vintage = vintage or vintages(params)[-1]
        params, figures = resolve(params, vintage)
    elif vintage is not None:
        raise ValueError("this parameter file has no vintages")
    rng = np.random.default_rng(params["seed"] if seed is None else seed)
    assets, loads = universe.assets(params, rng)
    cov = universe.covariance(params)
    members = params["equities"]["index"]
    top = assets.filter(pl.col("asset_class") == "equity").head(members["members"])
    weights = dict(zip(top["asset_id"], (top["size"] / top["size"].sum()).to_list(), strict=True))
    books = Books(assets, loads, cov)
    mandates = holders(params, books, weights, rng)
    factors = universe.FACTORS
    total = np.sqrt(np.einsum("ij,jk,ik->i", loads, cov, loads) + assets["specific_vol"] ** 2)
    return Generated(
        assets=assets.with_columns(vol=pl.Series(np.round(total, 6))).drop(
            "specific_vol", "sector", "size"
        ),
        holders=pl.DataFrame(books.holders, infer_schema_length=None),
        positions=pl.DataFrame(
            books.positions, schema=["holder_id", "asset_id", "quantity"], orient="row"
        ),
        index_weights=pl.DataFrame(
            {"index_id": members["id"], "asset_id": list(weights), "weight": list(weights.values())}
        ),
        factor_loadings=pl.DataFrame(
            [
                {"asset_id": a, "factor": f, "loading": float(v)}
                for a, row in zip(assets["asset_id"], loads, strict=True)
                for f, v in zip(factors, row, strict=True)
                if v
            ]
        ),
        factor_covariance=pl.DataFrame(
            [
                {"factor_i": factors[i], "factor_j": factors[j], "covariance": float(cov[i, j])}
                for i in range(len(factors))
                for j in range(i, len(factors))
            ]
        ),
        specific_risk=assets.select("asset_id", "specific_vol"),
        mandates=mandates,
        vintage=vintage,
        figures=tuple(figures),
    )

"""A market bundle: assets, risk model, holders, positions and mandates, checked together.

On disk a bundle is a folder with a ``market.toml`` naming its files (paths relative to it)::

    name = "small"
    assets = "assets.csv"
    holders = "holders.csv"
    positions = "positions.csv"
    mandates = "../../../mandates"
    indices = "index_weights.csv"  # optional: index_id, asset_id, weight
    dealer_gamma = "dealer_gamma.csv"  # optional: asset_id, level, gamma (estimator/gamma.py)
    [risk_model]                  # either a factor model …
    factor_loadings = "factor_loadings.csv"
    factor_covariance = "factor_covariance.csv"
    specific_risk = "specific_risk.csv"
    # covariance = "covariance.csv"   # … or a full covariance
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Self

import polars as pl
from pydantic import BaseModel, Field, model_validator

from estimator import book as bk
from estimator import contracts, gamma, indices, keys, risk, trend
from estimator.book import ACCOUNTS
from estimator.bounds import MAX_AMOUNT, MODEL_CONFIG
from estimator.errors import InputError, InputWarnings, Problem
from estimator.mandates import Mandate, load_mandates
from estimator.tables import TableSource, load_covariance, load_table
from estimator.toml_files import load_toml
from rules.estimators import scale_column


class RiskModelFiles(BaseModel):
    model_config = MODEL_CONFIG

    factor_loadings: str | None = None
    factor_covariance: str | None = None
    specific_risk: str | None = None
    covariance: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        factor = [self.factor_loadings, self.factor_covariance, self.specific_risk]
        if self.covariance is not None and any(f is not None for f in factor):
            raise ValueError("give either a factor model or a full covariance, not both")
        if self.covariance is None and not all(f is not None for f in factor):
            raise ValueError(
                "a factor model needs factor_loadings, factor_covariance, specific_risk"
            )
        return self


class MarketFile(BaseModel):
    """The ``market.toml`` of a bundle."""

    model_config = MODEL_CONFIG

    name: str
    description: str = ""
    base_currency: str = "USD"
    as_of: str | None = Field(
        None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="the month its holdings describe"
    )
    assets: str
    holders: str
    positions: str
    mandates: str
    indices: str | None = None
    dealer_gamma: str | None = None
    risk_model: RiskModelFiles | None = None


@dataclass
class Market:
    """Validated inputs of one run. ``assets`` carries the risk-model rows (``risk_g*``);
    ``index_weights`` (index_id, asset_id, weight) the indices, each summing to one."""

    assets: pl.DataFrame
    holders: pl.DataFrame
    positions: pl.DataFrame
    mandates: dict[str, Mandate]
    index_weights: pl.DataFrame = field(default_factory=lambda: indices.EMPTY)
    name: str = "custom"
    base_currency: str = "USD"
    as_of: str | None = None  # the month its holdings describe (a census vintage)
    sources: dict[str, str] = field(default_factory=dict)  # label → sha256
    warnings: InputWarnings = field(default_factory=InputWarnings)
    #: The risk model's factors, where it is a factor model: what estimates of realised factor
    #: volatility rescale (:mod:`estimator.factor_vol`).
    factors: risk.FactorModel | None = None

    @cached_property
    def coded(self) -> tuple[keys.Keys, pl.DataFrame]:
        """The integer keys of the holder and asset tables and the positions coded by them,
        in (holder, asset) order (:mod:`estimator.keys`): made on first use and shared by
        every scenario run on this market — the frames are not to be changed afterwards."""
        codes = keys.Keys.of(self.holders, self.assets)
        return codes, keys.by_holder(codes.encode(self.positions))

    @cached_property
    def book(self) -> pl.DataFrame:
        """Every holder's book at the market's own prices (:func:`estimator.book.holder_book`),
        made on first use and shared by every scenario run on this market."""
        return bk.holder_book(bk.position_frame(self.positions, self.assets), self.holders)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _risk_rows(
    files: RiskModelFiles | None, root: Path, warnings: InputWarnings
) -> tuple[pl.DataFrame | None, risk.FactorModel | None, dict[str, Path]]:
    if files is None:  # build_market treats the assets as uncorrelated, and says so
        return None, None, {}
    if files.covariance is not None:
        path = root / files.covariance
        cov = load_covariance(path, str(path), warnings)
        return risk.from_covariance(cov, str(path)), None, {"covariance": path}
    assert files.factor_loadings and files.factor_covariance and files.specific_risk
    paths = {
        "factor_loadings": root / files.factor_loadings,
        "factor_covariance": root / files.factor_covariance,
        "specific_risk": root / files.specific_risk,
    }
    loadings = load_table(paths["factor_loadings"], contracts.FactorLoadings, None, warnings)
    fcov = load_table(paths["factor_covariance"], contracts.FactorCovariance, None, warnings)
    spec = load_table(paths["specific_risk"], contracts.SpecificRisk, None, warnings)
    labels = (
        str(paths["factor_loadings"]),
        str(paths["factor_covariance"]),
        str(paths["specific_risk"]),
    )
    model = risk.factor_model(loadings, fcov, spec, labels)
    return risk.model_rows(model), model, paths


def load_market(path: str | Path) -> Market:
    """Load and check a bundle folder (or its ``market.toml``)."""
    path = Path(path)
    toml_path = path / "market.toml" if path.is_dir() else path
    spec = load_toml(toml_path, MarketFile)
    root = toml_path.parent
    warnings = InputWarnings()
    files = {k: root / getattr(spec, k) for k in ("assets", "holders", "positions")}
    for key in ("indices", "dealer_gamma"):
        if getattr(spec, key) is not None:
            files[key] = root / getattr(spec, key)
    problems: list[Problem] = []
    frames: dict[str, pl.DataFrame] = {}
    schemas = {
        "assets": contracts.Assets,
        "holders": contracts.Holders,
        "positions": contracts.Positions,
        "indices": contracts.IndexWeights,
        "dealer_gamma": contracts.DealerGamma,
    }
    for key, schema in schemas.items():
        if key not in files:
            continue
        try:
            frames[key] = load_table(files[key], schema, str(files[key]), warnings)
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    risk_rows, factors, risk_paths = _risk_rows(spec.risk_model, root, warnings)
    mandates = load_mandates((root / spec.mandates).resolve())
    market = build_market(
        frames["assets"],
        frames["holders"],
        frames["positions"],
        mandates,
        risk_rows=risk_rows,
        index_weights=frames.get("indices"),
        dealer_gamma=frames.get("dealer_gamma"),
        labels={k: str(v) for k, v in files.items()},
        warnings=warnings,
    )
    market.factors = factors
    market.name = spec.name
    market.base_currency = spec.base_currency
    market.as_of = spec.as_of
    all_paths = {**files, **risk_paths, "market": toml_path}
    market.sources = {k: sha256(p) for k, p in sorted(all_paths.items())}
    return market


def build_market(
    assets: TableSource,
    holders: TableSource,
    positions: TableSource,
    mandates: dict[str, Mandate],
    *,
    risk_rows: pl.DataFrame | None = None,
    factors: risk.FactorModel | None = None,
    index_weights: TableSource | None = None,
    dealer_gamma: TableSource | None = None,
    labels: dict[str, str] | None = None,
    warnings: InputWarnings | None = None,
) -> Market:
    """Check tables against each other (ids, mandates, indices, risk model) and join the risk
    rows — ``risk_rows``, or those of a factor model given in parts (``factors``:
    :func:`estimator.risk.factor_model`). ``index_weights``: index_id, asset_id, weight (see
    :mod:`estimator.indices`); ``dealer_gamma``: asset_id, level, gamma (see
    :mod:`estimator.gamma`)."""
    if factors is not None and risk_rows is None:
        risk_rows = risk.model_rows(factors)
    labels = {
        "assets": "assets",
        "holders": "holders",
        "positions": "positions",
        "indices": "index_weights",
        "dealer_gamma": "dealer_gamma",
        **(labels or {}),
    }
    warnings = warnings if warnings is not None else InputWarnings()
    assets = load_table(assets, contracts.Assets, labels["assets"], warnings)
    holders = load_table(holders, contracts.Holders, labels["holders"], warnings)
    positions = load_table(positions, contracts.Positions, labels["positions"], warnings)
    problems = _reference_problems(assets, holders, positions, labels)
    problems += _value_problems(assets, positions, labels["positions"])
    holders, mandate_problems = _assign_mandates(holders, mandates, labels["holders"])
    problems += mandate_problems
    weights = indices.EMPTY.with_columns(pl.lit(0, dtype=pl.Int64).alias(contracts.LINE))
    if index_weights is not None:
        weights = load_table(index_weights, contracts.IndexWeights, labels["indices"], warnings)
        weights, index_problems = indices.check_weights(
            weights, assets, labels["indices"], warnings
        )
        problems += index_problems
    profile = None
    if dealer_gamma is not None:
        profile = load_table(dealer_gamma, contracts.DealerGamma, labels["dealer_gamma"], warnings)
        problems += gamma.check_profile(profile, assets, labels["dealer_gamma"])
    if not mandate_problems:
        problems += indices.tracked_index_problems(holders, mandates, weights, labels["holders"])
    if risk_rows is None:
        problems += [
            Problem(labels["assets"], "no vol: required without a risk model", line, "vol")
            for line in assets.filter(pl.col("vol").is_null())[contracts.LINE].head(20)
        ]
        risk_rows = risk.diagonal(assets)
        warnings.add(Problem(labels["assets"], "no risk model: assets are treated as uncorrelated"))
    unknown = risk_rows.join(assets, on="asset_id", how="anti")["asset_id"].to_list()
    if unknown:
        problems.append(Problem("risk model", f"assets not in the asset table: {unknown[:10]}"))
    missing = assets.join(risk_rows, on="asset_id", how="anti")["asset_id"].to_list()
    if missing:
        problems.append(Problem("risk model", f"assets without risk-model rows: {missing[:10]}"))
    problems += _account_problems(holders, positions, assets, labels["holders"])
    if problems:
        raise InputError(problems)
    holders, positions = _by_row(holders, positions)
    assets = assets.join(risk_rows, on="asset_id", how="left")
    if profile is not None:
        assets = assets.join(gamma.profile_columns(profile), on="asset_id", how="left")
    assets = gamma.with_null_profiles(assets, mandates)  # a scenario may give the profile
    assets = trend.with_windows(assets, mandates)  # no trend before what is known of it
    off = assets.filter((risk.model_vol(assets) - pl.col("vol")).abs() > 0.1 * pl.col("vol") + 1e-4)
    assets = assets.with_columns(pl.col("vol").fill_null(risk.model_vol(assets)))  # the model's
    for asset_id in off["asset_id"].head(10):
        warnings.add(
            Problem(
                labels["assets"],
                f"asset {asset_id}: vol differs from the risk model's by >10%",
                field="vol",
            )
        )
    # a rule that estimates volatility reads its own risk column: before any return the
    # estimate is the model's (scale 1; estimator.realised updates it)
    estimates = sorted({r.risk_key for m in mandates.values() for r in m.rules if r.risk_key})
    assets = assets.with_columns(pl.lit(1.0).alias(scale_column(k)) for k in estimates)
    return Market(
        assets=assets.drop(contracts.LINE).sort("asset_id"),
        holders=holders.drop(contracts.LINE).sort("holder_id"),
        positions=positions.drop(contracts.LINE).sort("holder_id", "asset_id"),
        mandates=mandates,
        index_weights=weights.drop(contracts.LINE).sort("index_id", "asset_id"),
        warnings=warnings,
        factors=factors,
    )


#: Holder columns that are amounts of money: a row of ``k`` accounts holds ``k`` times each.
ACCOUNT_AMOUNTS = [
    "cash",
    "other_debt",
    "non_tradable",
    "cash_reserve",
    "credit_line",
    "liabilities",
    "reference_equity",
]


def _account_problems(
    holders: pl.DataFrame, positions: pl.DataFrame, assets: pl.DataFrame, label: str
) -> list[Problem]:
    """A row's ``accounts`` is a whole number, and its amounts and positions times it stay
    within :data:`MAX_AMOUNT`."""
    k = pl.col(ACCOUNTS)
    bad = holders.filter(k != k.round()).select(contracts.LINE, k)
    problems = [
        Problem(label, f"accounts must be a whole number, got {n:g}", line, ACCOUNTS)
        for line, n in bad.head(20).iter_rows()
    ]
    if (holders[ACCOUNTS] == 1.0).all():  # nothing is multiplied
        return problems
    value = (
        positions.join(assets.select("asset_id", "price", "multiplier"), on="asset_id")
        .group_by("holder_id")
        .agg(gross=(pl.col("quantity") * pl.col("price") * pl.col("multiplier")).abs().sum())
    )
    sizes = holders.join(value, on="holder_id", how="left").with_columns(
        total=pl.max_horizontal(
            pl.col("gross").fill_null(0.0),
            *[pl.col(c).abs().fill_null(0.0) for c in ACCOUNT_AMOUNTS],
        )
        * k
    )
    big = sizes.filter(pl.col("total") > MAX_AMOUNT).select(contracts.LINE, k)
    problems += [
        Problem(
            label,
            f"{n:g} accounts make the row's amounts larger than {MAX_AMOUNT:g}",
            line,
            ACCOUNTS,
        )
        for line, n in big.head(20).iter_rows()
    ]
    return problems


def _by_row(holders: pl.DataFrame, positions: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Each row's amounts and positions for all of its ``k`` accounts together: ``k·a`` and
    ``k·q`` (rows of one account are unchanged)."""
    k = pl.col(ACCOUNTS)
    if (holders[ACCOUNTS] == 1.0).all():
        return holders, positions
    holders = holders.with_columns(pl.col(c) * k for c in ACCOUNT_AMOUNTS if c in holders.columns)
    counts = holders.select("holder_id", ACCOUNTS)
    positions = (
        positions.join(counts, on="holder_id", how="left")
        .with_columns(pl.col("quantity") * k)
        .drop(ACCOUNTS)
    )
    return holders, positions


def _reference_problems(
    assets: pl.DataFrame, holders: pl.DataFrame, positions: pl.DataFrame, labels: dict[str, str]
) -> list[Problem]:
    lender = pl.col("lender")
    bad_lenders = holders.filter(
        lender.is_not_null()
        & (~lender.is_in(holders["holder_id"].implode()) | (lender == pl.col("holder_id")))
    ).sort(contracts.LINE)
    problems = [
        Problem(labels["holders"], f"lender {value!r} is not another holder", line, "lender")
        for line, value in bad_lenders.select(contracts.LINE, "lender").head(20).iter_rows()
    ]
    for key, table, label in (("asset_id", assets, "asset"), ("holder_id", holders, "holder")):
        bad = positions.join(table.select(key), on=key, how="anti").sort(contracts.LINE)
        problems += [
            Problem(labels["positions"], f"unknown {label} {value!r}", line, key)
            for line, value in bad.select(contracts.LINE, key).head(20).iter_rows()
        ]
    return problems


def _value_problems(assets: pl.DataFrame, positions: pl.DataFrame, label: str) -> list[Problem]:
    """Positions whose value ``|q|·P·m`` exceeds :data:`~estimator.bounds.MAX_AMOUNT`: each
    number may be within its bound while their product is not."""
    value = pl.col("quantity").abs() * pl.col("price") * pl.col("multiplier").fill_null(1.0)
    big = (
        positions.join(assets.select("asset_id", "price", "multiplier"), on="asset_id")
        .filter(value > MAX_AMOUNT)
        .sort(contracts.LINE)
    )
    return [
        Problem(
            label,
            f"too large: the position's value |q|·P·m = {v:.3g} exceeds {MAX_AMOUNT:g}",
            line,
            "quantity",
        )
        for line, v in big.select(contracts.LINE, value).head(20).iter_rows()
    ]


def _assign_mandates(
    holders: pl.DataFrame, mandates: dict[str, Mandate], label: str
) -> tuple[pl.DataFrame, list[Problem]]:
    """Fill empty ``mandate`` cells from the mandates' ``applies_to`` (ids beat types)."""

    def candidates(key: str, pairs: list[tuple[str, str]]) -> pl.DataFrame:
        frame = pl.DataFrame(pairs, schema={key: pl.String, "m": pl.String}, orient="row")
        return frame.group_by(key).agg(pl.col("m").sort().alias(f"by_{key}"))

    by_id = candidates(
        "holder_id", [(h, n) for n, m in mandates.items() for h in m.applies_to.holder_ids]
    )
    by_type = candidates(
        "holder_type", [(t, n) for n, m in mandates.items() for t in m.applies_to.holder_types]
    )
    h = (
        holders.join(by_id, on="holder_id", how="left")
        .join(by_type, on="holder_type", how="left")
        .with_columns(options=pl.coalesce("by_holder_id", "by_holder_type").fill_null([]))
    )
    unknown = h.filter(pl.col("mandate").is_not_null() & ~pl.col("mandate").is_in(list(mandates)))
    unassigned = h.filter(pl.col("mandate").is_null() & (pl.col("options").list.len() != 1))
    problems = [
        Problem(label, f"unknown mandate {name!r} (known: {sorted(mandates)})", line, "mandate")
        for line, name in unknown.select(contracts.LINE, "mandate").head(20).iter_rows()
    ]
    problems += [
        Problem(
            label,
            (f"several mandates apply: {opts}" if opts else "no mandate applies")
            + "; name one in the mandate column",
            line,
            "mandate",
        )
        for line, opts in unassigned.select(contracts.LINE, "options").head(20).iter_rows()
    ]
    assigned = pl.coalesce("mandate", pl.col("options").list.first())
    return h.with_columns(mandate=assigned).select(holders.columns), problems

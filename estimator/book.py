"""Accounting: positions × prices → exposures, and the per-holder book the rules read.

Definitions (one set, used everywhere):

* exposure ``x = q·P·mult``; value in equity ``= x`` for cash instruments, ``0`` for futures
  (their mark-to-market is settled to cash as variation margin);
* account equity ``AE = Σ value + cash``; holder equity ``E = AE + N − D`` with ``N``
  non-tradable holdings and ``D`` other debt;
* gross assets ``A = Σ|x| + N + max(cash, 0)``; leverage ``A / E``;
* ex-ante vol ``σ(x) = √(‖Gᵀx‖² + ‖s∘x‖²)`` (see :mod:`estimator.risk`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy import sparse

from estimator import factor_vol, keys, risk
from estimator.errors import RunError
from rules import LATCHING_KINDS, STATE_COLUMNS, Book
from rules.estimators import scale_column

_X = pl.col("exposure")
_PRICING = ["price", "multiplier"]


def model_columns(assets: pl.DataFrame) -> list[str]:
    """Asset columns the book's margin and risk sums read."""
    return [
        "margin_rate",
        "initial_margin_rate",
        "duration",
        risk.SPECIFIC,
        *risk.factor_columns(assets),
        *(scale_column(k) for k in estimate_keys(assets)),
        *(
            f"{c}@{k}"
            for k in factor_vol.estimate_keys(assets)
            for c in [*risk.factor_columns(assets), risk.SPECIFIC]
        ),
    ]


def estimated_row(frame: pl.DataFrame, column: str, key: str) -> pl.Expr:
    """An asset's risk-model row ``column`` (a factor row or ``specific_vol``) under the
    estimate ``key``: the model's times the asset's scale ``σ̂_i/σ_i``, or for a factor-level
    estimate its own rows (:func:`estimator.factor_vol.rows`)."""
    own = f"{column}@{key}"
    if own in frame.columns:
        return pl.col(own)
    return pl.col(column) * pl.col(scale_column(key))


def _scaled(pos: pl.DataFrame, column: str, key: str) -> pl.Expr:
    """``x·row`` of a position under the estimate ``key`` (:func:`estimated_row`), in the
    order the asset scales have always been applied: ``(x·row)·scale``."""
    if f"{column}@{key}" in pos.columns:
        return _X * pl.col(f"{column}@{key}")
    if column == risk.SPECIFIC:
        return pl.col(column) * _X * pl.col(scale_column(key))
    return _X * pl.col(column) * pl.col(scale_column(key))


def estimate_keys(frame: pl.DataFrame) -> list[str]:
    """The volatility estimates whose per-asset scales ``σ̂_i/σ_i`` ``frame`` carries
    (``vol_scale@{key}``, :mod:`estimator.realised`): each gets its ``risk@{key}`` column."""
    return [c.split("@", 1)[1] for c in frame.columns if c.startswith("vol_scale@")]


def risk_column_of(key: str) -> str:
    """The book column of the portfolio volatility under the estimate ``key``."""
    return f"{Book.RISK}@{key}"


def _estimate_names(gcols: list[str], keys_: list[str]) -> list[str]:
    return [f"_fe_{g}@{k}" for k in keys_ for g in gcols] + [f"_specific_var@{k}" for k in keys_]


def position_frame(
    positions: pl.DataFrame, assets: pl.DataFrame, columns: Sequence[str] | None = None
) -> pl.DataFrame:
    """Positions joined to assets by ``asset_id`` with ``exposure`` and ``is_cash``.

    ``columns``: the asset columns to carry besides ``price`` and ``multiplier`` (by default
    all but those holding lists); a narrow frame keeps large books fast and small.
    """
    # by default every asset column but the state kept as lists (e.g. trailing returns' windows)
    listed = {c for c, t in assets.schema.items() if isinstance(t, pl.List)}
    keep = (
        [c for c in assets.columns if c not in listed] if columns is None else [*_PRICING, *columns]
    )
    table = assets.select(
        "asset_id",
        *dict.fromkeys(c for c in keep if c != "asset_id"),
        is_cash=pl.col("instrument") == "cash",
    )
    if positions.schema["asset_id"] == keys.CODE:  # coded frames: a gather, rows keep order
        joined = keys.broadcast(table, table.columns[1:], positions, key="asset_id")
    else:
        joined = positions.join(table, on="asset_id", validate="m:1", maintain_order="left")
    return joined.with_columns(exposure=pl.col("quantity") * pl.col("price") * pl.col("multiplier"))


def credit_variation_margin(
    holders: pl.DataFrame, positions: pl.DataFrame, moves: pl.DataFrame
) -> pl.DataFrame:
    """``holders`` with their futures' variation margin on a price move credited to cash:
    ``cash_h += Σ_i q_hi·mult_i·ΔP_i`` over the futures in ``moves`` (asset_id, multiplier,
    ``dp`` = ΔP); ``positions`` (holder_id, asset_id, quantity) may hold other assets too."""
    pnl = pl.col("quantity") * pl.col("multiplier") * pl.col("dp")
    margin = (
        positions.select("holder_id", "asset_id", "quantity")
        .join(moves.select("asset_id", "multiplier", "dp"), on="asset_id")
        .group_by("holder_id")
        .agg(_vm=pnl.sum())
    )
    return (
        holders.join(margin, on="holder_id", how="left")
        .with_columns(pl.col(Book.CASH) + pl.col("_vm").fill_null(0.0))
        .drop("_vm")
    )


def restate(book: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame | pl.LazyFrame:
    """Recompute the derived balance-sheet columns from the sums and the cash/debt columns."""
    ae = pl.col("position_value") + pl.col(Book.CASH)
    return book.with_columns(
        **{
            Book.ACCOUNT_EQUITY: ae,
            Book.EQUITY: ae + pl.col(Book.NON_TRADABLE) - pl.col(Book.OTHER_DEBT),
            Book.GROSS_ASSETS: pl.col(Book.GROSS_EXPOSURE)
            + pl.col(Book.NON_TRADABLE)
            + pl.col(Book.CASH).clip(lower_bound=0.0),
        }
    ).with_columns(  # leverage is undefined (null), never negative, when E ≤ 0
        leverage=pl.when(pl.col(Book.EQUITY) > 0).then(
            pl.col(Book.GROSS_ASSETS) / pl.col(Book.EQUITY)
        )
    )


def _rows_sums(pos: pl.DataFrame, gcols: list[str]) -> pl.DataFrame:
    """Per-holder sums from position rows that carry the model columns."""
    rated = pl.col("margin_rate").is_not_null()
    free = pl.col("initial_margin_rate").is_null()  # no initial rate of its own
    sums = pos.group_by("holder_id").agg(
        _X.abs().sum().alias(Book.GROSS_EXPOSURE),
        (_X * pl.col("is_cash")).sum().alias(Book.CASH_EXPOSURE),
        (_X.clip(lower_bound=0.0) * pl.col("is_cash")).sum().alias(Book.LONG_CASH),
        (_X * pl.col("duration").fill_null(0.0)).sum().alias(Book.DURATION_EXPOSURE),
        (pl.col("margin_rate") * _X.abs()).filter(rated).sum().alias(Book.MARGIN_RATED),
        _X.abs().filter(~rated).sum().alias(Book.MARGIN_UNRATED),
        (pl.col("initial_margin_rate") * _X.abs()).filter(~free).sum().alias(Book.INITIAL_RATED),
        _X.abs().filter(free).sum().alias(Book.INITIAL_FREE),
        (pl.col("margin_rate") * _X.abs())
        .filter(free & rated)
        .sum()
        .alias(Book.INITIAL_FREE_RATED),
        _X.abs().filter(free & ~rated).sum().alias(Book.INITIAL_FREE_UNRATED),
        ((pl.col(risk.SPECIFIC) * _X) ** 2).sum().alias("_specific_var"),
        *[(_X * pl.col(g)).sum().alias(f"_fe_{g}") for g in gcols],
        *[
            _scaled(pos, g, k).sum().alias(f"_fe_{g}@{k}")
            for k in estimate_keys(pos)
            for g in gcols
        ],
        *[
            (_scaled(pos, risk.SPECIFIC, k) ** 2).sum().alias(f"_specific_var@{k}")
            for k in estimate_keys(pos)
        ],
    )
    position_value = pl.col(Book.CASH_EXPOSURE).alias("position_value")  # Σ x·c, the same sum
    return sums.select("holder_id", position_value, pl.exclude("holder_id"))


class Pattern:
    """The holder × asset pattern of a coded position frame (:mod:`estimator.keys`): its rows
    as the non-zeros of a sparse holder × asset matrix, so that per-holder sums are sparse
    products ``M(d) V`` — row ``h`` of the result is ``Σ_i d_hi·V_i`` over the holder's rows.

    Built once per frame (one binary search over the holder codes); every frame with the same
    rows in the same order (e.g. the positions before and after a round's trades) reuses it.
    """

    def __init__(self, pos: pl.DataFrame) -> None:
        holder = pos["holder_id"].to_numpy()
        asset = pos["asset_id"].to_numpy()
        self.height = pos.height
        self._order = None
        ordered = pos["holder_id"].flags["SORTED_ASC"] or not np.any(holder[1:] < holder[:-1])
        if not ordered:  # CSR wants rows grouped by holder
            self._order = np.argsort(holder, kind="stable")
            holder, asset = holder[self._order], asset[self._order]
        self.n_assets = int(asset.max()) + 1 if asset.size else 0
        small = self.n_assets < 2**31 and pos.height < 2**31
        index = np.int32 if small else np.int64  # scipy's index type
        as_bits = asset.dtype == np.uint32 and small  # codes below 2³¹ are their int32 bits
        self._asset = asset.view(index) if as_bits else asset.astype(index)
        self.n_holders = int(holder[-1]) + 1 if holder.size else 0
        indptr = np.searchsorted(holder, np.arange(self.n_holders + 1, dtype=holder.dtype))
        self._indptr = indptr.astype(self._asset.dtype)

    def times(self, data: np.ndarray | pl.Series, vectors: np.ndarray) -> np.ndarray:
        """``M(data) @ vectors``: ``data`` one value per row (in the frame's order),
        ``vectors`` one row per asset code; the result has one row per holder code."""
        d = data.to_numpy() if isinstance(data, pl.Series) else data
        if d.shape != (self.height,):
            raise RunError(f"expected {self.height} row values, got shape {d.shape}")
        if vectors.shape[0] < self.n_assets:
            raise RunError(f"expected a row per asset code up to {self.n_assets - 1}")
        if self._order is not None:
            d = d[self._order]
        M = sparse.csr_array(
            (d, self._asset, self._indptr), shape=(self.n_holders, vectors.shape[0]), copy=False
        )
        return M @ vectors

    def sums(self, data: np.ndarray | pl.Series) -> np.ndarray:
        """``Σ_i d_hi`` per holder code (0 for a code without rows)."""
        return self.times(data, np.ones((self.n_assets, 1)))[:, 0]


def per_asset(assets: pl.DataFrame, **columns: pl.Expr) -> np.ndarray:
    """Asset columns as an array with one row per asset code (coded ``assets``, zeros for a
    code without an asset): the ``vectors`` of :meth:`Pattern.times`."""
    values = assets.select(**columns)
    at = np.zeros((int(assets["asset_id"].max()) + 1, values.width))
    at[assets["asset_id"].to_numpy()] = values.to_numpy()
    return at


def _sparse_sums(
    pos: pl.DataFrame, assets: pl.DataFrame, gcols: list[str], pattern: Pattern | None = None
) -> pl.DataFrame:
    """The same sums as sparse products, for coded frames (:mod:`estimator.keys`).

    With ``X`` the holder × asset exposure matrix, ``c`` the cash-instrument indicator, ``m̃``
    the margin rates (0 where null), ``ν`` the indicator of a null rate (``ι̃``, ``φ``: the
    same for initial margin rates), ``D`` the modified
    durations (0 where null), ``s`` the specific vols and ``G`` the factor rows: position value
    and cash exposure ``X c``, duration exposure ``X D``, gross ``|X| 1``, margin ``|X| m̃`` and
    ``|X| ν``, initial margin ``|X| ι̃``, ``|X| φ``, ``|X| (m̃∘φ)`` and ``|X| (ν∘φ)``, specific
    variance ``(X∘X) s²``, factor exposures ``X G``.
    No model column is copied onto the rows.
    """
    vectors = {
        **{g: pl.col(g) for g in gcols},
        "c": (pl.col("instrument") == "cash").cast(pl.Float64),
        "dur": pl.col("duration").fill_null(0.0),
        "m": pl.col("margin_rate").fill_null(0.0),
        "nu": pl.col("margin_rate").is_null().cast(pl.Float64),
        "iota": pl.col("initial_margin_rate").fill_null(0.0),
        "free": pl.col("initial_margin_rate").is_null().cast(pl.Float64),
        "m_free": pl.col("margin_rate").fill_null(0.0)
        * pl.col("initial_margin_rate").is_null().cast(pl.Float64),
        "nu_free": (pl.col("margin_rate").is_null() & pl.col("initial_margin_rate").is_null()).cast(
            pl.Float64
        ),
        "s2": pl.col(risk.SPECIFIC) ** 2,
        "one": pl.lit(1.0),
    }
    estimates = estimate_keys(assets)  # the factor rows rescaled to each estimate's vols
    for k in estimates:
        vectors |= {f"{g}@{k}": estimated_row(assets, g, k) for g in gcols}
        vectors[f"s2@{k}"] = estimated_row(assets, risk.SPECIFIC, k) ** 2
    scaled = [f"{g}@{k}" for k in estimates for g in gcols]
    at = per_asset(assets, **vectors)  # row i: the asset with code i
    col = {name: at[:, j] for j, name in enumerate(vectors)}
    pattern = pattern or Pattern(pos)
    # the row arrays by Polars: threaded, and its allocator reuses memory that numpy's gives back
    rows = pos.select(x=_X, abs=_X.abs(), sq=_X * _X, long=_X.clip(lower_bound=0.0))

    def product(data: str, names: list[str]) -> np.ndarray:
        return pattern.times(rows[data], np.column_stack([col[n] for n in names]))

    with_sign = product("x", ["c", "dur", *gcols, *scaled])  # X c, X D, X G, X (S G)
    # |X| 1, |X| m̃, |X| ν, and the same for initial rates: |X| ι̃, |X| φ, |X| (m̃∘φ), |X| (ν∘φ)
    gross = product("abs", ["one", "m", "nu", "iota", "free", "m_free", "nu_free"])
    specific = product("sq", ["s2", *(f"s2@{k}" for k in estimates)])  # (X∘X) s², (X∘X) (S s)²
    long_cash = product("long", ["c"])  # max(X, 0) c
    return pl.DataFrame(
        {
            "holder_id": np.arange(pattern.n_holders, dtype=np.uint32),
            "position_value": with_sign[:, 0],
            Book.GROSS_EXPOSURE: gross[:, 0],
            Book.CASH_EXPOSURE: with_sign[:, 0],
            Book.LONG_CASH: long_cash[:, 0],
            Book.DURATION_EXPOSURE: with_sign[:, 1],
            Book.MARGIN_RATED: gross[:, 1],
            Book.MARGIN_UNRATED: gross[:, 2],
            Book.INITIAL_RATED: gross[:, 3],
            Book.INITIAL_FREE: gross[:, 4],
            Book.INITIAL_FREE_RATED: gross[:, 5],
            Book.INITIAL_FREE_UNRATED: gross[:, 6],
            "_specific_var": specific[:, 0],
            **{f"_fe_{g}": with_sign[:, 2 + j] for j, g in enumerate(gcols)},
            **{f"_fe_{name}": with_sign[:, 2 + len(gcols) + j] for j, name in enumerate(scaled)},
            **{f"_specific_var@{k}": specific[:, 1 + j] for j, k in enumerate(estimates)},
        }
    )


#: The holders column of the identical accounts a holder row stands for (its amounts are
#: theirs together, :func:`estimator.market.build_market`).
ACCOUNTS = Book.ACCOUNTS

#: Holder columns with their value when a holder lacks them: every rule's state before a
#: scenario (:data:`rules.STATE_COLUMNS`), one account, no holder shock, and a rebalancing day
#: of every calendar (a dated path sets the day's own).
HOLDER_DEFAULTS: dict[str, float] = (
    STATE_COLUMNS
    | {
        ACCOUNTS: 1.0,
        Book.REDEMPTION_SHOCK: 0.0,
        Book.MARGIN_MULTIPLIER: 1.0,
        Book.CAPITAL_CALLED: 0.0,
        Book.MONTH_END: 1.0,  # a day without a date is a rebalancing day
        Book.QUARTER_END: 1.0,
    }
    | {Book.committed_by(k): 0.0 for k in LATCHING_KINDS}
)  # no paced trade under way


def with_defaults(holders: pl.DataFrame) -> pl.DataFrame:
    """``holders`` with every :data:`HOLDER_DEFAULTS` column, its default where missing or
    null."""
    return holders.with_columns(
        pl.col(k).fill_null(v) if k in holders.columns else pl.lit(v, dtype=pl.Float64).alias(k)
        for k, v in HOLDER_DEFAULTS.items()
    )


def holder_book(
    pos: pl.DataFrame,
    holders: pl.DataFrame,
    assets: pl.DataFrame | None = None,
    pattern: Pattern | None = None,
) -> pl.DataFrame:
    """One row per holder (holders without positions included) with every :class:`Book` column.

    The margin and risk sums read :func:`model_columns` from ``pos``, or, when ``assets`` is
    given, from ``assets`` by asset code (:mod:`estimator.keys`; the position rows then need
    only the accounting columns, and ``pattern``, if given, is the rows' :class:`Pattern`).
    """
    gcols = risk.factor_columns(pos if assets is None else assets)
    sums = _rows_sums(pos, gcols) if assets is None else _sparse_sums(pos, assets, gcols, pattern)
    factor_var = (
        pl.sum_horizontal([pl.col(f"_fe_{g}") ** 2 for g in gcols]) if gcols else pl.lit(0.0)
    )
    filled = [
        "position_value",
        Book.GROSS_EXPOSURE,
        Book.CASH_EXPOSURE,
        Book.LONG_CASH,
        Book.DURATION_EXPOSURE,
        Book.MARGIN_RATED,
        Book.MARGIN_UNRATED,
        Book.INITIAL_RATED,
        Book.INITIAL_FREE,
        Book.INITIAL_FREE_RATED,
        Book.INITIAL_FREE_UNRATED,
        "_specific_var",
        *[f"_fe_{g}" for g in gcols],
    ]
    estimates = estimate_keys(pos if assets is None else assets)
    extra = _estimate_names(gcols, estimates)

    def estimated(k: str) -> pl.Expr:
        """``σ̂(x)`` under the estimate ``k``: the factor rows rescaled (:mod:`rules.estimators`)."""
        factors = pl.sum_horizontal([pl.col(f"_fe_{g}@{k}") ** 2 for g in gcols]) if gcols else 0.0
        return (factors + pl.col(f"_specific_var@{k}")).sqrt().alias(risk_column_of(k))

    book = (
        with_defaults(holders)
        .join(sums, on="holder_id", how="left")
        .with_columns(pl.col([*filled, *extra]).fill_null(0.0))
        .with_columns((factor_var + pl.col("_specific_var")).sqrt().alias(Book.RISK))
        .with_columns(estimated(k) for k in estimates)
        .drop("_specific_var", *[f"_fe_{g}" for g in gcols], *extra)
    )
    return restate(book).sort("holder_id")

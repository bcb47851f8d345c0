"""Greenwood, Landier and Thesmar's fire-sale measures as "Vulnerable banks" (JFE 2015) has them.

First order and one round, from the book *before* the scenario's shock. With holdings ``X``
(holders × assets, pre-shock exposures: futures at notional, a short negative), equity ``e``,
total assets ``a`` (the accounting's gross assets ``A = Σ|x| + N + max(C, 0)``: non-tradable
holdings ``N`` and cash ``C`` are assets that neither move nor are moved), weights
``M = X / a``, the scenario's price returns ``F``, the return ``r_N`` of each holder's
non-tradable holdings (its holder shocks' ``non_tradable_return``, compounded) and linear
impact ``ℓ`` per unit of value::

    leverage            b = (a − e) / e
    holder return       r = M·F + N∘r_N / a           = (Σ_k X_ik·F_k + N_i·r_N,i) / a_i
    sales               φ = −b ∘ a ∘ r                (back to the pre-shock leverage b)
    net sales per asset Φ = Mᵀ·φ                      = Σ_i X_ik·φ_i / a_i
    price change        Δp = −ℓ ∘ Φ
    loss                L = −X·Δp                     = Σ_k X_ik·ℓ_k·Φ_k
    aggregate vulnerability   AV = Σ_i L_i / Σ_i e_i
    indirect vulnerability    IV_i = L_i / e_i
    systemicness              S_i = φ_i·Σ_k H_k·ℓ_k·M_ik / Σ_j e_j,   H_k = Σ_j X_jk

Every holder is taken to target its pre-shock leverage, whatever its mandate, and to sell by
its pre-shock weights; the losses are those of the first round of impact on the pre-shock
holdings. Non-tradable holdings are one more asset of the paper's, with return ``r_N`` and no
impact (``ℓ = 0``): they enter ``r``, hence ``φ``, and neither move a price nor lose by one.
Since ``Σ_i M_ik·φ_i = Φ_k``, ``Σ_i S_i = Σ_k H_k·ℓ_k·Φ_k / Σe = AV``.

A holder with ``e ≤ 0`` or ``a = 0`` has no leverage to return to: it sells nothing, and its
``IV`` is undefined (null); ``Σe`` is over holders with ``e > 0``.

The cascade's own attribution (:mod:`estimator.attribution`: every round, losses on the holdings
after the sales, equity after the shock) is a different measure; the two agree in the limit
of a small shock on a book of leverage targeters with one round of linear impact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from estimator.book import position_frame
from estimator.errors import InputError, Problem
from estimator.impact import Impact
from estimator.market import Market

#: Columns :func:`measures` adds to the holders report, in order.
HOLDER_COLUMNS = ["glt_sales", "glt_loss", "glt_systemicness", "glt_indirect_vulnerability"]


@dataclass(frozen=True)
class Measures:
    """Per holder ``glt_*`` (``holder_id`` and :data:`HOLDER_COLUMNS`), per asset net sales
    ``Φ`` and price change ``Δp`` (``asset_id``, ``glt_net_sales``, ``glt_price_change``), AV."""

    holders: pl.DataFrame
    assets: pl.DataFrame
    aggregate_vulnerability: float


def coefficients(params: pl.DataFrame, label: str) -> pl.DataFrame:
    """``asset_id, ell``: ``ℓ`` per unit of value from a scenario's impact parameters
    (:meth:`~estimator.impact.Impact.parameters` joined to ``adv``): ``linear`` per value as
    given, per ADV divided by the asset's ADV, ``none`` zero. GLT's impact is linear: any other
    model is an input error naming the first asset that has one."""
    other = params.filter(~pl.col("impact_model").is_in(["linear", "none"]))
    if other.height:
        first = other.row(0, named=True)
        raise InputError(
            [
                Problem(
                    label,
                    f"attribution 'glt' needs linear impact (or none); asset "
                    f"{first['asset_id']} has '{first['impact_model']}'",
                    field="impact.models",
                )
            ]
        )
    per_value = pl.when(pl.col("impact_per_adv")).then(pl.col("impact_coefficient") / pl.col("adv"))
    ell = pl.when(pl.col("impact_model") == "linear").then(
        per_value.otherwise(pl.col("impact_coefficient"))
    )
    return params.select("asset_id", ell=ell.fill_null(0.0))


def of_scenario(
    impact: Impact, market: Market, shocked: pl.DataFrame, holders: pl.DataFrame, label: str
) -> Measures:
    """GLT's measures of ``market``'s pre-shock book under a scenario: its price returns
    ``F = P_shocked / P_pre − 1`` (``shocked``: ``price``, ``price_pre``), the non-tradables'
    returns ``r_N = N_shocked / N − 1`` (``holders``: ``holder_id``, ``non_tradable`` after the
    holder shocks; 0 where ``N = 0``) and ``ℓ`` from its ``impact`` models
    (:func:`coefficients`; ``label`` names the scenario in an error)."""
    params = impact.parameters(shocked).join(shocked.select("asset_id", "adv"), on="asset_id")
    returns = shocked.select("asset_id", ret=pl.col("price") / pl.col("price_pre") - 1)
    book = market.holders.join(
        holders.select("holder_id", shocked_n="non_tradable"), on="holder_id", how="left"
    ).with_columns(
        non_tradable_return=pl.when(pl.col("non_tradable") > 0)
        .then(pl.col("shocked_n") / pl.col("non_tradable") - 1)
        .otherwise(0.0)
    )
    return measures(market.positions, book, market.assets, returns, coefficients(params, label))


def measures(
    positions: pl.DataFrame,
    holders: pl.DataFrame,
    assets: pl.DataFrame,
    returns: pl.DataFrame,
    ell: pl.DataFrame,
) -> Measures:
    """GLT's measures (module docstring) of a pre-shock book.

    ``positions``: holder_id, asset_id, quantity; ``holders``: holder_id, cash, non_tradable,
    other_debt, and optionally ``non_tradable_return`` (``r_N``, 0 without it); ``assets``:
    asset_id, instrument, price, multiplier (pre-shock);
    ``returns``: asset_id, ``ret`` (``F``); ``ell``: asset_id, ``ell`` (:func:`coefficients`).
    Everything is joined by id.
    """
    pos = position_frame(positions, assets, ["instrument"]).select(
        "holder_id",
        "asset_id",
        x=pl.col("exposure"),
        value=pl.when(pl.col("instrument") == "cash").then(pl.col("exposure")).otherwise(0.0),
    )
    pos = pos.join(returns, on="asset_id", how="left").join(ell, on="asset_id", how="left")
    pos = pos.with_columns(pl.col("ret", "ell").fill_null(0.0))
    sums = pos.group_by("holder_id").agg(
        gross=pl.col("x").abs().sum(),
        value=pl.col("value").sum(),
        xf=(pl.col("x") * pl.col("ret")).sum(),
    )
    given = "non_tradable_return" in holders.columns
    r_n = pl.col("non_tradable_return") if given else pl.lit(0.0)
    book = holders.select("holder_id", "cash", "non_tradable", "other_debt", r_n=r_n).join(
        sums, on="holder_id", how="left"
    )
    book = book.with_columns(pl.col("gross", "value", "xf").fill_null(0.0)).with_columns(
        a=pl.col("gross") + pl.col("non_tradable") + pl.col("cash").clip(lower_bound=0.0),
        e=pl.col("value") + pl.col("cash") + pl.col("non_tradable") - pl.col("other_debt"),
        xf=pl.col("xf") + pl.col("non_tradable") * pl.col("r_n").fill_null(0.0),
    )
    levered = (pl.col("e") > 0) & (pl.col("a") > 0)
    # φ = −b·a·r = −((a − e)/e)·(Σ_k X_k·F_k + N·r_N)
    book = book.with_columns(
        phi=pl.when(levered)
        .then(-(pl.col("a") - pl.col("e")) / pl.col("e") * pl.col("xf"))
        .otherwise(0.0)
    )
    total_equity = math.fsum(book.filter(pl.col("e") > 0)["e"])
    pos = pos.join(book.select("holder_id", "a", "phi"), on="holder_id").with_columns(
        m=pl.when(pl.col("a") > 0).then(pl.col("x") / pl.col("a")).otherwise(0.0)
    )
    per_asset = pos.group_by("asset_id").agg(
        net_sales=(pl.col("m") * pl.col("phi")).sum(),  # Φ_k
        held=pl.col("x").sum(),  # H_k
        ell=pl.col("ell").first(),
    )
    pos = pos.join(per_asset.select("asset_id", "net_sales", "held"), on="asset_id")
    per_holder = pos.group_by("holder_id").agg(
        glt_loss=(pl.col("x") * pl.col("ell") * pl.col("net_sales")).sum(),
        reach=(pl.col("held") * pl.col("ell") * pl.col("m")).sum(),  # Σ_k H_k·ℓ_k·M_ik
    )
    scale = 1.0 / total_equity if total_equity > 0 else 0.0
    table = book.join(per_holder, on="holder_id", how="left").select(
        "holder_id",
        glt_sales="phi",
        glt_loss=pl.col("glt_loss").fill_null(0.0),
        glt_systemicness=pl.col("phi") * pl.col("reach").fill_null(0.0) * scale,
        glt_indirect_vulnerability=pl.when(pl.col("e") > 0).then(
            pl.col("glt_loss").fill_null(0.0) / pl.col("e")
        ),
    )
    loss = math.fsum(table["glt_loss"])
    return Measures(
        holders=table.sort("holder_id"),
        assets=per_asset.select(
            "asset_id",
            glt_net_sales="net_sales",
            glt_price_change=-pl.col("ell") * pl.col("net_sales"),
        ).sort("asset_id"),
        aggregate_vulnerability=loss * scale,
    )

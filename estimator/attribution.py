"""Who lost what in the cascade, and whose selling caused it.

Per round ``r`` of the cascade, with ``q_{h,i}`` holder h's quantity of asset i after the
round's trades, ``m_i`` the multiplier and ``ΔP_i = P_{i,r+1} − P_{i,r}`` the round's price
change:

* impact loss of h: ``L_h = −Σ_i q_{h,i}·m_i·ΔP_i`` (a fall on a long holding is a loss);
* each asset's price change is allocated to the traders in proportion to their share of its
  net flow, ``s_{h,i} = Q_{h,i} / Σ_k Q_{k,i}`` — cumulative net quantities ``Q`` when impact
  is cumulative (what sets the price), the round's own when it compounds per round (falling
  back to the round's net flow where the cumulative one nets to zero, then to shares of its
  gross flow ``|q_{h,i}| / Σ_k |q_{k,i}|``); ``Σ_h s_{h,i} = 1``;
* own-impact loss ``O_h = −Σ_i q_{h,i}·m_i·ΔP_i·s_{h,i}``; others' impact ``L_h − O_h``;
* the loss h's trades cause everyone: ``K_h = Σ_i C_i·s_{h,i}`` with ``C_i = −H_i·m_i·ΔP_i``
  and ``H_i = Σ_k q_{k,i}`` the quantity all holders hold.

Summed over rounds, with ``E_h`` equity at the start of the episode (after the shock, before
cures) and ``E = Σ_{E_h > 0} E_h``: **cascade systemicness** ``K_h / E``, **cascade indirect
vulnerability** ``L_h / E_h`` (for ``E_h > 0``), **cascade aggregate vulnerability**
``Σ_h L_h / E``. Because the shares of every asset sum to one, ``Σ_h K_h = Σ_i C_i = Σ_h L_h``:
Σ systemicness = aggregate vulnerability exactly.

These follow the idea of Greenwood, Landier and Thesmar ("Vulnerable banks", JFE 2015) over the
whole cascade: every round, the holders' actual (rule-driven, possibly min-cost) trades, losses
marked on the holdings after each round's sales, equity after the shock. GLT's own first-order,
one-round measures of the pre-shock book are :mod:`estimator.glt`; the two agree only in the
limit of a small shock on leverage targeters with one round of linear impact.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from estimator import keys

LOSS_COLUMNS = ["loss_impact", "loss_own_impact", "loss_caused"]
#: Flows whose net is within this share of their gross have netted out: shares fall back to the
#: round's net flow, then to its gross flow (``|q| / Σ|q|``), so they stay bounded.
NETTED = 1e-9


def flow_shares(flows: pl.DataFrame, mode: Literal["cumulative", "per_round"]) -> pl.DataFrame:
    """``holder_id, asset_id, share`` from ``flows`` (holder_id, asset_id, ``episode_q``
    cumulative and ``round_q`` this round's net quantity; coded, :mod:`estimator.keys`)."""
    sums = {  # per asset, once: Σq and Σ|q| of the round's and of the episode's flows
        f"{name}_{kind}": (q.abs() if kind == "gross" else q).sum()
        for name, q in (("r", pl.col("round_q")), ("e", pl.col("episode_q")))
        for kind in ("net", "gross")
    }
    per_asset = flows.group_by("asset_id").agg(**sums)
    rows = keys.broadcast(per_asset, list(sums), flows, key="asset_id")

    def net_share(q: pl.Expr, name: str, fallback: pl.Expr) -> pl.Expr:
        """``q / Σq`` over the asset, or ``fallback`` where the flows net to rounding noise."""
        total, gross = pl.col(f"{name}_net"), pl.col(f"{name}_gross")
        return pl.when(total.abs() > NETTED * gross).then(q / total).otherwise(fallback)

    round_q, gross = pl.col("round_q"), pl.col("r_gross")
    by_gross = pl.when(gross > 0).then(round_q.abs() / gross).otherwise(0.0)
    by_round = net_share(round_q, "r", by_gross)
    share = net_share(pl.col("episode_q"), "e", by_round) if mode == "cumulative" else by_round
    return rows.select("holder_id", "asset_id", share=share)


def round_losses(holdings: pl.DataFrame, moves: pl.DataFrame, shares: pl.DataFrame) -> pl.DataFrame:
    """Per holder ``L_h``, ``O_h`` and ``K_h`` of one round (module docstring).

    Frames are coded (:mod:`estimator.keys`). ``holdings``: holder_id, asset_id, quantity
    after the round, in holder order; ``moves``: asset_id,
    multiplier, ``dp`` (the round's price change); ``shares``: from :func:`flow_shares`.
    """
    moved = moves.filter(pl.col("dp") != 0).select(
        "asset_id", unit_loss=-pl.col("multiplier") * pl.col("dp")
    )
    held = keys.by_holder(holdings.select("holder_id", "asset_id", "quantity"))  # sorts if need be
    marked = (  # only holdings of assets whose price moved lose anything
        keys.broadcast(moved, ["unit_loss"], held, key="asset_id")
        .filter(pl.col("unit_loss").is_not_null())
        .select(
            pl.col("holder_id").set_sorted(),  # a filter keeps the order
            "asset_id",
            loss=pl.col("quantity") * pl.col("unit_loss"),
        )
    )
    suffered = marked.group_by("holder_id").agg(loss_impact=pl.col("loss").sum())
    own = (  # from the traders' side: their pairs looked up in the held rows
        shares.with_columns(keys.lookup(marked, "loss", shares).fill_null(0.0))
        .group_by("holder_id")
        .agg(loss_own_impact=(pl.col("loss") * pl.col("share")).sum())
    )
    cost = marked.group_by("asset_id").agg(cost=pl.col("loss").sum())  # C_i
    caused = (
        shares.join(cost, on="asset_id")
        .group_by("holder_id")
        .agg(loss_caused=(pl.col("share") * pl.col("cost")).sum())
    )
    return (
        suffered.join(own, on="holder_id", how="left")
        .join(caused, on="holder_id", how="full", coalesce=True)
        .with_columns(pl.col(LOSS_COLUMNS).fill_null(0.0))
    )


#: Sources kept per asset when tracing who pushed whom, and edges kept per pushed holder.
TOP_SOURCES, TOP_EDGES = 5, 3
#: Edges are kept, largest first, until they carry this share of a holder's push.
EDGE_COVER = 0.8


def chain_edges(
    targets: pl.DataFrame,
    holdings: pl.DataFrame,
    moves: pl.DataFrame,
    shares: pl.DataFrame,
) -> pl.DataFrame:
    """Who pushed the ``targets`` (holders first forced in a round) past their rules.

    The push on target j from source h through asset i is the loss h's share of the previous
    round's flow caused j: ``−q_{j,i}·m_i·ΔP_i·s_{h,i}`` (``holdings``, ``moves`` and
    ``shares`` of the previous round, as in :func:`round_losses`). Per target, the largest
    pushes are kept until they carry :data:`EDGE_COVER` of its total impact loss that round,
    at most :data:`TOP_EDGES`; sources are the :data:`TOP_SOURCES` largest traders of each asset.
    ``targets``: holder_id, rules (the rules that fired). Returns target, source, asset, the
    asset's price change (``price_return``), ``contribution`` and its ``share`` of the push.
    """
    top = (  # largest shares first, ties to the lower holder code
        shares.filter(pl.col("share") != 0)
        .group_by("asset_id")
        .agg(
            pl.col("holder_id", "share").top_k_by(
                ["share", "holder_id"], k=TOP_SOURCES, reverse=[False, True]
            )
        )
        .explode("holder_id", "share")
        .rename({"holder_id": "source_id"})
    )
    held = holdings.join(targets.select("holder_id"), on="holder_id").join(moves, on="asset_id")
    held = held.with_columns(loss=-pl.col("quantity") * pl.col("multiplier") * pl.col("dp"))
    push = held.group_by("holder_id").agg(push=pl.col("loss").sum())
    edges = (
        held.join(top, on="asset_id")
        .with_columns(contribution=pl.col("loss") * pl.col("share"))
        .join(push, on="holder_id")
        .filter((pl.col("contribution") > 0) & (pl.col("push") > 0))
        .with_columns(share=pl.col("contribution") / pl.col("push"))
        .sort(
            "holder_id",
            "contribution",
            "source_id",
            "asset_id",
            descending=[False, True, False, False],
        )
    )
    covered = pl.col("share").cum_sum().over("holder_id") - pl.col("share")  # before this edge
    kept = edges.filter(
        (covered < EDGE_COVER) & (pl.int_range(pl.len()).over("holder_id") < TOP_EDGES)
    )
    return kept.join(targets, on="holder_id").select(
        target_id="holder_id",
        source_id="source_id",
        asset_id="asset_id",
        price_return=pl.col("dp") / pl.col("price"),
        contribution="contribution",
        share="share",
        target_rules="rules",
    )

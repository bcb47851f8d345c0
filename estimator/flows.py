"""Why a trade happens: forced, systematic or policy flow.

Each rule kind says why its trades happen (:attr:`rules.RuleBase.flow_kind`):

* **forced** — a limit the holder must not breach: ``margin``, ``leverage`` (threshold),
  ``redemption`` (outflows and the cash floor), ``rating_floor``, ``liquidity_buffer``,
  ``collateral_buffer``, ``stop_loss``, ``var_limit``; and the liquidation of an insolvent
  holder (a trade that names no rule);
* **systematic** — a strategy that trades on volatility or leverage by design: ``vol_target``,
  ``leverage`` (targeting);
* **policy** — an allocation kept to its weights: ``rebalancing_band``, ``funding_ratio``,
  ``index_tracking``.

A trade is classified by the rules it names (its holder's binding rules, else the triggered
ones): the most binding kind among them, in the order forced > systematic > policy. Per kind
and asset class the report gives sales ``S = Σ max(−u, 0)``, purchases ``B = Σ max(u, 0)`` and
net flow ``N = B − S`` (``u`` the trade value); the headline is the net forced and systematic
flow per asset class, ``N_forced + N_systematic`` — never a gross sum over unlike trades.
"""

from __future__ import annotations

import math

import polars as pl

from estimator.mandates import Mandate

#: Flow kinds, most binding first.
KINDS = ("forced", "systematic", "policy")
#: The kinds in the headline.
HEADLINE = ("forced", "systematic")
#: The columns of :func:`by_kind`.
COLUMNS = ["flow_kind", "asset_class", "sell_value", "buy_value", "net_value"]


def kind_of(rules: str, mandate: Mandate | None) -> str:
    """The flow kind of a trade naming ``rules`` (``;``-separated rule kinds) under
    ``mandate``: the most binding of the rules' kinds, ``forced`` for none."""
    named = set(filter(None, rules.split(";")))
    kinds = {r.flow_kind for r in (mandate.rules if mandate else []) if r.kind in named}
    return next((k for k in KINDS if k in kinds), "forced")


def classify(
    trades: pl.DataFrame, holders: pl.DataFrame, mandates: dict[str, Mandate]
) -> pl.DataFrame:
    """``trades`` (``holder_id``, ``rules``) with ``flow_kind``, by the holder's mandate
    (``holders``: ``holder_id``, ``mandate``). Each distinct (mandate, rules) pair is
    classified once and joined back by key, so a long trade log costs one join."""
    keyed = trades.select("holder_id", rules=pl.col("rules").cast(pl.String)).join(
        holders.select("holder_id", "mandate"), on="holder_id", how="left"
    )
    pairs = keyed.select("mandate", "rules").unique()
    kinds = pairs.with_columns(
        flow_kind=pl.Series(
            [kind_of(r, mandates.get(m) if m else None) for m, r in pairs.iter_rows()],
            dtype=pl.String,
        )
    )
    flow = keyed.join(kinds, on=["mandate", "rules"], how="left", nulls_equal=True)["flow_kind"]
    return trades.with_columns(flow.alias("flow_kind"))


def by_kind(trades: pl.DataFrame, assets: pl.DataFrame) -> pl.DataFrame:
    """Per flow kind and asset class (every pair that traded): ``S``, ``B``, ``N``
    (``trades``: ``flow_kind``, ``asset_id``, ``trade_value``; ``assets``: ``asset_id``,
    ``asset_class``), in kind order then class."""
    u = pl.col("trade_value")
    order = pl.col("flow_kind").replace_strict(
        {k: i for i, k in enumerate(KINDS)}, return_dtype=pl.Int64
    )
    return (
        trades.join(assets.select("asset_id", "asset_class"), on="asset_id", how="left")
        .group_by("flow_kind", "asset_class")
        .agg(sell_value=(-u).clip(lower_bound=0).sum(), buy_value=u.clip(lower_bound=0).sum())
        .with_columns(net_value=pl.col("buy_value") - pl.col("sell_value"))
        .sort(order, "asset_class")
        .select(COLUMNS)
    )


def headline(table: pl.DataFrame) -> dict[str, float]:
    """Net forced and systematic flow per asset class from :func:`by_kind`'s table, summed in
    a fixed order (``math.fsum``)."""
    rows = table.filter(pl.col("flow_kind").is_in(HEADLINE))
    out: dict[str, list[float]] = {}
    for asset_class, net in rows.select("asset_class", "net_value").iter_rows():
        out.setdefault(asset_class, []).append(net)
    return {c: math.fsum(v) for c, v in sorted(out.items())}


def totals(table: pl.DataFrame) -> dict[str, dict[str, float]]:
    """Per flow kind: sales, purchases and net flow over every asset class."""
    out = {}
    for kind in KINDS:
        rows = table.filter(pl.col("flow_kind") == kind)
        out[kind] = {
            "sell_value": math.fsum(rows["sell_value"]),
            "buy_value": math.fsum(rows["buy_value"]),
            "net_value": math.fsum(rows["net_value"]),
        }
    return out

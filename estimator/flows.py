"""Why a trade happens: forced, systematic or policy flow.

Each rule kind says why its trades happen (:attr:`rules.RuleBase.flow_kind`):

* **forced** — a limit the holder must not breach: ``margin``, ``leverage`` (threshold),
  ``redemption`` (outflows and the cash floor), ``rating_floor``, ``liquidity_buffer``,
  ``collateral_buffer``, ``stop_loss``, ``var_limit``; and the liquidation of an insolvent
  holder (a trade that names no rule);
* **systematic** — a strategy that trades on volatility, leverage or price by design:
  ``vol_target``, ``leverage`` (targeting), ``gamma_hedge`` (options dealers' hedges, which buy
  a fall where dealers are long gamma: in the headline they offset other holders' sales);
* **policy** — an allocation kept to its weights: ``rebalancing_band``, ``funding_ratio``,
  ``index_tracking``.

A trade is classified by the rules it names (its holder's binding rules, else the triggered
ones): the most binding kind among them, in the order forced > systematic > policy. A trade
made pro rata by position rules and then by the whole book's common scale ``f`` is two trades,

    u = (x¹ − x⁰) + (f − 1)·x¹,

the position rules' part ``p = x¹ − x⁰`` (``x¹`` the book after them) classified by the
position rules that acted, the whole-book part ``u − p`` by the other rules; a solved
(min-cost) trade is one trade of every binding rule, ``p = 0``. Per kind and asset class the
report gives sales ``S = Σ max(−v, 0)``, purchases ``B = Σ max(v, 0)`` and net flow
``N = B − S`` over the parts ``v`` of that kind, so ``Σ_kinds N = Σ u`` exactly while a trade
whose parts have opposite signs (a policy purchase cut back by a forced sale) counts in both
kinds' gross flows. The headline is the net forced and systematic flow per asset class,
``N_forced + N_systematic`` — never a gross sum over unlike trades.
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


def kind_of(rules: str, mandate: Mandate | None, without: str = "") -> str:
    """The flow kind of a trade naming ``rules`` (``;``-separated rule kinds, less those in
    ``without``) under ``mandate``: the most binding of the rules' kinds, ``forced`` for none."""
    named = set(filter(None, rules.split(";"))) - set(without.split(";"))
    kinds = {r.flow_kind for r in (mandate.rules if mandate else []) if r.kind in named}
    return next((k for k in KINDS if k in kinds), "forced")


def _most_binding(*kinds: pl.Expr) -> pl.Expr:
    """The first of ``kinds`` (null where a part is empty) in :data:`KINDS` order."""
    rank = [k.replace_strict({n: i for i, n in enumerate(KINDS)}, default=None) for k in kinds]
    return pl.min_horizontal(rank).replace_strict(dict(enumerate(KINDS)), default="forced")


def classify(
    trades: pl.DataFrame, holders: pl.DataFrame, mandates: dict[str, Mandate]
) -> pl.DataFrame:
    """``trades`` (``holder_id``, ``trade_value``, ``rules``, ``position_rules``,
    ``position_share``) with the position rules' part ``position_value = share·u``, its kind
    ``position_kind``, the kind of the rest ``book_kind``, and ``flow_kind``, the most binding
    kind of the nonzero parts. Each distinct (mandate, rules, position rules) triple is
    classified once and joined back, so a long trade log costs one join."""
    label = ["rules", "position_rules"]
    keyed = trades.select("holder_id", *[pl.col(c).cast(pl.String) for c in label]).join(
        holders.select("holder_id", "mandate"), on="holder_id", how="left"
    )
    triples = keyed.select("mandate", *label).unique()
    pairs = [(mandates.get(m) if m else None, r, p) for m, r, p in triples.iter_rows()]
    triples = triples.with_columns(
        position_kind=pl.Series([kind_of(p, m) for m, _, p in pairs], dtype=pl.String),
        book_kind=pl.Series([kind_of(r, m, p) for m, r, p in pairs], dtype=pl.String),
    )
    kinds = keyed.join(triples, on=["mandate", *label], how="left", nulls_equal=True)
    u = pl.col("trade_value")
    p = pl.col("position_share") * u
    out = trades.with_columns(
        position_value=p, position_kind=kinds["position_kind"], book_kind=kinds["book_kind"]
    )
    return out.with_columns(
        flow_kind=_most_binding(
            pl.when(pl.col("position_value") != 0).then("position_kind"),
            pl.when(u != pl.col("position_value")).then("book_kind"),
        )
    ).drop("position_share")


def parts(trades: pl.DataFrame, by: tuple[str, ...] = ()) -> pl.DataFrame:
    """The classified ``trades`` as their nonzero parts: (``holder_id``, ``asset_id``, the
    columns ``by``, ``flow_kind``, ``trade_value``) with the position rules' part and the rest
    as two rows."""
    keys = ["holder_id", "asset_id", *by]
    placed = trades.select(*keys, flow_kind="position_kind", trade_value="position_value")
    rest = trades.select(
        *keys, flow_kind="book_kind", trade_value=pl.col("trade_value") - pl.col("position_value")
    )
    return pl.concat([placed, rest]).filter(pl.col("trade_value") != 0)


def by_kind(trades: pl.DataFrame, assets: pl.DataFrame) -> pl.DataFrame:
    """Per flow kind and asset class (every pair that traded): ``S``, ``B``, ``N`` over the
    :func:`parts` of the classified ``trades`` (``assets``: ``asset_id``, ``asset_class``), in
    kind order then class."""
    u = pl.col("trade_value")
    order = pl.col("flow_kind").replace_strict(
        {k: i for i, k in enumerate(KINDS)}, return_dtype=pl.Int64
    )
    return (
        parts(trades)
        .join(assets.select("asset_id", "asset_class"), on="asset_id", how="left")
        .group_by("flow_kind", "asset_class")
        .agg(sell_value=(-u).clip(lower_bound=0).sum(), buy_value=u.clip(lower_bound=0).sum())
        .with_columns(net_value=pl.col("buy_value") - pl.col("sell_value"))
        .sort(order, "asset_class")
        .select(COLUMNS)
    )


#: The columns of :func:`daily` (``date`` after ``day`` on a dated path).
DAILY_COLUMNS = [
    "day",
    "holder_type",
    "asset_class",
    "flow_kind",
    "sell_value",
    "buy_value",
    "net_value",
]


def daily(trades: pl.DataFrame, holders: pl.DataFrame, assets: pl.DataFrame) -> pl.DataFrame:
    """Per day, holder type, asset class and flow kind (every combination that traded):
    ``S``, ``B`` and ``N`` as :func:`by_kind` has them, over the :func:`parts` of the
    classified ``trades`` of a day clock's run (with ``day``), holders and assets joined by id;
    sorted by day, type, class and kind. Summed over days and holder types it is
    :func:`by_kind`'s table."""
    return _by_type(trades, holders, assets, ("day",)).select(DAILY_COLUMNS)


#: The columns of :func:`by_channel`.
CHANNEL_COLUMNS = [c for c in DAILY_COLUMNS if c != "day"]


def by_channel(trades: pl.DataFrame, holders: pl.DataFrame, assets: pl.DataFrame) -> pl.DataFrame:
    """Per holder type, asset class and flow kind — the channels a run's flow came through —
    ``S``, ``B`` and ``N`` over the whole run, as :func:`daily` has them by day; summed over
    holder types it is :func:`by_kind`'s table."""
    return _by_type(trades, holders, assets, ()).select(CHANNEL_COLUMNS)


def _by_type(
    trades: pl.DataFrame, holders: pl.DataFrame, assets: pl.DataFrame, by: tuple[str, ...]
) -> pl.DataFrame:
    u = pl.col("trade_value")
    order = pl.col("flow_kind").replace_strict(
        {k: i for i, k in enumerate(KINDS)}, return_dtype=pl.Int64
    )
    keys = [*by, "holder_type", "asset_class", "flow_kind"]
    return (
        parts(trades, by=by)
        .join(holders.select("holder_id", "holder_type"), on="holder_id", how="left")
        .join(assets.select("asset_id", "asset_class"), on="asset_id", how="left")
        .group_by(keys)
        .agg(sell_value=(-u).clip(lower_bound=0).sum(), buy_value=u.clip(lower_bound=0).sum())
        .with_columns(net_value=pl.col("buy_value") - pl.col("sell_value"))
        .sort(*by, "holder_type", "asset_class", order)
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

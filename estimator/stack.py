"""Many points of one scenario in one round: a market stacked into copies.

In one round without price impact or lender losses every holder is evaluated on its own book at
the round's prices: nothing one holder does reaches another. So the statuses of many *points*
— (holder, multiple ``m`` of the scenario, cash added to its account) — can be found in a single
round of a larger market:

* one copy of the asset table and of the index weights per distinct multiple, ids
  ``asset_id ␟ copy`` and ``index_id ␟ copy`` (␟ is :data:`SEP`), each row carrying its
  multiple in the :data:`MULTIPLE` column, which scales the scenario's shocks
  (:meth:`estimator.scenario.Shock.scaled_fields`) and holder shocks
  (:meth:`~estimator.scenario.HolderShock.scaled_fields`) row by row; a copy has the assets
  its holders hold, every index member and every asset an index change names;
* one holder per point, ``holder_id ␟ point``, holding its holder's positions in the copy of
  its multiple, with the point's cash added to its account;
* the scenario's index changes once per copy; holders and assets carry their copy
  (:data:`estimator.indices.COPY`), so that an index tracker buys into its own copy's members.

Selectors that name an asset or a holder select each of its copies or points
(:func:`on_base_ids`).

A stack of ``P`` points over ``C`` copies has ``P`` holders, ``C × A`` assets and the points'
positions: the same numbers as ``P`` one-round evaluations, in one pass of the round
(:mod:`estimator.survival` makes about fifteen where it made a thousand).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import polars as pl

from estimator.indices import COPY
from estimator.market import Market
from estimator.scenario import Scenario

#: Between an id and its copy or point: the ASCII unit separator, not a character of any id.
SEP = "\x1f"
#: The column holding each row's multiple of the scenario.
MULTIPLE = "multiple"
#: The points' columns: a holder, a multiple m ≥ 0 and the cash added to its account.
POINT_SCHEMA = {"holder_id": pl.String, MULTIPLE: pl.Float64, "cash": pl.Float64}


def base(column: str) -> pl.Expr:
    """The ids of ``column`` without their copy or point mark."""
    return pl.col(column).str.replace(f"{SEP}[0-9]+$", "")


def on_base_ids(
    frame: pl.DataFrame, column: str, apply: Callable[[pl.DataFrame], pl.DataFrame]
) -> pl.DataFrame:
    """``apply`` (which keeps rows and their order) to ``frame`` with the ids of ``column``
    unmarked, so that a selector naming an id selects each of its copies; the marked ids back."""
    return apply(frame.with_columns(base(column))).with_columns(frame[column])


def _tagged(column: str, by: str) -> pl.Expr:
    return pl.concat_str(pl.col(column), pl.lit(SEP), pl.col(by).cast(pl.String)).alias(column)


def copies(multiples: pl.Series) -> pl.DataFrame:
    """(copy, multiple): one copy per distinct multiple, numbered in increasing order."""
    return (
        multiples.rename(MULTIPLE)
        .unique()
        .sort()
        .to_frame()
        .with_row_index(COPY)
        .with_columns(pl.col(COPY).cast(pl.Int64))
    )


def stacked(
    market: Market, scenario: Scenario, points: pl.DataFrame, *, events: bool = True
) -> tuple[Market, Scenario]:
    """The market and scenario whose one round evaluates every row of ``points`` (holder_id,
    multiple, cash; :data:`POINT_SCHEMA`), point ``i`` as holder ``holder_id ␟ i``. Without
    ``events`` the scenario is the market as it is (no shocks, index changes or holder shocks;
    the multiples are then 0)."""
    points = points.select(pl.col(c).cast(t) for c, t in POINT_SCHEMA.items())
    points = points.with_row_index("point")
    table = copies(points[MULTIPLE])
    points = points.join(table, on=MULTIPLE)
    holders = (
        market.holders.join(points.rename({"cash": "_add"}), on="holder_id")
        .with_columns(pl.col("cash") + pl.col("_add"), _tagged("holder_id", "point"))
        .drop("_add", "point")
    )
    positions = (
        market.positions.join(points.select("holder_id", "point", COPY), on="holder_id")
        .with_columns(_tagged("holder_id", "point"), _tagged("asset_id", COPY))
        .drop("point", COPY)
    )
    spec = (
        scenario
        if events
        else scenario.model_copy(update={"shocks": [], "index_changes": [], "holder_shocks": []})
    )
    held = market.positions.select("holder_id", "asset_id").join(
        points.select("holder_id", COPY), on="holder_id"
    )
    stack, spec = stacked_assets(market, spec, table, held.select(COPY, "asset_id"))
    return dataclasses.replace(stack, holders=holders, positions=positions), spec


def stacked_assets(
    market: Market,
    scenario: Scenario,
    table: pl.DataFrame,
    held: pl.DataFrame | None = None,
) -> tuple[Market, Scenario]:
    """The market's asset table and index weights once per copy of ``table`` (:func:`copies`),
    its holders and positions left out, and the scenario in one round with its index changes
    once per copy. With ``held`` (copy, asset_id) a copy has only the assets its holders hold,
    every index member, every asset an index change names and every underlying of the dealers'
    gamma: the rest no holder of the copy reads."""
    assets = market.assets.join(table, how="cross")
    if held is not None:
        hedged = [p.asset_id for p in scenario.dealer_gamma]  # and what rules pad
        pads = [p for m in market.mandates.values() for r in m.rules if (p := r.pads()) is not None]
        if pads and all(c in market.assets.columns for p in pads for c in p.meta.root_names()):
            hedged += market.assets.filter(pl.any_horizontal(pads))["asset_id"].to_list()
        named = pl.concat(
            [
                market.index_weights.select("asset_id"),
                scenario.changes_frame().select("asset_id"),
                pl.DataFrame({"asset_id": hedged}, schema={"asset_id": pl.String}),
            ]
        )
        every = named.join(table.select(COPY), how="cross").select(COPY, "asset_id")
        wanted = pl.concat([held.select(COPY, "asset_id"), every])
        kept = assets.join(wanted.unique(), on=[COPY, "asset_id"], how="semi")
        # no point holds anything and no index names an asset: keep every copy whole, so that
        # the round still has an asset table to read
        assets = kept if not kept.is_empty() else assets
    assets = assets.with_columns(_tagged("asset_id", COPY))
    weights = market.index_weights.join(table.select(COPY), how="cross").with_columns(
        _tagged("asset_id", COPY), _tagged("index_id", COPY)
    )
    changes = [
        change.model_copy(
            update={
                "index_id": f"{change.index_id}{SEP}{copy}",
                "asset_id": f"{change.asset_id}{SEP}{copy}",
            }
        )
        for copy in table[COPY]
        for change in scenario.index_changes
    ]
    stack = dataclasses.replace(
        market,
        assets=assets,
        holders=market.holders.clear(),
        positions=market.positions.clear(),
        index_weights=weights.drop(COPY),
    )
    return stack, scenario.one_round().model_copy(update={"index_changes": changes})


def points_of(frame: pl.DataFrame) -> pl.DataFrame:
    """A stacked round's holder table back on its points: ``holder_id`` the holder's own, and
    ``point`` the row of the points it came from."""
    return frame.with_columns(
        point=pl.col("holder_id").str.extract(f"{SEP}([0-9]+)$").cast(pl.UInt32),
        holder_id=base("holder_id"),
    )


__all__ = [
    "COPY",
    "MULTIPLE",
    "POINT_SCHEMA",
    "SEP",
    "base",
    "copies",
    "on_base_ids",
    "points_of",
    "stacked",
    "stacked_assets",
]

"""Index weights: checked against the assets, drifted by the scenario's prices, and changed by
its index events (deletions, additions, reweights).

Math. Let ``w`` be an index's weights as given (at pre-scenario prices) and ``g_i = P_i/P⁰_i``
each member's price relative. A cap-weighted index drifts with prices::

    w_i ← w_i·g_i / Σ_j w_j·g_j

Index changes then fix some new weights: a deleted member gets ``w⁺ = 0``; an added asset or a
reweighted member gets the weight the change names. With ``F`` the sum of the fixed weights and
``R = Σ w_j`` over the members the changes leave alone, those members keep their relative
weights and share what is left::

    w⁺_j = w_j·(1 − F)/R

so ``Σ w⁺ = 1`` and ``Δw = w⁺ − w`` sums to zero. Example: deleting a member of weight 0.2
from {0.5, 0.3, 0.2} leaves {0.625, 0.375}.

The assets gain two columns per index (:func:`rules.index_column`): ``member`` (in the index
before or after the changes) and ``dw`` (``Δw``, 0 for an unchanged index).
"""

from __future__ import annotations

import polars as pl

from estimator import contracts, keys
from estimator.errors import InputError, InputWarnings, Problem
from estimator.mandates import Mandate
from rules import index_column

#: Index weights are normalised, with a warning, when they sum to 1 only to within this much.
SUM_TOLERANCE = 1e-6

EMPTY = pl.DataFrame(schema={"index_id": pl.String, "asset_id": pl.String, "weight": pl.Float64})


def check_weights(
    weights: pl.DataFrame, assets: pl.DataFrame, label: str, warnings: InputWarnings
) -> tuple[pl.DataFrame, list[Problem]]:
    """Weights naming unknown assets are problems; an index whose weights do not sum to one is
    normalised to one, with a warning naming it and its sum."""
    unknown = weights.join(assets.select("asset_id"), on="asset_id", how="anti").sort(
        contracts.LINE
    )
    problems = [
        Problem(label, f"unknown asset {asset!r} in index {index!r}", line, "asset_id")
        for line, index, asset in unknown.select(contracts.LINE, "index_id", "asset_id")
        .head(20)
        .iter_rows()
    ]
    sums = weights.group_by("index_id").agg(total=pl.col("weight").sum()).sort("index_id")
    for index, total in sums.iter_rows():
        if total <= 0:
            problems.append(Problem(label, f"index {index!r}: weights sum to 0", field="weight"))
        elif abs(total - 1) > SUM_TOLERANCE:
            warnings.add(
                Problem(
                    label,
                    f"index {index!r}: weights sum to {total:.6g}, not 1; normalised to 1",
                    field="weight",
                )
            )
    normalised = weights.with_columns(pl.col("weight") / pl.col("weight").sum().over("index_id"))
    return normalised, problems


def tracked_index_problems(
    holders: pl.DataFrame, mandates: dict[str, Mandate], weights: pl.DataFrame, label: str
) -> list[Problem]:
    """Holders whose mandate tracks an index the market does not have."""
    known = set(weights["index_id"].unique())
    problems = []
    for name, mandate in sorted(mandates.items()):
        for rule in mandate.rules:
            index = rule.tracked_index
            if index is None or index in known:
                continue
            users = holders.filter(pl.col("mandate") == name)
            for line, holder in users.select(contracts.LINE, "holder_id").head(5).iter_rows():
                problems.append(
                    Problem(
                        label,
                        f"holder {holder!r} (mandate {name!r}) tracks index {index!r}, "
                        f"which the market has no weights for (known: {sorted(known)})",
                        line,
                        "mandate",
                    )
                )
    return problems


def drifted(weights: pl.DataFrame, shocked: pl.DataFrame) -> pl.DataFrame:
    """Weights after the scenario's price moves, ``w_i·g_i / Σ_j w_j·g_j``."""
    moved = weights.join(shocked.select("asset_id", "price", "price_pre"), on="asset_id")
    grown = pl.col("weight") * pl.col("price") / pl.col("price_pre")
    return moved.select("index_id", "asset_id", weight=grown / grown.sum().over("index_id"))


def changed(
    weights: pl.DataFrame, changes: pl.DataFrame, label: str
) -> tuple[pl.DataFrame, list[Problem]]:
    """New weights ``w⁺`` after ``changes`` (index_id, asset_id, action, weight, entry).

    ``weights`` are the drifted weights. Returns (index_id, asset_id, weight, new_weight) over
    every member before or after, and the problems with the changes (an unknown index, a
    deletion of a non-member, an addition of a member, fixed weights that leave nothing or too
    much for the others).
    """
    problems: list[Problem] = []
    known = set(weights["index_id"].unique())
    keyed = changes.join(
        weights.select("index_id", "asset_id", member=pl.lit(True)),
        on=["index_id", "asset_id"],
        how="left",
    ).with_columns(pl.col("member").fill_null(False))
    for row in keyed.sort("entry").iter_rows(named=True):
        where = f"index_changes.{row['entry']}"
        if row["index_id"] not in known:
            problems.append(
                Problem(
                    label,
                    f"unknown index {row['index_id']!r} (known: {sorted(known)})",
                    field=where,
                )
            )
        elif row["action"] == "add" and row["member"]:
            problems.append(
                Problem(
                    label,
                    f"{row['asset_id']!r} is already in {row['index_id']!r}: use reweight",
                    field=where,
                )
            )
        elif row["action"] != "add" and not row["member"]:
            problems.append(
                Problem(
                    label,
                    f"{row['asset_id']!r} is not a member of {row['index_id']!r}: "
                    f"cannot {row['action']} it",
                    field=where,
                )
            )
    fixed = changes.select(
        "index_id",
        "asset_id",
        fixed=pl.when(pl.col("action") == "delete").then(0.0).otherwise(pl.col("weight")),
    )
    table = weights.join(fixed, on=["index_id", "asset_id"], how="full", coalesce=True)
    table = table.filter(pl.col("index_id").is_in(list(known))).with_columns(
        pl.col("weight").fill_null(0.0)
    )
    free = pl.col("fixed").is_null()
    totals = table.group_by("index_id").agg(
        F=pl.col("fixed").sum(), R=pl.col("weight").filter(free).sum()
    )
    for index, F, R in totals.sort("index_id").iter_rows():
        others = f"{R:.6g} of the old weight" if R > 0 else "no old weight"
        if F > 1 + SUM_TOLERANCE or (R <= 0 and abs(F - 1) > SUM_TOLERANCE) or (R > 0 and F >= 1):
            problems.append(
                Problem(
                    label,
                    f"index {index!r}: the changed members' new weights sum to {F:.6g}, "
                    f"leaving {others} to share {1 - F:.6g}; expected a sum below 1 "
                    "(exactly 1 if the members left unchanged weigh nothing)",
                    field="index_changes",
                )
            )
    if problems:
        return EMPTY, problems
    # the unchanged members share 1 − F; with no old weight left, the given weights are the
    # index (rescaled to sum to exactly one)
    others = pl.col("R") > 0
    share = pl.when(others).then((1 - pl.col("F")) / pl.col("R")).otherwise(0.0)
    given = pl.when(others).then(pl.col("fixed")).otherwise(pl.col("fixed") / pl.col("F"))
    new = (
        table.join(totals, on="index_id")
        .with_columns(new_weight=pl.when(free).then(pl.col("weight") * share).otherwise(given))
        .select("index_id", "asset_id", "weight", "new_weight")
    )
    return new, []


def weight_changes(columns: list[str]) -> list[str]:
    """The asset columns that carry an index's weight change ``Δw`` (:func:`asset_columns`)."""
    return [c for c in columns if c.startswith("index[") and c.endswith("].dw")]


def asset_columns(state: pl.DataFrame, assets: pl.DataFrame) -> pl.DataFrame:
    """``assets`` with each index's ``member`` and ``dw`` columns (non-members: False, 0)."""
    out = assets
    for (index,), rows in sorted(state.partition_by("index_id", as_dict=True).items()):
        cols = rows.select(
            "asset_id",
            **{
                index_column(index, "member"): pl.lit(True),
                index_column(index, "dw"): pl.col("new_weight") - pl.col("weight"),
            },
        )
        out = out.join(cols, on="asset_id", how="left").with_columns(
            pl.col(index_column(index, "member")).fill_null(False),
            pl.col(index_column(index, "dw")).fill_null(0.0),
        )
    return out


#: The copy of a stacked market (:mod:`estimator.stack`) a holder or an asset belongs to.
COPY = "copy"


def pad_positions(
    positions: pl.DataFrame,
    holders: pl.DataFrame,
    mandates: dict[str, Mandate],
    assets: pl.DataFrame,
) -> pl.DataFrame:
    """Zero-quantity rows for the index members a tracker does not hold yet and must buy (an
    addition, or a reweight up, needs a row to be bought into): those with ``Δw > 0``. A member
    not held whose weight does not rise has target ``max(Δw, 0) = 0`` and never trades. So
    do the assets a rule pads (:meth:`rules.RuleBase.pads`: a dealer's hedged underlyings, a
    trend follower's instruments). Frames are coded
    (:mod:`estimator.keys`); the result is in (holder, asset) order. In a stacked market
    (:mod:`estimator.stack`) holders and assets carry their :data:`COPY`, and a tracker's
    members are those of its copy."""
    rows = []
    for name, mandate in sorted(mandates.items()):
        for rule in mandate.rules:
            index = rule.tracked_index
            if index is None:
                continue
            trackers = holders.filter(pl.col("mandate") == name).select("holder_id")
            if trackers.is_empty():  # a mandate no holder follows needs no index
                continue
            member = index_column(index, "member")
            if member not in assets.columns:
                raise InputError(
                    [
                        Problem(
                            "assets",
                            f"mandate {name!r} tracks index {index!r}, but the assets have "
                            "no columns for it: apply the scenario with the market's "
                            "index_weights",
                        )
                    ]
                )
            bought = pl.col(member) & (pl.col(index_column(index, "dw")) > 0)
            if COPY in assets.columns:  # a stack: each tracker's index is its own copy's
                members = assets.filter(bought).select("asset_id", COPY)
                copies = holders.filter(pl.col("mandate") == name).select("holder_id", COPY)
                rows.append(copies.join(members, on=COPY).drop(COPY))
                continue
            members = assets.filter(bought).select("asset_id")
            rows.append(trackers.join(members, how="cross"))
    rows += _padded(holders, mandates, assets)
    positions = keys.by_holder(positions)
    if not rows:
        return positions
    # one index (or the underlyings) per mandate, one mandate per holder
    wanted = keys.by_holder(pl.concat(rows))
    if wanted.is_empty():
        return positions
    # the trackers' rows: one slice of the book, as holders are coded mandate by mandate
    start, stop = keys.span(positions, wanted[keys.HOLDER].min(), wanted[keys.HOLDER].max())
    window = positions.slice(start, stop - start)
    missing = wanted.filter(keys.lookup(window, keys.HOLDER, wanted).is_null())
    if missing.is_empty():
        return positions
    padding = missing.with_columns(quantity=pl.lit(0.0)).select(positions.columns)
    # both in (holder, asset) order: a linear merge of the window, not a sort of the book
    merged = (
        window.with_columns(_pair=keys.pair())
        .merge_sorted(padding.with_columns(_pair=keys.pair()), key="_pair")
        .drop("_pair")
    )
    parts = [positions.slice(0, start), merged, positions.slice(stop)]
    return pl.concat(parts, rechunk=False).with_columns(pl.col(keys.HOLDER).set_sorted())


def _padded(
    holders: pl.DataFrame, mandates: dict[str, Mandate], assets: pl.DataFrame
) -> list[pl.DataFrame]:
    """(holder_id, asset_id) of every holder × asset its mandate's rules pad
    (:meth:`rules.RuleBase.pads`); in a stack of copies each holder's are its own copy's."""
    rows = []
    for name, mandate in sorted(mandates.items()):
        pads = [p for r in mandate.rules if (p := r.pads()) is not None]
        if not pads:
            continue
        mine = holders.filter(pl.col("mandate") == name)
        padded = assets.filter(pl.any_horizontal(pads))
        if mine.is_empty() or padded.is_empty():
            continue
        if COPY in assets.columns:
            rows.append(
                mine.select("holder_id", COPY)
                .join(padded.select("asset_id", COPY), on=COPY)
                .drop(COPY)
            )
        else:
            rows.append(mine.select("holder_id").join(padded.select("asset_id"), how="cross"))
    return rows

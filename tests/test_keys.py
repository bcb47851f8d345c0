"""Integer keys and the sparse holder book, each against an independent computation."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from estimator import book as bk
from estimator import keys
from estimator.errors import RunError
from estimator.rounds import frames

HOLDERS = pl.DataFrame({"holder_id": ["H_B", "H_A", "H_C"], "cash": [2.0, 1.0, 3.0]})
ASSETS = pl.DataFrame({"asset_id": ["Z", "X", "Y"], "price": [10.0, 20.0, 30.0]})


def test_codes_are_ranks_of_the_sorted_ids_and_decode_back() -> None:
    codes = keys.Keys.of(HOLDERS, ASSETS)
    rows = pl.DataFrame({"holder_id": ["H_C", "H_A"], "asset_id": ["X", "Z"], "q": [1.0, 2.0]})
    coded = codes.encode(rows)
    # by hand: H_A < H_B < H_C and X < Y < Z
    assert coded["holder_id"].to_list() == [2, 0]
    assert coded["asset_id"].to_list() == [0, 2]
    assert coded.schema["holder_id"] == keys.CODE
    assert_frame_equal(codes.decode(coded), rows)


def test_holders_are_coded_mandate_by_mandate_and_decode_in_id_order() -> None:
    holders = pl.DataFrame(
        {"holder_id": ["H_B", "H_A", "H_C", "H_D"], "mandate": ["m2", "m1", "m1", "m2"]}
    )
    codes = keys.Keys.of(holders, ASSETS)
    # by hand: (m1, H_A), (m1, H_C), (m2, H_B), (m2, H_D)
    assert codes.holders.to_list() == ["H_A", "H_C", "H_B", "H_D"]
    rows = pl.DataFrame(
        {"holder_id": ["H_D", "H_B", "H_C", "H_A"], "asset_id": ["X", "Y", "Z", "Y"]}
    )
    coded = keys.by_holder(codes.encode(rows))
    assert coded["holder_id"].to_list() == [0, 1, 2, 3]  # H_A, H_C, H_B, H_D
    decoded = codes.decode(coded, order=["holder_id", "asset_id"])
    assert decoded.rows() == [("H_A", "Y"), ("H_B", "Y"), ("H_C", "Z"), ("H_D", "X")]


@given(
    mandates=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=12),
    held=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 4)), max_size=40, unique=True),
)
def test_by_mandate_slices_are_the_rows_of_each_mandates_holders(
    mandates: list[str], held: list[tuple[int, int]]
) -> None:
    """The contiguous slices against a filter by holder, for books coded by :meth:`Keys.of`."""
    holders = pl.DataFrame(
        {"holder_id": [f"H{i:02d}" for i in range(len(mandates))], "mandate": mandates}
    )
    assets = pl.DataFrame({"asset_id": [f"A{j}" for j in range(5)]})
    codes = keys.Keys.of(holders, assets)
    rows = pl.DataFrame(
        [(f"H{h:02d}", f"A{a}", float(h * 10 + a)) for h, a in held if h < len(mandates)],
        schema={"holder_id": pl.String, "asset_id": pl.String, "q": pl.Float64},
        orient="row",
    )
    pos = keys.by_holder(codes.encode(rows))
    book = codes.encode(holders).sort("holder_id")
    parts = frames.by_mandate(pos, book, set(mandates))
    assert sorted(parts) == sorted(set(mandates))
    for name, (rows_m, book_m) in parts.items():
        mine = holders.filter(pl.col("mandate") == name)["holder_id"]
        expected = rows.filter(pl.col("holder_id").is_in(mine.implode())).sort(
            "holder_id", "asset_id"
        )
        assert rows_m is not None
        assert_frame_equal(codes.decode(rows_m, order=["holder_id", "asset_id"]), expected)
        assert sorted(codes.decode(book_m)["holder_id"].to_list()) == sorted(mine.to_list())


def test_an_id_outside_the_tables_is_an_error() -> None:
    codes = keys.Keys.of(HOLDERS, ASSETS)
    with pytest.raises(pl.exceptions.InvalidOperationError):
        codes.encode(pl.DataFrame({"holder_id": ["H_A"], "asset_id": ["NOT_AN_ASSET"]}))


def test_by_holder_sorts_rows_and_flags_them() -> None:
    rows = pl.DataFrame(
        {"holder_id": [1, 0, 1, 0], "asset_id": [5, 7, 2, 3], "q": [1.0, 2.0, 3.0, 4.0]},
        schema_overrides={"holder_id": keys.CODE, "asset_id": keys.CODE},
    )
    out = keys.by_holder(rows)
    assert out.select("holder_id", "asset_id").rows() == [(0, 3), (0, 7), (1, 2), (1, 5)]
    assert out["q"].to_list() == [4.0, 2.0, 3.0, 1.0]
    assert out["holder_id"].flags["SORTED_ASC"]


code_lists = st.lists(st.integers(0, 30), min_size=1, max_size=60)


@given(
    table_codes=st.lists(st.integers(0, 40), unique=True, max_size=30),
    row_codes=code_lists,
)
def test_broadcast_is_a_left_join_that_keeps_the_rows_order(
    table_codes: list[int], row_codes: list[int]
) -> None:
    table = pl.DataFrame(
        {"holder_id": table_codes, "v": [float(c) * 1.5 for c in table_codes]},
        schema_overrides={"holder_id": keys.CODE},
    )
    rows = pl.DataFrame(
        {"holder_id": row_codes, "i": list(range(len(row_codes)))},
        schema_overrides={"holder_id": keys.CODE},
    )
    joined = rows.join(table, on="holder_id", how="left", maintain_order="left")
    assert_frame_equal(keys.broadcast(table, ["v"], rows), joined)


@given(
    held=st.sets(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=30),
    wanted=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=20),
)
def test_lookup_finds_what_a_left_join_finds(
    held: set[tuple[int, int]], wanted: list[tuple[int, int]]
) -> None:
    schema = {"holder_id": keys.CODE, "asset_id": keys.CODE}
    rows = keys.by_holder(
        pl.DataFrame(
            [(h, a, 10.0 * h + a) for h, a in held],
            schema=schema | {"v": pl.Float64},
            orient="row",
        )
    )
    sought = pl.DataFrame(wanted, schema=schema, orient="row")
    joined = sought.join(rows, on=["holder_id", "asset_id"], how="left", maintain_order="left")
    assert keys.lookup(rows, "v", sought).to_list() == joined["v"].to_list()


def test_lookup_refuses_rows_that_repeat_a_pair() -> None:
    schema = {"holder_id": keys.CODE, "asset_id": keys.CODE, "v": pl.Float64}
    rows = pl.DataFrame({"holder_id": [0, 0], "asset_id": [5, 5], "v": [1.0, 2.0]}, schema=schema)
    with pytest.raises(ValueError, match="more than once"):
        keys.lookup(rows, "v", rows.select("holder_id", "asset_id"))


@given(
    seed=st.integers(0, 2**32 - 1),
    n_rows=st.integers(1, 80),
    shuffle=st.booleans(),
)
def test_sparse_book_sums_equal_row_sums(seed: int, n_rows: int, shuffle: bool) -> None:
    """The sparse products of :func:`book.holder_book` against Polars sums over rows that
    carry the risk model (the path for frames with string ids)."""
    rng = np.random.default_rng(seed)
    n_assets, n_holders = 7, 9
    margin = rng.uniform(0.1, 0.5, n_assets)
    assets = pl.DataFrame(
        {
            "asset_id": np.arange(n_assets, dtype=np.uint32)[::-1],  # not in code order
            "instrument": rng.choice(["cash", "future"], n_assets),
            "price": rng.uniform(1, 100, n_assets),
            "multiplier": rng.choice([1.0, 50.0], n_assets),
            "margin_rate": pl.Series(
                [None if r < 0.4 else m for r, m in zip(rng.random(n_assets), margin, strict=True)],
                dtype=pl.Float64,
            ),
            "initial_margin_rate": pl.Series(
                [
                    None if r < 0.5 else 1.5 * m
                    for r, m in zip(rng.random(n_assets), margin, strict=True)
                ],
                dtype=pl.Float64,
            ),
            "specific_vol": rng.uniform(0, 0.4, n_assets),
            "duration": pl.Series(
                [
                    None if r < 0.3 else d
                    for r, d in zip(rng.random(n_assets), margin * 40, strict=True)
                ],
                dtype=pl.Float64,
            ),
            "risk_g0": rng.normal(0, 0.2, n_assets),
            "risk_g1": rng.normal(0, 0.1, n_assets),
        }
    )
    pairs = rng.choice(n_holders * n_assets, size=min(n_rows, n_holders * n_assets), replace=False)
    positions = pl.DataFrame(
        {
            "holder_id": (pairs // n_assets).astype(np.uint32),
            "asset_id": (pairs % n_assets).astype(np.uint32),
            "quantity": rng.normal(0, 100, pairs.size),
        }
    )
    if not shuffle:
        positions = positions.sort("holder_id", "asset_id")
    holders = pl.DataFrame(
        {
            "holder_id": np.arange(n_holders + 1, dtype=np.uint32),  # the last holds nothing
            "cash": rng.normal(0, 50, n_holders + 1),
            "non_tradable": np.zeros(n_holders + 1),
            "other_debt": np.zeros(n_holders + 1),
        }
    )
    wide = bk.position_frame(positions, assets)
    narrow = bk.position_frame(positions, assets, columns=[])
    assert_frame_equal(
        bk.holder_book(narrow, holders, assets),
        bk.holder_book(wide, holders),
        check_exact=False,
        rel_tol=1e-12,
        abs_tol=1e-9,
    )


@given(seed=st.integers(0, 2**32 - 1), n_rows=st.integers(0, 40))
def test_decode_orders_rows_as_a_sort_on_the_ids(seed: int, n_rows: int) -> None:
    """Sorting on codes turned into one integer key against sorting the decoded ids."""
    rng = np.random.default_rng(seed)
    holders = pl.DataFrame(
        {"holder_id": [f"H{i}" for i in range(12)], "mandate": rng.choice(["a", "b"], 12)}
    )
    assets = pl.DataFrame({"asset_id": [f"A{i}" for i in range(5)]})
    codes = keys.Keys.of(holders, assets)
    frame = pl.DataFrame(
        {
            "round": rng.integers(1, 4, n_rows).astype(np.int32),
            "holder_id": rng.integers(0, 12, n_rows).astype(np.uint32),
            "asset_id": rng.integers(0, 5, n_rows).astype(np.uint32),
            "row": np.arange(n_rows),
        }
    )
    got = codes.decode(frame, order=["round", "holder_id", "asset_id"])
    expected = codes.decode(frame).sort("round", "holder_id", "asset_id", maintain_order=True)
    assert_frame_equal(got, expected)


def test_add_by_pair_sums_the_pairs_both_sides_hold() -> None:
    schema = {"holder_id": keys.CODE, "asset_id": keys.CODE, "q": pl.Float64}
    left = pl.DataFrame(
        {"holder_id": [0, 0, 2], "asset_id": [1, 3, 0], "q": [1.0, 2.0, 4.0]}, schema=schema
    )
    right = pl.DataFrame(
        {"holder_id": [0, 1, 2], "asset_id": [3, 5, 0], "q": [10.0, 20.0, 40.0]}, schema=schema
    )
    # by hand: (0,1) 1; (0,3) 2 + 10; (1,5) 20; (2,0) 4 + 40
    expected = pl.DataFrame(
        {"holder_id": [0, 0, 1, 2], "asset_id": [1, 3, 5, 0], "q": [1.0, 12.0, 20.0, 44.0]},
        schema=schema,
    )
    assert_frame_equal(keys.add_by_pair(left, right, ["q"]), expected)
    assert_frame_equal(keys.add_by_pair(left.clear(), left.clear(), ["q"]), left.clear())


@given(seed=st.integers(0, 2**32 - 1), n_left=st.integers(0, 30), n_right=st.integers(0, 30))
def test_add_by_pair_equals_a_group_by_of_both(seed: int, n_left: int, n_right: int) -> None:
    rng = np.random.default_rng(seed)

    def side(n: int) -> pl.DataFrame:
        pairs = np.sort(rng.choice(60, size=n, replace=False))
        return pl.DataFrame(
            {
                "holder_id": (pairs // 6).astype(np.uint32),
                "asset_id": (pairs % 6).astype(np.uint32),
                "q": rng.normal(0, 1, n),
            }
        )

    left, right = side(n_left), side(n_right)
    expected = pl.concat([left, right]).group_by("holder_id", "asset_id").agg(pl.col("q").sum())
    expected = expected.sort("holder_id", "asset_id")
    assert_frame_equal(
        keys.add_by_pair(left, right, ["q"]), expected, check_exact=False, rel_tol=1e-12
    )


def test_pattern_products_by_hand() -> None:
    # holder 0 holds assets 2 and 0, holder 1 nothing, holder 2 asset 1; rows out of order
    rows = pl.DataFrame(
        {"holder_id": [2, 0, 0], "asset_id": [1, 2, 0]},
        schema={c: keys.CODE for c in ("holder_id", "asset_id")},
    )
    pattern = bk.Pattern(rows)
    data = np.array([5.0, 2.0, 3.0])  # per row, in the frame's order
    vectors = np.array([[1.0, 10.0], [2.0, 20.0], [4.0, 40.0]])  # per asset code
    # holder 0: 2·v₂ + 3·v₀ = (8 + 3, 80 + 30); holder 1: 0; holder 2: 5·v₁ = (10, 100)
    assert pattern.times(data, vectors).tolist() == [[11.0, 110.0], [0.0, 0.0], [10.0, 100.0]]
    assert pattern.sums(data).tolist() == [5.0, 0.0, 5.0]
    with pytest.raises(RunError, match="3 row values"):
        pattern.sums(np.ones(2))
    with pytest.raises(RunError, match="asset code up to 2"):
        pattern.times(data, vectors[:2])


@given(seed=st.integers(0, 2**32 - 1), n_rows=st.integers(0, 48), shuffle=st.booleans())
def test_pattern_sums_equal_group_by_sums(seed: int, n_rows: int, shuffle: bool) -> None:
    """Per-holder sums as sparse products against a Polars group-by on the same rows."""
    rng = np.random.default_rng(seed)
    n_holders, n_assets = 8, 6
    pairs = rng.choice(n_holders * n_assets, size=n_rows, replace=False)
    rows = pl.DataFrame(
        {
            "holder_id": (pairs // n_assets).astype(np.uint32),
            "asset_id": (pairs % n_assets).astype(np.uint32),
            "d": rng.normal(0, 10, n_rows),
        }
    )
    if not shuffle:
        rows = rows.sort("holder_id", "asset_id")
    pattern = bk.Pattern(rows)
    expected = rows.group_by("holder_id").agg(pl.col("d").sum())
    got = pl.DataFrame(
        {"holder_id": np.arange(pattern.n_holders, dtype=np.uint32), "d": pattern.sums(rows["d"])}
    )
    joined = got.join(expected, on="holder_id", how="left", suffix="_expected")
    assert joined.height == (int(rows["holder_id"].max()) + 1 if n_rows else 0)
    assert np.allclose(joined["d"], joined["d_expected"].fill_null(0.0), rtol=1e-12, atol=1e-12)


def test_variation_margin_credits_futures_moves_to_cash() -> None:
    """By hand: H1 is long 3 contracts × 50 of a future that rises 2 → +300, H2 short 1
    contract → −100; the stock's move settles nothing; H3 holds nothing."""
    holders = pl.DataFrame({"holder_id": ["H1", "H2", "H3"], "cash": [10.0, 20.0, 30.0]})
    positions = pl.DataFrame(
        {
            "holder_id": ["H1", "H1", "H2"],
            "asset_id": ["FUT", "STOCK", "FUT"],
            "quantity": [3.0, 100.0, -1.0],
        }
    )
    moves = pl.DataFrame({"asset_id": ["FUT"], "multiplier": [50.0], "dp": [2.0]})
    out = bk.credit_variation_margin(holders, positions, moves)
    assert out.sort("holder_id")["cash"].to_list() == [310.0, -80.0, 30.0]

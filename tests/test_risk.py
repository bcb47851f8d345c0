"""A full asset covariance (long or wide) becomes per-asset factor rows G with G·Gᵀ = Σ; gaps
and bad cells are named; assets without `vol` take the model's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from estimator import Mandate, build_market
from estimator.errors import InputError
from estimator.risk import factor_columns, from_covariance
from estimator.tables import load_covariance


def _long(pairs: dict[tuple[str, str], float]) -> pl.DataFrame:
    return pl.DataFrame(
        [(i, j, v) for (i, j), v in pairs.items()],
        schema=["asset_i", "asset_j", "covariance"],
        orient="row",
    )


def test_rows_reproduce_the_matrix_from_either_triangle() -> None:
    sigma = np.array([[0.04, 0.01, 0.0], [0.01, 0.09, -0.02], [0.0, -0.02, 0.16]])
    names = ["a", "b", "c"]
    given = {(names[i], names[j]): sigma[i, j] for i in range(3) for j in range(3) if i <= j}
    given[("c", "b")] = given.pop(("b", "c"))  # one pair in the other order
    rows = from_covariance(_long(given)).sort("asset_id")
    G = rows.select(factor_columns(rows)).to_numpy()
    np.testing.assert_allclose(G @ G.T, sigma, atol=1e-15)


def test_every_missing_pair_is_named_in_one_error() -> None:
    given = {("a", "a"): 0.04, ("b", "b"): 0.09, ("c", "c"): 0.16, ("b", "a"): 0.01}
    with pytest.raises(InputError) as caught:
        from_covariance(_long(given), label="covariance.csv")
    assert [str(p) for p in caught.value.problems] == [
        "covariance.csv: no covariance for (a, c)",
        "covariance.csv: no covariance for (b, c)",
    ]


SIGMA = np.array([[0.04, 0.01, 0.0], [0.01, 0.09, -0.02], [0.0, -0.02, 0.16]])


def _wide_csv(path: Path, rows: list[list[str]]) -> Path:
    path.write_text("asset_id,a,b,c\n" + "".join(",".join(r) + "\n" for r in rows))
    return path


def test_a_wide_matrix_reads_as_the_long_table(tmp_path: Path) -> None:
    rows = [[n, *(str(float(v)) for v in SIGMA[i])] for i, n in enumerate("abc")]
    long = load_covariance(_wide_csv(tmp_path / "cov.csv", rows[::-1]), "cov.csv")
    assert long.height == 9
    got = from_covariance(long).sort("asset_id")
    G = got.select(factor_columns(got)).to_numpy()
    np.testing.assert_allclose(G @ G.T, SIGMA, atol=1e-15)


def test_bad_cells_of_a_wide_matrix_are_named_by_row_and_column(tmp_path: Path) -> None:
    rows = [["a", "0.04", "x", "0"], ["b", "0.01", "0.09", "nan"], ["a", "0", "-0.02", "1e9"]]
    with pytest.raises(InputError) as caught:
        load_covariance(_wide_csv(tmp_path / "cov.csv", rows), "cov.csv")
    assert sorted(str(p) for p in caught.value.problems) == [
        "cov.csv, row 2, field 'asset_id': asset_id given twice",
        "cov.csv, row 2, field 'b': expected a covariance, a number within ±100, got 'x'",
        "cov.csv, row 3, field 'c': expected a covariance, a number within ±100, got 'nan'",
        "cov.csv, row 4, field 'asset_id': asset_id given twice",
        "cov.csv, row 4, field 'c': expected a covariance, a number within ±100, got '1e9'",
    ]


def test_vol_comes_from_the_risk_model_where_assets_leave_it_out() -> None:
    assets = pl.DataFrame(
        {"asset_id": ["a", "b", "c"], "asset_class": "equity", "instrument": "cash"}
        | {"price": 1.0, "adv": 1e6, "vol": [0.2, None, None]}
    )
    holders = pl.DataFrame({"holder_id": ["h"], "holder_type": "f", "mandate": "m", "cash": 0.0})
    positions = pl.DataFrame({"holder_id": ["h"], "asset_id": ["a"], "quantity": [1.0]})
    mandates = {"m": Mandate(name="m", rules=[{"kind": "leverage", "max": 2.0}])}
    pairs = {(i, j): SIGMA["abc".index(i), "abc".index(j)] for i in "abc" for j in "abc"}
    market = build_market(
        assets, holders, positions, mandates, risk_rows=from_covariance(_long(pairs))
    )
    vol = dict(market.assets.select("asset_id", "vol").iter_rows())
    assert vol == pytest.approx({"a": 0.2, "b": 0.3, "c": 0.4}, rel=1e-14)  # √Σ_ii
    with pytest.raises(InputError, match="row 3, field 'vol': no vol: required without a risk"):
        build_market(assets, holders, positions, mandates)

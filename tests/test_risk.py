"""A full asset covariance becomes per-asset factor rows G with G·Gᵀ = Σ; gaps are named."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from estimator.errors import InputError
from estimator.risk import factor_columns, from_covariance


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

"""The generator's sizing: accounts split over rows, and sizes capped at the largest known
institution while the type still adds up to its total."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from estimator.generator.books import fill, split


def test_accounts_split_as_evenly_as_whole_numbers_go() -> None:
    assert split(10, 4).tolist() == [3, 3, 2, 2]
    assert split(3, 3).tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="cannot fill"):
        split(2, 3)


def test_a_cap_by_hand() -> None:
    # draws 3, 2, 1 and a total of 6: uncapped 3, 2, 1; with a cap of 2.5 the first is held
    # at 2.5 and the rest share 3.5 in proportion 2 : 1, c = 3.5/3
    sizes = fill(np.array([3.0, 2.0, 1.0]), np.array([1, 1, 1]), 6.0, 2.5)
    assert sizes.tolist() == pytest.approx([2.5, 7 / 3, 7 / 6], rel=1e-12)
    # rows of 2, 1 and 1 accounts: Σ k·s = 6 with s = c·d → c = 6/9
    assert fill(np.array([3.0, 2.0, 1.0]), np.array([2, 1, 1]), 6.0, None).tolist() == (
        pytest.approx([2.0, 4 / 3, 2 / 3], rel=1e-12)
    )
    with pytest.raises(ValueError, match="cannot hold"):
        fill(np.array([1.0, 1.0]), np.array([1, 1]), 5.0, 2.0)


@given(
    st.lists(st.floats(0.01, 100.0), min_size=1, max_size=30),
    st.integers(1, 50),
    st.floats(0.05, 1.0),
)
def test_capped_sizes_add_up_and_keep_their_order(draws: list, k: int, slack: float) -> None:
    """Σ k_i·s_i = T, every s_i ≤ cap, the uncapped rows in proportion to their draws (one
    common c) and no row above a larger draw's — checked against the definition."""
    d = np.array(draws)
    accounts = np.arange(len(draws)) % k + 1
    total = 1e6
    cap = total / accounts.sum() / slack  # at least the mean account: feasible
    s = fill(d, accounts, total, cap)
    assert float(accounts @ s) == pytest.approx(total, rel=1e-9)
    assert (s <= cap * (1 + 1e-12)).all()
    free = s < cap * (1 - 1e-9)
    if free.any():
        ratios = s[free] / d[free]
        assert ratios.max() == pytest.approx(ratios.min(), rel=1e-9)
        assert (d[~free] >= d[free].max() * (1 - 1e-12)).all()  # the capped are the largest

"""Rating scales, composites and rating actions, against the published agency tables."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from typer.testing import CliRunner

import estimator
from estimator import Scenario, cli
from estimator.contracts import Assets
from estimator.errors import InputError
from estimator.market import load_market
from estimator.paths import resolve_market, resolve_scenario
from estimator.scenario import load_scenario
from estimator.tables import load_table
from rules.ratings import SP_FITCH, composite_expr, notch

# The agencies' published correspondence, written out pair by pair (not derived from the code).
EQUIVALENT = [
    ("AAA", "Aaa"), ("AA+", "Aa1"), ("AA", "Aa2"), ("AA-", "Aa3"), ("A+", "A1"), ("A", "A2"),
    ("A-", "A3"), ("BBB+", "Baa1"), ("BBB", "Baa2"), ("BBB-", "Baa3"), ("BB+", "Ba1"),
    ("BB", "Ba2"), ("BB-", "Ba3"), ("B+", "B1"), ("B", "B2"), ("B-", "B3"), ("CCC+", "Caa1"),
    ("CCC", "Caa2"), ("CCC-", "Caa3"), ("CC", "Ca"), ("C", "C"),
]  # fmt: skip


@pytest.mark.parametrize(("sp", "moodys"), EQUIVALENT)
def test_equivalent_ratings_share_a_notch(sp: str, moodys: str) -> None:
    assert notch(sp) == notch(moodys)


def test_investment_grade_ends_at_bbb_minus_and_default_is_last() -> None:
    assert notch("AAA") == 1
    assert notch("BBB-") == 10  # the last investment-grade notch
    assert notch("BB+") == 11
    assert notch("D") == notch("SD") == notch("RD") == 22
    with pytest.raises(ValueError, match="unknown rating 'Bbb'"):
        notch("Bbb")


def _composite(rule: str, sp: str | None, moodys: str | None, fitch: str | None) -> int | None:
    frame = pl.DataFrame(
        {"rating_sp": [sp], "rating_moodys": [moodys], "rating_fitch": [fitch]},
        schema={c: pl.String for c in ("rating_sp", "rating_moodys", "rating_fitch")},
    )
    cols = ["rating_sp", "rating_moodys", "rating_fitch"]
    return frame.select(composite_expr(cols, rule)).item()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ratings", "lowest", "middle"),
    [
        (("A", "Baa1", "BBB-"), 10, 8),  # A=6, Baa1=8, BBB-=10: middle of three is Baa1
        (("BBB-", "Ba1", None), 11, 11),  # two ratings: the lower one
        (("BBB-", "NR", "WR"), 10, 10),  # NR/WR are unrated: one rating left
        ((None, "Baa3", None), 10, 10),
        (("NR", None, "WR"), None, None),  # nobody rates it
        (("AA", "Aa2", "AA"), 3, 3),
    ],
)
def test_composites(
    ratings: tuple[str | None, str | None, str | None], lowest: int | None, middle: int | None
) -> None:
    assert _composite("lowest", *ratings) == lowest
    assert _composite("middle", *ratings) == middle


_sp = st.none() | st.sampled_from([*SP_FITCH, "NR", "WR", "D"])


@given(sp=_sp, fitch=_sp, moodys=st.none() | st.sampled_from([m for _, m in EQUIVALENT]))
def test_composite_order_properties(sp: str | None, fitch: str | None, moodys: str | None) -> None:
    lowest, middle = (
        _composite("lowest", sp, moodys, fitch),
        _composite("middle", sp, moodys, fitch),
    )
    # swapping the two agencies on the same scale changes nothing
    assert (lowest, middle) == (
        _composite("lowest", fitch, moodys, sp),
        _composite("middle", fitch, moodys, sp),
    )
    rated = [notch(r) for r in (sp, moodys, fitch) if r not in (None, "NR", "WR")]
    assert lowest == (max(rated) if rated else None)
    assert (middle is None) == (not rated)
    if rated:
        assert min(rated) <= middle <= lowest


def _ratings_after(shocks: list[dict], **assets: dict[str, str | None]) -> dict[str, tuple]:
    rows = [
        {"asset_id": a, "rating_sp": r.get("sp"), "rating_moodys": r.get("moodys")}
        for a, r in assets.items()
    ]
    frame = pl.DataFrame(rows, schema={c: pl.String for c in rows[0]}).with_columns(
        asset_class=pl.lit("corp_bond"),
        instrument=pl.lit("cash"),
        price=100.0,
        vol=0.05,
        specific_vol=0.05,
        rating_fitch=pl.lit(None, dtype=pl.String),
        duration=pl.lit(None, dtype=pl.Float64),
        margin_rate=pl.lit(None, dtype=pl.Float64),
    )
    out = estimator.apply_scenario(frame, Scenario(name="s", shocks=shocks))
    return {r[0]: r[1:] for r in out.select("asset_id", "rating_sp", "rating_moodys").iter_rows()}


def test_downgrade_by_notches_moves_each_agency_down_its_own_scale() -> None:
    after = _ratings_after(
        [{"select": {"all": True}, "downgrade_notches": 1}],
        a={"sp": "BBB-", "moodys": "Baa3"},
        b={"sp": "C", "moodys": "Ca"},
        c={"sp": "NR", "moodys": None},
        d={"sp": "D", "moodys": "C"},
    )
    assert after == {
        "a": ("BB+", "Ba1"),  # fallen angel
        "b": ("C", "C"),  # clamped at the bottom of the scale
        "c": ("NR", None),  # unrated stays unrated
        "d": ("D", "C"),
    }


def test_upgrade_and_setting_a_rating() -> None:
    after = _ratings_after(
        [
            {"select": {"asset_ids": ["a"]}, "downgrade_notches": -2},
            {"select": {"ratings": ["BBB"]}, "rating_moodys": "Ba2"},
        ],
        a={"sp": "AA+", "moodys": "Aa2"},
        b={"sp": "BBB", "moodys": "Baa2"},
    )
    # AA+ is one notch below AAA: two notches up clamps there; Aa2 is exactly two below Aaa
    assert after == {"a": ("AAA", "Aaa"), "b": ("BBB", "Ba2")}


def test_unknown_rating_in_assets_names_row_and_field(tmp_path) -> None:
    path = tmp_path / "assets.csv"
    path.write_text(
        "asset_id,asset_class,instrument,price,adv,vol,rating_sp,rating_moodys\n"
        "a,corp_bond,cash,100,1e6,0.05,BBB-,Baa3\n"
        "b,corp_bond,cash,100,1e6,0.05,BBB-,Baa4\n"
    )
    with pytest.raises(InputError) as err:
        load_table(path, Assets)
    (problem,) = err.value.problems
    assert (problem.row, problem.field) == (3, "rating_moodys")
    assert "expected a Moody's rating" in problem.message


def test_unknown_rating_in_a_scenario_is_rejected() -> None:
    with pytest.raises(ValidationError, match="unknown rating 'BB' on the rating_moodys scale"):
        Scenario(name="s", shocks=[{"select": {"all": True}, "rating_moodys": "BB"}])


def test_unknown_rating_in_a_scenario_file_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.toml"
    scenario.write_text('name = "bad"\n[[shocks]]\nselect = { all = true }\nrating_moodys = "BB"\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(cli.app, ["run", str(scenario), "--out", str(out)])
    assert result.exit_code == 2
    assert "bad.toml" in result.output
    assert "shocks.0.rating_moodys" in result.output
    assert "unknown rating 'BB'" in result.output
    assert not out.exists()


def test_small_crash_cuts_the_bbb_minus_bond_to_junk() -> None:
    market = load_market(resolve_market("small"))
    before = market.assets.filter(pl.col("rating_sp") == "BBB-")["asset_id"].to_list()
    assert before  # the shipped market has a bond on the edge of investment grade
    crash = load_scenario(resolve_scenario("small_crash"))
    shocked = estimator.apply_scenario(market.assets, crash, index_weights=market.index_weights)
    after = dict(zip(shocked["asset_id"], shocked["rating_sp"], strict=True))
    assert [after[a] for a in before] == ["BB+"] * len(before)

"""``gamma_hedge``: options dealers hedging their gamma, against hand arithmetic and quadrature."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracle_kit import asset_frame, dealer_hedge, holder_frame

import estimator
from estimator import Mandate, Scenario
from estimator.cascade import cascade
from estimator.errors import InputError, InputWarnings
from estimator.gamma import GammaProfile, profile_columns
from estimator.inputs import prepare
from estimator.market import load_market
from estimator.paths import resolve_scenario
from rules.gamma_hedge import MAX_KNOTS, hedge_value

DEALERS = Mandate(name="d", rules=[{"kind": "gamma_hedge"}])
LEVERED = Mandate(name="m", rules=[{"kind": "leverage", "max": 2.0}])


def _market(profile: list[tuple[float, float]], share: float = 1.0) -> estimator.Market:
    """Stocks X at 100 and Y at 50; dealer D with no position; A holds 5 X and 10 Y on 600
    borrowed (leverage 2.5 against a limit of 2)."""
    dealers = Mandate(name="d", rules=[{"kind": "gamma_hedge", "share": share}])
    return estimator.build_market(
        asset_frame(
            [
                {"asset_id": "X", "price": 100.0},
                {"asset_id": "Y", "price": 50.0},
            ]
        ),
        holder_frame(
            [
                {"holder_id": "A", "cash": -600.0, "mandate": "m"},
                {"holder_id": "D", "cash": 1000.0, "mandate": "d"},
            ]
        ),
        pl.DataFrame({"holder_id": ["A", "A"], "asset_id": ["X", "Y"], "quantity": [5.0, 10.0]}),
        {"m": LEVERED, "d": dealers},
        dealer_gamma=pl.DataFrame(
            [("X", lv, g) for lv, g in profile], schema=["asset_id", "level", "gamma"], orient="row"
        ),
    )


def _fall(move: float, **impact: object) -> Scenario:
    return Scenario.model_validate(
        {"name": "s", "shocks": [{"select": {"all": True}, "price_return": move}], **impact}
    )


def _dealer_trade(result: estimator.RunResult) -> float:
    t = result.trades.filter(pl.col("holder_id") == "D")
    assert t["asset_id"].to_list() == ["X"]
    return float(t["trade_value"].item())


def test_flat_long_gamma_buys_its_gamma_per_percent_fallen() -> None:
    # x* = −100·g·(ρ − 1): 1bn per 1% and a 2% fall buy 2bn; a 40% share buys 0.8bn
    assert _dealer_trade(estimator.run(_fall(-0.02), _market([(0.0, 1e9)]))) == pytest.approx(
        2e9, rel=1e-12
    )
    assert _dealer_trade(
        estimator.run(_fall(-0.02), _market([(0.0, 1e9)], share=0.4))
    ) == pytest.approx(0.8e9, rel=1e-12)
    # a row of three dealers' accounts holds three hedges
    three = _market([(0.0, 1e9)], share=0.4)
    three = dataclasses.replace(three, holders=three.holders.with_columns(accounts=3.0))
    assert _dealer_trade(estimator.run(_fall(-0.02), three)) == pytest.approx(2.4e9, rel=1e-12)
    # a rise of 3%: short gamma (−1bn) buys 3bn into it
    assert _dealer_trade(estimator.run(_fall(0.03), _market([(0.0, -1e9)]))) == pytest.approx(
        3e9, rel=1e-12
    )


def test_a_flip_below_the_spot_halves_the_purchase_then_turns_it_to_a_sale() -> None:
    # g = +1bn at the spot, −1bn 4% below (α = −49bn, β = 50bn on u = S/S₀):
    # ρ = 0.98: 100·0.98·[−49·(1/0.98 − 1) + 50·ln(1/0.98)]·1bn
    profile = [(-0.04, -1e9), (0.0, 1e9)]
    by_hand = 100 * 0.98 * (-49 * (1 / 0.98 - 1) + 50 * math.log(1 / 0.98)) * 1e9
    assert by_hand == pytest.approx(0.993265855845e9, rel=1e-11)
    assert _dealer_trade(estimator.run(_fall(-0.02), _market(profile))) == pytest.approx(
        by_hand, rel=1e-12
    )
    # ρ = 0.94: the piece [0.96, 1] and the flat tail [0.94, 0.96] at −1bn
    inner = -49 * (1 / 0.96 - 1) + 50 * math.log(1 / 0.96)
    tail = -1 * (1 / 0.94 - 1 / 0.96)
    by_hand = -100 * 0.94 * -(inner + tail) * 1e9
    assert by_hand == pytest.approx(-2.1366257548e9, rel=1e-9)
    assert _dealer_trade(estimator.run(_fall(-0.06), _market(profile))) == pytest.approx(
        by_hand, rel=1e-12
    )


_levels = st.lists(
    st.floats(-0.5, 0.5, allow_nan=False), min_size=1, max_size=MAX_KNOTS, unique=True
)


@given(
    levels=_levels,
    gammas=st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=MAX_KNOTS, max_size=MAX_KNOTS),
    rho=st.floats(0.3, 2.0, allow_nan=False),
)
def test_closed_form_equals_quadrature(
    levels: list[float], gammas: list[float], rho: float
) -> None:
    gammas = gammas[: len(levels)]
    table = pl.DataFrame({"asset_id": "X", "level": levels, "gamma": gammas, "__line__": 2})
    frame = profile_columns(table).with_columns(rho=pl.lit(rho))
    got = frame.select(hedge_value(pl.col("rho"))).item()
    knots = sorted(zip(levels, gammas, strict=True))
    want = dealer_hedge([k[0] for k in knots], [k[1] for k in knots], rho)
    scale = 100 * max(abs(g) for g in gammas) * (abs(rho - 1) / min(rho, 1.0) + 1e-12) * 2
    assert got == pytest.approx(want, abs=1e-9 * scale + 1e-6)


def test_no_move_no_trade_and_min_cost_trades_the_prescribed_hedge() -> None:
    market = _market([(-0.1, -2e9), (0.0, 1e9)])
    assert estimator.run(_fall(0.0), market).trades.filter(pl.col("holder_id") == "D").is_empty()
    pro = _dealer_trade(estimator.run(_fall(-0.05), market))
    cheap = _dealer_trade(estimator.run(_fall(-0.05), market, execution="min_cost"))
    assert cheap == pytest.approx(pro, rel=1e-9)


def test_each_cascade_round_re_hedges_at_its_own_price() -> None:
    # short gamma sells into the levered holder's sales; after every round the dealer holds
    # x*(P/P₀) at the price that round traded at
    profile = [(-0.2, -20.0), (0.0, -5.0)]
    market = _market(profile)
    spec = _fall(
        -0.05, impact={"models": [{"model": "linear", "coefficient": 1e-4, "per": "value"}]}
    )
    shocked, prepared = prepare(spec, market, "s", InputWarnings())
    result = cascade(shocked, prepared, market.positions, market.mandates, spec.impact)
    rounds = result.rounds.filter(pl.col("asset_id") == "X").sort("round")
    dealer = result.trades.filter(pl.col("holder_id") == "D").sort("round")
    assert dealer.height >= 3
    held = 0.0
    for row in dealer.iter_rows(named=True):
        held += row["trade_quantity"]
        price = rounds.filter(pl.col("round") == row["round"])["price_start"].item()
        want = dealer_hedge([-0.2, 0.0], [-20.0, -5.0], price / 100.0)
        assert held * price == pytest.approx(want, rel=1e-9)
        assert row["trade_quantity"] < 0  # short gamma sells the fall


def test_profile_inputs_are_checked(tmp_path: Path) -> None:
    root = Path(__file__).parents[1] / "scenarios" / "markets" / "small"
    bundle = tmp_path / "m"
    shutil.copytree(root, bundle)
    mandates = root.parents[2] / "mandates"
    spec = (root / "market.toml").read_text().replace('"../../../mandates"', f'"{mandates}"')
    (bundle / "market.toml").write_text(spec)
    asset = (root / "assets.csv").read_text().splitlines()[1].split(",")[0]
    (bundle / "dealer_gamma.csv").write_text(
        f"asset_id,level,gamma\n{asset},0.0,1e9\nNOPE,0.0,1e9\n{asset},-1.5,1e9\n"
    )
    with pytest.raises(InputError) as err:
        load_market(bundle)
    text = str(err.value)
    assert "dealer_gamma.csv" in text and "row 4" in text and "'level'" in text
    (bundle / "dealer_gamma.csv").write_text(
        f"asset_id,level,gamma\n{asset},0.0,1e9\nNOPE,0.0,1e9\n"
    )
    with pytest.raises(InputError, match=r"row 3, field 'asset_id': asset 'NOPE'"):
        load_market(bundle)
    rows = "".join(f"{asset},{k / 100},1e9\n" for k in range(MAX_KNOTS + 1))
    (bundle / "dealer_gamma.csv").write_text("asset_id,level,gamma\n" + rows)
    with pytest.raises(InputError, match=f"has {MAX_KNOTS + 1} levels"):
        load_market(bundle)


def test_a_scenario_gives_the_profile_on_a_market_without_one() -> None:
    market = estimator.build_market(
        asset_frame([{"asset_id": "X", "price": 100.0}, {"asset_id": "Y", "price": 50.0}]),
        holder_frame([{"holder_id": "D", "cash": 1000.0, "mandate": "d"}]),
        pl.DataFrame({"holder_id": ["D"], "asset_id": ["Y"], "quantity": [1.0]}),
        {"d": DEALERS},
    )
    quiet = estimator.run(_fall(-0.02), market)
    assert quiet.trades.is_empty()
    assert any("do not trade" in w.message for w in quiet.warnings.items)
    profile = {"asset_id": "X", "levels": [0.0], "gammas": [1e9], "kind": "assumption"}
    profile |= {"date": "2026-01-02", "source": "a test"}
    spec = _fall(-0.02).model_copy(update={"dealer_gamma": [GammaProfile(**profile)]})
    assert _dealer_trade(estimator.run(spec, market)) == pytest.approx(2e9, rel=1e-12)
    # the scenario's profile replaces the market's for its underlying
    spec = spec.model_copy(
        update={"dealer_gamma": [GammaProfile(**(profile | {"gammas": [-5e8]}))]}
    )
    assert _dealer_trade(estimator.run(spec, _market([(0.0, 1e9)]))) == pytest.approx(
        -1e9, rel=1e-12
    )
    unknown = spec.model_copy(
        update={"dealer_gamma": [GammaProfile(**(profile | {"asset_id": "NOPE"}))]}
    )
    with pytest.raises(InputError, match=r"dealer_gamma\.0\.asset_id.*unknown asset 'NOPE'"):
        estimator.run(unknown, market)
    with pytest.raises(ValueError, match="one gamma per level"):
        GammaProfile(**(profile | {"levels": [0.0, -0.1]}))
    with pytest.raises(ValueError, match=r"one dealer_gamma profile per underlying.*'X'"):
        Scenario.model_validate({"name": "s", "dealer_gamma": [profile, profile]})


@pytest.mark.parametrize(
    ("name", "start", "first", "last"),
    [
        ("volmageddon_2018", "2018-02-02", "2018-02-02", "2018-02-05"),
        ("volmageddon_2018_path", "2018-01-26", "2018-01-26", "2018-02-16"),
        ("aug_2024", "2024-08-02", "2024-08-02", "2024-08-05"),
        ("aug_2024_path", "2024-07-12", "2024-07-12", "2024-08-16"),
    ],
)
def test_the_episodes_profiles_are_the_published_readings(
    name: str, start: str, first: str, last: str
) -> None:
    # each knot is one close's GEX reading at that close's level relative to the start's
    readings = pl.read_csv(Path(__file__).parents[1] / "scenarios" / "paths" / "dealer_gex.csv")
    spec = estimator.load_scenario(resolve_scenario(name))
    (profile,) = spec.dealer_gamma
    s0 = readings.filter(pl.col("date") == start)["spx_close"].item()
    rows = readings.filter(pl.col("date").is_between(pl.lit(first), pl.lit(last)))
    want = sorted((c / s0 - 1, g) for c, g in rows.select("spx_close", "gex").iter_rows())
    assert profile.asset_id == "ES_FUT"
    assert list(zip(profile.levels, profile.gammas, strict=True)) == want


def test_a_hedger_holding_an_underlying_before_the_scenario_is_an_input_error() -> None:
    # its position there is its hedge: a holding would be sold as if it were one
    market = _market([(0.0, 1e9)])
    held = pl.concat(
        [market.positions, pl.DataFrame({"holder_id": ["D"], "asset_id": ["X"], "quantity": [5.0]})]
    )
    market = dataclasses.replace(market, positions=held)
    with pytest.raises(InputError, match=r"holder 'D' hedges dealers' gamma and holds 'X'"):
        estimator.run(_fall(-0.02), market)


def test_a_profile_nobody_hedges_is_a_warning() -> None:
    market = estimator.build_market(
        asset_frame([{"asset_id": "X", "price": 100.0}]),
        holder_frame([{"holder_id": "A", "cash": -600.0, "mandate": "m"}]),
        pl.DataFrame({"holder_id": ["A"], "asset_id": ["X"], "quantity": [10.0]}),
        {"m": LEVERED},
    )
    profile = GammaProfile(
        asset_id="X", levels=[0.0], gammas=[1e9], kind="assumption", date="d", source="a test"
    )
    ran = estimator.run(_fall(-0.02).model_copy(update={"dealer_gamma": [profile]}), market)
    assert any("nobody trades on them" in w.message for w in ran.warnings.items)
    assert not any(
        "nobody" in w.message for w in estimator.run(_fall(-0.02), market).warnings.items
    )

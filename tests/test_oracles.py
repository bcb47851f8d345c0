"""Hand-computed oracles: each expected number is worked out in the comments, not read back."""

from __future__ import annotations

import math

import polars as pl
import pytest
from oracle_kit import (
    REL,
    asset_frame,
    everywhere,
    future,
    holder,
    holder_frame,
    run_case,
    trade_quantities,
)
from scipy.optimize import brentq

import estimator
from estimator import Mandate, RunResult, Scenario

# --- vol_target --------------------------------------------------------------------------------


def test_vol_target_single_asset_scaled_by_ten_eighteenths() -> None:
    # x = 10 × 100 = 1000, cash 0 → E = 1000. vol 0.09 × 2 = 0.18 → σ/E = 18% > 10%.
    # σ is homogeneous: keep f = 0.10 / 0.18 = 10/18, trade = −(1 − 10/18) × 10 = −4.444…
    result = run_case(
        [{"asset_id": "a", "price": 100.0, "vol": 0.09}],
        [{"holder_id": "h"}],
        [("h", "a", 10.0)],
        [{"kind": "vol_target", "target": 0.1}],
        everywhere(vol_multiplier=2.0),
    )
    h = holder(result)
    assert h["status"] == "forced"
    assert math.isclose(h["vol_before"], 0.18, rel_tol=REL)
    assert math.isclose(h["vol_after"], 0.10, rel_tol=REL)
    q = trade_quantities(result)
    assert math.isclose(q["a"], -(1 - 10 / 18) * 10.0, rel_tol=REL)


def test_vol_target_diagonal_book_scaled_by_ten_eighteenths() -> None:
    # Two uncorrelated assets, x = (600, 800) with vols (0.15·k, 0.1125·k):
    # σ² = (600·0.15)² + (800·0.1125)² = 90² + 90² → σ = 90·√2 ≈ 127.279 (k = 1).
    # Cash 0 → E = 1400. Choose k so σ/E = 0.18: k = 0.18·1400 / (90·√2).
    k = 0.18 * 1400 / (90 * math.sqrt(2))
    result = run_case(
        [
            {"asset_id": "a", "price": 6.0, "vol": 0.15 * k},
            {"asset_id": "b", "price": 8.0, "vol": 0.1125 * k},
        ],
        [{"holder_id": "h"}],
        [("h", "a", 100.0), ("h", "b", 100.0)],
        [{"kind": "vol_target", "target": 0.1}],
        [],
    )
    assert math.isclose(holder(result)["vol_before"], 0.18, rel_tol=1e-12)
    q = trade_quantities(result)
    for asset in ("a", "b"):
        assert math.isclose(q[asset], -(1 - 10 / 18) * 100.0, rel_tol=REL)


# --- margin ------------------------------------------------------------------------------------

# Long 10 shares at P0 = 100, bought with 50% initial margin: loan 500 (cash −500).
# AE(P) = 10P − 500; maintenance 25%: call when AE < 2.5P ⇔ 7.5P < 500 ⇔ P < 66.67 = ⅔·P0.
_MARGIN_ASSET = [{"asset_id": "a", "price": 100.0}]
_MARGIN_RULE = [{"kind": "margin", "maintenance_rate": 0.25, "restore": "maintenance"}]


@pytest.mark.usefixtures("hand_sized")
@pytest.mark.parametrize(("eps", "called"), [(1e-6, False), (-1e-6, True)])
def test_margin_call_threshold_at_two_thirds(eps: float, called: bool) -> None:
    ret = -1 / 3 + eps  # P = 100·(2/3 + eps)
    result = run_case(
        _MARGIN_ASSET,
        [{"holder_id": "h", "cash": -500.0}],
        [("h", "a", 10.0)],
        _MARGIN_RULE,
        everywhere(price_return=ret),
    )
    h = holder(result)
    assert (h["triggered_rules"] == "margin") is called
    assert (result.trades.height > 0) is called
    assert h["status"] == ("forced" if called else "ok")


def test_margin_minimal_cure_sale_back_to_maintenance() -> None:
    # P = 60: X = 600, AE = 600 − 500 = 100, requirement 150 > 100 → called.
    # Sale = X − AE/0.25 = 600 − 400 = 200 (value), i.e. 200/60 shares.
    result = run_case(
        _MARGIN_ASSET,
        [{"holder_id": "h", "cash": -500.0}],
        [("h", "a", 10.0)],
        _MARGIN_RULE,
        everywhere(price_return=-0.4),
    )
    h = holder(result)
    assert h["status"] == "forced"
    t = result.trades.row(0, named=True)
    assert math.isclose(t["trade_value"], -200.0, rel_tol=1e-9)
    assert math.isclose(t["trade_quantity"], -200.0 / 60.0, rel_tol=1e-9)
    assert math.isclose(h["sold"], 200.0, rel_tol=1e-9)
    # after: x = 400, requirement 100 = AE exactly
    assert math.isclose(h["margin.metric_after"], 0.0, abs_tol=1e-9)


def test_margin_cured_entirely_by_reserve() -> None:
    # Need at P = 60: R − AE = 150 − 100 = 50; reserve 80 covers it → 50 drawn, no trade.
    result = run_case(
        _MARGIN_ASSET,
        [{"holder_id": "h", "cash": -500.0, "cash_reserve": 80.0}],
        [("h", "a", 10.0)],
        _MARGIN_RULE,
        everywhere(price_return=-0.4),
    )
    h = holder(result)
    assert h["status"] == "cured"
    assert result.trades.height == 0
    assert math.isclose(h["cure_reserve"], 50.0, rel_tol=1e-9)
    assert h["compliant"]


def test_margin_partial_reserve_reduces_the_sale() -> None:
    # Reserve 20 < need 50: AE becomes 100 + 20 = 120; sale = 600 − 120/0.25 = 120.
    result = run_case(
        _MARGIN_ASSET,
        [{"holder_id": "h", "cash": -500.0, "cash_reserve": 20.0}],
        [("h", "a", 10.0)],
        _MARGIN_RULE,
        everywhere(price_return=-0.4),
    )
    h = holder(result)
    assert h["status"] == "forced"
    assert math.isclose(h["cure_reserve"], 20.0, rel_tol=1e-12)
    t = result.trades.row(0, named=True)
    assert math.isclose(t["trade_value"], -120.0, rel_tol=1e-9)
    # cash: −500 + 20 (reserve) + 120 (proceeds) = −360
    assert math.isclose(h["cash_after"], -360.0, rel_tol=1e-9)


# --- leverage ----------------------------------------------------------------------------------


def test_leverage_threshold_sale_is_a_minus_target_e() -> None:
    # Two longs: 10 × 100 and 5 × 200 → X = 2000, cash −1000 → E = 1000, A = 2000 (L = 2).
    # −20%: X = 1600, E = 600, A = 1600, L = 2.67 > max 2.5 → restore to 2:
    # sale = A − 2·E = 1600 − 1200 = 400; pro-rata fraction 400/1600 = 1/4 of each position.
    result = run_case(
        [{"asset_id": "a", "price": 100.0}, {"asset_id": "b", "price": 200.0}],
        [{"holder_id": "h", "cash": -1000.0}],
        [("h", "a", 10.0), ("h", "b", 5.0)],
        [{"kind": "leverage", "max": 2.5, "target": 2.0}],
        everywhere(price_return=-0.2),
    )
    h = holder(result)
    assert h["status"] == "forced"
    assert math.isclose(h["leverage_before"], 1600 / 600, rel_tol=1e-12)
    assert math.isclose(h["sold"], 400.0, rel_tol=1e-9)
    q = trade_quantities(result)
    assert math.isclose(q["a"], -2.5, rel_tol=1e-9)
    assert math.isclose(q["b"], -1.25, rel_tol=1e-9)
    assert math.isclose(h["leverage_after"], 2.0, rel_tol=1e-9)


@pytest.mark.parametrize(
    ("ret", "expected_trade"),
    [
        # 200 × 1 on cash −100: E = 100, A = 200, L0 = 2.
        # −20%: x = 160, E = 60, A = 160; target A = 120 → sell 40.
        (-0.2, -40.0),
        # +20%: x = 240, E = 140, A = 240; target A = 280 → buy 40 (borrowing more).
        (0.2, 40.0),
    ],
)
def test_leverage_targeting_returns_to_two_times(ret: float, expected_trade: float) -> None:
    result = run_case(
        [{"asset_id": "a", "price": 1.0}],
        [{"holder_id": "h", "cash": -100.0}],
        [("h", "a", 200.0)],
        [{"kind": "leverage", "mode": "targeting"}],
        everywhere(price_return=ret),
    )
    h = holder(result)
    assert math.isclose(h["leverage_pre"], 2.0, rel_tol=1e-12)
    assert h["status"] == "forced"
    t = result.trades.row(0, named=True)
    assert math.isclose(t["trade_value"], expected_trade, rel_tol=1e-9)
    assert math.isclose(t["trade_quantity"], expected_trade / (1 + ret), rel_tol=1e-9)
    assert math.isclose(h["leverage_after"], 2.0, rel_tol=1e-9)


# --- insolvency --------------------------------------------------------------------------------


@pytest.mark.parametrize("execution", ["pro_rata", "min_cost"])
def test_insolvent_holder_sells_everything(execution: str) -> None:
    # 10 × 100 + 4 × 50 = 1200 on cash −1100 → E = 100. −20%: X = 960, E = −140.
    result = run_case(
        [{"asset_id": "a", "price": 100.0}, {"asset_id": "b", "price": 50.0}],
        [{"holder_id": "h", "cash": -1100.0}],
        [("h", "a", 10.0), ("h", "b", 4.0)],
        [{"kind": "leverage", "max": 20.0}],
        everywhere(price_return=-0.2),
        execution=execution,
    )
    h = holder(result)
    assert h["status"] == "insolvent"
    assert math.isclose(h["shortfall"], 140.0, rel_tol=1e-9)
    assert math.isclose(h["equity_before"], -140.0, rel_tol=1e-9)
    assert h["leverage_before"] is None
    assert h["leverage_after"] is None
    q = trade_quantities(result)
    assert q == pytest.approx({"a": -10.0, "b": -4.0}, rel=1e-12)


# --- futures and bonds -------------------------------------------------------------------------


def test_future_loss_settles_to_cash_and_has_no_equity_value() -> None:
    # 2 contracts × mult 50 at 4000, cash 100 000. −10% → P = 3600.
    # Variation margin = 2 × 50 × (3600 − 4000) = −40 000 → cash 60 000.
    # AE = cash only (future value 0) = 60 000; exposure 2·50·3600 = 360 000;
    # A = 360 000 + 60 000 = 420 000 → leverage 7.
    result = run_case(
        [
            {
                "asset_id": "fut",
                "asset_class": "equity_future",
                "instrument": "future",
                "price": 4000.0,
                "multiplier": 50.0,
            }
        ],
        [{"holder_id": "h", "cash": 100_000.0}],
        [("h", "fut", 2.0)],
        [{"kind": "leverage", "max": 100.0}],
        everywhere(price_return=-0.1),
    )
    h = holder(result)
    assert h["status"] == "ok"
    assert math.isclose(h["cash_before"], 60_000.0, rel_tol=1e-12)
    assert math.isclose(h["account_equity_before"], 60_000.0, rel_tol=1e-12)
    assert math.isclose(h["equity_before"], 60_000.0, rel_tol=1e-12)
    assert math.isclose(h["gross_assets_before"], 420_000.0, rel_tol=1e-12)
    assert math.isclose(h["leverage_before"], 7.0, rel_tol=1e-12)
    # pre-shock: AE = 100 000, A = 400 000 + 100 000 → L0 = 5
    assert math.isclose(h["leverage_pre"], 5.0, rel_tol=1e-12)


def test_future_trade_moves_no_cash() -> None:
    # Same future, cash 100 000, exposure leverage max 5 / target 4 after −10%: E = 60 000,
    # G = 360 000: 6 > 5; 360 000·f ≤ 4·60 000 → f = 2/3: sell 2/3 of a contract, cash unchanged.
    # On the balance sheet the future counts 0: A = C = 60 000, leverage 1, nothing to do.
    def run(measure: str) -> RunResult:
        return run_case(
            [future("fut", 4000.0, 50.0)],
            [{"holder_id": "h", "cash": 100_000.0}],
            [("h", "fut", 2.0)],
            [{"kind": "leverage", "max": 5.0, "target": 4.0, "measure": measure}],
            everywhere(price_return=-0.1),
        )

    exposure = run("exposure")
    h = holder(exposure)
    assert h["status"] == "forced"
    assert trade_quantities(exposure)["fut"] == pytest.approx(-2 / 3, rel=1e-9)
    assert math.isclose(h["cash_after"], 60_000.0, rel_tol=1e-12)
    sheet = holder(run("balance_sheet"))
    assert sheet["status"] == "ok"
    assert math.isclose(sheet["leverage.metric_before"], 1.0, rel_tol=1e-12)


def _cash_flows(coupon: float, years: int, f: int) -> list[tuple[float, float]]:
    """(time in periods, amount per unit face) of a bullet paying ``coupon`` a year."""
    n = years * f
    return [(t, coupon / f + (1.0 if t == n else 0.0)) for t in range(1, n + 1)]


def _sum_at(flows: list[tuple[float, float]], y: float, f: int, k: int = 0) -> float:
    """Σ CF·t(t+1)…(t+k−1)·(1 + y/f)^−t, the k-th moment of the discounted flows, by hand."""
    total = []
    for t, cf in flows:
        weight = math.prod(t + j for j in range(k))
        total.append(cf * weight * (1 + y / f) ** -t)
    return math.fsum(total)


def test_yield_shock_reprices_a_bond_as_the_bullet_of_its_duration_and_convexity() -> None:
    # A 10-year 4% semi-annual bond at 4% (par): D = Σt·PV/(f(1 + y/f)·B), C = Σt(t+1)·PV/(f²
    # (1 + y/f)²·B) from its flows; with those, +100bp must price it at B(5%)/B(4%) of 100.
    flows = _cash_flows(0.04, 10, 2)
    b = _sum_at(flows, 0.04, 2)
    duration = _sum_at(flows, 0.04, 2, 1) / (2 * 1.02 * b)
    convexity = _sum_at(flows, 0.04, 2, 2) / (4 * 1.02**2 * b)
    assert b == pytest.approx(1.0, rel=1e-12)  # at par
    assets = asset_frame(
        [
            {
                "asset_id": "bond",
                "asset_class": "govt_bond",
                "price": 100.0,
                "duration": duration,
                "convexity": convexity,
                "yield": 0.04,
                "coupon_frequency": 2,
            },
            {"asset_id": "eq", "price": 50.0},
        ]
    )
    holders = holder_frame([{"holder_id": "h"}])
    pos = pl.DataFrame({"holder_id": ["h"], "asset_id": ["bond"], "quantity": [10.0]})
    mandate = Mandate(name="m", rules=[{"kind": "leverage", "max": 10.0}])
    market = estimator.build_market(assets, holders, pos, {"m": mandate})
    scenario = Scenario(
        name="rates",
        shocks=[{"select": {"asset_classes": ["govt_bond"]}, "yield_change_bp": 100.0}],
    )
    shocked = estimator.apply_scenario(market.assets, scenario)
    prices = dict(zip(shocked["asset_id"], shocked["price"], strict=True))
    assert math.isclose(prices["bond"], 100 * _sum_at(flows, 0.05, 2) / b, rel_tol=1e-10)
    assert prices["eq"] == 50.0
    assert shocked.filter(pl.col("asset_id") == "bond")["yield"].item() == pytest.approx(0.05)


def test_leverage_targeting_without_shock_does_not_trade() -> None:
    # A future (value 0 in equity): A = 56.96875·50·138.7221… + cash, E = cash, L0 = A/E.
    # Nothing moves, so A = L0·E exactly in real numbers: no trigger, no trade.
    result = run_case(
        [future("f", 138.72210046851345, 50.0)],
        [{"holder_id": "h", "cash": 592711.8495799218}],
        [("h", "f", 56.96875)],
        [{"kind": "leverage", "mode": "targeting"}],
        [],
    )
    assert holder(result)["status"] == "ok"
    assert result.trades.height == 0


# --- min_cost ----------------------------------------------------------------------------------


def test_min_cost_single_asset_is_the_closed_form_sale() -> None:
    # One position: the only trades that restore σ ≤ τE are sales of at least (1 − 10/18)·x,
    # and the cheapest is exactly that, whatever the cost coefficients.
    result = run_case(
        [{"asset_id": "a", "price": 100.0, "vol": 0.09, "adv": 5e3, "half_spread_bps": 15.0}],
        [{"holder_id": "h"}],
        [("h", "a", 10.0)],
        [{"kind": "vol_target", "target": 0.1}],
        everywhere(vol_multiplier=2.0),
        execution="min_cost",
    )
    h = holder(result)
    assert (h["status"], h["solver_status"]) == ("forced", "optimal")
    assert h["binding_constraints"] == "vol_target.risk<=bound"
    assert math.isclose(trade_quantities(result)["a"], -(1 - 10 / 18) * 10.0, rel_tol=1e-7)


def test_min_cost_two_assets_match_an_independent_kkt_solution() -> None:
    # Uncorrelated longs x = (10 000, 15 000), vols s = (0.3, 0.2), cash 0: E = 25 000,
    # σ = √(3000² + 3000²) ≈ 4243 = 17% of E; target 10% → B = 2500. Selling w ≥ 0 costs
    # Σ h_i·w_i + β_i·w_i^{3/2} with h = bps/10⁴, β = (s/√252)/√ADV. Stationarity of the
    # Lagrangian on the binding risk constraint gives, per asset,
    #     h_i + 1.5·β_i·√w_i = λ·s_i²·(x_i − w_i)/B,
    # solved here by nested root finding (w_i(λ) per asset, then λ such that σ(x − w) = B).
    x = [10_000.0, 15_000.0]
    s = [0.3, 0.2]
    adv = [1e6, 5e5]
    bps = [10.0, 2.0]
    h = [b / 1e4 for b in bps]
    beta = [si / math.sqrt(252) / math.sqrt(a) for si, a in zip(s, adv, strict=True)]
    bound = 0.1 * sum(x)

    def sale(i: int, lam: float) -> float:
        def gap(w: float) -> float:
            return h[i] + 1.5 * beta[i] * math.sqrt(w) - lam * s[i] ** 2 * (x[i] - w) / bound

        return 0.0 if gap(0.0) >= 0 else brentq(gap, 0.0, x[i], xtol=1e-12, rtol=1e-15)

    def risk_gap(lam: float) -> float:
        return math.hypot(*(s[i] * (x[i] - sale(i, lam)) for i in range(2))) - bound

    lam = brentq(risk_gap, 1e-9, 100.0, xtol=1e-15, rtol=1e-15)
    expected = [sale(i, lam) for i in range(2)]
    assert all(0 < w < xi for w, xi in zip(expected, x, strict=True))  # both assets trade

    result = run_case(
        [
            {"asset_id": "a", "price": 100.0, "vol": s[0], "adv": adv[0], "half_spread_bps": 10},
            {"asset_id": "b", "price": 50.0, "vol": s[1], "adv": adv[1], "half_spread_bps": 2},
        ],
        [{"holder_id": "h"}],
        [("h", "a", 100.0), ("h", "b", 300.0)],
        [{"kind": "vol_target", "target": 0.1}],
        [],
        execution="min_cost",
    )
    assert holder(result)["binding_constraints"] == "vol_target.risk<=bound"
    trades = result.trades.filter(pl.col("holder_id") == "h")
    got = dict(zip(trades["asset_id"], trades["trade_value"], strict=True))
    for asset, w in zip("ab", expected, strict=True):
        assert math.isclose(-got[asset], w, rel_tol=1e-6, abs_tol=1e-7 * sum(x)), (asset, w)

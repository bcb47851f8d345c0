"""Vintages of the parameter file, worked by hand on a small file."""

from __future__ import annotations

import pytest

from estimator.generator.vintages import latest_at, resolve

SOURCE = {"kind": "estimate", "source": "a hand-made source"}
PARAMS = {
    "vintages": ["2017-12", "2019-12", "2020-12", "2024-06"],
    "indices": {
        "equity": {
            v: {"value": x, "date": v, **SOURCE}
            for v, x in [
                ("2017-12", 100.0),
                ("2019-12", 120.0),
                ("2020-12", 150.0),
                ("2024-06", 200.0),
            ]
        }
    },
    "seed": 1,
    "equities": {
        "market_cap": {
            "scale": "equity",
            "2019-12": {"value": 30.0, "date": "2019-12-31", **SOURCE},
            "2024-06": {"value": 50.0, "date": "2024-06-30", **SOURCE},
        },
        "daily_value": {"2020-12": {"value": 4.0, "date": "2020-12-31", **SOURCE}},
    },
    "holders": [
        {
            "type": "fund",
            "count": 3,
            "floor_bp": {"2017-12": 80.0, "2020-12": 250.0},
            "total_assets": {"value": 9.0, "date": "2021-12-31", **SOURCE},
        },
        {
            "type": "family_office",
            "count": {"2017-12": 0, "2020-12": 5, "2024-06": 0},
            "total_assets": {"2020-12": {"value": 160.0, "date": "2021-03-22", **SOURCE}},
        },
    ],
}


def _figures(vintage: str) -> dict:
    _, figures = resolve(PARAMS, vintage)
    return {f.path: f for f in figures}


def test_a_given_vintage_is_taken_as_it_is() -> None:
    resolved, _ = resolve(PARAMS, "2019-12")
    assert resolved["equities"]["market_cap"]["value"] == 30.0
    assert resolved["equities"]["market_cap"]["kind"] == "estimate"
    assert resolved["vintage"] == "2019-12" and "indices" not in resolved


def test_a_missing_vintage_is_carried_from_the_nearest_and_scaled_by_its_index() -> None:
    # 2020-12 is 12 months from 2019-12 and 42 from 2024-06: 30 × 150/120 = 37.5
    cap = _figures("2020-12")["equities.market_cap"]
    assert cap.value == pytest.approx(37.5, rel=1e-15)
    assert cap.kind == "assumption: scaled from 2019-12"
    assert "× 1.2500" in cap.source and "a hand-made source" in cap.source
    # 2017-12 is 24 months before 2019-12: 30 × 100/120 = 25
    assert _figures("2017-12")["equities.market_cap"].value == pytest.approx(25.0, rel=1e-15)
    # no index: carried flat
    flat = _figures("2024-06")["equities.daily_value"]
    assert (flat.value, flat.kind) == (4.0, "assumption: scaled from 2020-12")


def test_a_tie_is_carried_from_the_earlier_vintage() -> None:
    params = PARAMS | {"vintages": [*PARAMS["vintages"], "2022-03"]}
    params["indices"] = {"equity": PARAMS["indices"]["equity"] | {"2022-03": {
        "value": 160.0, "date": "2022-03", **SOURCE}}}  # fmt: skip
    # 2022-03 is 27 months after 2019-12 and 27 before 2024-06: from 2019-12, 30 × 160/120
    cap = dict(resolve(params, "2022-03")[0]["equities"]["market_cap"])
    assert cap["value"] == pytest.approx(40.0, rel=1e-15)
    assert cap["kind"] == "assumption: scaled from 2019-12"


def test_terms_in_force_and_holder_types_that_did_not_exist() -> None:
    resolved, _ = resolve(PARAMS, "2019-12")
    types = [h["type"] for h in resolved["holders"]]
    assert types == ["fund"]  # the family office has no holders before 2020-12
    assert resolved["holders"][0]["floor_bp"] == 80.0
    assert "holders[family_office].total_assets" not in _figures("2019-12")
    later, _ = resolve(PARAMS, "2020-12")
    assert [h["type"] for h in later["holders"]] == ["fund", "family_office"]
    assert later["holders"][0]["floor_bp"] == 250.0 and later["holders"][1]["count"] == 5
    assert [h["type"] for h in resolve(PARAMS, "2024-06")[0]["holders"]] == ["fund"]


def test_which_vintage_a_date_runs_on() -> None:
    vintages = PARAMS["vintages"]
    assert latest_at(vintages, "2020-03-16") == "2019-12"
    assert latest_at(vintages, "2020-12-18") == "2019-12"  # 2020-12 describes the month's end
    assert latest_at(vintages, "2021-01-01") == "2020-12"
    assert latest_at(vintages, "2030-01-01") == "2024-06"
    assert latest_at(vintages, "2000-01-01") == "2017-12"  # none before: the earliest


def test_bad_vintages_are_errors() -> None:
    with pytest.raises(ValueError, match="no vintage '2018-06'"):
        resolve(PARAMS, "2018-06")
    broken = PARAMS | {"indices": {}}
    with pytest.raises(ValueError, match="index 'equity' has no value"):
        resolve(broken, "2020-12")

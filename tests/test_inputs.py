"""Bad input: a clear error naming file, row and field; exit code 2; no report written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from estimator.cli import app

runner = CliRunner()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def _run(bundle: Path, *extra: str) -> tuple[int, str, Path]:
    out = bundle.parent / "out"
    result = runner.invoke(
        app, ["run", str(bundle.parent / "calm.toml"), "--out", str(out), *extra]
    )
    return result.exit_code, result.output, out


def test_valid_bundle_runs(bundle: Path) -> None:
    code, output, out = _run(bundle)
    assert code == 0, output
    assert sorted(p.name for p in out.iterdir()) == [
        "assets.csv",
        "cures.csv",
        "flows.csv",
        "holders.csv",
        "manifest.json",
        "summary.csv",
        "trades.csv",
    ]


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        # misspelled column
        (
            "assets.csv",
            "asset_id,asset_class,instrument,price",
            "asset_id,asset_class,instrument,prce",
            ["assets.csv", "field 'prce'", "did you mean 'price'"],
        ),
        # missing required column
        (
            "positions.csv",
            "holder_id,asset_id,quantity",
            "holder_id,asset_id,qty",
            ["positions.csv", "field 'quantity'", "missing"],
        ),
        # wrong type
        (
            "assets.csv",
            "EQ_MEGA1,equity,cash,420.0",
            "EQ_MEGA1,equity,cash,abc",
            ["assets.csv", "row 2", "field 'price'", "expected a number, got 'abc'"],
        ),
        # NaN in a required number
        (
            "assets.csv",
            "EQ_MEGA1,equity,cash,420.0",
            "EQ_MEGA1,equity,cash,NaN",
            ["row 2", "field 'price'", "NaN"],
        ),
        # null in a required number
        (
            "holders.csv",
            "VC_FUND_A,vol_control_fund,vol_control,2000000000.0",
            "VC_FUND_A,vol_control_fund,vol_control,",
            ["holders.csv", "row 2", "field 'cash'", "missing value"],
        ),
        # price ≤ 0
        (
            "assets.csv",
            "EQ_MEGA1,equity,cash,420.0",
            "EQ_MEGA1,equity,cash,0",
            ["row 2", "field 'price'", "> 0"],
        ),
        # ADV ≤ 0
        ("assets.csv", "420.0,,9000000000.0", "420.0,,-5", ["row 2", "field 'adv'", "> 0"]),
        # duplicate asset id
        (
            "assets.csv",
            "EQ_MEGA2,equity",
            "EQ_MEGA1,equity",
            ["assets.csv", "field 'asset_id'", "duplicate key"],
        ),
        # duplicate holder + asset
        (
            "positions.csv",
            "VC_FUND_A,TY_FUT",
            "VC_FUND_A,ES_FUT",
            ["positions.csv", "duplicate key", "holder_id + asset_id"],
        ),
        # unknown asset in positions
        (
            "positions.csv",
            "VC_FUND_A,TY_FUT",
            "VC_FUND_A,NOPE",
            ["positions.csv", "row 3", "field 'asset_id'", "unknown asset 'NOPE'"],
        ),
        # unknown holder in positions
        (
            "positions.csv",
            "VC_FUND_A,TY_FUT",
            "GHOST,TY_FUT",
            ["positions.csv", "row 3", "field 'holder_id'", "unknown holder 'GHOST'"],
        ),
        # unknown mandate
        (
            "holders.csv",
            "vol_control_fund,vol_control,2000000000.0",
            "vol_control_fund,nope,2000000000.0",
            ["holders.csv", "row 2", "field 'mandate'", "unknown mandate 'nope'"],
        ),
        # unknown instrument
        (
            "assets.csv",
            "EQ_MEGA1,equity,cash",
            "EQ_MEGA1,equity,swap",
            ["row 2", "field 'instrument'", "cash, future"],
        ),
        # index weight naming an unknown asset
        (
            "index_weights.csv",
            "LARGE_CAP,EQ_MID1,",
            "LARGE_CAP,NOPE,",
            ["index_weights.csv", "row 10", "field 'asset_id'", "unknown asset 'NOPE'"],
        ),
        # negative index weight
        (
            "index_weights.csv",
            "LARGE_CAP,EQ_MEGA1,0.25",
            "LARGE_CAP,EQ_MEGA1,-0.25",
            ["index_weights.csv", "row 2", "field 'weight'", "≥ 0"],
        ),
    ],
)
def test_bad_table_cell(bundle: Path, file: str, old: str, new: str, expected: list[str]) -> None:
    _edit(bundle / file, old, new)
    code, output, out = _run(bundle)
    assert code == 2, output
    flat = " ".join(output.split())
    for fragment in expected:
        assert fragment in flat, f"{fragment!r} missing from:\n{output}"
    assert not out.exists()


def test_empty_file(bundle: Path) -> None:
    (bundle / "holders.csv").write_text("")
    code, output, out = _run(bundle)
    assert code == 2
    assert "holders.csv" in output and "empty" in output
    assert not out.exists()


def test_header_only_file(bundle: Path) -> None:
    (bundle / "positions.csv").write_text("holder_id,asset_id,quantity\n")
    code, output, _ = _run(bundle)
    assert code == 2
    assert "no data rows" in output


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('kind = "vol_target"', 'kind = "vol_targett"', ["vol_control.toml", "rules.0"]),
        (
            "target = 0.10       # τ, annualised",
            "target = 0.10\ncolour = 1",
            ["vol_control.toml", "colour", "Extra inputs"],
        ),
        (
            "tolerance = 0.05    # acts beyond 10.5%",
            "tolerance = -0.05",
            ["vol_control.toml", "tolerance", "greater than or equal to 0"],
        ),
        (
            "tolerance = 0.05    # acts beyond 10.5%",
            "tolerance = 0.05\ntolerance = 0.06",
            ["vol_control.toml", "not valid TOML"],
        ),
    ],
)
def test_bad_mandate(bundle: Path, old: str, new: str, expected: list[str]) -> None:
    _edit(bundle.parent / "mandates" / "vol_control.toml", old, new)
    code, output, out = _run(bundle)
    assert code == 2, output
    flat = " ".join(output.split())
    for fragment in expected:
        assert fragment in flat, f"{fragment!r} missing from:\n{output}"
    assert not out.exists()


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        (
            "ldi_pooled.toml",
            "limit = 0.5 ",
            "limit = -0.5 ",
            ["ldi_pooled.toml", "capital_call.limit", "greater than 0"],
        ),
        (
            "ldi_pooled.toml",
            'cure = ["capital_call"]',
            "cure = []",
            ["ldi_pooled.toml", "capital_call in `cure`"],
        ),
        (
            "ldi_pooled.toml",
            "restore_bp = 150.0",
            "restore_bp = 50.0",
            ["ldi_pooled.toml", "restore_bp", "at or above `floor_bp`"],
        ),
        (
            "open_end_bond_fund.toml",
            "share = 0.18 ",
            "share = 1.5 ",
            ["open_end_bond_fund.toml", "rules.1.liquidity_buffer.share", "less than 1"],
        ),
        (
            "open_end_bond_fund.toml",
            'kind = "redemption"',
            'kind = "redemption"\nsale = "trickle"',
            ["open_end_bond_fund.toml", "sale", "'slice' or 'waterfall'"],
        ),
        (
            "pension_db.toml",
            "derisked_weights = { equity = 0.3, govt_bond = 0.7 }",
            "derisked_weights = { equity = 0.5, govt_bond = 0.7 }",
            ["pension_db.toml", "derisked_weights sum to 1.2"],
        ),
    ],
)
def test_bad_new_rules_name_file_and_field(
    bundle: Path, file: str, old: str, new: str, expected: list[str]
) -> None:
    _edit(bundle.parent / "mandates" / file, old, new)
    code, output, out = _run(bundle)
    assert code == 2, output
    flat = " ".join(output.split())
    for fragment in expected:
        assert fragment in flat, f"{fragment!r} missing from:\n{output}"
    assert not out.exists()


def test_negative_liabilities_name_the_row(bundle: Path) -> None:
    _edit(bundle / "holders.csv", "4750000000.0,16.0", "-4750000000.0,16.0")
    code, output, out = _run(bundle)
    assert code == 2, output
    flat = " ".join(output.split())
    for fragment in ("holders.csv", "row 18", "field 'liabilities'", "≥ 0"):
        assert fragment in flat, f"{fragment!r} missing from:\n{output}"
    assert not out.exists()


def test_index_tracking_an_unknown_index(bundle: Path) -> None:
    _edit(bundle.parent / "mandates" / "index_fund.toml", '"LARGE_CAP"', '"SMALL_CAP"')
    code, output, out = _run(bundle)
    assert code == 2, output
    flat = " ".join(output.split())
    for fragment in ("holders.csv", "field 'mandate'", "tracks index 'SMALL_CAP'"):
        assert fragment in flat, f"{fragment!r} missing from:\n{output}"
    assert not out.exists()


def test_index_weights_not_summing_to_one_warn_and_are_normalised(bundle: Path) -> None:
    _edit(bundle / "index_weights.csv", "LARGE_CAP,EQ_MEGA1,0.25", "LARGE_CAP,EQ_MEGA1,0.35")
    code, output, _ = _run(bundle)
    assert code == 0, output
    flat = " ".join(output.split())
    assert "index 'LARGE_CAP': weights sum to 1.1, not 1; normalised to 1" in flat


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ('asset_id = "EQ_SMALL1"\naction = "delete"', "'EQ_SMALL1' is not a member"),
        ('asset_id = "EQ_MID2"\naction = "add"', "add needs the new weight"),
    ],
)
def test_bad_index_change_in_scenario(bundle: Path, change: str, fragment: str) -> None:
    (bundle.parent / "calm.toml").write_text(
        f'name = "calm"\nmarket = "market"\n[[index_changes]]\nindex_id = "LARGE_CAP"\n{change}\n'
    )
    code, output, out = _run(bundle)
    assert code == 2, output
    flat = " ".join(output.split())
    for expected in ("calm.toml", "index_changes.0", fragment):
        assert expected in flat, f"{expected!r} missing from:\n{output}"
    assert not out.exists()


def test_selector_matching_nothing_warns(bundle: Path) -> None:
    (bundle.parent / "calm.toml").write_text(
        'name = "calm"\nmarket = "market"\n'
        '[[shocks]]\nselect = { asset_ids = ["NOPE"] }\nprice_return = -0.1\n'
    )
    code, output, _ = _run(bundle)
    assert code == 0
    assert "warning" in output and "matches no asset" in output


def test_unknown_scenario_key(bundle: Path) -> None:
    (bundle.parent / "calm.toml").write_text('name = "calm"\nmarket = "market"\nshock = []\n')
    code, output, _ = _run(bundle)
    assert code == 2
    assert "calm.toml" in output and "shock" in output


def test_failed_run_keeps_previous_report(bundle: Path) -> None:
    code, _, out = _run(bundle)
    assert code == 0
    before = (out / "holders.csv").read_text()
    _edit(bundle / "assets.csv", "EQ_MEGA1,equity,cash,420.0", "EQ_MEGA1,equity,cash,abc")
    code, _, _ = _run(bundle)
    assert code == 2
    assert (out / "holders.csv").read_text() == before
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []

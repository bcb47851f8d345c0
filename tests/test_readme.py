"""The README's examples run, and its data dictionary matches the column contracts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from estimator import contracts

README = Path(__file__).resolve().parents[1] / "README.md"

TABLES = {
    "assets": contracts.Assets,
    "holders": contracts.Holders,
    "positions": contracts.Positions,
    "index_weights": contracts.IndexWeights,
    "factor_loadings": contracts.FactorLoadings,
    "factor_covariance": contracts.FactorCovariance,
    "specific_risk": contracts.SpecificRisk,
    "covariance": contracts.Covariance,
}


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def test_readme_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 2, "expected the library examples in README.md"
    monkeypatch.chdir(tmp_path)  # examples that write files write here
    namespace: dict = {"__name__": "__readme__"}
    for i, block in enumerate(blocks):
        code = compile(block, f"README.md python block {i + 1}", "exec")
        exec(code, namespace)


def _section(text: str, table: str) -> str:
    match = re.search(rf"^#### `{table}`\n(.*?)(?=^#|\Z)", text, flags=re.DOTALL | re.MULTILINE)
    assert match, f"README.md has no data dictionary section for {table}"
    return match.group(1)


@pytest.mark.parametrize("table", sorted(TABLES))
def test_readme_data_dictionary_matches_contracts(table: str) -> None:
    section = _section(README.read_text(encoding="utf-8"), table)
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells
    expected = contracts.columns(TABLES[table])
    assert list(rows) == list(expected)
    for name, col in expected.items():
        _, kind, required, *_ = rows[name]
        assert kind == ("number" if col.dtype.is_numeric() else "text"), name
        assert required.startswith("no" if col.nullable else "yes"), name
        assert ("(key)" in required) == bool(col.primary_key), name

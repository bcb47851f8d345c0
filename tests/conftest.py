"""Hypothesis profiles: ``ci`` (the default) replays a derandomised set of examples, so every
run of ``make test`` checks the same cases; ``fuzz`` (``make fuzz``) draws fresh ones.

Hypothesis also draws literals found in the project's modules loaded so far; every module of
``estimator`` and ``rules`` is imported here, so that the examples do not depend on which tests
ran before in the same process (pytest-xdist spreads them differently from run to run)."""

from __future__ import annotations

import importlib
import os
import pkgutil
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import estimator
import rules
from estimator.paths import mandates_dir, markets_dir

for _package in (estimator, rules):
    for _module in pkgutil.walk_packages(_package.__path__, f"{_package.__name__}."):
        if not _module.name.endswith(".__main__"):  # a command, run when imported
            importlib.import_module(_module.name)

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A writable copy of the small market with its mandates beside it, and ``calm.toml`` (a
    scenario without shocks on it) next to the market folder."""
    market = tmp_path / "market"
    shutil.copytree(markets_dir() / "small", market)
    shutil.copytree(mandates_dir(), tmp_path / "mandates")
    toml = market / "market.toml"
    toml.write_text(toml.read_text().replace('"../../../mandates"', '"../mandates"'))
    (tmp_path / "calm.toml").write_text('name = "calm"\nmarket = "market"\n')
    return market


@pytest.fixture
def hand_sized(monkeypatch: pytest.MonkeyPatch) -> None:
    """Books of a few hundred currency units, worked by hand: there a trade of less than one
    unit is part of the arithmetic, not the dust it would be in a real book (``rounds.dust``),
    so only the dust relative to a holder's size is set aside."""
    from estimator.rounds import contract  # noqa: PLC0415

    monkeypatch.setattr(contract, "DUST_VALUE", 0.0)

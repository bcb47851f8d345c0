"""Generate the census market in ``scenarios/markets/census`` from its ``parameters.toml``.

A thin caller of :func:`estimator.generator.generate` (the recipes and their math are
documented there). Run ``python tools/build_census_market.py`` (``--out DIR`` writes
elsewhere, e.g. to check that the shipped bundle is up to date).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from estimator.generator import generate, load_parameters, parameters_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=parameters_path().parent, help="bundle folder to write"
    )
    args = parser.parse_args()
    generate(load_parameters()).write(args.out)


if __name__ == "__main__":
    main()

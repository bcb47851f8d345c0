"""Generate the census market's vintages in ``scenarios/markets/census/<vintage>/`` from its
``parameters.toml``.

A thin caller of :func:`estimator.generator.generate` (the recipes, the vintages and their math
are documented there). Run ``python tools/build_census_market.py`` (``--out DIR`` writes the
vintage folders elsewhere, e.g. to check that the shipped bundles are up to date).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from estimator.generator import generate, load_parameters, parameters_path, vintages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=parameters_path().parent, help="folder of the vintages"
    )
    args = parser.parse_args()
    params = load_parameters()
    for vintage in vintages(params):
        generate(params, vintage=vintage).write(args.out / vintage)


if __name__ == "__main__":
    main()

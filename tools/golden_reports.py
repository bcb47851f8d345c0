"""Record, then check, every shipped scenario's reports: byte for byte while the machine is
reshaped.

``python tools/golden_reports.py record DIR`` runs every shipped scenario under its mandates'
own execution and under both execution styles, writes the reports and keeps their SHA-256 in
``DIR/golden.json``; ``python tools/golden_reports.py check DIR`` runs them again and lists every
report whose bytes differ (exit 1), or says they are all the same (exit 0). The manifest's
timings, its hash of the lock file and package versions are left out of its hash: they change
from run to run, not with the results.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import estimator
from estimator.html import render
from estimator.paths import shipped_scenarios

#: Execution styles each scenario runs under: its mandates' own, then each style for all.
STYLES = (None, "pro_rata", "min_cost")
#: What a trade is matched by between two runs' reports (those of its columns a report has; a
#: report by day sums each day's rounds).
KEYS = ("round", "day", "holder_id", "asset_id")
#: Manifest entries that vary between identical runs.
VOLATILE = ("timings_seconds", "lock", "versions")


def _digest(path: Path) -> str:
    if path.name == "manifest.json":
        manifest = json.loads(path.read_text(encoding="utf-8"))
        kept = {k: v for k, v in manifest.items() if k not in VOLATILE}
        return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reports(out: Path) -> dict[str, str]:
    """Run every shipped scenario under every style into ``out``: report path → digest."""
    digests = {}
    for name in shipped_scenarios():
        for style in STYLES:
            folder = out / name / (style or "own")
            result = estimator.run(name, execution=style)
            result.write(folder, pages={"report.html": render(result)})
            for path in sorted(folder.iterdir()):
                digests[str(path.relative_to(out))] = _digest(path)
            print(f"{name} ({style or 'own'})", file=sys.stderr)
    return digests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["record", "check"])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    golden = args.folder / "golden.json"
    if args.action == "record":
        args.folder.mkdir(parents=True, exist_ok=True)
        digests = reports(args.folder / "reports")
        golden.write_text(json.dumps(digests, indent=1, sort_keys=True), encoding="utf-8")
        print(f"recorded {len(digests)} reports in {golden}")
        return 0
    kept = json.loads(golden.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        now = reports(Path(tmp) / "reports")
        changed = sorted(k for k in kept.keys() | now.keys() if kept.get(k) != now.get(k))
        for path in changed:
            print(f"differs: {path}")
        moved = {str(Path(p).parent) for p in changed if Path(p).name == "trades.csv"}
        for folder in sorted(moved):
            before = args.folder / "reports" / folder
            if not (before / "trades.csv").exists():
                print(f"{folder}: new, not recorded")
                continue
            worst = trade_change(before, Path(tmp) / "reports" / folder)
            print(f"{folder}: trades moved by up to {worst:.2e} of their holder's gross assets")
    same = sum(now.get(k) == v for k, v in kept.items())
    new = len(now.keys() - kept.keys())
    print(f"{same} of {len(kept)} recorded reports the same" + (f"; {new} new" if new else ""))
    return 1 if changed else 0


def trade_change(before: Path, after: Path) -> float:
    """The largest change of a trade between two runs' reports, as a share of its holder's gross
    assets before the scenario (trades matched by :data:`KEYS`; a missing one is 0)."""
    import polars as pl  # noqa: PLC0415

    def trades(folder: Path) -> pl.DataFrame:
        frame = pl.read_csv(folder / "trades.csv", infer_schema_length=None)
        keys = [k for k in KEYS if k in frame.columns]
        if "day" in keys:  # a day's rounds are its cascade's steps: compared as the day's trades
            keys.remove("round")
        return frame.group_by(keys).agg(pl.col("trade_value").sum())

    gross = pl.read_csv(before / "holders.csv", infer_schema_length=None).select(
        "holder_id", "gross_assets_before"
    )
    old, new = trades(before), trades(after)
    keys = [k for k in KEYS if k in old.columns and k in new.columns]
    both = old.join(new, on=keys, how="full", coalesce=True, suffix="_after")
    moved = both.fill_null(0.0).join(gross, on="holder_id", how="left")
    share = (pl.col("trade_value_after") - pl.col("trade_value")).abs() / pl.col(
        "gross_assets_before"
    )
    return float(moved.select(share.max()).item() or 0.0)


if __name__ == "__main__":
    sys.exit(main())

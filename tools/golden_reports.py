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
    print(f"{len(kept) - len(changed)} of {len(kept)} reports the same")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())

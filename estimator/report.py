"""Write a run's reports atomically, and only where nothing of the user's can be lost.

A report folder is written whole into a temporary sibling folder which then takes the target's
place, so a failed run never leaves a partial report and reports never mix. The target must be
new, empty, or an earlier report of this tool: a folder whose every entry is a file listed in
its ``manifest.json`` (the manifest lists the files written beside it). Anything else — a
folder holding other files, a file, a symbolic link, the working directory or one of its
parents — is refused before anything is written (:class:`~estimator.errors.InputError`), so a
run never deletes or overwrites a file it did not write. Folders and files get the user's umask.

Text cells starting with ``= + - @`` are prefixed with ``'`` so spreadsheet programs do not
execute them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import polars as pl

from estimator.errors import InputError, Problem, RunError
from estimator.finite import check_manifest, check_tables
from estimator.manifest import Manifest

Format = Literal["csv", "parquet"]
_FORMULA = r"^[=+\-@]"
MANIFEST = "manifest.json"


def neutralise(frame: pl.DataFrame) -> pl.DataFrame:
    """Text columns safe for spreadsheets; numbers unchanged (−0.0 written as 0.0)."""
    text = [c for c, t in frame.schema.items() if t == pl.String]
    floats = [c for c, t in frame.schema.items() if t.is_float()]
    signless_zero = [pl.when(pl.col(c) == 0).then(0.0).otherwise(c).alias(c) for c in floats]
    return frame.with_columns(signless_zero).with_columns(
        pl.when(pl.col(c).str.contains(_FORMULA))
        .then("'" + pl.col(c))
        .otherwise(pl.col(c))
        .alias(c)
        for c in text
    )


def canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every integer column as Int64, every float as Float64 and every
    categorical as String: the types its CSV reads back as, so that a report read from CSV or
    Parquet equals the frame."""

    def kind(t: pl.DataType) -> pl.DataType:
        if t.is_integer():
            return pl.Int64()
        if t.is_float():
            return pl.Float64()
        if isinstance(t, pl.Categorical | pl.Enum):
            return pl.String()
        return t

    casts = {c: kind(t) for c, t in frame.schema.items() if kind(t) != t}
    return frame.cast(casts) if casts else frame  # type: ignore[arg-type]


def money(value: float) -> str:
    """An amount for people to read: ``1.23bn``, ``45.60m``, ``7.00k``, ``12``."""
    for unit, size in (("tn", 1e12), ("bn", 1e9), ("m", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:,.2f}{unit}"
    return f"{value:,.0f}"


def absorbed(row: dict) -> str:
    """How an asset's net flow is absorbed, in its lens (:mod:`estimator.aggregate`): days of
    continuous trading, ``×k`` a typical closing auction, or both."""
    k = row["auction_multiple"]
    multiple = f"{k:.1f}× auction" if k >= 0.1 else f"{k:.2g}× auction"
    days = f"{row['days_to_absorb']:.2f} days"
    return {"days": days, "auction": multiple}.get(row["lens"], f"{multiple} + {days}")


def _refuse(out_dir: Path, why: str) -> InputError:
    return InputError([Problem(str(out_dir), f"cannot write the reports here: {why}", field="out")])


#: The files a report of this tool may hold, for reports written before manifests listed them.
_REPORT_FILES = frozenset(
    f"{table}.{suffix}"
    for table in (
        "assets", "trades", "holders", "summary", "flows", "published", "cures", "rounds",
        "balance_sheets",
        "chain", "equilibrium", "days", "survival", "census_types", "census_classes", "census",
    )
    for suffix in ("csv", "parquet")
) | {"report.html", MANIFEST}  # fmt: skip


def _earlier_report(folder: Path) -> list[str]:
    """The entries of ``folder`` that are not files of an earlier report of this tool (all of
    them when it holds no readable manifest of this tool). A manifest lists its report's files;
    one written before manifests did is taken to own the files a report can have."""
    entries = sorted(p.name for p in folder.iterdir())
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        ours = str(manifest["tool"]).startswith("forced-flow")
        names = manifest.get("files", _REPORT_FILES)
        listed = {str(name) for name in names} | {MANIFEST}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return entries
    if not ours:
        return entries
    return [
        name
        for name in entries
        if name not in listed or (folder / name).is_symlink() or not (folder / name).is_file()
    ]


def check_target(out_dir: str | Path) -> Path:
    """``out_dir`` if reports may be written there (see the module docstring), else an
    :class:`InputError` saying why and what to do."""
    out_dir = Path(out_dir)
    here = Path.cwd().resolve()
    if out_dir.name in ("", ".", "..") or out_dir.resolve() in (here, *here.parents):
        raise _refuse(
            out_dir,
            "it is the working directory or one of its parents; choose a new folder, "
            "e.g. reports/run1",
        )
    if out_dir.is_symlink():
        raise _refuse(out_dir, "it is a symbolic link; give the folder it points to")
    for parent in (out_dir.parent, *out_dir.parent.parents):
        if parent.exists() and not parent.is_dir():
            raise _refuse(out_dir, f"{parent} is a file, not a folder")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise _refuse(out_dir, "it is a file; choose a folder (new, or empty)")
        foreign = _earlier_report(out_dir)
        if foreign:
            shown = ", ".join(foreign[:5]) + (", …" if len(foreign) > 5 else "")
            raise _refuse(
                out_dir,
                f"the folder holds files this tool did not write ({shown}); "
                "choose a new or empty folder",
            )
    existing = next(p for p in (out_dir.parent, *out_dir.parent.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise _refuse(out_dir, f"{existing} is not writable")
    return out_dir


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return those created, deepest first (none
    is left behind if one cannot be made)."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        _remove_empty(missing)
        raise
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders, deepest first, that exist and are empty."""
    for folder in folders:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def write_reports(
    out_dir: str | Path,
    tables: Mapping[str, pl.DataFrame],
    manifest: Manifest,
    fmt: Format = "csv",
    texts: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write ``tables``, ``manifest.json`` (with ``files``: every file written) and any
    ``texts`` (file name → content, e.g. an HTML report) into ``out_dir``, replaced as a whole.
    A target that may not be written is an :class:`InputError`; a failure while writing is a
    :class:`RunError`; either way nothing is left behind and nothing of the user's is lost."""
    out_dir = check_target(out_dir)
    check_tables(tables)  # no report holds NaN or infinity, whichever command writes it
    data = manifest.dump()
    check_manifest(data)
    suffix = "csv" if fmt == "csv" else "parquet"
    names = sorted([f"{name}.{suffix}" for name in tables] + [*(texts or {}), MANIFEST])
    try:
        stamped = {**data, "files": names}
        text = json.dumps(stamped, indent=2, sort_keys=True, allow_nan=False)
    except ValueError as exc:  # a non-finite number: never written (see estimator.finite)
        raise RunError(f"the manifest holds a non-finite number: {exc}") from exc
    created: list[Path] = []
    try:
        created = _make_parents(out_dir.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as exc:
        _remove_empty(created)
        why = exc.strerror or str(exc)
        raise _refuse(out_dir, f"a folder cannot be made in {out_dir.parent} ({why})") from exc
    old = tmp.with_name(tmp.name + ".old")
    try:
        tmp.chmod(0o777 & ~_umask())
        for name, frame in tables.items():
            if fmt == "csv":
                neutralise(frame).write_csv(tmp / f"{name}.csv")
            else:
                frame.write_parquet(tmp / f"{name}.parquet")
        (tmp / MANIFEST).write_text(text + "\n", encoding="utf-8")
        for name, content in (texts or {}).items():
            (tmp / name).write_text(content, encoding="utf-8")
        moved = out_dir.exists()
        if moved:
            out_dir.rename(old)
        try:
            tmp.rename(out_dir)
        except BaseException:
            if moved:
                old.rename(out_dir)
            raise
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        if isinstance(exc, OSError):
            raise RunError(f"writing the reports to {out_dir} failed: {exc}") from exc
        raise
    if moved:  # the new report is in place: the earlier one, ours, goes
        shutil.rmtree(old, ignore_errors=True)
    return sorted(out_dir / name for name in names)

"""Read an input table from CSV, Parquet or a Polars frame and check it against its contract.

Every problem is collected (up to a limit) with the file, line and field it is in; the caller
gets either a clean, typed frame or an :class:`~estimator.errors.InputError` listing them all.
"""

from __future__ import annotations

import csv
import difflib
from collections.abc import Sequence
from pathlib import Path

import dataframely as dy
import polars as pl

from estimator import contracts
from estimator.bounds import MAX_COVARIANCE
from estimator.contracts import CHECK_MESSAGES, DEFAULTS, LINE, columns
from estimator.errors import InputError, InputWarnings, Problem
from estimator.toml_files import read_utf8

MAX_PROBLEMS = 50

TableSource = str | Path | pl.DataFrame | pl.LazyFrame


def _scan(source: TableSource, label: str) -> pl.DataFrame:
    """All columns as read, with ``__line__`` (header = line 1 for CSV, row 1 for frames)."""
    if isinstance(source, pl.LazyFrame):
        source = source.collect()
    if isinstance(source, pl.DataFrame):
        if LINE in source.columns:  # already read from a file: keep its lines
            return source
        return source.with_row_index(LINE, offset=1).with_columns(pl.col(LINE).cast(pl.Int64))
    path = Path(source)
    if not path.is_file():
        raise InputError([Problem(label, "file not found")])
    if path.stat().st_size == 0:
        raise InputError([Problem(label, "file is empty: expected a header row and data rows")])
    parquet = path.suffix.lower() in {".parquet", ".pq"}
    if not parquet:
        _check_text(path, label)
    try:
        if parquet:
            lf = pl.scan_parquet(path)
            offset = 1
        else:
            lf = pl.scan_csv(path, infer_schema=False)
            offset = 2
        frame = lf.with_row_index(LINE, offset=offset).collect()
    except pl.exceptions.NoDataError as exc:
        blank = Problem(label, "no header row: the file holds only blank lines")
        raise InputError([blank]) from exc
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError([_unreadable(path, label, parquet, exc)]) from exc
    return frame.with_columns(pl.col(LINE).cast(pl.Int64))


def _check_text(path: Path, label: str) -> None:
    """A CSV file must be UTF-8 text with a header row."""
    if not read_utf8(path, label).strip():
        raise InputError([Problem(label, "no header row: the file holds only blank lines")])


def _unreadable(path: Path, label: str, parquet: bool, exc: Exception) -> Problem:
    """A file Polars cannot read, described in the project's words: for CSV, the first line
    whose number of fields differs from the header's, found by Python's own CSV reader."""
    if parquet:
        return Problem(label, "cannot be read as Parquet (a damaged or truncated file?)")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
            for row in reader:
                if row and len(row) != len(header):
                    return Problem(
                        label,
                        f"has {len(row)} fields where the header has {len(header)}",
                        reader.line_num,
                    )
        except csv.Error as error:
            return Problem(label, f"not valid CSV: {error}", reader.line_num)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return Problem(label, f"cannot be read as CSV: {first}")


def _check_columns(
    frame: pl.DataFrame, schema: type[dy.Schema], label: str, warnings: InputWarnings
) -> list[Problem]:
    expected = columns(schema)
    present = [c for c in frame.columns if c != LINE]
    problems: list[Problem] = []
    for name in present:
        if name in expected:
            continue
        close = difflib.get_close_matches(name, [c for c in expected if c not in present], n=1)
        close += [c for c in expected if c in present and _one_edit(name, c)]
        if close:
            problems.append(
                Problem(label, f"unknown column (did you mean '{close[0]}'?)", field=name)
            )
        else:
            warnings.add(Problem(label, "unknown column, ignored", field=name))
    for name, col in expected.items():
        if name not in present and not col.nullable:
            problems.append(
                Problem(label, f"required column is missing ({_expect(col)})", field=name)
            )
    return problems


def _one_edit(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ by one insertion, deletion, substitution or swap of two
    neighbouring letters (a misspelt column beside the real one: ``prise`` and ``price``)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        swapped = len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
        return len(diff) == 1 or (swapped and a[diff[1]] == b[diff[0]])
    short, long_ = sorted((a, b), key=len)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def _expect(col: dy.Column) -> str:
    kind = "a number" if col.dtype.is_numeric() else "text"
    return f"expected {kind}" + ("" if col.nullable else ", required")


def _cast(
    frame: pl.DataFrame, schema: type[dy.Schema], label: str
) -> tuple[pl.DataFrame, list[Problem]]:
    """Cast every column to its contract type; unparsable cells become problems."""
    expected = columns(schema)
    exprs, problems = [], []
    for name, col in expected.items():
        if name not in frame.columns:
            exprs.append(pl.lit(None, dtype=col.dtype).alias(name))
            continue
        raw = pl.col(name)
        if frame.schema[name] == pl.String:
            raw = pl.when(raw.str.strip_chars() == "").then(None).otherwise(raw.str.strip_chars())
        exprs.append(raw.cast(col.dtype, strict=False).alias(name))
    typed = frame.select(pl.col(LINE), *exprs)
    for name, col in expected.items():
        if name not in frame.columns or not col.dtype.is_numeric():
            continue
        bad = frame.filter(pl.col(name).is_not_null() & typed[name].is_null())
        kind = "a whole number" if col.dtype.is_integer() else "a number"
        for line, value in bad.select(LINE, name).head(MAX_PROBLEMS).iter_rows():
            problems.append(Problem(label, f"expected {kind}, got {value!r}", line, name))
    return typed, problems


def _describe(rule: str, schema: type[dy.Schema]) -> tuple[str | None, str]:
    """(field, message) for a dataframely rule name such as ``price|min_exclusive``."""
    if rule == "primary_key":
        keys = [n for n, c in columns(schema).items() if c.primary_key]
        return ", ".join(keys), "duplicate key: another row has the same " + " + ".join(keys)
    name, _, check = rule.partition("|")
    col = columns(schema).get(name)
    messages = {
        "nullability": "missing value: a value is required",
        "nan": "not finite: NaN is not allowed",
        "inf": "not finite: infinite values are not allowed",
        "dtype": f"wrong type: expected {getattr(col, 'dtype', '?')}",
    }
    if check in messages:
        return name, messages[check]
    bounds = {"min": "≥", "min_exclusive": ">", "max": "≤", "max_exclusive": "<"}
    if check in bounds and col is not None:
        limit = getattr(col, check)
        size = "too large: " if check.startswith("max") else "too small: " if limit < 0 else ""
        return name, f"{size}expected a value {bounds[check]} {limit:g}"
    if check == "check" and name in CHECK_MESSAGES:
        return name, CHECK_MESSAGES[name]
    return name, f"fails the check '{check}'"


def load_table(
    source: TableSource,
    schema: type[dy.Schema],
    label: str | None = None,
    warnings: InputWarnings | None = None,
) -> pl.DataFrame:
    """Read ``source`` and return it typed and validated, or raise :class:`InputError`.

    Optional numeric columns that are absent or empty get their documented defaults.
    """
    label = label or (str(source) if isinstance(source, (str, Path)) else schema.__name__.lower())
    warnings = warnings if warnings is not None else InputWarnings()
    frame = _scan(source, label)
    problems = _check_columns(frame, schema, label, warnings)
    if problems:
        raise InputError(problems)
    if frame.height == 0:
        raise InputError([Problem(label, "no data rows: expected at least one")])
    typed, problems = _cast(frame, schema, label)
    if problems:
        raise InputError(problems[:MAX_PROBLEMS])
    good, failure = schema.filter(typed, cast=True)
    if failure.invalid().height:
        details = failure.details()
        rule_cols = [c for c in details.columns if "|" in c or c == "primary_key"]
        for row in details.head(MAX_PROBLEMS).iter_rows(named=True):
            for rule in rule_cols:
                if row[rule] == "invalid":
                    field, message = _describe(rule, schema)
                    problems.append(Problem(label, message, row[LINE], field))
        raise InputError(sorted(problems, key=lambda p: (p.row or 0, p.field or ""))[:MAX_PROBLEMS])
    defaults = DEFAULTS.get(schema, {})
    return good.with_columns(pl.col(c).fill_null(v) for c, v in defaults.items())


def read_rows(
    source: TableSource, names: Sequence[str], label: str, optional: Sequence[str] = ()
) -> pl.DataFrame:
    """A table's rows as text (``line`` first: its line in the file), with the columns
    ``names`` (and those of ``optional`` it has, which are not read), or an input error naming
    each column missing or unknown."""
    frame = _scan(source, label)
    present = [c for c in frame.columns if c != LINE]
    missing = [n for n in names if n not in present]
    problems = [Problem(label, "required column is missing", field=n) for n in missing]
    problems += [
        Problem(label, f"unknown column: expected {', '.join([*names, *optional])}", field=c)
        for c in present
        if c not in names and c not in optional
    ]
    if problems:
        raise InputError(problems)
    if frame.height == 0:
        raise InputError([Problem(label, "no data rows: expected at least one")])
    return frame.select(pl.col(LINE).alias("line"), *(pl.col(n).cast(pl.String) for n in names))


def load_covariance(
    source: TableSource, label: str, warnings: InputWarnings | None = None
) -> pl.DataFrame:
    """A full asset covariance, long (``asset_i, asset_j, covariance``, :class:`Covariance`)
    or wide (``asset_id`` and one column per asset: the matrix as a table), returned long and
    checked. In the wide form every cell that is not a number within ``±MAX_COVARIANCE`` (NaN
    and ±inf included) is a problem naming its row and column, and so is an ``asset_id``
    given twice."""
    frame = _scan(source, label)
    if "asset_id" not in frame.columns or "asset_i" in frame.columns:
        return load_table(frame, contracts.Covariance, label, warnings)
    if frame.height == 0:
        raise InputError([Problem(label, "no data rows: expected at least one")])
    names = [c for c in frame.columns if c not in (LINE, "asset_id")]
    values = frame.select(
        LINE,
        "asset_id",
        *(
            pl.col(c).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
            for c in names
        ),
    )
    twice = frame.filter(pl.col("asset_id").is_duplicated())[LINE]
    problems = [Problem(label, "asset_id given twice", line, "asset_id") for line in twice]
    bound = MAX_COVARIANCE
    for name in names:
        bad = ~(values[name].abs() <= bound).fill_null(False)  # null, NaN, ±inf, too large
        for line, raw in frame.filter(bad).select(LINE, name).head(MAX_PROBLEMS).iter_rows():
            message = f"expected a covariance, a number within ±{bound:g}, got {raw!r}"
            problems.append(Problem(label, message, line, name))
    if problems:
        raise InputError(problems[:MAX_PROBLEMS])
    return values.unpivot(
        names, index="asset_id", variable_name="asset_j", value_name="covariance"
    ).rename({"asset_id": "asset_i"})

"""Read a TOML file into a pydantic model, turning every failure into located problems."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from estimator.errors import InputError, Problem

M = TypeVar("M", bound=BaseModel)


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _message(err: dict) -> str:
    """Pydantic's message in the project's words: non-finite and too-large numbers say so."""
    kind, msg = err["type"], err["msg"]
    if kind == "finite_number":
        return f"not finite (got {err['input']}): NaN and infinity are not allowed"
    if kind in ("less_than", "less_than_equal"):
        return f"too large: {msg[0].lower()}{msg[1:]} (got {err['input']})"
    if kind == "int_parsing_size":
        return f"too large: expected a whole number of a sensible size (got {err['input']})"
    return msg


def validation_problems(exc: ValidationError, label: str) -> list[Problem]:
    """One problem per pydantic error, naming the dotted field path (``rules.0.target``)."""
    return [Problem(label, _message(err), field=_field(err["loc"])) for err in exc.errors()]


def read_utf8(path: Path, label: str) -> str:
    """The text of ``path``, or an input error naming the line of its first byte that is not
    UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            [Problem(label, f"not UTF-8 text (byte {exc.start}); save the file as UTF-8", line)]
        ) from exc


def load_toml(path: Path, model: type[M]) -> M:
    """Parse ``path`` (duplicate keys are a TOML error) and validate it as ``model``."""
    label = str(path)
    if not path.is_file():
        raise InputError([Problem(label, "file not found")])
    text = read_utf8(path, label)
    if not text.strip():
        raise InputError([Problem(label, "file is empty")])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError([Problem(label, f"not valid TOML: {exc}")]) from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(validation_problems(exc, label)) from exc

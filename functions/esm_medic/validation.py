"""The one JSON-schema path of the product: ``jsonschema``, with the draft each schema names (2020-12 when it names
none). Handler inputs, event details, action parameters and the catalogue are all checked here, so every schema
error reads the same way: where in the document, and what is wrong.

Validators are built once per schema object and kept. ``jsonschema`` is imported on first use: the classifier's
import path stays lean, and the catalogue's first load pays for it once per process.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

_CACHE: dict[int, tuple[Mapping[str, Any], Any]] = {}
_LOCK = threading.Lock()


class SchemaError(ValueError):
    """A document does not match its schema; the message names the place and the problem."""


def _date_time(value: object) -> bool:
    """RFC 3339 date-time (``2026-12-03T10:00:00Z``, with offset or fraction); other types pass, as the spec says."""
    if not isinstance(value, str):
        return True
    from datetime import datetime

    if "T" not in value.upper() or len(value) < 20:
        return False
    try:
        parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value[-1:] in "zZ" else value)
    except ValueError:
        return False
    return parsed.tzinfo is not None


def _format_checker() -> Any:
    from jsonschema import FormatChecker

    checker = FormatChecker(formats=())  # only the formats below: the same answer on every machine
    checker.checks("date-time")(_date_time)
    return checker


def _validator(schema: Mapping[str, Any]) -> Any:
    hit = _CACHE.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    from jsonschema.validators import Draft202012Validator, validator_for

    cls = validator_for(schema, default=Draft202012Validator)
    cls.check_schema(schema)
    made = cls(schema, format_checker=_format_checker())
    with _LOCK:
        _CACHE[id(schema)] = (schema, made)  # the schema is kept alive, so its id cannot be reused
    return made


def first_error(schema: Mapping[str, Any], instance: Any, *, root: str = "<root>") -> str | None:
    """``"<path>: <message>"`` for the most relevant error, or None when ``instance`` matches."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator(schema).iter_errors(instance))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or root
    return f"{where}: {error.message}"


def check(schema: Mapping[str, Any], instance: Any, *, what: str = "input", root: str = "<root>") -> None:
    """Raise :class:`SchemaError` (``"<what> does not match its schema at <path>: <message>"``) unless it matches."""
    problem = first_error(schema, instance, root=root)
    if problem is not None:
        raise SchemaError(f"{what} does not match its schema at {problem}")

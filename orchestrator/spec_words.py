"""How a spec's problems are said: pydantic's errors and the spec's values in plain words. Pure.

`orchestrator.spec` validates; this module only words what it found: `describe` turns one
pydantic error into a line's problem (`unknown key 'tga' (did you mean 'tag'?)`), `one_of` the
check of a key that takes one of a few words (`done_when`), `show` a value as the spec writes
it, `raw_label` an entry too broken to validate (`prod/web/?`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from enum import Enum, StrEnum
from typing import TypeVar

from pydantic_core import ErrorDetails

from orchestrator.spec_types import kind

__all__ = ["describe", "kind", "one_of", "raw_label", "seconds", "show"]  # kind is spec_types' own

_E = TypeVar("_E", bound=StrEnum)

_SELF_EXPLAINED = frozenset({"image"})  # their messages name the field and the value
_EXPECTED = {
    "string_type": "a string",
    "bool_type": "true or false",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "list_type": "an array of tables ([[deploy]])",
}


def describe(error: ErrorDetails, known: Iterable[str], elsewhere: Mapping[str, str] | None = None) -> str:
    """One pydantic error in plain words. `known`: the keys where it was found (for "did you
    mean"); `elsewhere`: keys that belong in another table, and which (`a [[deploy]] entry`)."""
    loc = error["loc"]
    field = ".".join(str(part) for part in loc)
    kind_ = error["type"]
    ctx = error.get("ctx") or {}
    if kind_ == "extra_forbidden":
        return f"unknown key {field!r}{_suggestion(str(loc[-1]), known, elsewhere)}"
    if kind_ == "missing":
        return f"missing field {field!r}"
    if kind_ in ("value_error", "assertion_error"):
        reason = str(ctx.get("error", error["msg"]))
        return f"{field!r}: {reason}" if field and field not in _SELF_EXPLAINED else reason
    subject = f"{field!r}" if field else "the entry"
    if kind_ == "list_type" and field != "deploy":
        return f"{subject} must be an array, got {kind(error['input'])}"
    if kind_ in _EXPECTED:
        return f"{subject} must be {_EXPECTED[kind_]}, got {kind(error['input'])}"
    if kind_ == "string_too_short":
        return f"{subject} must not be empty"
    if kind_ == "greater_than":
        return f"{subject} must be greater than {ctx.get('gt')}"
    if kind_ == "too_short" and field == "deploy":
        return "no [[deploy]] entries: the spec deploys nothing"
    return f"{subject}: {error['msg']}"


def _suggestion(key: str, known: Iterable[str], elsewhere: Mapping[str, str] | None) -> str:
    if elsewhere and key in elsewhere:
        return f" (it belongs in {elsewhere[key]})"
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def one_of(words: type[_E], value: object) -> _E:
    """`value` as one of `words`; ValueError naming them all (and the closest) otherwise."""
    if isinstance(value, words):
        return value
    allowed = [str(word) for word in words]
    listed = " or ".join(f"{word!r}" for word in allowed)
    if not isinstance(value, str):
        raise ValueError(f"must be {listed}, got {kind(value)}")
    if value in allowed:
        return words(value)
    close = difflib.get_close_matches(value.replace("-", "_").lower(), allowed, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"must be {listed}, got {value!r}{hint}")


def raw_label(raw: object) -> str:
    """`cluster/service/container` of an entry that did not validate; `?` for a part it lacks."""

    def part(name: str) -> str:
        value = raw.get(name) if isinstance(raw, Mapping) else None
        if not isinstance(value, str) or not value:
            return "?"
        # A control character (a line break above all) must not split the problem's line.
        return value[:60] if value[:60].isprintable() else repr(value[:60])

    return "/".join(part(name) for name in ("cluster", "service", "container"))


def seconds(value: float) -> str:
    return f"{value:g}s"


def show(value: object) -> str:
    """A value as the spec writes it: `true`, `1200s`, `'traffic_shifted'`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return seconds(value)
    if isinstance(value, Enum):
        return repr(value.value)
    return repr(value)

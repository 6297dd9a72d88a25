"""The value types a spec's fields are written in, shared by its entries and its waves. Pure.

`Seconds` (a duration: `900`, `"15m"`, `"1h30m"`), `Name` (a cluster, service, container, wave
or alarm name: not empty, no spaces or control characters), `Image` (a Docker reference),
`Region` (an AWS region name), and `StrictModel`, the base of every spec table: unknown keys
are errors, values are never coerced (`rollback = "yes"` is refused, not read as true).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from orchestrator.durations import parse_duration
from orchestrator.regions import check_region
from worker.images import parse_image

__all__ = ["KINDS", "Image", "Name", "Region", "Seconds", "StrictModel", "kind"]

KINDS: dict[type, str] = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a float",
    list: "an array",
    dict: "a table",
    type(None): "null",
}


def kind(value: object) -> str:
    """What a value is, in a spec's words: `a string`, `a table`, ..."""
    for cls, word in KINDS.items():
        if type(value) is cls:
            return word
    return type(value).__name__


def _duration(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"must be a duration such as '90s' or '15m', got {kind(value)}")
    return parse_duration(value)


def _name(value: str) -> str:
    # The one printable whitespace character is the space: same as testing each character.
    if " " in value or not value.isprintable():
        raise ValueError(f"{value!r} must not contain spaces or control characters")
    return value


def _image(value: str) -> str:
    parse_image(value)  # ImageRefError is a ValueError: reported even when other fields fail
    return value


Seconds = Annotated[float, BeforeValidator(_duration)]
"""A duration in seconds, written as a number of seconds or a string such as ``15m``."""

Name = Annotated[str, Field(min_length=1), AfterValidator(_name)]
Image = Annotated[str, AfterValidator(_image)]
Region = Annotated[str, AfterValidator(check_region)]


class StrictModel(BaseModel):
    """A spec table: unknown keys are errors, nothing is coerced, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

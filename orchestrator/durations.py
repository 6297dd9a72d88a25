"""Human durations (``90s``, ``15m``, ``1h30m``, ``500ms``) to seconds.

A duration is either a plain positive number of seconds (``90``, ``2.5``, ``"90"``) or a
string of one or more ``<number><unit>`` parts with the units ``d``, ``h``, ``m``, ``s``
and ``ms``, each used at most once and largest first (``1h30m``, ``2m30s``, ``1.5h``).
Zero, negative, non-finite and malformed values are refused with a `ValueError` that
shows the value and the accepted forms.
"""

from __future__ import annotations

import math
import re

__all__ = ["ACCEPTED_FORMS", "parse_duration"]

ACCEPTED_FORMS = (
    "a positive number of seconds or a string such as '90s', '15m', '1h30m', '500ms', '2h' "
    "(units d, h, m, s, ms; largest first, each at most once)"
)

_UNIT_SECONDS: dict[str, float] = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT_ORDER = ("d", "h", "m", "s", "ms")
_NUMBER = r"\d+(?:\.\d*)?|\.\d+"
_PART = re.compile(rf"\s*({_NUMBER})\s*(ms|d|h|m|s)\s*")
_PLAIN = re.compile(rf"\s*({_NUMBER})\s*")


def _invalid(value: object, why: str = "") -> ValueError:
    reason = f" ({why})" if why else ""
    return ValueError(f"invalid duration {value!r}{reason}: expected {ACCEPTED_FORMS}")


def _checked(value: object, seconds: float) -> float:
    if not math.isfinite(seconds):
        raise _invalid(value, "not finite")
    if seconds <= 0:
        raise _invalid(value, "must be greater than zero")
    return seconds


def _parse_parts(text: str) -> float | None:
    """Sum the ``<number><unit>`` parts of `text`, or None when it is not that shape."""
    total = 0.0
    last_rank = -1
    position = 0
    while position < len(text):
        match = _PART.match(text, position)
        if match is None:
            return None
        number, unit = match.groups()
        rank = _UNIT_ORDER.index(unit)
        if rank <= last_rank:
            return None
        last_rank = rank
        total += float(number) * _UNIT_SECONDS[unit]
        position = match.end()
    return total if last_rank >= 0 else None


def parse_duration(value: str | int | float) -> float:
    """Return `value` in seconds; raise ValueError for anything but a positive duration."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _invalid(value, "not a number or a string")
    if not isinstance(value, str):
        try:
            return _checked(value, float(value))
        except OverflowError:
            raise _invalid(value, "too large") from None
    text = value.strip()
    if text.startswith("-"):
        raise _invalid(value, "must be greater than zero")
    plain = _PLAIN.fullmatch(text)
    if plain is not None:
        return _checked(value, float(plain.group(1)))
    seconds = _parse_parts(text)
    if seconds is None:
        raise _invalid(value)
    return _checked(value, seconds)

"""parse_duration: human durations to seconds."""

from __future__ import annotations

import pytest

from orchestrator.durations import parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (2.5, 2.5),
        ("90", 90.0),
        ("2.5", 2.5),
        ("90s", 90.0),
        ("15m", 900.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("2m30s", 150.0),
        ("500ms", 0.5),
        ("1s500ms", 1.5),
        ("1.5h", 5400.0),
        ("1d", 86400.0),
        ("  15m  ", 900.0),
    ],
)
def test_accepts(value: str | int | float, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [
        0,
        0.0,
        -5,
        "-5s",
        "0s",
        "0",
        "",
        "   ",
        "s",
        "15x",
        "m15",
        "15 minutes",
        "30m1h",
        "1h1h",
        "1h-30m",
        "1.2.3s",
        float("nan"),
        float("inf"),
        "inf",
        "nan",
        True,
    ],
)
def test_refuses(value: str | int | float) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(value)
    message = str(info.value)
    assert repr(value) in message
    assert "'15m'" in message and "'1h30m'" in message and "'500ms'" in message


def test_refuses_non_numbers() -> None:
    with pytest.raises(ValueError, match="not a number or a string"):
        parse_duration([1, 2])  # type: ignore[arg-type]

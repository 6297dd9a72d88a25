"""The benchmark's view from the emulator's side (bench.detection): pure functions on a run's
output lines and the emulator's request log."""

from __future__ import annotations

import json

import pytest

from bench.detection import detection_lags, first_update_s, longest_look_gap_s


def _line(service: str, phase: str, received_at: float | None) -> tuple[float, str]:
    event = {"type": "event", "service": service, "phase": phase, "received_at": received_at, "ts": 0}
    return 0.0, json.dumps(event)


def test_the_lag_runs_from_ecs_end_to_the_first_terminal_event() -> None:
    lines = [
        _line("a", "in_progress", 100.2),
        _line("a", "succeeded", 101.0),
        _line("b", "rolled_back", 103.5),
        _line("c", "succeeded", None),  # the orchestrator's own word: no receipt time
        (0.0, "not json"),
    ]
    lags = detection_lags(lines, {"a": 100.25, "b": 103.0, "c": 99.0, "d": 1.0})
    assert lags == pytest.approx([0.75, 0.5])


def test_first_update_and_the_longest_gap_between_looks() -> None:
    log = [
        (10.0, "DescribeServices", ["s1"]),
        (10.4, "UpdateService", ["s1"]),
        (11.0, "DescribeServiceDeployments", ["arn:aws:ecs:r:1:service-deployment/c/s1/x", "arn:.../s2/y"]),
        (12.0, "DescribeServiceDeployments", ["arn:aws:ecs:r:1:service-deployment/c/s1/x"]),
        (14.5, "DescribeServiceDeployments", ["arn:.../s2/y"]),
        (12.1, "UpdateService", ["s2"]),
        (40.0, "DescribeServices", ["s1"]),  # not a look at a deployment: preflight, a start
    ]
    assert first_update_s(log, started_at=9.5) == pytest.approx(0.9)
    assert longest_look_gap_s(log) == pytest.approx(3.5)  # s2's deployment: 11.0 -> 14.5
    assert first_update_s([], started_at=0.0) is None

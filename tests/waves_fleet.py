"""A fleet deployed in three waves: staging (s0), canary (s1), rest (s2, s3, s4), seeded in the emulator.

Each service's container `app` (registry.example.com/sI) goes from 1.0.0 to 2.0.0; a wave's gate
is given as TOML lines. The CLI runs as users run it (`tests.cli`); `Lines` reads a running
CLI's output as it comes, line by line, with a deadline.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import boto3

from orchestrator.sandbox import seed_services
from orchestrator.sandbox.seed import seed_alarms
from orchestrator.sandbox.session import sandbox_services
from orchestrator.spec import load_spec

REGION = "us-east-1"
WAVES = {"staging": ("s0",), "canary": ("s1",), "rest": ("s2", "s3", "s4")}
SERVICES = [service for services in WAVES.values() for service in services]


def cluster_of(service: str) -> str:
    return f"c{int(service[1:]) % 2}"


def write_waves(directory: Path, gates: Mapping[str, Sequence[str]] | None = None, **top: str) -> Path:
    """The spec (three waves, gates as TOML lines per wave name), seeded with its alarms."""
    lines = [
        f'{key} = "{value}"' for key, value in {"poll_interval": "100ms", "timeout": "60s", **top}.items()
    ]
    alarms: list[str] = []
    for wave in WAVES:
        lines += ["[[wave]]", f'name = "{wave}"', *(gates or {}).get(wave, ())]
    for line in lines:
        if line.startswith("alarms"):
            alarms += json.loads(line.split("=", 1)[1])
    for wave, services in WAVES.items():
        for service in services:
            lines += [
                "[[deploy]]",
                f'wave = "{wave}"',
                f'cluster = "{cluster_of(service)}"',
                f'service = "{service}"',
                'container = "app"',
                f'image = "registry.example.com/{service}"',
                'tag = "2.0.0"',
            ]
    path = directory / "waves.toml"
    path.write_text("\n".join(lines) + "\n")
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    seed_services(endpoint, REGION, sandbox_services(load_spec(path)))
    if alarms:
        seed_alarms(endpoint, REGION, alarms)
    return path


def ecs() -> Any:
    return boto3.client("ecs", region_name=REGION)


def revisions_in_use() -> dict[str, str]:
    """service -> the revision it runs (`s1:2`)."""
    running = {}
    for service in SERVICES:
        described = ecs().describe_services(cluster=cluster_of(service), services=[service])["services"][0]
        running[service] = described["taskDefinition"].rsplit("/", 1)[-1]
    return running


def registered(service: str) -> list[str]:
    """The revisions of a service's family (`s2:1`, ...)."""
    arns = ecs().list_task_definitions(familyPrefix=service)["taskDefinitionArns"]
    return [arn.rsplit("/", 1)[-1] for arn in arns if arn.rsplit("/", 1)[-1].split(":")[0] == service]


def set_alarm(name: str, state: str) -> None:
    boto3.client("cloudwatch", region_name=REGION).set_alarm_state(
        AlarmName=name, StateValue=state, StateReason="set by the test"
    )


class Lines:
    """A running process's stdout, line by line as it comes."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self.process = process
        self.seen: list[str] = []
        self._selector = selectors.DefaultSelector()
        self._selector.register(process.stdout, selectors.EVENT_READ)

    def until(self, found: Callable[[str], bool], seconds: float) -> str:
        """The first new line `found` holds of; AssertionError after `seconds` or at the end."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if not self._selector.select(timeout=left):
                break
            line = self.process.stdout.readline()
            if not line:
                break
            self.seen.append(line)
            if found(line):
                return line
        raise AssertionError(f"not seen within {seconds}s; output so far:\n{''.join(self.seen)[-4000:]}")

    def rest(self, seconds: float) -> str:
        """Everything else it prints, to its end."""
        out, _ = self.process.communicate(timeout=seconds)
        return "".join(self.seen) + out


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def gate_events(lines: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(wave, gate, state) of every gate line, in order."""
    return [(line["wave"], line["gate"], line["state"]) for line in lines if line["type"] == "gate"]

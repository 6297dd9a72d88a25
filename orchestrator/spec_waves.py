"""A spec's waves: the order a rollout goes in, and the gate after each wave. Pure.

    [[wave]]
    name = "canary"
    soak = "10m"                  # after the wave, watch its services this long
    alarms = ["api-5xx"]          # CloudWatch alarms that must be OK (and stay so while soaking)
    approve = true                # wait for a person: the live view, or `ecs-fanout approve`
    halt = true                   # (the default) a failure in the wave stops the run
    [wave.smoke_test]             # a one-off ECS task that must exit 0
    service = "api"               # the wave's new revision of this service (or task_definition)
    command = ["./smoke", "--fast"]

    [[deploy]]
    wave = "canary"
    ...

`[[wave]]` tables declare the waves in order, each with a name and its gate; every
`[[deploy]]` entry of a spec with waves names its wave. A spec without `[[wave]]` tables has
no waves: all of it is deployed at once, as ever. `check_waves` validates the tables and the
entries' `wave` against them and returns every problem, each naming the wave or the entry,
in the words `orchestrator.spec` uses for every other problem.

A wave's gate calls AWS where its services are (`region`, `role_arn`/`profile`, as on an
entry): its alarms are read, and a smoke test of a given task definition runs, in that one
place; a wave whose entries live in several places must say which (`region` and the way in).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Self

from pydantic import Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from orchestrator.spec_access import Reach, access_of, region_of
from orchestrator.spec_types import Name, Region, Seconds, StrictModel, kind
from worker.access import CALLER, Access

__all__ = ["SmokeTestSpec", "WaveSpec", "Where", "check_waves", "wave_place"]

DEFAULT_SMOKE_TIMEOUT_S = 600.0
DEFAULT_ALARM_WAIT_S = 300.0

Where = tuple[str | None, Access]  # (region, way in): where a gate calls AWS
Describe = Callable[[ErrorDetails, Iterable[str]], str]  # orchestrator.spec's words for an error


class SmokeTestSpec(StrictModel):
    """A one-off ECS task (RunTask) that must stop with exit code 0 within `timeout`."""

    service: Name | None = None  # a service the wave deploys: its new revision is run
    task_definition: Name | None = None  # or this task definition (family, family:revision, ARN)
    cluster: Name | None = None  # where it runs; default: the service's cluster
    container: Name | None = None  # whose exit code counts and whose command is replaced
    command: list[str] | None = None
    launch_type: Literal["FARGATE", "EC2", "EXTERNAL"] = "FARGATE"
    subnets: list[Name] = Field(default_factory=list)  # awsvpc network configuration
    security_groups: list[Name] = Field(default_factory=list)
    assign_public_ip: bool = False
    timeout: Seconds = DEFAULT_SMOKE_TIMEOUT_S

    @model_validator(mode="after")
    def _one_task(self) -> Self:
        if (self.service is None) == (self.task_definition is None):
            raise ValueError(
                "give either 'service' (the wave's new revision of it is run) or 'task_definition'"
            )
        if self.task_definition is not None and self.cluster is None:
            raise ValueError("'task_definition' needs 'cluster': where the task runs")
        if self.task_definition is not None and self.command is not None and self.container is None:
            raise ValueError("'command' needs 'container': the container whose command it replaces")
        return self


class WaveSpec(StrictModel, Reach):
    """One wave: its name and the gate after it. `Reach` (role_arn, external_id, profile) and
    `region` say where the gate's alarms and smoke test are, when its entries do not."""

    name: Name
    halt: bool = True
    soak: Seconds | None = None
    alarms: list[Name] = Field(default_factory=list)
    alarm_wait: Seconds = DEFAULT_ALARM_WAIT_S
    approve: bool = False
    smoke_test: SmokeTestSpec | None = None
    region: Region | None = None

    @property
    def needs_place(self) -> bool:
        """Whether the gate calls AWS somewhere its services do not name: alarms, a task definition."""
        return bool(self.alarms) or (
            self.smoke_test is not None and self.smoke_test.task_definition is not None
        )


_WAVE_KEYS = tuple(WaveSpec.model_fields)
_SMOKE_KEYS = tuple(SmokeTestSpec.model_fields)


def wave_place(wave: WaveSpec, entries: Sequence[Any], top: Reach, top_region: str | None) -> Where | None:
    """Where the wave's gate calls AWS: the wave's own region and way in, else the one place all
    its entries share; None when they are in several and the wave does not say."""
    places = {(region_of(e, top_region), access_of(e, top)) for e in entries}
    regions = {region for region, _ in places}
    accesses = {access for _, access in places}
    if (wave.region is None and len(regions) > 1) or (wave.own_access is None and len(accesses) > 1):
        return None
    region = wave.region or next(iter(regions), top_region)
    access = wave.own_access or next(iter(accesses), top.own_access or CALLER)
    return region, access


def check_waves(
    raw_waves: object,
    entries: Sequence[tuple[int, Any]],
    top: Reach,
    top_region: str | None,
    describe: Describe,
) -> tuple[list[WaveSpec], list[str]]:
    """The spec's waves and every problem with them and with its entries' `wave`."""
    if raw_waves is None:
        return [], [
            f"entry {index} ({entry.label}): wave = {entry.wave!r}, but the spec declares no [[wave]] tables"
            for index, entry in entries
            if entry.wave is not None
        ]
    if not isinstance(raw_waves, list) or not raw_waves:
        hint = " (write [[wave]], not [wave])" if isinstance(raw_waves, Mapping) else ""
        got = "an empty array" if raw_waves == [] else kind(raw_waves)
        return [], [f"'wave' must be an array of tables{hint}, got {got}"]
    names = _raw_names(raw_waves)  # a wave with a bad key is still declared: its entries name it
    waves, problems = _validated(raw_waves, describe)
    problems += _duplicates(names)
    known = list(dict.fromkeys(name for _, name in names))
    problems += _entry_problems(entries, known, top, top_region)
    members: dict[str | None, list[Any]] = {}
    for _, entry in entries:
        members.setdefault(entry.wave, []).append(entry)
    first = {name: index for index, name in reversed(names)}
    for index, wave in waves:
        if first[wave.name] == index:
            problems += _wave_problems(index, wave, members.get(wave.name, []), top, top_region)
    return [wave for _, wave in waves], problems


def _raw_names(raw_waves: list[object]) -> list[tuple[int, str]]:
    """(position, name) of every wave table that has a name."""
    named = ((index, raw.get("name")) for index, raw in enumerate(raw_waves, 1) if isinstance(raw, Mapping))
    return [(index, name) for index, name in named if isinstance(name, str) and name]


def _validated(raw_waves: list[object], describe: Describe) -> tuple[list[tuple[int, WaveSpec]], list[str]]:
    waves: list[tuple[int, WaveSpec]] = []
    problems: list[str] = []
    for index, raw in enumerate(raw_waves, 1):
        name = raw.get("name") if isinstance(raw, Mapping) else None
        label = f"wave {index}" + (f" ({name})" if isinstance(name, str) and name.isprintable() else "")
        if not isinstance(raw, Mapping):
            problems.append(f"{label}: must be a table, got {kind(raw)}")
            continue
        try:
            waves.append((index, WaveSpec.model_validate(raw)))
        except ValidationError as error:
            for details in error.errors():
                known = _SMOKE_KEYS if details["loc"][:1] == ("smoke_test",) else _WAVE_KEYS
                problems.append(f"{label}: {describe(details, known)}")
    return waves, problems


def _duplicates(names: Sequence[tuple[int, str]]) -> list[str]:
    first: dict[str, int] = {}
    problems = []
    for index, name in names:
        earlier = first.setdefault(name, index)
        if earlier != index:
            problems.append(f"wave {index} ({name}): duplicate wave name {name!r} (wave {earlier} has it)")
    return problems


def _entry_problems(
    entries: Sequence[tuple[int, Any]], names: list[str], top: Reach, top_region: str | None
) -> list[str]:
    """Entries with no wave or an unknown one, and one service put in two waves."""
    known = ", ".join(names)
    problems = []
    services: dict[tuple[object, ...], tuple[int, Any]] = {}
    for index, entry in entries:
        label = f"entry {index} ({entry.label})"
        if entry.wave is None:
            problems.append(
                f"{label}: no 'wave': in a spec with waves, every entry names one (waves: {known})"
            )
            continue
        if entry.wave not in names:
            close = difflib.get_close_matches(entry.wave, names, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{label}: unknown wave {entry.wave!r}{hint} (waves: {known})")
            continue
        service = (region_of(entry, top_region), access_of(entry, top), *entry.container_id[:2])
        earlier_index, earlier = services.setdefault(service, (index, entry))
        if earlier.wave != entry.wave:
            problems.append(
                f"{label}: wave {entry.wave!r} conflicts with entry {earlier_index} ({earlier.label}), "
                f"which puts the same service {service[2]}/{service[3]} in wave {earlier.wave!r}: "
                "a service is deployed once, in one wave"
            )
    return problems


def _wave_problems(
    index: int, wave: WaveSpec, entries: Sequence[Any], top: Reach, top_region: str | None
) -> list[str]:
    label = f"wave {index} ({wave.name})"
    if not entries:
        return [f"{label}: empty: no [[deploy]] entry names it (a wave deploys at least one service)"]
    problems = []
    smoke = wave.smoke_test
    if smoke is not None and smoke.service is not None:
        services = {(e.cluster, e.service) for e in entries}
        found = [s for s in services if s[1] == smoke.service and smoke.cluster in (None, s[0])]
        if not found:
            listed = ", ".join(sorted(f"{c}/{s}" for c, s in services))
            where = f"{smoke.cluster}/{smoke.service}" if smoke.cluster else smoke.service
            problems.append(
                f"{label}: smoke_test.service {where!r} is not deployed in this wave (its services: {listed})"
            )
    if wave.needs_place and wave_place(wave, entries, top, top_region) is None:
        problems.append(
            f"{label}: its entries are in several regions or accounts: give the wave 'region' (and "
            "'role_arn' or 'profile') to say where its alarms and smoke test are"
        )
    return problems

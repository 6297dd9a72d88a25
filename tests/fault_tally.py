"""The fault-injection suite's figures: faults injected, jobs run, events lost, duplicate registrations,
and the jobs' final statuses compared with ECS's final state (how many were, how many disagreed).

Each fault test measures its own figures and records them here; the totals are printed at the
end of the pytest run (`pytest_terminal_summary` in conftest.py), e.g.
`.venv/bin/pytest -q -k fault_suite` or the whole suite. Events lost are measured where a
subscriber (the run core) listens: published to the run's stream but never shown to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boto3

__all__ = ["FaultRecord", "duplicate_registrations", "events_lost", "record", "summary"]


@dataclass(frozen=True)
class FaultRecord:
    test: str
    faults: int
    jobs: int
    duplicate_registrations: int
    events_lost: int | None  # None: no subscriber in this test
    statuses_compared: int = 0  # jobs whose final status was checked against what ECS ran at the end
    statuses_wrong: int = 0  # of those, statuses ECS contradicts (failed/lost for a completed rollout...)


_RECORDS: list[FaultRecord] = []


def record(
    test: str,
    *,
    faults: int,
    jobs: int,
    duplicate_registrations: int,
    events_lost: int | None = None,
    statuses_compared: int = 0,
    statuses_wrong: int = 0,
) -> None:
    assert faults > 0, f"{test}: no fault was injected, the test proves nothing"
    _RECORDS.append(
        FaultRecord(
            test, faults, jobs, duplicate_registrations, events_lost, statuses_compared, statuses_wrong
        )
    )


def duplicate_registrations(families: Iterable[str], region: str, expected: int = 2) -> int:
    """Revisions beyond `expected` (the seeded one + the deploy's) in each family, summed."""
    ecs: Any = boto3.client("ecs", region_name=region)
    extra = 0
    for family in families:
        arns = ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"]
        mine = [arn for arn in arns if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family]
        extra += max(0, len(mine) - expected)
    return extra


def events_lost(published: Mapping[str, Sequence[int]], seen: Mapping[str, Sequence[int]]) -> int:
    """Events in the run's stream that the subscriber never got, over all jobs."""
    return sum(len(set(seqs) - set(seen.get(job_id, ()))) for job_id, seqs in published.items())


def summary() -> list[str]:
    if not _RECORDS:
        return []
    measured = [r.events_lost for r in _RECORDS if r.events_lost is not None]
    lines = [
        f"fault-injection suite: {len(_RECORDS)} tests, {sum(r.faults for r in _RECORDS)} faults injected, "
        f"{sum(r.jobs for r in _RECORDS)} jobs run, events lost {sum(measured)} "
        f"(measured in {len(measured)} tests with a subscriber), "
        f"duplicate registrations {sum(r.duplicate_registrations for r in _RECORDS)}, "
        f"statuses compared with ECS {sum(r.statuses_compared for r in _RECORDS)} "
        f"(contradicted by ECS: {sum(r.statuses_wrong for r in _RECORDS)})"
    ]
    lines += [
        f"  {r.test}: {r.faults} faults, {r.jobs} jobs, events lost "
        f"{'-' if r.events_lost is None else r.events_lost}, "
        f"duplicate registrations {r.duplicate_registrations}"
        + (
            f", statuses compared with ECS {r.statuses_compared} (contradicted: {r.statuses_wrong})"
            if r.statuses_compared
            else ""
        )
        for r in _RECORDS
    ]
    return lines

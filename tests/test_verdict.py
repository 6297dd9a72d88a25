"""What an ECS answer means for a job's verdict (pure), and the per-target lease (real Redis)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from redis.asyncio import Redis

from tests.test_rollout import deployment, service
from worker.contract import ContainerChange, DeployJob, Phase
from worker.keys import target_lease
from worker.ledger import TargetHolder, TargetLeases
from worker.rollout import InFlight, Rollout, RolloutState, evaluate_rollout, in_flight
from worker.target import Target
from worker.verdict import (
    OUTSIDE,
    Action,
    Silence,
    confirmed,
    replaced,
    replacer,
    settle,
    timed_out,
    unanswered,
)

OLD = "arn:aws:ecs:us-east-1:123456789012:task-definition/api:1"
NEW = "arn:aws:ecs:us-east-1:123456789012:task-definition/api:2"
THEIRS = "arn:aws:ecs:us-east-1:123456789012:task-definition/api:3"
OURS = "ecs-svc/1"


def ecs_says(*deployments: dict[str, Any]) -> Rollout:
    return evaluate_rollout(service(*deployments), OURS, NEW)


COMPLETED = ecs_says(deployment(OURS, NEW, "PRIMARY", "COMPLETED", 2))
ROLLING = ecs_says(
    deployment(OURS, NEW, "PRIMARY", "IN_PROGRESS", 1), deployment("old", OLD, "ACTIVE", "COMPLETED", 1)
)
FAILED_PRIMARY = ecs_says(deployment(OURS, NEW, "PRIMARY", "FAILED", 0, rolloutStateReason="circuit breaker"))
BREAKER_ROLLED_BACK = ecs_says(
    deployment("back", OLD, "PRIMARY", "IN_PROGRESS", 1),
    deployment(OURS, NEW, "ACTIVE", "FAILED", 0, rolloutStateReason="circuit breaker"),
)
GONE_BACK_TO_OLD = ecs_says(deployment("back", OLD, "PRIMARY", "COMPLETED", 2))
GONE_TO_THEIRS = ecs_says(deployment("theirs", THEIRS, "PRIMARY", "IN_PROGRESS", 0))
SUPERSEDED = ecs_says(
    deployment("theirs", THEIRS, "PRIMARY", "IN_PROGRESS", 0),
    deployment(
        OURS, NEW, "ACTIVE", "IN_PROGRESS", 1, rolloutStateReason=f"ECS deployment {OURS} in progress."
    ),
)


@pytest.mark.parametrize(
    ("rollout", "previous", "expected"),
    [
        pytest.param(SUPERSEDED, OLD, True, id="not-primary-any-more"),
        pytest.param(GONE_TO_THEIRS, OLD, True, id="gone-primary-another-revision"),
        pytest.param(GONE_BACK_TO_OLD, OLD, False, id="gone-back-to-the-previous-ECS-rolled-back"),
        pytest.param(BREAKER_ROLLED_BACK, OLD, False, id="failed-and-rolled-back"),
        pytest.param(COMPLETED, OLD, False, id="completed"),
    ],
)
def test_replaced_tells_someone_elses_deployment_from_a_rollback(
    rollout: Rollout, previous: str, expected: bool
) -> None:
    assert replaced(rollout, previous) is expected


@pytest.mark.parametrize(
    ("holder", "expected"),
    [
        pytest.param("run-b", "run run-b", id="another-run-holds-the-service"),
        pytest.param("run-a", OUTSIDE, id="we-hold-it-someone-outside"),
        pytest.param(None, OUTSIDE, id="nobody-holds-it"),
    ],
)
def test_replacer_names_the_run_holding_the_service(holder: str | None, expected: str) -> None:
    assert replacer(holder, "run-a") == expected


@pytest.mark.parametrize(
    ("rollout", "rollback", "replaced_by", "after", "phase", "action", "words"),
    [
        pytest.param(
            COMPLETED, True, None, None, Phase.SUCCEEDED, Action.NONE, ["2/2 running api:2"], id="done"
        ),
        pytest.param(
            COMPLETED,
            True,
            None,
            "the deadline passed",
            Phase.SUCCEEDED,
            Action.NONE,
            ["2/2 running api:2", "confirmed by ECS after the deadline passed"],
            id="done-as-the-deadline-passed",
        ),
        pytest.param(
            BREAKER_ROLLED_BACK,
            True,
            None,
            None,
            Phase.ROLLED_BACK,
            Action.NONE,
            [f"ECS rolled back to {OLD}", "circuit breaker"],
            id="breaker",
        ),
        pytest.param(
            FAILED_PRIMARY,
            True,
            None,
            None,
            Phase.FAILED,
            Action.ROLL_BACK,
            ["circuit breaker"],
            id="we-roll-back",
        ),
        pytest.param(
            FAILED_PRIMARY,
            False,
            None,
            None,
            Phase.FAILED,
            Action.NONE,
            ["circuit breaker"],
            id="rollback-off",
        ),
        pytest.param(
            SUPERSEDED,
            True,
            "run run-b",
            None,
            Phase.FAILED,
            Action.NONE,
            [
                f"deployment {OURS} was replaced by run run-b; ECS now runs api:3 "
                "(deployment theirs, in progress)"
            ],
            id="replaced-by-a-run",
        ),
        pytest.param(
            GONE_TO_THEIRS,
            True,
            OUTSIDE,
            None,
            Phase.FAILED,
            Action.NONE,
            [f"was replaced by {OUTSIDE}; ECS now runs api:3"],
            id="replaced-outside",
        ),
    ],
)
def test_settle(
    rollout: Rollout,
    rollback: bool,
    replaced_by: str | None,
    after: str | None,
    phase: Phase,
    action: Action,
    words: list[str],
) -> None:
    verdict = settle(
        rollout, OURS, NEW, rollback=rollback, prune=False, replaced_by=replaced_by, confirmed_after=after
    )
    assert (verdict.phase, verdict.action) == (phase, action)
    assert all(word in verdict.message for word in words), verdict.message
    assert "in progress." not in verdict.message  # never ECS's "deployment ... in progress." as a reason


def test_settle_asks_to_prune_only_a_success() -> None:
    assert settle(COMPLETED, OURS, NEW, rollback=True, prune=True).action is Action.PRUNE
    assert settle(BREAKER_ROLLED_BACK, OURS, NEW, rollback=True, prune=True).action is Action.NONE


CRASH = "the worker crashed (RuntimeError('boom'))"


@pytest.mark.parametrize(
    ("now", "phase", "words", "absent"),
    [
        pytest.param(
            COMPLETED,
            Phase.SUCCEEDED,
            [f"confirmed by ECS after {CRASH}"],
            "failed",
            id="ecs-completed-it",
        ),
        pytest.param(
            BREAKER_ROLLED_BACK,
            Phase.ROLLED_BACK,
            ["ECS rolled back to", f"after {CRASH}"],
            "succeeded",
            id="rolled-back",
        ),
        pytest.param(
            ROLLING,
            Phase.FAILED,
            [CRASH, f"ECS reports deployment {OURS} in progress (1/2 running", "the rollout goes on"],
            "confirmed",
            id="still-rolling",
        ),
        pytest.param(
            Silence(5.0, "EndpointConnectionError"),
            Phase.FAILED,
            [
                CRASH,
                "ECS did not answer (EndpointConnectionError)",
                f"last seen: deployment {OURS} in progress (1/2",
            ],
            "confirmed",
            id="ecs-silent",
        ),
    ],
)
def test_confirmed_reports_what_ecs_says_after_a_crash(
    now: Rollout | Silence, phase: Phase, words: list[str], absent: str
) -> None:
    verdict = confirmed(CRASH, OURS, NEW, now, unconfirmed=Phase.FAILED, last_seen=ROLLING)
    assert verdict.phase is phase
    assert all(word in verdict.message for word in words), verdict.message
    assert absent not in verdict.message


@pytest.mark.parametrize(
    ("last_seen", "silence", "words"),
    [
        pytest.param(
            ROLLING,
            Silence(12.4, "EndpointConnectionError: no"),
            [
                "deadline of 20s passed with no answer from ECS for 12s (EndpointConnectionError: no)",
                f"last seen: deployment {OURS} in progress (1/2 running, 1 pending, 0 failed)",
                "not rolled back",
            ],
            id="ecs-silent",
        ),
        pytest.param(
            ROLLING,
            None,
            ["deadline of 20s passed; ECS reports deployment", "in progress (1/2 running", "not rolled back"],
            id="ecs-answering",
        ),
        pytest.param(None, Silence(3, "x"), [f"deployment {OURS}, not described yet"], id="never-described"),
    ],
)
def test_timed_out_says_what_ecs_showed_last(
    last_seen: Rollout | None, silence: Silence | None, words: list[str]
) -> None:
    message = timed_out(20, OURS, last_seen, silence, "not rolled back")
    assert all(word in message for word in words), message
    assert "failed:" not in message and "lost" not in message


@pytest.mark.parametrize(
    ("deployment_id", "arn", "words"),
    [
        pytest.param(None, None, "nothing was changed (UpdateService was never sent)", id="before-anything"),
        pytest.param(None, NEW, "UpdateService to api:2 may have reached ECS", id="update-unanswered"),
        pytest.param(OURS, NEW, f"last seen: deployment {OURS}", id="rolling"),
    ],
)
def test_unanswered_says_what_the_job_had_done(
    deployment_id: str | None, arn: str | None, words: str
) -> None:
    message = unanswered(20, Silence(20, "ConnectTimeoutError"), deployment_id, arn)
    assert message.startswith("deadline of 20s passed with no answer from ECS for 20s (ConnectTimeoutError)")
    assert words in message, message


@pytest.mark.parametrize(
    ("svc", "expected"),
    [
        pytest.param(
            service(
                deployment("d2", NEW, "PRIMARY", "IN_PROGRESS", 1),
                deployment("d1", OLD, "ACTIVE", "COMPLETED", 1),
            ),
            InFlight("d2", NEW, OLD),
            id="rolling-out",
        ),
        pytest.param(service(deployment("d2", NEW, "PRIMARY", "COMPLETED", 2)), None, id="settled"),
        pytest.param(
            service(
                deployment("back", OLD, "PRIMARY", "IN_PROGRESS", 1),
                deployment("d2", NEW, "ACTIVE", "FAILED", 0),
            ),
            InFlight("back", OLD, NEW),
            id="ecs-rolling-back",
        ),
        pytest.param(service(deployment("d2", NEW, "PRIMARY", "FAILED", 0)), None, id="failed-no-rollback"),
        pytest.param(
            service(deployment("d2", NEW, "PRIMARY", None, 1), deployment("d1", OLD, "ACTIVE", None, 1)),
            InFlight("d2", NEW, OLD),
            id="no-rolloutState-two-deployments",
        ),
        pytest.param(service(deployment("d2", NEW, "PRIMARY", None, 2)), None, id="no-rolloutState-settled"),
    ],
)
def test_in_flight_finds_a_deployment_ecs_is_still_rolling_out(
    svc: dict[str, Any], expected: InFlight | None
) -> None:
    assert in_flight(svc) == expected


def test_evaluate_rollout_marks_a_vanished_deployment_and_names_the_primary() -> None:
    assert GONE_TO_THEIRS.state is RolloutState.ROLLED_BACK and GONE_TO_THEIRS.gone
    assert (GONE_TO_THEIRS.primary_deployment_id, GONE_TO_THEIRS.primary_rollout_state) == (
        "theirs",
        "IN_PROGRESS",
    )
    assert not SUPERSEDED.gone and SUPERSEDED.primary_task_definition == THEIRS


# --- the per-target lease, on a real Redis ------------------------------------------------------


def job_of(run_id: str, service: str = "api") -> DeployJob:
    return DeployJob(
        run_id=run_id,
        job_id=f"{run_id}:{service}",
        target=Target(cluster="prod", service=service, region="us-east-1"),
        changes=(ContainerChange(container="app", image="nginx:1"),),
    )


async def test_target_lease_one_job_at_a_time_across_runs(redis: Redis) -> None:
    leases = TargetLeases(redis)
    first, second = job_of("run-a"), job_of("run-b")
    assert await leases.take(first, "w1", 30) == TargetHolder("run-a", "run-a:api", "w1")
    # Another run is told who holds it, and gets nothing.
    assert await leases.take(second, "w2", 30) == TargetHolder("run-a", "run-a:api", "w1")
    assert not await leases.renew(second, "w2", 30)
    await leases.release(second, "w2")  # not its to give up
    assert await leases.holder(second) == TargetHolder("run-a", "run-a:api", "w1")
    # The same job (a redelivery, a continuation) takes it over from its dead worker...
    assert await leases.take(first, "w3", 30) == TargetHolder("run-a", "run-a:api", "w3")
    assert not await leases.renew(first, "w1", 30)  # ...and the dead one cannot renew it back
    assert await leases.renew(first, "w3", 30)
    # Another service is another lease; a release by its owner frees it for the next run.
    assert (await leases.take(job_of("run-b", "web"), "w4", 30)).run_id == "run-b"
    await leases.release(first, "w3")
    assert await leases.holder(first) is None
    assert (await leases.take(second, "w2", 30)).run_id == "run-b"


async def test_target_lease_expires_when_its_worker_dies(redis: Redis) -> None:
    leases = TargetLeases(redis)
    await leases.take(job_of("run-a"), "w1", 0.2)
    assert 0 < await redis.pttl(target_lease(job_of("run-a").target.key)) <= 200
    await anyio.sleep(0.3)
    assert (await leases.take(job_of("run-b"), "w2", 30)).run_id == "run-b"

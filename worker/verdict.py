"""What a job's end is, from what ECS says and what went wrong. Pure.

A job's terminal phase is ECS's truth: `succeeded` only for a rollout ECS completed, and never
`failed` (nor, by the orchestrator, `lost`) for one it completed. When a job's end is not ECS's
word (a deadline, a crash, an AWS error, an endpoint that stopped answering), the worker asks
ECS once more and these functions turn its answer, or its silence and what was last seen, into
the verdict. A deployment that someone else's replaced says who (the run holding the service's
lease, or "outside ecs-fanout") and what ECS runs now.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from worker.contract import Phase
from worker.rollout import Rollout, RolloutState

__all__ = [
    "OUTSIDE",
    "Action",
    "Silence",
    "Verdict",
    "confirmed",
    "replaced",
    "replacer",
    "revision",
    "seen",
    "settle",
    "timed_out",
    "unanswered",
]

OUTSIDE = "a deployment from outside ecs-fanout"


class Action(StrEnum):
    """What the worker still has to do before it reports the verdict."""

    NONE = "none"
    ROLL_BACK = "roll_back"  # our deployment FAILED and is still primary: put the previous back
    PRUNE = "prune"  # succeeded, with `keep_revisions`: deregister old revisions


@dataclass(frozen=True)
class Verdict:
    phase: Phase
    message: str
    action: Action = Action.NONE


@dataclass(frozen=True)
class Silence:
    """ECS gave no usable answer: for how long (seconds), and the last error."""

    seconds: float
    error: str


def revision(arn: str | None) -> str:
    """`family:N` of a task-definition ARN."""
    return arn.rsplit("/", 1)[-1] if arn else "no known revision"


def _counts(rollout: Rollout) -> str:
    return (
        f"{rollout.running}/{rollout.desired} running, {rollout.pending} pending, "
        f"{rollout.failed_tasks} failed"
    )


def seen(deployment_id: str, rollout: Rollout | None) -> str:
    """What ECS last said of a deployment, in words."""
    if rollout is None:
        return f"deployment {deployment_id}, not described yet"
    state = (
        "in progress" if rollout.state is RolloutState.IN_PROGRESS else str(rollout.state).replace("_", " ")
    )
    return f"deployment {deployment_id} {state} ({_counts(rollout)})"


def replaced(rollout: Rollout, previous: str | None) -> bool:
    """Whether another deployment replaced ours, rather than ECS rolling it back: ours is not
    primary any more without having failed, or it is gone and the primary is neither our
    revision nor the one we replaced."""
    if rollout.state is RolloutState.SUPERSEDED:
        return True
    return rollout.gone and rollout.primary_task_definition not in (None, previous)


def replacer(holder_run_id: str | None, own_run_id: str) -> str:
    """Who replaced our deployment: the run holding the service's lease, if not ours."""
    if holder_run_id and holder_run_id != own_run_id:
        return f"run {holder_run_id}"
    return OUTSIDE


def settle(
    rollout: Rollout,
    deployment_id: str,
    arn: str,
    *,
    rollback: bool,
    prune: bool,
    replaced_by: str | None = None,
    confirmed_after: str | None = None,
) -> Verdict:
    """The verdict on a deployment that ended (`rollout.terminal`).

    `replaced_by` names who replaced it (see `replaced`); `confirmed_after` says what the
    worker had met when it asked (the verdict is ECS's answer after that).
    """
    after = f"; confirmed by ECS after {confirmed_after}" if confirmed_after else ""
    if replaced_by is not None:
        state = (rollout.primary_rollout_state or "state unknown").lower().replace("_", " ")
        return Verdict(
            Phase.FAILED,
            f"deployment {deployment_id} was replaced by {replaced_by}; ECS now runs "
            f"{revision(rollout.primary_task_definition)} (deployment {rollout.primary_deployment_id}, "
            f"{state}){after}",
        )
    if rollout.state is RolloutState.COMPLETED:
        return Verdict(
            Phase.SUCCEEDED,
            f"{rollout.running}/{rollout.desired} running {revision(arn)}{after}",
            Action.PRUNE if prune else Action.NONE,
        )
    if rollout.state is RolloutState.TRAFFIC_SHIFTED:
        return Verdict(Phase.BAKING, f"{_shifted(rollout, arn)}{after}")
    if rollout.state is RolloutState.ROLLED_BACK:
        return Verdict(
            Phase.ROLLED_BACK,
            f"ECS rolled back to {rollout.primary_task_definition}: {rollout.reason}{after}",
        )
    reason = (rollout.reason or f"rollout ended {rollout.state}") + after
    if rollout.state is RolloutState.FAILED and rollback:
        return Verdict(Phase.FAILED, reason, Action.ROLL_BACK)
    return Verdict(Phase.FAILED, reason)


def _shifted(rollout: Rollout, arn: str) -> str:
    """A job told to stop at full production traffic: what ECS still does."""
    progress = rollout.progress
    left = progress.bake_left_s if progress is not None else None
    then = f"bakes for another {left / 60:.1f} min, then cleans up" if left else "finishes (bake, clean-up)"
    return (
        f"production traffic is on {revision(arn)} ({rollout.running}/{rollout.desired} running); "
        f"ECS still {then} and may yet roll back: not followed further (done_when = traffic_shifted)"
    )


def timed_out(
    timeout_s: float, deployment_id: str, last_seen: Rollout | None, silence: Silence | None, note: str
) -> str:
    """The message of a job whose deadline passed while its deployment was (last seen) rolling."""
    head = f"deadline of {timeout_s:g}s passed"
    if silence is not None:
        return (
            f"{head} with no answer from ECS for {silence.seconds:.0f}s ({silence.error}); "
            f"last seen: {seen(deployment_id, last_seen)}; {note}"
        )
    return f"{head}; ECS reports {seen(deployment_id, last_seen)}; {note}"


def unanswered(
    timeout_s: float,
    silence: Silence,
    deployment_id: str | None,
    task_definition_arn: str | None,
    last_seen: Rollout | None = None,
) -> str:
    """The message of a job that ECS stopped answering before it followed a deployment (or
    while it rolled one back), by what the job's record says it had done."""
    head = (
        f"deadline of {timeout_s:g}s passed with no answer from ECS for {silence.seconds:.0f}s "
        f"({silence.error})"
    )
    if deployment_id is not None:
        return f"{head}; last seen: {seen(deployment_id, last_seen)}: check the service, a rollout may go on"
    if task_definition_arn is not None:
        update = f"UpdateService to {revision(task_definition_arn)}"
        return f"{head}; {update} may have reached ECS: check the service"
    return f"{head}; nothing was changed (UpdateService was never sent)"


def confirmed(
    fault: str,
    deployment_id: str,
    arn: str,
    now: Rollout | Silence,
    *,
    unconfirmed: Phase,
    cause: str | None = None,
    replaced_by: str | None = None,
    last_seen: Rollout | None = None,
) -> Verdict:
    """The verdict after `fault` (a crash, an AWS error; `cause`: the same in a few words)
    ended a job that had started `deployment_id`, from what ECS says of it `now`: its own end
    when it ended, else `unconfirmed` with what ECS says (or last said) of it."""
    if isinstance(now, Silence):
        return Verdict(
            unconfirmed,
            f"{fault}; ECS did not answer ({now.error}); last seen: {seen(deployment_id, last_seen)}: "
            "check the service, a rollout may go on",
        )
    if now.terminal:
        return settle(
            now,
            deployment_id,
            arn,
            rollback=False,
            prune=False,
            replaced_by=replaced_by,
            confirmed_after=cause or fault,
        )
    return Verdict(
        unconfirmed,
        f"{fault}; ECS reports {seen(deployment_id, now)}: the rollout goes on without ecs-fanout, "
        "check the service",
    )

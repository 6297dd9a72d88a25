"""The Redis key layout of a run, shared by workers and the orchestrator.

Every key of a run carries the hash tag `{run_id}` so that a clustered Redis (ElastiCache
serverless presents itself as a cluster) keeps them in one slot, which our Lua scripts need.
Channels are exact names: ElastiCache serverless has no PSUBSCRIBE.
"""

from __future__ import annotations

__all__ = [
    "PREFIX",
    "deployment_owner",
    "ecs_event_seen",
    "event_channel",
    "event_stream",
    "job_hash",
    "job_lease",
    "poke",
    "run_alive",
    "run_approval",
    "run_awaiting",
    "run_meta",
    "run_plan",
    "run_stop",
    "run_waves",
    "target_lease",
]

PREFIX = "ecs-fanout"


def event_channel(run_id: str) -> str:
    return f"{PREFIX}:{{{run_id}}}:events"


def event_stream(run_id: str) -> str:
    return f"{PREFIX}:{{{run_id}}}:stream"


def run_plan(run_id: str) -> str:
    """The run's planned jobs (JSON), so that `attach` from another terminal knows the targets."""
    return f"{PREFIX}:{{{run_id}}}:plan"


def run_meta(run_id: str) -> str:
    """What `attach` needs to judge the run once its orchestrator is gone (JSON: heartbeat, ...)."""
    return f"{PREFIX}:{{{run_id}}}:meta"


def run_alive(run_id: str) -> str:
    """Set with a short TTL and refreshed while the run's orchestrator runs: gone, it is gone."""
    return f"{PREFIX}:{{{run_id}}}:alive"


def run_waves(run_id: str) -> str:
    """The run's waves and their gates (JSON), for `attach`, `approve` and a resumed run."""
    return f"{PREFIX}:{{{run_id}}}:waves"


def run_approval(run_id: str, wave: str) -> str:
    """A person's decision on a wave's `approve` gate (JSON: approve or stop, by whom, when)."""
    return f"{PREFIX}:{{{run_id}}}:approval:{wave}"


def run_awaiting(run_id: str) -> str:
    """The wave whose gate waits for a person now; absent when none does."""
    return f"{PREFIX}:{{{run_id}}}:awaiting"


def run_stop(run_id: str) -> str:
    """`ecs-fanout stop RUN_ID`: the run starts no further wave (JSON: by whom, when)."""
    return f"{PREFIX}:{{{run_id}}}:stop"


def job_hash(run_id: str, job_id: str) -> str:
    return f"{PREFIX}:{{{run_id}}}:job:{job_id}"


def job_lease(run_id: str, job_id: str) -> str:
    return f"{PREFIX}:{{{run_id}}}:lease:{job_id}"


def target_lease(target_key: str) -> str:
    """Who is deploying a service now, across runs: one key per target (`Target.key`), not per run.

    Its own hash tag (the target's key): the scripts that use it touch this one key only.
    """
    return f"{PREFIX}:target:{{{target_key}}}:lease"


def deployment_owner(deployment_id: str) -> str:
    """The job that follows an ECS deployment (`ecs-svc/N`), for ECS's events on it: across runs."""
    return f"{PREFIX}:deployment:{{{deployment_id}}}"


def ecs_event_seen(event_id: str) -> str:
    """One ECS event acted on once, whoever receives it."""
    return f"{PREFIX}:ecs-event:{{{event_id}}}"


def poke(deployment_id: str) -> str:
    """A wake for a deployment whose job is being looked at by another invocation meanwhile."""
    return f"{PREFIX}:poke:{{{deployment_id}}}"

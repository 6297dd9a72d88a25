"""What a run's gates will need, checked before anything changes: their alarms and task definitions.

A gate that finds, after its wave deployed, that one of its alarms does not exist (a typo) or
that its smoke test's task definition is not there would stop the run with services already
changed. So, next to preflight and with the same consequence (one line per problem, exit 2,
nothing changed): every alarm a gate names must be known to CloudWatch where the gate reads
it, and every task definition a smoke test names must be readable where it runs. (A smoke test
of a service runs the revision the wave registers: nothing to check before.)
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from botocore.exceptions import BotoCoreError, ClientError

from orchestrator.alarms import read_alarms
from orchestrator.preflight import PreflightError
from orchestrator.waves import WavePlan
from worker.aws import AwsAccess
from worker.aws_errors import error_message
from worker.credentials import Clients

__all__ = ["check_gates"]


async def check_gates(
    plan: WavePlan, aws: AwsAccess, run_id: str, spec_path: str, clients: Clients | None = None
) -> None:
    """Raise PreflightError naming every missing alarm or task definition of the plan's gates.
    `clients`: the run's, else clients of its own."""
    if clients is None:
        async with AsyncExitStack() as stack:
            problems = await _problems(plan, Clients(stack, aws, run_id))
    else:
        problems = await _problems(plan, clients)
    if problems:
        raise PreflightError(spec_path, [*problems, "preflight refused the run: nothing was changed"])


async def _problems(plan: WavePlan, clients: Clients) -> list[str]:
    problems: list[str] = []
    for wave in plan.waves:
        where = f"wave {wave.name}"
        if wave.gate.alarms:
            cloudwatch = await clients.get("cloudwatch", wave.region, wave.access)
            states = await read_alarms(cloudwatch, wave.gate.alarms)
            place = wave.region or "the default region"
            problems += [
                f"{where}: no CloudWatch alarm named {name!r} in {place}"
                for name, state in states.items()
                if state is None
            ]
        smoke = wave.gate.smoke_test
        if smoke is not None and smoke.task_definition is not None:
            ecs = await clients.get("ecs", smoke.region, smoke.access)
            try:
                await ecs.describe_task_definition(taskDefinition=smoke.task_definition)
            except (ClientError, BotoCoreError) as exc:
                problems.append(
                    f"{where}: smoke test task definition {smoke.task_definition!r}: {error_message(exc)}"
                )
    return problems

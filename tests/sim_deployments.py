"""Drive the simulated ECS through its service deployments, on a clock the test moves.

Every call goes over real HTTP to the session's moto server; only the rollout simulator's clock
is the test's (`Clock`), so a deployment's stages, bakes and holds are observed at exact
instants instead of raced against wall time. Used by tests/test_service_deployments_sim.py and
tests/test_service_deployment_shapes.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from botocore.config import Config
from botocore.session import get_session

from orchestrator.sandbox import AwsEmulator, RolloutScenario, RolloutSimulator, seed_services

CLUSTER = "prod"
SERVICE = "api"
REGION = "us-east-1"
SESSION = get_session()  # one session: loading the service model again per client is slow
NO_RETRIES = Config(retries={"total_max_attempts": 1})
OLD_IMAGE = "registry.example.com/api:1.0"
# Quick stages on the test's clock: a stage 0.1 s, SCALE_UP 0.2 s, an ECS minute 0.2 s.
SCENARIO = RolloutScenario(
    rollout_s=0.2,
    stage_s=0.1,
    minute_s=0.2,
    hook_hold_s=None,
    bad_images=("*:bad*",),
    hook_fail_images=("*:nohook*",),
)


class Clock:
    """The simulator's time: starts at the wall clock's, moves only when told."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SimulatedEcs:
    """One service (prod/api) on the emulator, driven by a simulator on a test clock."""

    def __init__(self, aws: AwsEmulator, simulator: RolloutSimulator, clock: Clock) -> None:
        self.aws, self.simulator, self.clock = aws, simulator, clock
        self.ecs: Any = SESSION.create_client("ecs", config=NO_RETRIES)

    def seed(self, circuit_breaker: bool = True, **config: Any) -> str:
        """The api service at revision 1, deploying with `config`; that revision's ARN."""
        seed_services(
            self.aws.endpoint_url,
            REGION,
            [(CLUSTER, SERVICE, {"app": OLD_IMAGE})],
            circuit_breaker,
            session=SESSION,
            deployments={(CLUSTER, SERVICE): config},
        )
        return str(self.service()["taskDefinition"])

    def register(self, image: str) -> str:
        """A new revision of api running `image`."""
        return str(
            self.ecs.register_task_definition(
                family=SERVICE,
                containerDefinitions=[{"name": "app", "image": image, "essential": True}],
                networkMode="awsvpc",
                requiresCompatibilities=["FARGATE"],
                cpu="256",
                memory="512",
            )["taskDefinition"]["taskDefinitionArn"]
        )

    def deploy(self, image: str = "registry.example.com/api:2.0") -> str:
        """UpdateService to a new revision of `image`; the deployment id it started."""
        arn = self.register(image)
        service = self.ecs.update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=arn)["service"]
        return str(service["deployments"][0]["id"])

    def arn_of(self, deployment_id: str) -> str:
        """The service deployment whose target revision carries the deployment id's number."""
        number = deployment_id.rsplit("/", 1)[-1]
        for brief in self.list_deployments()["serviceDeployments"]:
            if brief["targetServiceRevisionArn"].rsplit("/", 1)[-1] == number:
                return str(brief["serviceDeploymentArn"])
        raise AssertionError(f"no service deployment lists {deployment_id}")

    def list_deployments(self, **params: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self.ecs.list_service_deployments(cluster=CLUSTER, service=SERVICE, **params)
        return answer

    def describe(self, arn: str) -> dict[str, Any]:
        found: dict[str, Any] = self.ecs.describe_service_deployments(serviceDeploymentArns=[arn])[
            "serviceDeployments"
        ][0]
        return found

    def service(self) -> dict[str, Any]:
        found: dict[str, Any] = self.ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
        return found

    def until(self, arn: str, status: str, step_s: float = 0.05, limit_s: float = 30.0) -> dict[str, Any]:
        """Move the clock by `step_s` until the service deployment is `status`."""
        for _ in range(round(limit_s / step_s)):
            found = self.describe(arn)
            if found["status"] == status:
                return found
            self.clock.advance(step_s)
        raise AssertionError(f"{arn} not {status} within {limit_s}s of the test clock: {found}")

    def walk(
        self, arn: str, step_s: float = 0.05, limit_s: float = 30.0
    ) -> list[tuple[str, str | None, float]]:
        """Every (status, lifecycleStage, production traffic %) the deployment shows, in order,
        looking every `step_s` until it ends."""
        seen: list[tuple[str, str | None, float]] = []
        for _ in range(round(limit_s / step_s)):
            found = self.describe(arn)
            now = (
                found["status"],
                found.get("lifecycleStage"),
                found["targetServiceRevision"]["requestedProductionTrafficWeight"],
            )
            if not seen or seen[-1] != now:
                seen.append(now)
            if "finishedAt" in found:
                return seen
            self.clock.advance(step_s)
        raise AssertionError(f"{arn} did not end within {limit_s}s of the test clock: {seen}")


@contextmanager
def simulated_ecs(aws: AwsEmulator, scenario: RolloutScenario = SCENARIO) -> Iterator[SimulatedEcs]:
    """A simulator on a test clock drives the emulator's ECS; the emulator's own one after."""
    clock = Clock()
    simulator = RolloutSimulator(scenario, clock=clock)
    simulator.install()
    try:
        yield SimulatedEcs(aws, simulator, clock)
    finally:
        simulator.uninstall()
        aws.simulator.install()


def stages(seen: list[tuple[str, str | None, float]]) -> list[str]:
    """The lifecycle stages in the order first seen."""
    return list(dict.fromkeys(stage for _, stage, _ in seen if stage is not None))


def statuses(seen: list[tuple[str, str | None, float]]) -> list[str]:
    return list(dict.fromkeys(status for status, _, _ in seen))


def alarm(aws: AwsEmulator, name: str, state: str = "ALARM") -> None:
    """A CloudWatch alarm `name` in `state`, through the real CloudWatch endpoint."""
    cloudwatch: Any = SESSION.create_client("cloudwatch", config=NO_RETRIES)
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        MetricName="5xx",
        Namespace="api",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason="set by the test")


def hook(stages: list[str], name: str = "check") -> Mapping[str, Any]:
    return {
        "hookTargetArn": f"arn:aws:lambda:{REGION}:123456789012:function:{name}",
        "roleArn": "arn:aws:iam::123456789012:role/hooks",
        "lifecycleStages": stages,
    }

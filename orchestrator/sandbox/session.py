"""`--sandbox`: the whole product against an embedded AWS, no account needed.

Starts the emulator (moto + rollout simulator, ECS throttling emulated) and seeds every cluster
and service the spec names, running an older image of each named container plus a log-router
sidecar that the spec does not touch. A spec over several accounts and regions is seeded where
its entries point: each `role_arn` is created in its account's IAM (anyone there may assume it),
and each account's clusters, services and ECR images are created in their region with that
role's assumed credentials, so that moto keeps them in that account, as AWS would. Entries with
no role (or a profile, which the sandbox cannot have) live in the caller's account, moto's
default. It hands the product one `Endpoints`: the emulator's
endpoint with throw-away credentials, the region, and two hooks that play Lambda for the lambda
executor. It writes no environment variable: the run takes the real code path, pointed at the
emulator through that seam only. Events go through `REDIS_URL` or the run's private Redis
(`orchestrator.redis_server`), as without the sandbox.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import boto3
from botocore.exceptions import ClientError
from botocore.session import Session, get_session
from moto.backends import get_backend
from moto.core.models import DEFAULT_ACCOUNT_ID

from orchestrator.endpoints import Endpoints
from orchestrator.job_queue import JobQueue
from orchestrator.sandbox.emulator import AwsEmulator
from orchestrator.sandbox.esm import EventSourceMappingEmulator
from orchestrator.sandbox.seed import SeededService, seed_alarms, seed_images, seed_role, seed_services
from orchestrator.sandbox.simulator import RolloutScenario
from orchestrator.settings import LambdaSettings
from orchestrator.spec import DeployEntry, Spec
from orchestrator.spec_access import access_of, region_of
from orchestrator.spec_waves import wave_place
from worker.access import role_account
from worker.aws import AwsAccess
from worker.handler import make_handler
from worker.images import parse_image
from worker.settings import WorkerSettings

__all__ = [
    "DEMO_DEPLOYMENTS",
    "SANDBOX_CREDENTIALS",
    "SANDBOX_SCENARIO",
    "SEEDED_TAG",
    "Place",
    "SandboxLambda",
    "sandbox_places",
    "sandbox_services",
    "seed_spec",
    "start_sandbox",
]

# A few seconds per rollout, and any image tagged "broken..." fails its health checks; one of
# ECS's minutes (bake times, linear and canary holds) lasts a second, every other lifecycle
# stage a quarter of one, and a lifecycle hook answers after 3 s. A one-off task (a wave's
# smoke test) runs 3 s and exits 1 when its command or image says "fail".
SANDBOX_SCENARIO = RolloutScenario(
    rollout_s=4.0,
    failure_s=3.0,
    bad_images=("*:broken*",),
    minute_s=1.0,
    stage_s=0.25,
    hook_hold_s=3.0,
    task_s=3.0,
    failing_tasks=("*fail*",),
)
SANDBOX_CREDENTIALS = ("testing", "testing")  # (key id, secret): moto takes any
SEEDED_TAG = "1.0.0"
SANDBOX_ROLE = "ecs-fanout-worker"
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}
SIDECAR = ("log-router", "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32")
ESM_CONCURRENCY = 5
# How the demo's services (specs/demo.toml) deploy, to show every strategy: blue/green with a
# short bake, linear, canary, and a rolling update held by a lifecycle hook; every other service
# rolls, as ECS does by default.
DEMO_DEPLOYMENTS: dict[tuple[str, str], dict[str, Any]] = {
    ("payments", "api"): {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 2},
    ("payments", "ledger"): {
        "strategy": "LINEAR",
        "linearConfiguration": {"stepPercent": 25.0, "stepBakeTimeInMinutes": 1},
    },
    ("storefront", "web"): {
        "strategy": "CANARY",
        "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 2},
        "bakeTimeInMinutes": 1,
    },
    ("storefront", "search"): {
        "strategy": "ROLLING",
        "lifecycleHooks": [{"lifecycleStages": ["POST_SCALE_UP"]}],
    },
}
DEMO_HOOK = "ecs-fanout-demo-smoke-test"  # a Lambda function name: the simulator answers for it


class SandboxLambda:
    """The lambda executor's hooks: a worker role in the emulator's IAM, and Lambda itself."""

    def __init__(self, endpoint_url: str, region: str, stack: ExitStack) -> None:
        self._endpoint_url = endpoint_url
        self._region = region
        self._stack = stack
        self.aws = AwsAccess(endpoint_url=endpoint_url, static_credentials=SANDBOX_CREDENTIALS)
        self.emulated: dict[str, EventSourceMappingEmulator] = {}  # queue ARN -> its Lambda here

    def _client(self, service: str) -> Any:
        key_id, secret = SANDBOX_CREDENTIALS
        return boto3.session.Session().client(
            service,
            region_name=self._region,
            endpoint_url=self._endpoint_url,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )

    def prepare(self, settings: LambdaSettings) -> LambdaSettings:
        """A worker role in the emulator's IAM (Lambda refuses a role it cannot find)."""
        role = self._client("iam").create_role(
            RoleName=SANDBOX_ROLE, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST)
        )
        return settings.model_copy(update={"role_arn": role["Role"]["Arn"]})

    def on_queue_ready(self, queue: JobQueue) -> None:
        """Run the function's Lambda here: our event-source-mapping emulator calls the real
        handler for every queue mapped to the function (the job queue; with ECS's events, the
        timer queue and the events queues of the function's region too).

        The handler gets what Lambda would give it: the function's configured environment (as
        the orchestrator set it) and its region; it reaches AWS at the emulator. moto's own
        mapping would try to run the function in Docker on every send and, failing, receive
        the messages over and over until they land in the dead-letter queue: the emulator
        takes each queue over from it.
        """
        lambda_ = self._client("lambda")
        mappings = lambda_.list_event_source_mappings(EventSourceArn=queue.arn)["EventSourceMappings"]
        if not mappings:
            raise RuntimeError(f"sandbox: no event-source mapping reads {queue.arn}")
        function = lambda_.get_function_configuration(FunctionName=mappings[0]["FunctionArn"])
        variables = dict((function.get("Environment") or {}).get("Variables") or {})
        settings = WorkerSettings.from_environ({**variables, "AWS_REGION": self._region})
        handler = make_handler(settings, self.aws)
        every = lambda_.list_event_source_mappings(FunctionName=str(function["FunctionName"]))
        sqs = self._client("sqs")
        for arn in dict.fromkeys(str(m["EventSourceArn"]) for m in every["EventSourceMappings"]):
            _, _, _, region, account, name = arn.split(":")
            if arn in self.emulated or region != self._region:
                continue
            get_backend("sqs")[account][region].queues[name].lambda_event_source_mappings.clear()
            url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
            emulator = EventSourceMappingEmulator(
                url,
                handler,
                region=region,
                endpoint_url=self._endpoint_url,
                credentials=SANDBOX_CREDENTIALS,
                function_name=str(function["FunctionName"]),
                max_concurrency=ESM_CONCURRENCY,
                remaining_time_s=float(function.get("Timeout") or 900),
            )
            self.emulated[arn] = self._stack.enter_context(emulator)


def sandbox_services(spec: Spec) -> list[SeededService]:
    """What to seed: each named container on `SEEDED_TAG` of its repository, plus a sidecar
    (all entries, wherever they live: `sandbox_places` splits them by account and region)."""
    return _services(spec.deploy)


def _services(entries: Sequence[DeployEntry]) -> list[SeededService]:
    services: dict[tuple[str, str], dict[str, str]] = {}
    for entry in entries:
        containers = services.setdefault((entry.cluster, entry.service), {})
        containers[entry.container] = f"{parse_image(entry.reference).name}:{SEEDED_TAG}"
    for containers in services.values():
        containers.setdefault(*SIDECAR)
    return [(cluster, service, containers) for (cluster, service), containers in services.items()]


Place = tuple[str | None, str]  # (the role that reaches the account, None: the caller's; region)


def sandbox_places(spec: Spec, region: str) -> dict[Place, list[SeededService]]:
    """What to seed where: the spec's services per (role, region), in the spec's order; `region`
    for entries (and a spec) that name none."""
    entries: dict[Place, list[DeployEntry]] = {}
    for entry in spec.deploy:
        place = (access_of(entry, spec).role_arn, region_of(entry, spec.region) or region)
        entries.setdefault(place, []).append(entry)
    return {place: _services(group) for place, group in entries.items()}


def _image_places(spec: Spec, places: Mapping[Place, Sequence[SeededService]]) -> dict[Place, list[str]]:
    """Every image to push, where its ECR registry is: the account in its host (reached through
    the spec's role for that account, else as the caller), the region in its host."""
    roles = {role_account(role): role for role, _ in places if role is not None}
    images = [e.reference for e in spec.deploy]
    images += [image for services in places.values() for _, _, c in services for image in c.values()]
    where: dict[Place, list[str]] = {}
    for image in dict.fromkeys(images):
        registry = parse_image(image).registry or ""
        if ".dkr.ecr." not in registry:
            continue  # not in ECR: nothing to push
        account, _, _, region = registry.split(".")[:4]
        where.setdefault((roles.get(account), region), []).append(image)
    return where


def demo_deployments(account: str, region: str) -> dict[tuple[str, str], dict[str, Any]]:
    """`DEMO_DEPLOYMENTS` in `account` and `region`: each hook's target and role there."""
    hook = {
        "hookTargetArn": f"arn:aws:lambda:{region}:{account}:function:{DEMO_HOOK}",
        "roleArn": f"arn:aws:iam::{account}:role/ecs-fanout-demo-hooks",
    }
    return {
        key: {**config, "lifecycleHooks": [{**hook, **h} for h in config["lifecycleHooks"]]}
        if "lifecycleHooks" in config
        else config
        for key, config in DEMO_DEPLOYMENTS.items()
    }


def seed_spec(endpoint_url: str, spec: Spec, region: str, session: Session | None = None) -> None:
    """Seed `spec`'s world at the emulator: each role in its account's IAM (kept if it exists),
    each account's services and ECR images in their region, through that account's role."""
    places = sandbox_places(spec, region)
    session = session or get_session()  # one set of loaded service models for every client
    for arn in dict.fromkeys(arn for arn, _ in places if arn is not None):
        try:
            seed_role(endpoint_url, role_account(arn), arn.rsplit("/", 1)[-1], session)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "EntityAlreadyExists":
                raise
    for (role, where), services in places.items():
        account = role_account(role) if role is not None else DEFAULT_ACCOUNT_ID
        deployments = demo_deployments(account, where)
        seed_services(endpoint_url, where, services, session=session, role_arn=role, deployments=deployments)
    for (role, where), images in _image_places(spec, places).items():
        seed_images(endpoint_url, where, images, session=session, role_arn=role)
    for wave in spec.wave:  # the alarms the waves' gates read, where they read them
        place = wave_place(wave, [e for e in spec.deploy if e.wave == wave.name], spec, spec.region)
        if wave.alarms and place is not None:
            alarm_region, access = place
            seed_alarms(endpoint_url, alarm_region or region, wave.alarms, session, access.role_arn)


@contextmanager
def start_sandbox(
    spec: Spec, region: str, *, redis_url: str | None = None, scenario: RolloutScenario = SANDBOX_SCENARIO
) -> Iterator[Endpoints]:
    """The emulator, seeded for `spec`, as the run's `Endpoints` (`redis_url` is passed through)."""
    with ExitStack() as stack:
        emulator = stack.enter_context(AwsEmulator(scenario))
        seed_spec(emulator.endpoint_url, spec, region)
        # Throttle from here on, with full buckets: seeding is not part of the deploy.
        emulator.set_throttling(True)
        lambda_ = SandboxLambda(emulator.endpoint_url, region, stack)
        yield Endpoints(
            aws=lambda_.aws,
            redis_url=redis_url,
            region=region,
            prepare_lambda=lambda_.prepare,
            on_queue_ready=lambda_.on_queue_ready,
        )

"""The `lambda` executor: workers run on AWS Lambda, fed by an SQS FIFO queue.

Set-up runs concurrently with the run core's Redis subscription: packing the worker and
making sure the function runs that code, making sure the queue exists, and (jobs following
ECS's events) the timer queue and each account and region's rule and events queue
(`orchestrator.lambda_events`), side by side; the function's environment waits for the timer
queue's ARN. Then the event-source mappings (job queue, timer queue, events queues), which need
the function and the queues, side by side. Each step is reported as a set-up event. Jobs are
sent only when all of it is ready; from then on the orchestrator only listens.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING

import anyio
from redis.asyncio import Redis

from orchestrator.dispatch import send_jobs
from orchestrator.job_queue import JobQueue, MappingChange, delete_queue, ensure_mapping, ensure_queue
from orchestrator.lambda_events import TIMER_QUEUE, LambdaEvents, poll_where_no_events
from orchestrator.lambda_function import ensure_function
from orchestrator.run import Renderer
from orchestrator.session import ExecutorFactory
from orchestrator.settings import LambdaSettings
from worker.aws import AwsAccess
from worker.contract import DeployJob, Follow
from worker.credentials import Clients
from worker.settings import TIMER_QUEUE_ENV

if TYPE_CHECKING:
    from types_aiobotocore_lambda import LambdaClient
    from types_aiobotocore_sqs import SQSClient

__all__ = ["LambdaExecutor", "SetupReporter", "lambda_executor"]

SetupReporter = Callable[[str, str, str], None]  # (step, status, message)


class LambdaExecutor:
    def __init__(
        self,
        settings: LambdaSettings,
        *,
        aws: AwsAccess,
        region: str | None,
        worker_environment: dict[str, str],
        on_setup: SetupReporter,
        run_id: str,
        on_ready: Callable[[JobQueue], None] | None = None,
        jobs: Sequence[DeployJob] = (),
    ) -> None:
        self._settings = settings
        self._jobs = jobs  # whose accounts and regions need ECS's events
        self._run_id = run_id
        self.events = LambdaEvents()
        self._timer_ready = anyio.Event()
        self._aws = aws
        self._region = region
        self._environment = worker_environment
        self._on_setup = on_setup
        self._on_ready = on_ready
        self._queue_name = (
            f"{settings.queue_name}-{run_id[-6:]}" if settings.ephemeral_queue else settings.queue_name
        )
        self._stack = AsyncExitStack()
        self._lambda: LambdaClient | None = None
        self._sqs: SQSClient | None = None
        self.queue: JobQueue | None = None
        self._mapping_uuid: str | None = None

    async def __aenter__(self) -> LambdaExecutor:
        self._lambda = await self._stack.enter_async_context(self._aws.lambda_(self._region))
        self._sqs = await self._stack.enter_async_context(self._aws.sqs(self._region))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with anyio.CancelScope(shield=True):  # also after Ctrl-C: an ephemeral queue must go
            try:
                if self._settings.ephemeral_queue and self.queue is not None:
                    await self._delete_ephemeral()
            finally:
                await self._stack.aclose()

    async def _delete_ephemeral(self) -> None:
        assert self._lambda is not None and self._sqs is not None and self.queue is not None
        if self._mapping_uuid is not None:
            await self._lambda.delete_event_source_mapping(UUID=self._mapping_uuid)
        await delete_queue(self._sqs, self.queue)
        self._on_setup("queue", "deleted", f"ephemeral queue {self._queue_name}.fifo deleted")

    async def _function_step(self) -> None:
        assert self._lambda is not None
        import pack  # deferred: only the lambda executor packs

        started = time.monotonic()
        self._on_setup("pack", "running", "packing worker/ and its dependencies")
        packed = await anyio.to_thread.run_sync(
            lambda: pack.build_zip(
                python_version=self._settings.runtime.removeprefix("python"), arch=self._settings.architecture
            )
        )
        self._on_setup(
            "pack",
            "done",
            f"{packed.size / 1e6:.1f} MB, sha256 {packed.sha256_hex[:12]}"
            f"{' (cached deps)' if packed.cached else ''} in {time.monotonic() - started:.1f}s",
        )
        await self._timer_ready.wait()  # the function's environment names the timer queue
        environment = dict(self._environment)
        if self.events.timer_arn is not None:
            environment[TIMER_QUEUE_ENV] = self.events.timer_arn
        self._on_setup("lambda", "running", f"checking function {self._settings.function_name}")
        state = await ensure_function(
            self._lambda,
            self._settings,
            load_zip=packed.path.read_bytes,  # read only if the function needs this code
            code_sha256=packed.code_sha256,
            environment=environment,
        )
        changes = [
            what
            for what, done in (
                ("created", state.created),
                ("code uploaded", state.code_uploaded and not state.created),
                ("configuration updated", state.configuration_updated and not state.created),
            )
            if done
        ]
        self._on_setup(
            "lambda", "done", f"{self._settings.function_name}: {', '.join(changes) or 'up to date'}"
        )

    async def _queue_step(self) -> None:
        assert self._sqs is not None
        self._on_setup("queue", "running", f"checking queue {self._queue_name}.fifo")
        self.queue = await ensure_queue(self._sqs, self._queue_name, self._settings.timeout_s)
        self._on_setup("queue", "done", f"{self._queue_name}.fifo with dead-letter queue ready")

    async def _events_step(self) -> None:
        """The timer queue and ECS's events of every account and region (jobs that follow them)."""
        assert self._sqs is not None
        try:
            if any(job.options.follow is Follow.EVENTS for job in self._jobs):
                self._on_setup("events", "running", "checking ECS's events and the timer queue")
            await self.events.set_up(
                Clients(self._stack, self._aws, self._run_id),
                self._sqs,
                self._jobs,
                function_timeout_s=self._settings.timeout_s,
                worker_role_arn=self._settings.role_arn,
                events_role=self._settings.events_role,
                on_note=lambda note: self._on_setup("events", "polling", note),
            )
        finally:
            self._timer_ready.set()  # also when it failed: the function step must not wait forever

    async def _map(self, arn: str) -> tuple[str, MappingChange]:
        assert self._lambda is not None
        return await ensure_mapping(
            self._lambda, self._settings.function_name, arn, self._settings.max_concurrency
        )

    async def _map_events(self) -> None:
        """The timer queue and every events queue, as further event sources of the function."""
        arns = list(dict.fromkeys(q.arn for q in self.events.queues.values()))  # scopes may share one
        arns += [self.events.timer_arn] if self.events.timer_arn else []
        if not arns:
            return
        changes: list[MappingChange] = []

        async def one(arn: str) -> None:
            changes.append((await self._map(arn))[1])

        async with anyio.create_task_group() as tg:
            for arn in arns:
                tg.start_soon(one, arn)
        scopes = len(self.events.queues)
        self._on_setup(
            "events",
            "done",
            f"{TIMER_QUEUE} and ECS's events of {scopes} account/region{'s' * (scopes != 1)} mapped "
            f"({'changed' if any(changes) else 'up to date'})",
        )

    async def prepare(self) -> None:
        assert self._lambda is not None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._function_step)
            tg.start_soon(self._queue_step)
            tg.start_soon(self._events_step)
        assert self.queue is not None
        queue = self.queue

        async def job_mapping() -> None:
            self._on_setup("mapping", "running", "checking the event-source mapping")
            self._mapping_uuid, change = await self._map(queue.arn)
            self._on_setup("mapping", "done", f"{change}, enabled")

        async with anyio.create_task_group() as tg:
            tg.start_soon(job_mapping)
            tg.start_soon(self._map_events)
        if self._on_ready is not None:
            self._on_ready(queue)

    async def run_all(
        self,
        jobs: Sequence[DeployJob],
        on_start: Callable[[DeployJob], None],
        on_failed: Callable[[DeployJob, str], None],
    ) -> None:
        assert self._sqs is not None and self.queue is not None, "prepare() first"
        sent = poll_where_no_events(jobs, self.events.polling)
        await send_jobs(self._sqs, self.queue.url, sent, on_start, on_failed)
        self._on_setup("dispatch", "done", f"{len(jobs)} jobs sent to {self._queue_name}.fifo")


def lambda_executor(
    settings: LambdaSettings,
    *,
    aws: AwsAccess,
    region: str | None,
    run_id: str,
    worker_environment: dict[str, str],
    on_ready: Callable[[JobQueue], None] | None = None,
    jobs: Sequence[DeployJob] = (),
) -> ExecutorFactory:
    """The factory the session calls once it has a renderer to report set-up to."""

    def make(redis: Redis, renderer: Renderer) -> LambdaExecutor:
        return LambdaExecutor(
            settings,
            aws=aws,
            region=region,
            worker_environment=worker_environment,
            on_setup=renderer.setup_changed,
            run_id=run_id,
            on_ready=on_ready,
            jobs=jobs,
        )

    return make

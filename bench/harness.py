"""The harness: Redis, the emulator process and the spawner, and one scenario measured in them.

Every tool is a subprocess: `python -m orchestrator SPEC --json` (ecs-fanout, `bench.fanout`)
or `ecs deploy` (fabfuel's ecs-deploy, `bench.peer`), pointed at the emulator through
`AWS_ENDPOINT_URL`. `Harness` owns what all measurements share (the processes, the botocore
session, the work directory) and measures one scenario: seed N services, deploy them with a
tool, note its figures and the throttles it met. Measurements beside the scenarios are in
`bench.probes`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import redis
from botocore.exceptions import ClientError
from botocore.session import Session, get_session

from bench import fanout, peer
from bench.detection import detection_lags, finished_at, first_update_s, longest_look_gap_s
from bench.emulator_client import Emulator
from bench.fanout import follow_of
from bench.measure import Proc, Spawner
from bench.progress import log
from bench.results import LOOK_ACTIONS, Row, lower_bound_s, percentile
from bench.scenario import (
    NEW_TAG,
    REGION,
    force_deployments,
    lambda_role,
    retire_services,
    seed_scenario,
    service_names,
    write_spec,
)
from orchestrator.event_rules import EVENTS_QUEUE, LOCAL_EVENTS_QUEUE
from orchestrator.sandbox import RedisServer, sandbox_aws_env
from orchestrator.sandbox.session import SEEDED_TAG
from worker.budget import budget_key

__all__ = ["Harness"]


def _delta(after: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def esm_totals(stats: Mapping[str, Any]) -> tuple[float, int]:
    """(seconds busy, invocations) of every emulated event-source mapping (job, timer and ECS's
    events queues): what Lambda would bill, summed."""
    mappings = (stats.get("esm") or {}).values()
    return sum(float(m.get("busy_s", 0.0)) for m in mappings), sum(int(m["invocations"]) for m in mappings)


def _ticker_busy(stats: Mapping[str, Any]) -> float:
    return float((stats.get("ticker") or {}).get("busy_s", 0.0))


def esm_by_queue(after: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, tuple[float, int, float]]:
    """Per queue (its name): (seconds busy, invocations, CPU seconds of the invocations' threads)
    between two of the emulator's stats."""
    out: dict[str, tuple[float, int, float]] = {}
    earlier = before.get("esm") or {}
    for arn, now in (after.get("esm") or {}).items():
        then = earlier.get(arn) or {}
        busy, calls, cpu = (
            float(now.get(k, 0)) - float(then.get(k, 0)) for k in ("busy_s", "invocations", "cpu_s")
        )
        if calls:
            out[arn.rsplit(":", 1)[-1]] = (busy, int(calls), cpu)
    return out


class Harness:
    """Redis, the emulator process, seeding, and the measurement of one scenario."""

    def __init__(
        self,
        rollout_s: float,
        workdir: Path,
        spec_defaults: Mapping[str, Any] | None = None,
        *,
        esm_concurrency: int | None = None,
    ) -> None:
        self.esm_concurrency = esm_concurrency
        self.rollout_s = rollout_s
        self.workdir = workdir
        self.spec_defaults = dict(spec_defaults or {})
        self._session: Session = get_session()
        self._redis: RedisServer | None = None
        self.redis_url = ""
        self.emulator: Emulator | None = None
        self.spawner: Spawner | None = None
        self.role_arn: str | None = None

    # lifecycle
    def __enter__(self) -> Harness:
        self.redis_url = os.environ.get("REDIS_URL", "")  # a Redis of the user's, else one of ours
        if not self.redis_url:
            self._redis = RedisServer().start()
            self.redis_url = self._redis.url
        log(
            f"redis {self.redis_url}; starting the emulator process "
            f"(rollout {self.rollout_s:g}s, throttling on)"
        )
        self.emulator = Emulator(
            self.rollout_s, self.redis_url, self.workdir / "emulator.log", self.esm_concurrency
        )
        log(f"emulator pid {self.emulator.pid} at {self.emulator.endpoint_url}")
        self.spawner = Spawner()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.spawner is not None:
            self.spawner.close()
        if self.emulator is not None:
            self.emulator.close()
        if self._redis is not None:
            self._redis.stop()

    @property
    def em(self) -> Emulator:
        assert self.emulator is not None, "use the harness as a context manager"
        return self.emulator

    @property
    def sp(self) -> Spawner:
        assert self.spawner is not None, "use the harness as a context manager"
        return self.spawner

    def measure(
        self, cmd: Sequence[str], *, env: Mapping[str, str], timeout_s: float, keep_stdout: bool = True
    ) -> Proc:
        return self.sp.run(cmd, env=env, timeout_s=timeout_s, keep_stdout=keep_stdout)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a user's shell would have, pointed at the emulator and our Redis."""
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "ECS_FANOUT_")) and k not in ("REDIS_URL", "PYTHONPATH")
        }
        return {
            **base,
            **sandbox_aws_env(self.em.endpoint_url, REGION),
            "REDIS_URL": self.redis_url,
            **extra,
        }

    # the emulated account
    def seed(self, spec_path: Path) -> None:
        """Create the spec's services and images with throttling off (see `bench.scenario`)."""
        seed_scenario(self.em, spec_path, self._session)

    def prepare(
        self, name: str, n: int, spec_name: str, *, accounts: int = 0, tag: str = NEW_TAG, **defaults: Any
    ) -> tuple[list[tuple[str, str]], Path]:
        """`n` services of scenario `name`, their spec (`spec_name` in the work dir, with the
        harness's spec defaults and `defaults`; over `accounts` accounts through their roles, or
        in the caller's with 0), seeded."""
        services = service_names(name, n)
        spec_path = write_spec(
            self.workdir / spec_name, services, accounts=accounts, tag=tag, **self.spec_defaults, **defaults
        )
        self.seed(spec_path)
        return services, spec_path

    def ensure_role(self) -> str:
        if self.role_arn is None:
            self.role_arn = lambda_role(self.em, self._session)
        return self.role_arn

    def reset_budget(self) -> None:
        """Full token buckets in Redis too, as the emulator's are at each scenario's start (an idle
        account): otherwise a scenario would inherit the budget the previous one spent."""
        client = redis.Redis.from_url(self.redis_url)
        try:
            for key in client.scan_iter(match=budget_key("*", "*")):
                client.delete(key)
        finally:
            client.close()

    def purge_event_queues(self) -> None:
        """Empty the queues of ECS's events (the lambda executor's and the local runs')."""
        sqs: Any = self._session.create_client(
            "sqs",
            endpoint_url=self.em.endpoint_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        for name in (EVENTS_QUEUE, LOCAL_EVENTS_QUEUE):
            with contextlib.suppress(ClientError):  # no such queue yet: nothing waits
                sqs.purge_queue(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"])

    # ecs-fanout
    def cli_env(self, tool: str) -> dict[str, str]:
        if tool == "lambda":
            return self.env(ECS_FANOUT_LAMBDA_ROLE_ARN=self.ensure_role())
        return self.env()

    def run_cli(self, spec_path: Path, tool: str, timeout_s: float, *python_flags: str) -> Proc:
        return self.measure(
            fanout.cli_command(spec_path, tool, *python_flags), env=self.cli_env(tool), timeout_s=timeout_s
        )

    # one scenario
    def scenario(
        self,
        tool: str,
        n: int,
        *,
        timeout_s: float | None = None,
        label: str | None = None,
        throttling: bool = True,
        accounts: int = 0,
    ) -> Row:
        """Seed `n` services, deploy them with `tool`, and measure. `accounts` >= 1: the services
        are spread over that many accounts, each reached through its role."""
        name = label or tool
        row = Row.start(n, name, self.rollout_s)
        if accounts:
            row.accounts = accounts
            row.lower_bound_s = lower_bound_s(n, self.rollout_s, accounts)
        # Without emulated throttling the account has no buckets to pace against: the shared
        # budget would pace 1,000 registrations at ECS's 1/s all the same.
        budget: dict[str, Any] = {} if throttling else {"api_budget": False}
        services, spec_path = self.prepare(name, n, f"{name}-n{n}.json", accounts=accounts, **budget)
        if not throttling:
            self.em.throttling(False)
            row.lower_bound_s = self.rollout_s  # no bucket to wait for
            row.throttling = False
        self.reset_budget()
        self._run(row, tool, services, spec_path, timeout_s or (300 + 30 * n))
        return row

    def inflight(self, n: int, rollout_s: float, follow: str = "poll", timeout_s: float | None = None) -> Row:
        """`n` rollouts of `rollout_s` already in flight (started here, throttling off), then
        followed by one run of the local executor, all `n` at once, with ECS's throttling on:
        what following them costs (`follow` "poll": the looker's pacing; "events": ECS's events
        and the safety poll) and how often each deployment is looked at."""
        tool = "local-poll" if follow == "poll" else "local"
        name = f"{tool}-inflight"
        row = Row.start(n, name, rollout_s)
        row.lower_bound_s = rollout_s
        services, spec_path = self.prepare(name, n, f"{name}-n{n}.json", tag=SEEDED_TAG, max_parallel=n)
        self.em.set_rollout(rollout_s)
        force_deployments(self.em, services, self._session)
        self.em.set_rollout(self.rollout_s)
        self.reset_budget()
        self._run(row, tool, services, spec_path, timeout_s or rollout_s + 600)
        return row

    def lambda_billing(self, n: int, rollout_s: float) -> Row:
        """`n` services deployed by the lambda executor with rollouts of `rollout_s` (ECS's events:
        a worker parks while ECS rolls out): Lambda's billed seconds per job (`Row.busy_per_job_s`)."""
        self.em.set_rollout(rollout_s)
        try:
            row = self.scenario("lambda", n, label="lambda-billing")
        finally:
            self.em.set_rollout(self.rollout_s)
        row.rollout_s = rollout_s
        row.lower_bound_s = lower_bound_s(n, rollout_s)
        return row

    def _settled_esm(self, quiet_s: float = 1.0, limit_s: float = 15.0) -> dict[str, Any]:
        """The emulator's stats once no invocation has started for `quiet_s` (a worker may still
        be ending when the CLI prints its summary), or after `limit_s`."""
        stats = self.em.stats()
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            time.sleep(quiet_s)
            again = self.em.stats()
            if esm_totals(again) == esm_totals(stats):
                return again
            stats = again
        return stats

    def _run(
        self, row: Row, tool: str, services: Sequence[tuple[str, str]], spec_path: Path, limit: float
    ) -> None:
        """Run `tool` over `services` and fill `row` with what it did and what ECS saw of it."""
        name, n = row.tool, row.n
        self.em.requests()  # the log starts with this run
        # Lambda runs only in the lambda runs: its worker would also act on the local runs' events
        # (the rule sends each to both executors' queues). Each run starts with both queues of
        # ECS's events empty, as in an account where nothing else deployed for an hour: what
        # earlier scenarios' deployments left there (the poll and `ecs deploy` runs have no
        # consumer) would otherwise be drained first, and the lag would depend on the order.
        self.em.lambda_enabled(False)
        self.purge_event_queues()
        if tool == "lambda":
            self.em.lambda_enabled(True)
        before = self.em.stats()
        row.load_before = os.getloadavg()[0]
        log(f"{name} N={n}: running (load {row.load_before:.2f})")
        proc = None
        if tool == "ecs-deploy":
            peer.peer_loop(self.sp, self.env(), row, services, limit)
        elif tool == "ecs-deploy-all":
            peer.peer_all_at_once(self.sp, self.env(), row, services, limit)
        else:
            row.follow = follow_of(tool)
            proc = self.run_cli(spec_path, tool, limit)
            fanout.read_run(row, proc, limit)
        after = self.em.stats()
        if tool == "lambda":
            after = self._settled_esm()
            row.lambda_busy = esm_by_queue(after, before)
            row.lambda_busy_s = sum(busy for busy, _, _ in row.lambda_busy.values())
            row.lambda_invocations = sum(calls for _, calls, _ in row.lambda_busy.values())
            row.lambda_cpu_s = sum(cpu for _, _, cpu in row.lambda_busy.values())
            if self.em.workers_stale():
                # the CLI runs today's code, the emulator's workers the code it started with
                row.note = (
                    "worker/ changed while the emulator ran: its workers ran older code; " + row.note
                ).strip()
        entries = self.em.requests()
        row.throttled = _delta(after["throttled"], before["throttled"])
        calls = _delta(after["counts"], before["counts"])
        row.calls_per_job = {action: calls.get(action, 0) / n for action in LOOK_ACTIONS}
        if proc is not None:
            row.first_update_s = first_update_s(entries, proc.started_at)
            row.max_look_gap_s = longest_look_gap_s(entries)
            self.em.throttling(False)  # the harness's own reads must not meet the buckets
            lags = [
                lag * 1000
                for lag in detection_lags(
                    proc.lines, finished_at(self.em.endpoint_url, self._session, services)
                )
            ]
            row.detect_p50_ms, row.detect_p99_ms, row.detect_n = (
                percentile(lags, 50),
                percentile(lags, 99),
                len(lags),
            )
        row.ticker_busy_s = _ticker_busy(after) - _ticker_busy(before)
        retire_services(self.em, services, self._session)
        self.em.throttling(True)
        log(
            f"{name} N={n}: {row.wall_s:.2f}s (lower bound {row.lower_bound_s:.1f}s), "
            f"{row.succeeded}/{row.targets} ok, throttled {row.throttled}"
            if row.wall_s is not None
            else f"{name} N={n}: {row.note}"
        )

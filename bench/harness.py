"""Run the tools as their users do and measure them against the emulator process.

Every tool is a subprocess: `python -m orchestrator SPEC --json` (ecs-fanout) or `ecs deploy`
(fabfuel's ecs-deploy, installed in a virtual environment of its own), pointed at the emulator
through `AWS_ENDPOINT_URL`. Each child is reaped with `os.wait4`, which hands back that one
child's CPU time and peak RSS: no sampling, no new dependency. Before each timed run the
services are seeded with throttling off (seeding is not what is measured) and then the
throttling buckets are switched on again full, as an account that was idle would have them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from botocore.session import Session, get_session

from orchestrator.sandbox import RedisServer, sandbox_aws_env, seed_services
from orchestrator.sandbox.session import sandbox_services
from orchestrator.spec import load_spec

__all__ = [
    "ROOT",
    "Emulator",
    "Harness",
    "Proc",
    "Row",
    "Spawner",
    "lower_bound_s",
    "percentile",
]

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
NEW_TAG = "2.0.0"
REGISTER_BURST, REGISTER_RATE = 20, 1.0  # ECS's RegisterTaskDefinition bucket
PEER_PACKAGE = "ecs-deploy"
PEER_VENV = Path.home() / ".cache" / "ecs-fanout" / "bench" / "ecs-deploy-venv"
LAMBDA_ROLE = "ecs-fanout-bench-worker"
TOOLS = ("local", "lambda", "serial", "ecs-deploy")


def lower_bound_s(n: int, rollout_s: float) -> float:
    """One rollout plus what ECS's RegisterTaskDefinition bucket needs for `n` registrations."""
    return rollout_s + max(0, n - REGISTER_BURST) / REGISTER_RATE


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- measuring a subprocess ---------------------------------------------------------------


@dataclass
class Proc:
    returncode: int
    wall_s: float
    cpu_s: float  # user + system of this child alone
    maxrss_mb: float
    lines: list[tuple[float, str]]  # (seconds since start, stdout line)
    stderr: str
    timed_out: bool = False


class Spawner:
    """`python -m bench.spawner`: a small process that starts and reaps the measured children.

    The harness itself holds moto and botocore; a child it forked would report that as its
    own peak RSS (see `bench.spawner`).
    """

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.spawner"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )
        self._lock = threading.Lock()

    def run(
        self,
        cmd: Sequence[str],
        *,
        env: Mapping[str, str],
        timeout_s: float,
        cwd: Path = ROOT,
        keep_stdout: bool = True,
    ) -> Proc:
        request = {"cmd": list(cmd), "env": dict(env), "cwd": str(cwd), "timeout_s": timeout_s}
        request["keep_stdout"] = keep_stdout
        with self._lock:
            assert self._proc.stdin is not None and self._proc.stdout is not None
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the spawner process exited (code {self._proc.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"could not run {cmd[0]}: {answer['error']}")
        return Proc(
            returncode=int(answer["returncode"]),
            wall_s=float(answer["wall_s"]),
            cpu_s=float(answer["cpu_s"]),
            maxrss_mb=float(answer["maxrss_mb"]),
            lines=[(float(t), str(text)) for t, text in answer["lines"]],
            stderr=str(answer["stderr"]),
            timed_out=bool(answer["timed_out"]),
        )

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()


# --- the emulator process -----------------------------------------------------------------


class Emulator:
    """`python -m bench.emulator` as a child process, controlled over its stdin/stdout."""

    def __init__(
        self, rollout_s: float, redis_url: str, log_path: Path, esm_concurrency: int | None = None
    ) -> None:
        env = {**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}
        self._log = log_path.open("w")
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.emulator",
                "--port",
                "0",
                "--rollout-s",
                f"{rollout_s:g}",
                "--throttling",
                *(["--esm-concurrency", str(esm_concurrency)] if esm_concurrency else []),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
            cwd=ROOT,
        )
        self._lock = threading.Lock()
        first = self._read()
        self.endpoint_url = str(first["endpoint_url"])
        self.pid = int(first["pid"])

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(
                f"the emulator process exited (code {self._proc.poll()}); see {self._log.name}"
            )
        answer: dict[str, Any] = json.loads(line)
        return answer

    def command(self, cmd: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps({"cmd": cmd, **fields}) + "\n")
            self._proc.stdin.flush()
            return self._read()

    def throttling(self, enabled: bool) -> None:
        self.command("throttling", enabled=enabled)

    def stats(self) -> dict[str, Any]:
        return self.command("stats")

    def close(self) -> None:
        try:
            self.command("quit")
            self._proc.wait(timeout=10)
        except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()
        finally:
            self._log.close()


# --- results ------------------------------------------------------------------------------


@dataclass
class Row:
    """One tool at one N. `wall_s` None = not run (`note` says why)."""

    n: int
    tool: str
    rollout_s: float
    lower_bound_s: float
    wall_s: float | None = None
    cpu_s: float | None = None
    peak_rss_mb: float | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    events: int = 0
    succeeded: int = 0
    targets: int = 0
    exit_code: int | None = None
    first_line_s: float | None = None
    throttled: dict[str, int] = field(default_factory=dict)
    load_before: float | None = None
    throttling: bool = True
    note: str = ""
    stderr_tail: str = ""

    @property
    def ratio(self) -> float | None:
        return None if self.wall_s is None else self.wall_s / self.lower_bound_s

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def _service_names(tool: str, n: int) -> list[tuple[str, str]]:
    """(cluster, service) of a scenario: names of their own, so scenarios never share state."""
    cluster = f"bench-{tool}-n{n}"
    return [(cluster, f"{tool}-n{n}-svc{i:04d}") for i in range(n)]


def write_spec(path: Path, services: Sequence[tuple[str, str]], **defaults: Any) -> Path:
    entries = [
        {"cluster": c, "service": s, "container": "app", "image": f"{REPO}/{s}", "tag": NEW_TAG}
        for c, s in services
    ]
    path.write_text(json.dumps({"region": REGION, **defaults, "deploy": entries}, indent=1) + "\n")
    return path


def code_stamp() -> float:
    """Newest modification time of the worker's code (the emulator process runs the workers)."""
    return max(p.stat().st_mtime for p in (ROOT / "worker").glob("*.py"))


def _delta(after: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


# --- the harness --------------------------------------------------------------------------


class Harness:
    """Redis, the emulator process, seeding, and one method per measurement."""

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
        self.code_stamp = 0.0
        self.role_arn: str | None = None

    # lifecycle
    def __enter__(self) -> Harness:
        self.redis_url = RedisServer.url_from_env() or ""
        if not self.redis_url:
            self._redis = RedisServer().start()
            self.redis_url = self._redis.url
        log(
            f"redis {self.redis_url}; starting the emulator process "
            f"(rollout {self.rollout_s:g}s, throttling on)"
        )
        self.code_stamp = code_stamp()
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

    def measure(
        self, cmd: Sequence[str], *, env: Mapping[str, str], timeout_s: float, keep_stdout: bool = True
    ) -> Proc:
        assert self.spawner is not None, "use the harness as a context manager"
        return self.spawner.run(cmd, env=env, timeout_s=timeout_s, keep_stdout=keep_stdout)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a user's shell would have, pointed at the emulator and our Redis."""
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "ECS_FANOUT_")) and k not in ("REDIS_URL", "PYTHONPATH")
        }
        return {**base, **sandbox_aws_env(self.em.endpoint_url, REGION), "REDIS_URL": self.redis_url, **extra}

    def seed(self, spec_path: Path) -> None:
        """Create the spec's services (running tag 1.0.0, plus a sidecar) with throttling off."""
        self.em.throttling(False)
        seed_services(
            self.em.endpoint_url, REGION, sandbox_services(load_spec(spec_path)), session=self._session
        )
        self.em.throttling(True)  # full buckets, as for an account that was idle

    def ensure_role(self) -> str:
        if self.role_arn is None:
            iam: Any = self._session.create_client(
                "iam",
                endpoint_url=self.em.endpoint_url,
                region_name=REGION,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            trust = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
            try:
                arn = iam.create_role(RoleName=LAMBDA_ROLE, AssumeRolePolicyDocument=json.dumps(trust))[
                    "Role"
                ]["Arn"]
            except iam.exceptions.EntityAlreadyExistsException:
                arn = iam.get_role(RoleName=LAMBDA_ROLE)["Role"]["Arn"]
            self.role_arn = str(arn)
        return self.role_arn

    # ecs-fanout
    def cli_command(self, spec_path: Path, tool: str, *python_flags: str) -> list[str]:
        cmd = [sys.executable, *python_flags, "-m", "orchestrator", str(spec_path), "--json"]
        if tool == "lambda":
            cmd += ["--executor", "lambda"]
        else:
            cmd += ["--executor", "local"]
        if tool == "serial":
            cmd += ["--max-parallel", "1"]
        return cmd

    def cli_env(self, tool: str) -> dict[str, str]:
        if tool == "lambda":
            return self.env(ECS_FANOUT_LAMBDA_ROLE_ARN=self.ensure_role())
        return self.env()

    def run_cli(self, spec_path: Path, tool: str, timeout_s: float, *python_flags: str) -> Proc:
        return self.measure(
            self.cli_command(spec_path, tool, *python_flags), env=self.cli_env(tool), timeout_s=timeout_s
        )

    def scenario(
        self,
        tool: str,
        n: int,
        *,
        timeout_s: float | None = None,
        label: str | None = None,
        throttling: bool = True,
    ) -> Row:
        """Seed `n` services, deploy them with `tool`, and measure."""
        name = label or tool
        services = _service_names(name, n)
        row = Row(n=n, tool=name, rollout_s=self.rollout_s, lower_bound_s=lower_bound_s(n, self.rollout_s))
        spec_path = write_spec(self.workdir / f"{name}-n{n}.json", services, **self.spec_defaults)
        self.seed(spec_path)
        if not throttling:
            self.em.throttling(False)
            row.lower_bound_s = self.rollout_s  # no bucket to wait for
            row.throttling = False
        before = self.em.stats()
        row.load_before = os.getloadavg()[0]
        limit = timeout_s or (300 + 30 * n)
        log(f"{name} N={n}: running (load {row.load_before:.2f})")
        if tool == "ecs-deploy":
            self._peer_loop(row, services, limit)
        else:
            self._cli_run(row, spec_path, tool, limit)
        if tool == "lambda" and code_stamp() != self.code_stamp:
            # the CLI runs today's code, the emulator's workers the code it started with
            row.note = (
                "worker/ changed while the emulator ran: its workers ran older code; " + row.note
            ).strip()
        row.throttled = _delta(self.em.stats()["throttled"], before["throttled"])
        self.em.throttling(True)
        log(
            f"{name} N={n}: {row.wall_s:.2f}s (lower bound {row.lower_bound_s:.1f}s), "
            f"{row.succeeded}/{row.targets} ok, throttled {row.throttled}"
            if row.wall_s is not None
            else f"{name} N={n}: {row.note}"
        )
        return row

    def _cli_run(self, row: Row, spec_path: Path, tool: str, timeout_s: float) -> None:
        proc = self.run_cli(spec_path, tool, timeout_s)
        row.wall_s, row.cpu_s, row.peak_rss_mb = proc.wall_s, proc.cpu_s, proc.maxrss_mb
        row.exit_code = proc.returncode
        row.first_line_s = proc.lines[0][0] if proc.lines else None
        row.stderr_tail = proc.stderr[-4000:]
        latencies: list[float] = []
        summary: dict[str, Any] | None = None
        for _, line in proc.lines:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            # a duplicate's report changes no state, so its line carries an older receipt time
            if (
                obj.get("type") == "event"
                and obj.get("phase") != "duplicate"
                and obj.get("seq") is not None
                and obj.get("received_at") is not None
            ):
                latencies.append((float(obj["received_at"]) - float(obj["ts"])) * 1000)
            elif obj.get("type") == "summary":
                summary = obj
        row.events = len(latencies)
        row.latency_p50_ms = percentile(latencies, 50)
        row.latency_p99_ms = percentile(latencies, 99)
        results = summary["results"] if summary else []
        row.targets = len(results)
        row.succeeded = sum(1 for r in results if r.get("status") == "succeeded")
        if proc.timed_out:
            row.note = f"killed after {timeout_s:g}s"
        elif summary is None:
            row.note = f"no summary line (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"
        elif row.succeeded != row.targets:
            bad = [
                f"{r['service']}: {r['status']} {r['message'][:120]}"
                for r in results
                if r["status"] != "succeeded"
            ]
            row.note = f"{len(bad)} not succeeded, e.g. {bad[0]}"

    # the peer: ecs deploy, one service after another
    def _peer_loop(self, row: Row, services: Sequence[tuple[str, str]], timeout_s: float) -> None:
        ecs = ensure_peer()
        env = self.env()
        started = time.monotonic()
        cpu, rss, ok = 0.0, 0.0, 0
        failures: list[str] = []
        for cluster, service in services:
            remaining = timeout_s - (time.monotonic() - started)
            cmd = [str(ecs), "deploy", cluster, service, "--image", "app", f"{REPO}/{service}:{NEW_TAG}"]
            cmd += ["--timeout", "600", "--region", REGION]
            proc = self.measure(cmd, env=env, timeout_s=max(1.0, remaining))
            cpu += proc.cpu_s
            rss = max(rss, proc.maxrss_mb)
            if proc.returncode == 0:
                ok += 1
            else:
                failures.append(
                    f"{service}: exit {proc.returncode}: {(proc.stderr or proc.lines[-1][1]).strip()[-200:]}"
                )
        row.wall_s = time.monotonic() - started
        row.cpu_s, row.peak_rss_mb = cpu, rss
        row.succeeded, row.targets = ok, len(services)
        row.exit_code = 0 if ok == len(services) else 1
        if failures:
            row.note = f"{len(failures)} failed, e.g. {failures[0]}"

    # pack.py and the lambda function's code upload
    def pack(self, cold: bool) -> dict[str, Any]:
        """pack.py cold (empty cache dir) then warm, for the lambda executor's default target."""
        out: dict[str, Any] = {}
        cache = self.workdir / "pack-cache"
        shutil.rmtree(cache, ignore_errors=True)
        cmd = [
            sys.executable,
            "pack.py",
            "--out",
            str(self.workdir / "worker.zip"),
            "--cache-dir",
            str(cache),
        ]
        cmd += ["--python-version", "3.12", "--arch", "arm64"]  # LambdaSettings' defaults
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        runs = ("cold", "warm", "warm2") if cold else ("warm-prime", "warm", "warm2")
        for label in runs:
            load = os.getloadavg()[0]
            proc = self.measure(cmd, env=env, timeout_s=900)
            own = re.search(r"\s([0-9.]+)s$", proc.lines[-1][1]) if proc.lines else None
            out[label] = {
                "wall_s": proc.wall_s,
                "pack_s": float(own.group(1)) if own else None,
                "exit_code": proc.returncode,
                "load_before": load,
                "output": [line for _, line in proc.lines] or proc.stderr.strip().splitlines()[-3:],
            }
            log(f"pack.py {label}: {proc.wall_s:.2f}s wall (exit {proc.returncode})")
        return out

    def lambda_uploads(self, timeout_s: float = 600) -> dict[str, Any]:
        """Two lambda-executor runs of one service each: bytes of code uploaded by each."""
        out: dict[str, Any] = {}
        for label in ("first", "unchanged"):
            services = _service_names(f"upload-{label}", 1)
            spec_path = write_spec(self.workdir / f"upload-{label}.json", services, **self.spec_defaults)
            self.seed(spec_path)
            before = len(self.em.stats()["uploads"])
            proc = self.run_cli(spec_path, "lambda", timeout_s)
            uploads = self.em.stats()["uploads"][before:]
            setup = {}
            for _, line in proc.lines:
                obj = json.loads(line) if line.startswith("{") else {}
                if obj.get("type") == "setup" and obj.get("status") == "done":
                    setup[obj["step"]] = obj["message"]
            out[label] = {
                "wall_s": proc.wall_s,
                "exit_code": proc.returncode,
                "uploaded_bytes": sum(int(u["bytes"]) for u in uploads),
                "uploads": uploads,
                "setup": setup,
            }
            log(
                f"lambda run ({label}): uploaded {out[label]['uploaded_bytes']:,} bytes; "
                f"{setup.get('lambda')}"
            )
        return out

    # start-up
    def startup(self, repeats: int = 7) -> dict[str, Any]:
        env = self.env()
        helps = []
        for _ in range(repeats):
            proc = self.measure([sys.executable, "-m", "orchestrator", "--help"], env=env, timeout_s=60)
            helps.append(proc.wall_s)
        services = _service_names("startup", 1)
        spec_path = write_spec(self.workdir / "startup.json", services, **self.spec_defaults)
        self.seed(spec_path)
        first = self.run_cli(spec_path, "local", 120)  # deploys: times its first --json line
        again = self.run_cli(spec_path, "local", 120)  # already on the image: skipped, a short run
        traced = self.run_cli(spec_path, "local", 120, "-X", "importtime")
        imported = [
            line.split("|")[-1].strip()
            for line in traced.stderr.splitlines()
            if line.startswith("import time:")
        ]
        textual = sorted({m for m in imported if m == "textual" or m.startswith("textual.")})
        top = sorted(
            (
                (int(parts[1].strip()), parts[2].strip())
                for parts in (line.split("|") for line in traced.stderr.splitlines())
                if len(parts) == 3 and parts[1].strip().isdigit()
            ),
            reverse=True,
        )
        log(f"--help median {statistics.median(helps):.3f}s; textual imported by --json: {bool(textual)}")
        return {
            "help_s": helps,
            "help_median_s": statistics.median(helps),
            "help_first_s": helps[0],
            "json_first_line_s": first.lines[0][0] if first.lines else None,
            "json_first_line_skip_run_s": again.lines[0][0] if again.lines else None,
            "json_wall_skip_run_s": again.wall_s,
            "json_exit_codes": [first.returncode, again.returncode, traced.returncode],
            "json_imports_textual": bool(textual),
            "textual_modules": textual[:5],
            "modules_imported": len(imported),
            "slowest_imports_us": [{"module": m, "cumulative_us": t} for t, m in top[:8]],
        }


# --- the peer's installation --------------------------------------------------------------


def ensure_peer(venv: Path = PEER_VENV) -> Path:
    """`ecs` of PyPI's ecs-deploy in a virtual environment of its own (created once, then cached)."""
    ecs = venv / "bin" / "ecs"
    if ecs.is_file():
        return ecs
    log(f"installing {PEER_PACKAGE} into {venv}")
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    python = shutil.which("python3") or sys.executable
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", PEER_PACKAGE],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    if not ecs.is_file():
        raise RuntimeError(f"{PEER_PACKAGE} installed no `ecs` command in {venv}")
    return ecs


def peer_version(venv: Path = PEER_VENV) -> str:
    proc = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; print(m.version('ecs-deploy'))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() or "unknown"


@contextmanager
def workdir(keep: bool = False) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ecs-fanout-bench-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def stream(obj: Any, out: IO[str]) -> None:
    out.write(json.dumps(obj, indent=1, default=str) + "\n")

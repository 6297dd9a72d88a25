"""The measurements beside the N-service scenarios: pack.py, the lambda code upload, start-up.

Why: these answer questions the scenarios cannot: how long `pack.py` takes cold and warm, how
many bytes of code the lambda executor uploads (and that it uploads none when nothing changed),
and how fast `python -m orchestrator` starts and what `--json` imports. Each runs in a
`Harness` and returns a dict that goes into the report as it is.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import sys
from typing import Any

from bench.children import env_without_pythonpath
from bench.fanout import json_objects
from bench.harness import Harness
from bench.peer import ensure_peer
from bench.progress import log

__all__ = ["lambda_uploads", "pack", "startup"]


def pack(harness: Harness, cold: bool) -> dict[str, Any]:
    """pack.py cold (empty cache dir) then warm, for the lambda executor's default target."""
    out: dict[str, Any] = {}
    cache = harness.workdir / "pack-cache"
    shutil.rmtree(cache, ignore_errors=True)
    cmd = [sys.executable, "pack.py", "--out", str(harness.workdir / "worker.zip"), "--cache-dir", str(cache)]
    cmd += ["--python-version", "3.12", "--arch", "arm64"]  # LambdaSettings' defaults
    env = env_without_pythonpath()
    runs = ("cold", "warm", "warm2") if cold else ("warm-prime", "warm", "warm2")
    for label in runs:
        load = os.getloadavg()[0]
        proc = harness.measure(cmd, env=env, timeout_s=900)
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


def lambda_uploads(harness: Harness, timeout_s: float = 600) -> dict[str, Any]:
    """Two lambda-executor runs of one service each: bytes of code uploaded by each."""
    out: dict[str, Any] = {}
    harness.em.lambda_enabled(True)
    for label in ("first", "unchanged"):
        _, spec_path = harness.prepare(f"upload-{label}", 1, f"upload-{label}.json")
        before = len(harness.em.stats()["uploads"])
        proc = harness.run_cli(spec_path, "lambda", timeout_s)
        uploads = harness.em.stats()["uploads"][before:]
        setup = {
            obj["step"]: obj["message"]
            for obj in json_objects(proc.lines)
            if obj.get("type") == "setup" and obj.get("status") == "done"
        }
        out[label] = {
            "wall_s": proc.wall_s,
            "exit_code": proc.returncode,
            "uploaded_bytes": sum(int(u["bytes"]) for u in uploads),
            "uploads": uploads,
            "setup": setup,
        }
        log(f"lambda run ({label}): uploaded {out[label]['uploaded_bytes']:,} bytes; {setup.get('lambda')}")
    return out


def _import_times(stderr: str) -> tuple[list[str], list[tuple[int, str]]]:
    """From `python -X importtime`'s stderr: the modules imported, and (cumulative us, module)
    slowest first."""
    rows = [line.split("|") for line in stderr.splitlines() if line.startswith("import time:")]
    imported = [parts[-1].strip() for parts in rows]
    timed = [(int(p[1].strip()), p[2].strip()) for p in rows if len(p) == 3 and p[1].strip().isdigit()]
    return imported, sorted(timed, reverse=True)


# What a deploy must import before its first AWS call: the packages the product is built on.
STACK_IMPORTS = "import aiobotocore.session, redis.asyncio, pydantic, pydantic_settings, anyio"


def import_floor(harness: Harness, repeats: int) -> dict[str, float]:
    """Best of `repeats`: a bare interpreter, one importing only the product's packages
    (`STACK_IMPORTS`, none of our code), and the peer's whole `ecs deploy --help` (boto3, click
    and its code): the start-up neither tool can go below on this machine."""
    env = harness.env()

    def best(cmd: list[str]) -> float:
        return min(harness.measure(cmd, env=env, timeout_s=60).wall_s for _ in range(repeats))

    return {
        "python_s": best([sys.executable, "-c", "pass"]),
        "stack_imports_s": best([sys.executable, "-c", STACK_IMPORTS]),
        "peer_help_s": best([str(ensure_peer()), "deploy", "--help"]),
    }


def startup(harness: Harness, repeats: int = 7) -> dict[str, Any]:
    """`--help` times, the first `--json` line of a run, what the `--json` path imports, and
    the import floor."""
    env = harness.env()
    harness.em.lambda_enabled(False)  # the local runs below have ECS's events to themselves
    helps = []
    for _ in range(repeats):
        proc = harness.measure([sys.executable, "-m", "orchestrator", "--help"], env=env, timeout_s=60)
        helps.append(proc.wall_s)
    _, spec_path = harness.prepare("startup", 1, "startup.json")
    first = harness.run_cli(spec_path, "local", 120)  # deploys: times its first --json line
    again = harness.run_cli(spec_path, "local", 120)  # already on the image: skipped, a short run
    traced = harness.run_cli(spec_path, "local", 120, "-X", "importtime")
    imported, top = _import_times(traced.stderr)
    textual = sorted({m for m in imported if m == "textual" or m.startswith("textual.")})
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
        "floor": import_floor(harness, repeats),
    }

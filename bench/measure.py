"""Running one command, measured: wall time, CPU time, peak RSS and its timestamped stdout.

Why: every tool is measured as its users run it, as a subprocess. The children are started and
reaped by `bench.spawner`, a small process of its own, so that their peak RSS is their own and
not the harness's (see that module); `Spawner` is the harness's client of it and `Proc` what
one run hands back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.children import ROOT, JsonLineChild, env_without_pythonpath

__all__ = ["Proc", "Spawner"]


@dataclass
class Proc:
    returncode: int
    wall_s: float
    cpu_s: float  # user + system of this child alone
    maxrss_mb: float
    lines: list[tuple[float, str]]  # (seconds since start, stdout line)
    stderr: str
    timed_out: bool = False
    started_at: float = 0.0  # time.time() just before the child was started


class Spawner(JsonLineChild):
    """`python -m bench.spawner`: a small process that starts and reaps the measured children.

    The harness itself holds moto and botocore; a child it forked would report that as its
    own peak RSS (see `bench.spawner`).
    """

    what = "spawner"

    def __init__(self) -> None:
        super().__init__("bench.spawner", env=env_without_pythonpath())

    def run(
        self,
        cmd: Sequence[str],
        *,
        env: Mapping[str, str],
        timeout_s: float,
        cwd: Path = ROOT,
        keep_stdout: bool = True,
    ) -> Proc:
        answer = self.request(
            {
                "cmd": list(cmd),
                "env": dict(env),
                "cwd": str(cwd),
                "timeout_s": timeout_s,
                "keep_stdout": keep_stdout,
            }
        )
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
            started_at=float(answer["started_at"]),
        )

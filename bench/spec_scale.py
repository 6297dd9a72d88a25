"""Spec handling at scale: load, plan and name every entry of a spec of N entries.

    python -m bench.spec_scale [--entries 10000] [--format toml] [--repeat 3]

No AWS and no Redis: what is measured is `load_spec` (read, parse, validate), `plan_jobs`
and one `Spec.entry_name` per entry (what a preflight refusing every target asks for), plus
the refusal of a spec whose every second entry gives its container another image. Each
repeat runs in a fresh interpreter, so no cache of an earlier repeat helps; the best of the
repeats is printed (wall seconds, CPU seconds in brackets), with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bench.machine import cpu_model

T = TypeVar("T")
PHASES = ("load", "plan", "name every entry", "refuse duplicates")


def write_specs(directory: Path, entries: int, suffix: str) -> tuple[Path, Path]:
    """A valid spec of `entries` services, and one where entries 2k+1 and 2k+2 clash."""

    def entry(i: int, service: int, tag: str) -> dict[str, str]:
        image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app"
        return {
            "cluster": f"c{i % 100}",
            "service": f"s{service}",
            "container": "app",
            "image": image,
            "tag": tag,
        }

    good = [entry(i, i, f"v{i}") for i in range(entries)]
    clashing = [entry(i // 2, i // 2, f"v{i % 2}") for i in range(entries)]
    paths = directory / f"good{suffix}", directory / f"clashing{suffix}"
    for path, data in zip(paths, (good, clashing), strict=True):
        if suffix == ".json":
            path.write_text(json.dumps({"region": "eu-west-1", "deploy": data}))
        else:
            tables = (
                "[[deploy]]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in e.items())
                for e in data
            )
            path.write_text('region = "eu-west-1"\n' + "".join(tables))
    return paths


def measure_once(good: Path, clashing: Path) -> dict[str, tuple[float, float]]:
    """Each phase's (wall, cpu) seconds, in this (fresh) interpreter."""
    from orchestrator.errors import SpecError
    from orchestrator.plan import plan_jobs
    from orchestrator.spec import load_spec

    times: dict[str, tuple[float, float]] = {}

    def timed(phase: str, step: Callable[[], T]) -> T:
        wall, cpu = time.perf_counter(), time.process_time()
        value = step()
        times[phase] = (time.perf_counter() - wall, time.process_time() - cpu)
        return value

    spec = timed("load", lambda: load_spec(good))
    timed("plan", lambda: plan_jobs(spec, "bench-run"))
    timed("name every entry", lambda: [spec.entry_name(*entry.key) for entry in spec.deploy])

    def refuse() -> None:
        try:
            load_spec(clashing)
        except SpecError:
            return
        raise AssertionError("the clashing spec was accepted")

    timed("refuse duplicates", refuse)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.spec_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--format", choices=("toml", "json"), default="toml")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--once", nargs=2, metavar=("GOOD", "CLASHING"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.once:
        print(json.dumps(measure_once(Path(args.once[0]), Path(args.once[1]))))
        return
    with tempfile.TemporaryDirectory() as directory:
        good, clashing = write_specs(Path(directory), args.entries, f".{args.format}")
        runs = [
            json.loads(
                subprocess.run(
                    [sys.executable, "-m", "bench.spec_scale", "--once", str(good), str(clashing)],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            for _ in range(args.repeat)
        ]
    machine = f"{cpu_model()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    print(f"{args.entries} entries ({args.format}), best of {args.repeat} fresh processes; {machine}")
    for phase in PHASES:
        wall, cpu = min(run[phase][0] for run in runs), min(run[phase][1] for run in runs)
        print(f"  {phase}: {wall:.2f} s ({cpu:.2f} s CPU)")


if __name__ == "__main__":
    main()

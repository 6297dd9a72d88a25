"""`python -m bench`: ecs-fanout's benchmarks against the emulated ECS; a Markdown report on stdout.

Scenarios: N services (default 1, 10, 20, 50, 200; `--quick`: 1, 10) deployed by
- `local`: `python -m orchestrator SPEC --json --executor local` (workers in its process),
  following ECS's events (the product's default),
- `local-poll`: the same with `--follow poll` (budget-paced polling only),
- `lambda`: the same with `--executor lambda` (SQS FIFO queue + Lambda, played by the emulator),
- `serial`: the local executor with `--max-parallel 1`,
- `ecs-deploy`: fabfuel's `ecs deploy CLUSTER SERVICE --image app IMAGE` looped over the services,
  up to N = `--peer-max-n` (default 20); bigger N print "not run", nothing is extrapolated,
- `ecs-deploy-all`: the same commands all started at once (`&` each, then `wait`), as users do.
With `--inflight N`: N rollouts already in flight, followed at once by the local executor under
throttling (alone, like `--accounts-n`), once per `--inflight-follow` (events and poll): the
calls per job and the longest gap between looks.
With `--lambda-billing`: N = `--lambda-billing-n` (20) services by the lambda executor with
rollouts of `--lambda-billing-rollout-s` (60 s): Lambda's billed seconds per job (alone too).
With `--accounts-n N`: N services in one account, the same N split over two accounts, and N/2
in one account, each reached through an assumed role (`local` executor, throttling on); alone
(without `--n` or `--quick`) it runs only those three.
Plus `pack.py` cold and warm, the bytes the lambda executor uploads, start-up times, and with
`--rss-1000` the orchestrator's peak RSS at N = 1000. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.report import markdown
from bench.run import FULL_NS, run
from bench.scenario import TOOLS

FOLLOWS = ("events", "poll")


def _items(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _ns(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in _items(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"a comma-separated list of integers, not {text!r}") from exc
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("every N must be at least 1")
    return values


def _tools(text: str) -> tuple[str, ...]:
    tools = _items(text)
    unknown = [t for t in tools if t not in TOOLS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown tool(s) {', '.join(unknown)}; choose from {', '.join(TOOLS)}"
        )
    return tools


def _follows(text: str) -> tuple[str, ...]:
    follows = _items(text)
    if not follows or any(f not in FOLLOWS for f in follows):
        raise argparse.ArgumentTypeError(f"a comma-separated list of {', '.join(FOLLOWS)}, not {text!r}")
    return follows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="N in {1, 10}")
    parser.add_argument("--n", type=_ns, metavar="N,N,...", help=f"service counts (default {FULL_NS})")
    parser.add_argument("--tools", type=_tools, default=TOOLS, help=f"default: {','.join(TOOLS)}")
    parser.add_argument("--rollout-s", type=float, default=3.0, help="simulated rollout time T (default: 3)")
    parser.add_argument(
        "--peer-max-n", type=int, default=20, help="largest N for the ecs deploy loop (default 20)"
    )
    parser.add_argument(
        "--serial-max-n", type=int, default=50, help="largest N for --max-parallel 1 (default 50)"
    )
    parser.add_argument(
        "--poll-interval", help="spec poll_interval for ecs-fanout (default: the product's default, 2s)"
    )
    parser.add_argument("--rss-1000", action="store_true", help="also N = 1000 for peak RSS (throttling off)")
    parser.add_argument(
        "--rss-tools",
        type=_tools,
        default=("local", "lambda"),
        help="executors of --rss-1000 (default: both)",
    )
    parser.add_argument(
        "--esm-concurrency",
        type=int,
        help="pollers of the emulated event-source mapping (default: the mapping's MaximumConcurrency, 20)",
    )
    parser.add_argument(
        "--accounts-n",
        type=int,
        metavar="N",
        help="also N services in one account vs N split over two (and N/2 in one), local executor",
    )
    parser.add_argument(
        "--inflight",
        type=int,
        metavar="N",
        help="also N rollouts already in flight followed at once (local, throttled): calls and look gaps",
    )
    parser.add_argument(
        "--inflight-rollout-s", type=float, default=180.0, help="their rollout time (default 180)"
    )
    parser.add_argument(
        "--inflight-follow",
        type=_follows,
        default=FOLLOWS,
        help="how the --inflight runs follow (default: events,poll: one run each)",
    )
    parser.add_argument(
        "--lambda-billing",
        action="store_true",
        help="also the lambda executor's billed seconds per job (N and T below; throttled)",
    )
    parser.add_argument("--lambda-billing-n", type=int, default=20, help="its N (default 20)")
    parser.add_argument(
        "--lambda-billing-rollout-s", type=float, default=60.0, help="its rollout time T (default 60)"
    )
    parser.add_argument("--no-pack", action="store_true", help="skip pack.py and code-upload measurements")
    parser.add_argument("--no-cold-pack", action="store_true", help="skip the cold pack (it runs pip)")
    parser.add_argument("--no-startup", action="store_true", help="skip --help / first-line / import checks")
    parser.add_argument("--json-out", type=Path, help="also write every figure as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (specs, emulator log)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report, rows = run(args)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print(markdown(report, rows), flush=True)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    failed_runs = [r for r in rows if r.wall_s is not None and r.exit_code not in (0, None)]
    return 1 if failed_runs else 0


if __name__ == "__main__":
    raise SystemExit(main())

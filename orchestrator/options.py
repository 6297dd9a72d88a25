"""Parser pieces the commands share: output, AWS and logging options, and the exit-code epilog.

Imported by `cli` and by each subcommand's module (which never import `cli`): cheap, stdlib
only besides `exits`, `errors`, `regions` and `logs` (logging is set up in `orchestrator.logs`).
"""

from __future__ import annotations

import argparse
from typing import TextIO

from orchestrator.errors import ConfigError
from orchestrator.exits import ExitCode
from orchestrator.logs import configure_logging
from orchestrator.regions import check_region

__all__ = [
    "EXIT_CODES_EPILOG",
    "add_aws_options",
    "add_output_options",
    "add_verbose_option",
    "choose_output",
    "configure_logging",
    "exit_codes_epilog",
    "region_option",
]

EXIT_CODE_MEANINGS = {
    ExitCode.OK: "every target succeeded (baking included) or already ran its image",
    ExitCode.FAILED: "any other end state",
    ExitCode.CONFIG: "bad input or configuration: nothing was changed",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C, SIGHUP): ECS finishes the rollouts already started",
    ExitCode.TERMINATED: "terminated (SIGTERM): as Ctrl-C, ECS finishes the rollouts already started",
}


def exit_codes_epilog(meanings: dict[ExitCode, str]) -> str:
    """A help epilog listing exit codes, one a line (for RawDescriptionHelpFormatter)."""
    return "exit codes:\n" + "\n".join(f"  {int(code):<4} {text}" for code, text in meanings.items())


# The main command's; tests/test_boundary.py checks that the README lists the same codes.
EXIT_CODES_EPILOG = exit_codes_epilog(EXIT_CODE_MEANINGS)


def add_output_options(parser: argparse.ArgumentParser) -> None:
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--json", action="store_const", dest="output", const="json", help="one JSON object per line on stdout"
    )
    output.add_argument("--plain", action="store_const", dest="output", const="plain", help="plain lines")


def region_option(value: str) -> str:
    """`--region`'s value, checked like the spec's and AWS_REGION's. A ConfigError, not
    argparse's error: one line and exit 2, like every other bad input."""
    try:
        return check_region(value)
    except ValueError as exc:
        raise ConfigError(f"--region: {exc}") from exc


def add_aws_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--region", type=region_option, help="AWS region (default: the spec's, then AWS_REGION)"
    )
    parser.add_argument("--profile", help="AWS profile (default: AWS_PROFILE)")


def add_verbose_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logs on stderr (secrets redacted)"
    )
    parser.add_argument(
        "--debug-aws",
        action="store_true",
        help="the AWS SDK's wire logs too (request and response bodies, redacted)",
    )


def run_id_parser(
    prog: str, description: str, exit_codes: dict[ExitCode, str], *, aws: bool = True
) -> argparse.ArgumentParser:
    """The parser of a command about a past or running run: RUN_ID, the output options, the AWS
    options (`aws`) and -v; the command adds its own options after them."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=exit_codes_epilog(exit_codes),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_id", metavar="RUN_ID", help="the id the run printed")
    add_output_options(parser)
    if aws:
        add_aws_options(parser)
    add_verbose_option(parser)
    return parser


def choose_output(requested: str | None, stdout: TextIO) -> str:
    if requested:
        return requested
    # A person at a terminal gets the live view; pipes and CI get plain lines.
    return "tui" if stdout.isatty() else "plain"

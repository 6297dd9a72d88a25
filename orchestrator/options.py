"""Parser pieces the commands share: output, AWS and logging options, and the exit-code epilog.

Imported by `cli` and by each subcommand's module (which never import `cli`): cheap, stdlib
only besides `exits`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TextIO

from orchestrator.exits import ExitCode

__all__ = [
    "EXIT_CODES_EPILOG",
    "add_aws_options",
    "add_output_options",
    "add_verbose_option",
    "choose_output",
    "configure_logging",
    "exit_codes_epilog",
]

EXIT_CODE_MEANINGS = {
    ExitCode.OK: "every target succeeded or already ran its image",
    ExitCode.FAILED: "any other end state",
    ExitCode.CONFIG: "bad input or configuration: nothing was changed",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C): ECS finishes the rollouts already started",
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


def add_aws_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", help="AWS region (default: the spec's, then AWS_REGION)")
    parser.add_argument("--profile", help="AWS profile (default: AWS_PROFILE)")


def add_verbose_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs on stderr")


def configure_logging(verbose: bool) -> None:
    """Warnings (e.g. an AWS endpoint that does not answer) as `ecs-fanout: ...` lines on stderr;
    with -v, debug logs with times and sources."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s" if verbose else "ecs-fanout: %(message)s",
    )


def choose_output(requested: str | None, stdout: TextIO) -> str:
    if requested:
        return requested
    # A person at a terminal gets the live view; pipes and CI get plain lines.
    return "tui" if stdout.isatty() else "plain"

"""Exit codes, defined once: every command and the documentation use these."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode"]


class ExitCode(IntEnum):
    OK = 0  # every target succeeded (or is baking: traffic shifted) or already ran its image
    FAILED = 1  # any other end state
    CONFIG = 2  # bad input or configuration: nothing was changed
    INTERRUPTED = 130  # Ctrl-C, SIGHUP (or a detach): ECS goes on with what was started
    TERMINATED = 143  # SIGTERM (a CI runner's cancel, a container stop): as Ctrl-C, 128 + 15

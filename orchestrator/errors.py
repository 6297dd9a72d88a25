"""The orchestrator's exception tree.

Every error the orchestrator raises on purpose derives from `FanoutError`, so a caller
(the CLI above all) can catch the whole family in one place and map each branch to an exit
code, in the style of httpx's `HTTPError` tree::

    FanoutError                 anything ecs-fanout raises on purpose (exit 1)
     └── ConfigError            bad input or configuration, nothing was changed (exit 2)
          ├── SpecError         a spec file that cannot be read or does not validate
          ├── AwsAccessError    no credentials or region, AWS unreachable, credentials refused
          └── RedisUnavailable  Redis unreachable, or REDIS_URL is not a Redis URL

`orchestrator.boundary` turns these (and the library errors they stand for: botocore's,
redis's, pydantic-settings') into one line on stderr and the error's `exit_code`.
"""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.exits import ExitCode

__all__ = ["AwsAccessError", "ConfigError", "FanoutError", "RedisUnavailable", "SpecError"]


class FanoutError(Exception):
    """Base class of every error ecs-fanout raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILED


class ConfigError(FanoutError):
    """Bad input or configuration: nothing was deployed. The CLI exits with code 2."""

    exit_code = ExitCode.CONFIG


class AwsAccessError(ConfigError):
    """AWS cannot be used as configured: no credentials or region, an endpoint that does not
    answer, or credentials AWS refuses. The message says what to do about it."""


class RedisUnavailable(ConfigError):
    """The Redis that carries a run's events cannot be reached, or its URL is not one."""


class SpecError(ConfigError):
    """A spec file that cannot be read, parsed or validated.

    `problems` lists every problem found (not just the first), each in plain words and
    without the file name; `str()` renders one problem per line, each line starting with
    the file path, so that editors and CI logs can point at the file.
    """

    def __init__(self, path: str, problems: Iterable[str]) -> None:
        self.path = path
        self.problems: tuple[str, ...] = tuple(problems) or ("invalid spec",)
        super().__init__(self.path, self.problems)

    def __str__(self) -> str:
        return "\n".join(f"{self.path}: {problem}" for problem in self.problems)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r}, problems={self.problems!r})"

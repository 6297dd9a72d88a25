"""The orchestrator's exception tree.

Every error the orchestrator raises on purpose derives from `FanoutError`, so a caller
(the CLI above all) can catch the whole family in one place and map each branch to an exit
code, in the style of httpx's `HTTPError` tree::

    FanoutError            anything ecs-fanout raises on purpose
     └── ConfigError       bad input or configuration; the CLI exits with code 2
          └── SpecError    a spec file that cannot be read or does not validate
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["ConfigError", "FanoutError", "SpecError"]


class FanoutError(Exception):
    """Base class of every error ecs-fanout raises on purpose."""


class ConfigError(FanoutError):
    """Bad input or configuration: nothing was deployed. The CLI exits with code 2."""

    exit_code: int = 2


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

"""The CLI's one error boundary: an expected failure becomes one line on stderr and an exit code.

Every command runs through `run_command`. What a user can fix (no credentials or region, an
AWS endpoint or a Redis that does not answer, credentials AWS refuses, a bad setting, a bad
spec: our `FanoutError` tree and the library errors behind it) is said in one line that names
the fix, with the documented exit code, and never as a traceback. A closed stdout
(`ecs-fanout ... | head`) ends the command quietly. Anything else is a bug and keeps its
traceback. Task groups wrap what their tasks raise in exception groups: those are unwrapped,
and a group is expected only when every exception in it is.

Cheap to import (the CLI imports it before parsing): a library's exceptions are looked up
only when one was raised, and only if the library was imported at all.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import AwsAccessError, ConfigError, FanoutError, RedisUnavailable
from orchestrator.exits import ExitCode
from orchestrator.stop_signals import stop_code, stop_reason

__all__ = ["Failure", "aws_problem", "client_error_fix", "explain", "run_command"]

PREFIX = "ecs-fanout: "

TRY_THE_SANDBOX = "to try ecs-fanout without AWS, add --sandbox"
NO_REGION = "no AWS region: pass --region, set `region` in the spec, or export AWS_REGION"
DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException"}


@dataclass(frozen=True)
class Failure:
    """An expected failure: what to print (nothing for a closed stdout) and the exit code."""

    message: str
    code: ExitCode
    quiet: bool = False


def run_command(command: Callable[[], int]) -> int:
    """`command()`'s exit code; an expected failure printed as one line, with its code."""
    try:
        code = int(command())
        sys.stdout.flush()  # here, not at exit: a closed stdout is then ours to handle
        return code
    except SystemExit:  # argparse's --help, --version and usage errors: their own exit codes
        _flush_or_silence()
        raise
    except BaseException as exc:
        failure = explain(exc)
        if failure is None:
            raise  # a bug: its traceback must be seen
        if failure.quiet:
            _silence_stdout()
        else:
            print(failure.message, file=sys.stderr)
        return int(failure.code)


def explain(exc: BaseException) -> Failure | None:
    """The failure `exc` stands for, or None when it is not an expected one (a bug)."""
    if isinstance(exc, BaseExceptionGroup):
        failures = [explain(leaf) for leaf in _leaves(exc)]
        if not failures or any(f is None for f in failures):
            return None
        known = [f for f in failures if f is not None]
        return next((f for f in known if f.quiet), known[0])  # a closed stdout wins: print nothing
    if isinstance(exc, BrokenPipeError):
        return Failure("", ExitCode.FAILED, quiet=True)
    if isinstance(exc, KeyboardInterrupt):  # Ctrl-C, or SIGTERM/SIGHUP (`stop_signals`)
        return Failure(f"{PREFIX}{stop_reason()}", stop_code())
    if not isinstance(exc, FanoutError):
        problem = aws_problem(exc) or _aws_refusal(exc) or _redis_problem(exc) or _settings_problem(exc)
        if problem is None:
            return None
        exc = problem
    assert isinstance(exc, FanoutError)
    return Failure(f"{PREFIX}{exc}", exc.exit_code)


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def _flush_or_silence() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()


def _silence_stdout() -> None:
    """Python's advice for EPIPE: point stdout at devnull, so the flush at exit cannot fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def _loaded(module: str) -> Any:
    """`module` if this process imported it: an exception of a library never loaded cannot occur."""
    return sys.modules.get(module)


def aws_problem(exc: BaseException) -> AwsAccessError | None:
    """What to do about a botocore error that means AWS cannot be used as configured. Credential
    problems are recognised where the workers recognise them too (`worker.aws_errors`)."""
    botocore = _loaded("botocore.exceptions")
    if botocore is None or not isinstance(exc, botocore.BotoCoreError | botocore.ClientError):
        return None
    from worker.aws_errors import CREDENTIALS_HINT, credentials_problem

    kwargs: dict[str, Any] = getattr(exc, "kwargs", {})
    if isinstance(exc, botocore.NoCredentialsError):
        return AwsAccessError(f"no AWS credentials found: {CREDENTIALS_HINT}; {TRY_THE_SANDBOX}")
    if isinstance(exc, botocore.ProfileNotFound):
        return AwsAccessError(
            f"AWS profile {kwargs.get('profile')!r} not found (`aws configure list-profiles` lists "
            f"them): {CREDENTIALS_HINT}"
        )
    if isinstance(exc, botocore.ClientError) and (fix := client_error_fix(exc)) is not None:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", ""), error.get("Message", "")
        if credentials_problem(exc):
            return AwsAccessError(f"AWS refused the credentials ({code}: {message}): {fix}")
        return AwsAccessError(
            f"AWS denied {getattr(exc, 'operation_name', 'a call')} ({message or code}): {fix}"
        )
    if credentials_problem(exc):  # partial keys, an expired SSO session, a failing credential process
        return AwsAccessError(f"no usable AWS credentials ({exc}): {CREDENTIALS_HINT}")
    if isinstance(exc, botocore.NoRegionError):
        return AwsAccessError(NO_REGION)
    if isinstance(
        exc,
        botocore.EndpointConnectionError
        | botocore.ConnectTimeoutError
        | botocore.ReadTimeoutError
        | botocore.ConnectionClosedError,
    ):
        where = kwargs.get("endpoint_url", "")
        return AwsAccessError(
            f"cannot reach AWS at {where} ({type(exc).__name__}): check the network (proxy, VPN), "
            "the region, and AWS_ENDPOINT_URL if it is set"
        )
    return None


def _aws_refusal(exc: BaseException) -> FanoutError | None:
    """Any other AWS answer that refused a call: said as AWS said it (exit 1). Our own malformed
    requests (botocore's ParamValidationError) are bugs and keep their traceback."""
    botocore = _loaded("botocore.exceptions")
    if botocore is None or not isinstance(exc, botocore.ClientError):
        return None
    error = exc.response.get("Error", {})
    operation = getattr(exc, "operation_name", "a call")
    return FanoutError(f"AWS refused {operation}: {error.get('Code', '?')}: {error.get('Message', '')}")


def client_error_fix(exc: Any) -> str | None:
    """What to do about an AWS answer (a botocore ClientError) that refuses the caller, if it is one."""
    from worker.aws_errors import CREDENTIALS_HINT, credentials_problem

    if credentials_problem(exc):
        return f"they are wrong or expired: {CREDENTIALS_HINT}"
    if exc.response.get("Error", {}).get("Code", "") in DENIED:
        return "give the caller the permissions that `ecs-fanout iam-policy` prints"
    return None


def _redis_problem(exc: BaseException) -> RedisUnavailable | None:
    redis = _loaded("redis.exceptions")
    if redis is not None and isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return RedisUnavailable(f"cannot reach Redis ({exc}): start it, or point REDIS_URL at one")
    if redis is not None and isinstance(
        exc, redis.AuthenticationError | redis.AuthenticationWrongNumberOfArgsError
    ):
        return RedisUnavailable(f"Redis refused the password in REDIS_URL ({exc})")
    if isinstance(exc, ValueError) and _raised_in(exc, "redis."):  # redis-py's URL parsing
        return RedisUnavailable(f"REDIS_URL is not a Redis URL ({exc})")
    return None


def _raised_in(exc: BaseException, package: str) -> bool:
    """Whether the innermost frame of `exc`'s traceback is in `package`."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith(package)


def _settings_problem(exc: BaseException) -> ConfigError | None:
    """A settings model that could not be read (`load_settings` says it first; a fallback)."""
    settings = _loaded("pydantic_settings")
    if settings is not None and isinstance(exc, settings.SettingsError):
        from orchestrator.settings import settings_error_text

        return ConfigError(f"bad setting in the environment: {settings_error_text(exc)}")
    pydantic = _loaded("pydantic")
    if pydantic is not None and isinstance(exc, pydantic.ValidationError) and exc.title.endswith("Settings"):
        return ConfigError(f"bad setting in the environment ({exc.title}): {exc.errors()[0]['msg']}")
    return None

"""Settings from the environment: `ECS_FANOUT_*`, plus the standard AWS and Redis variables.

The orchestrator's only reader of the environment: the CLI builds one `Settings` per process
(`load_settings`) and passes it down. Precedence, most specific first: command-line flag,
then the spec file's top-level value, then the environment, then the built-in default. A
field left `None` here means "not set", and an empty variable counts as unset
(`REDIS_URL=` is no Redis URL, not a bad one). AWS credentials are never read here: the
SDK's standard chain finds them.

The `lambda` executor's settings are read only when that executor is used
(`Settings.lambda_settings()`): a bad `ECS_FANOUT_LAMBDA_*` value must not stop a local run.
"""

from __future__ import annotations

import os
import re
from typing import Literal, TypeVar

from pydantic import AliasChoices, Field, PrivateAttr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from orchestrator.errors import ConfigError
from orchestrator.regions import check_region
from worker.registries import ALLOWED_REGISTRIES_ENV, allowed_from_env
from worker.settings import WorkerSettings

__all__ = ["LambdaSettings", "Settings", "load_settings"]

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class LambdaSettings(BaseSettings):
    """The `lambda` executor's AWS resources (env `ECS_FANOUT_LAMBDA_*`)."""

    model_config = SettingsConfigDict(env_prefix="ECS_FANOUT_LAMBDA_", extra="ignore", env_ignore_empty=True)

    function_name: str = "ecs-fanout-worker"
    role_arn: str | None = None  # needed only to create the function
    # the name of a role, in each account, that forwards its ECS events of other regions to the
    # function's region (EventBridge assumes it: docs/aws.md, "ECS's events")
    events_role: str | None = None
    runtime: Literal["python3.12", "python3.13"] = "python3.12"
    architecture: Literal["x86_64", "arm64"] = "arm64"
    timeout_s: int = Field(default=900, ge=30, le=900)
    memory_mb: int = Field(default=512, ge=128, le=10240)
    subnet_ids: list[str] = Field(default_factory=list)
    security_group_ids: list[str] = Field(default_factory=list)
    queue_name: str = "ecs-fanout-jobs"
    max_concurrency: int = Field(default=20, ge=2, le=1000)
    ephemeral_queue: bool = False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ECS_FANOUT_", extra="ignore", env_ignore_empty=True)

    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("ECS_FANOUT_REDIS_URL", "REDIS_URL")
    )
    region: str | None = Field(
        default=None, validation_alias=AliasChoices("ECS_FANOUT_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
    )
    profile: str | None = Field(
        default=None, validation_alias=AliasChoices("ECS_FANOUT_PROFILE", "AWS_PROFILE")
    )
    executor: Literal["local", "lambda"] = "local"
    max_parallel: int | None = Field(default=None, ge=1)
    # Comma-separated registry patterns, as the workers read them (`worker.registries`).
    allowed_registries_text: str = Field(default="", validation_alias=ALLOWED_REGISTRIES_ENV)

    _lambda: LambdaSettings | None = PrivateAttr(default=None)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, url: str | None) -> str | None:
        # The value is not echoed: it may hold a password.
        if url is not None and not url.startswith(REDIS_SCHEMES):
            raise ValueError(f"not a Redis URL: it must start with {', '.join(REDIS_SCHEMES)}")
        return url

    @field_validator("region")
    @classmethod
    def _region(cls, region: str | None) -> str | None:
        # `us_east_1` would otherwise reach the first AWS call; checked as the spec's and --region are.
        return None if region is None else check_region(region)

    @property
    def allowed_registries(self) -> tuple[str, ...]:
        """The registry allow-list the workers enforce (empty: every registry allowed)."""
        return allowed_from_env({ALLOWED_REGISTRIES_ENV: self.allowed_registries_text})

    def worker_settings(self, *, redis_url: str | None, region: str | None) -> WorkerSettings:
        """What a worker of this run needs: where events go, its default region, the allow-list."""
        return WorkerSettings(redis_url=redis_url, region=region, allowed_registries=self.allowed_registries)

    def lambda_settings(self) -> LambdaSettings:
        """The `ECS_FANOUT_LAMBDA_*` settings, read on first use; ConfigError naming a bad one."""
        if self._lambda is None:
            self._lambda = _read(LambdaSettings)
        return self._lambda


def load_settings() -> Settings:
    """The settings, or a ConfigError naming the variable that is wrong."""
    return _read(Settings)


_T = TypeVar("_T", bound=BaseSettings)


def _read(model: type[_T]) -> _T:
    try:
        return model()
    except ValidationError as exc:
        problems = "; ".join(
            f"{_variable(model, e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
        )
        raise ConfigError(f"bad setting in the environment: {problems}") from exc
    except SettingsError as exc:  # a value that should be JSON and is not
        raise ConfigError(f"bad setting in the environment: {settings_error_text(exc)}") from exc


def settings_error_text(exc: SettingsError) -> str:
    """`ECS_FANOUT_LAMBDA_SUBNET_IDS: not valid JSON ...` from pydantic-settings' message."""
    found = re.search(r'field "(\w+)"', str(exc))
    if found is None:
        return str(exc)
    field = found[1]
    model: type[BaseSettings] = LambdaSettings if field in _LAMBDA_ONLY else Settings
    return (
        f'{_variable(model, (field,))}: not valid JSON (a list is written ["a", "b"])'
        if field in _JSON_FIELDS
        else f"{_variable(model, (field,))}: cannot be read"
    )


_LAMBDA_ONLY = frozenset(LambdaSettings.model_fields) - frozenset(Settings.model_fields)
_JSON_FIELDS = frozenset({"subnet_ids", "security_group_ids"})


def _variable(model: type[BaseSettings], loc: tuple[int | str, ...]) -> str:
    """The environment variable behind an error's location (for an alias: the one that is set)."""
    name = str(loc[0]) if loc else "?"
    for field_name, field in model.model_fields.items():
        alias = field.validation_alias
        choices = (
            [alias] if isinstance(alias, str) else alias.choices if isinstance(alias, AliasChoices) else []
        )
        names = [choice for choice in choices if isinstance(choice, str)]
        if name == field_name or name in names:
            if names:
                return next((n for n in names if os.environ.get(n)), names[0])
            break
    return f"{model.model_config.get('env_prefix', '')}{name}".upper()

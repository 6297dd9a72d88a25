"""Settings from the environment: `ECS_FANOUT_*`, plus the standard AWS and Redis variables.

Precedence, most specific first: command-line flag, then the spec file's top-level value,
then the environment, then the built-in default. A field left `None` here means "not set".
AWS credentials are never read here: the SDK's standard chain finds them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.errors import ConfigError

__all__ = ["LambdaSettings", "Settings", "load_settings"]


class LambdaSettings(BaseSettings):
    """The `lambda` executor's AWS resources (env `ECS_FANOUT_LAMBDA_*`)."""

    model_config = SettingsConfigDict(env_prefix="ECS_FANOUT_LAMBDA_", extra="ignore")

    function_name: str = "ecs-fanout-worker"
    role_arn: str | None = None  # needed only to create the function
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
    model_config = SettingsConfigDict(env_prefix="ECS_FANOUT_", extra="ignore")

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
    lambda_: LambdaSettings = Field(default_factory=lambda: LambdaSettings())


def load_settings() -> Settings:
    """The settings, or a ConfigError naming the variable that is wrong."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{_variable(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"bad setting in the environment: {problems}") from exc


def _variable(loc: tuple[int | str, ...]) -> str:
    name = str(loc[-1]) if loc else "?"
    nested = name in LambdaSettings.model_fields and name not in Settings.model_fields
    return f"ECS_FANOUT_{'LAMBDA_' if nested else ''}{name.upper()}"

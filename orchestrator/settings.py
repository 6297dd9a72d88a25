"""Settings from the environment: `ECS_FANOUT_*`, plus the standard AWS and Redis variables.

Precedence, most specific first: command-line flag, then the spec file's top-level value,
then the environment, then the built-in default. A field left `None` here means "not set".
AWS credentials are never read here: the SDK's standard chain finds them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


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

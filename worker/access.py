"""How a job reaches its target's account: `Access`, on the wire. Pure.

A job carries the role to assume (`role_arn`, optional `external_id`) or, for the local
executor only, a named `profile`; neither means the caller's (the worker's) own credentials.
Never credentials themselves: a job is a message, and messages are logged and kept.
"""

from __future__ import annotations

import re
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CALLER",
    "SESSION_NAME_MAX",
    "Access",
    "check_role_arn",
    "role_account",
    "session_name",
]

# arn:aws[-cn|-us-gov]:iam::<12 digits>:role/<path/name>; IAM's role names: [\w+=,.@-]{1,64}
_ROLE_ARN = re.compile(r"^arn:aws(?:-cn|-us-gov)?:iam::(\d{12}):role/(?:[!-~]+/)?[\w+=,.@-]{1,64}$")
SESSION_NAME_MAX = 64  # STS's RoleSessionName: 2 to 64 of [\w+=,.@-]
_SESSION_CHAR = re.compile(r"[^\w+=,.@-]", re.ASCII)


def check_role_arn(value: str) -> str:
    """`value` when it is an IAM role ARN; ValueError saying what one looks like."""
    if not _ROLE_ARN.match(value):
        raise ValueError(
            f"{value!r} is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<path/name>)"
        )
    return value


def role_account(role_arn: str) -> str:
    """The account a role ARN belongs to (the one its credentials act in)."""
    match = _ROLE_ARN.match(role_arn)
    if match is None:
        raise ValueError(f"not an IAM role ARN: {role_arn!r}")
    return match.group(1)


def session_name(run_id: str) -> str:
    """The role session name CloudTrail records: `ecs-fanout-<run id>`, in STS's characters, at most 64."""
    return _SESSION_CHAR.sub("-", f"ecs-fanout-{run_id}")[:SESSION_NAME_MAX]


class Access(BaseModel):
    """A role to assume (with an external id), a local profile, or neither: the caller's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role_arn: str | None = Field(default=None, min_length=1)
    external_id: str | None = Field(default=None, min_length=2, max_length=1224)
    profile: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if self.role_arn is not None:
            check_role_arn(self.role_arn)
            if self.profile is not None:
                raise ValueError("give 'role_arn' or 'profile', not both")
        elif self.external_id is not None:
            raise ValueError("'external_id' needs 'role_arn'")
        return self

    @property
    def account(self) -> str | None:
        """The account, when the access names it (a role); else only STS can tell."""
        return None if self.role_arn is None else role_account(self.role_arn)

    def __str__(self) -> str:
        if self.role_arn is not None:
            return f"role {self.role_arn}"
        if self.profile is not None:
            return f"profile {self.profile!r}"
        return "the caller's credentials"


CALLER = Access()

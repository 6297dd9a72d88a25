"""Clients per access and region, with assumed-role credentials that last the run.

An assumed role's credentials expire (one hour by default, less if the role says so), and a
run may last longer. So a role is not assumed once: its credentials are aiobotocore's
`AioRefreshableCredentials`, whose refresh coroutine assumes the role again, from the base
session (the caller's credentials), shortly before they expire. Every client of that role
shares them, whatever its region.

`Clients` makes one client per (access, region, service) and keeps it for the life of its
`AsyncExitStack`: the local executor's and the Lambda handler's deployers, preflight and the
dry run each hold one. Credentials belong to one event loop (their refresh lock does), so each
of those keeps its own. The credentials themselves are never logged: only the role ARN.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import anyio

from worker.access import Access, session_name
from worker.aws import AwsAccess

__all__ = ["Clients", "assume_role", "refresh_windows", "refreshable_credentials"]

log = logging.getLogger(__name__)

ADVISORY_S = 15 * 60.0  # botocore's: refresh if possible this long before the end ...
MANDATORY_S = 10 * 60.0  # ... and block every call for it this long before
STS_REGION = "us-east-1"  # STS's global endpoint region, when the target's is unknown


def refresh_windows(lifetime_s: float) -> tuple[float, float]:
    """(advisory, mandatory) seconds before expiry: botocore's 15 and 10 minutes, or a quarter
    and a sixth of a shorter lifetime (a test bed's few seconds), so a refresh is not due at once."""
    return min(ADVISORY_S, lifetime_s / 4), min(MANDATORY_S, lifetime_s / 6)


async def assume_role(aws: AwsAccess, access: Access, name: str, region: str | None) -> dict[str, Any]:
    """AssumeRole `access`'s role from the caller's credentials: botocore's credential metadata."""
    assert access.role_arn is not None
    extra = {"ExternalId": access.external_id} if access.external_id else {}
    async with aws.client("sts", region or STS_REGION) as sts:
        answer = await sts.assume_role(RoleArn=access.role_arn, RoleSessionName=name, **extra)
    given = answer["Credentials"]
    log.info("assumed %s as session %s until %s", access.role_arn, name, given["Expiration"].isoformat())
    return {
        "access_key": given["AccessKeyId"],
        "secret_key": given["SecretAccessKey"],
        "token": given["SessionToken"],
        "expiry_time": given["Expiration"].isoformat(),
    }


async def refreshable_credentials(aws: AwsAccess, access: Access, name: str, region: str | None) -> Any:
    """The role's credentials, assumed now (raises AWS's refusal) and again before they expire."""
    from aiobotocore.credentials import AioRefreshableCredentials

    metadata = await assume_role(aws, access, name, region)
    expiry = datetime.fromisoformat(metadata["expiry_time"])
    expiry = expiry if expiry.tzinfo is not None else expiry.replace(tzinfo=UTC)
    lifetime_s = (expiry - datetime.now(UTC)).total_seconds()
    advisory_s, mandatory_s = refresh_windows(max(lifetime_s, 1.0))

    async def refresh() -> dict[str, Any]:
        return await assume_role(aws, access, name, region)

    return AioRefreshableCredentials.create_from_metadata(
        metadata,
        refresh_using=refresh,
        method="assume-role",
        # Seconds; the stubs say int, botocore compares them with a timedelta's float seconds.
        advisory_timeout=advisory_s,  # type: ignore[arg-type]
        mandatory_timeout=mandatory_s,  # type: ignore[arg-type]
    )


class Clients:
    """One client per (access, region, service), closed with `stack`; a role's credentials are
    made once and refreshed for all of its clients, and each access has one session. For one
    event loop. Clients of different keys are made side by side (a role being assumed for one
    access does not hold up another's); two asks for one key get the one client."""

    def __init__(self, stack: AsyncExitStack, aws: AwsAccess, run_id: str) -> None:
        self._stack = stack
        self._aws = aws
        self._session_name = session_name(run_id)
        self._credentials: dict[Access, Any] = {}
        self._sessions: dict[Access, Any] = {}
        self._made: dict[tuple[Access, str | None, str], Any] = {}
        self._locks: dict[object, anyio.Lock] = {}

    @property
    def aws(self) -> AwsAccess:
        return self._aws

    def _lock(self, key: object) -> anyio.Lock:
        return self._locks.setdefault(key, anyio.Lock())

    async def credentials(self, access: Access, region: str | None) -> Any:
        """A role's refreshable credentials (None for a profile or the caller's)."""
        if access.role_arn is None:
            return None
        async with self._lock(access):
            if access not in self._credentials:
                self._credentials[access] = await refreshable_credentials(
                    self._aws, access, self._session_name, region
                )
        return self._credentials[access]

    async def get(self, service: str, region: str | None, access: Access) -> Any:
        key = (access, region, service)
        async with self._lock(key):
            if key not in self._made:
                credentials = await self.credentials(access, region)
                session = self._sessions.get(access)
                if session is None:
                    session = self._sessions[access] = self._aws.session(region, access, credentials)
                self._made[key] = await self._stack.enter_async_context(
                    self._aws.client(service, region, access, session=session)
                )
            return self._made[key]

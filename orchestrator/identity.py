"""Which account each way in reaches, before anything is planned.

A role's account is in its ARN, but a role that cannot be assumed must refuse the run before
anything changes, so every role is assumed once here (read-only: AssumeRole changes nothing).
A profile's account, and the caller's, only STS knows: `GetCallerIdentity`. Every distinct way
in is asked once, all of them side by side. A role that cannot be assumed or a profile that
does not resolve is one line naming it and AWS's answer (`IdentityError`, exit 2).

It asks through the run's `Clients` (one loop for the whole deploy path): a role assumed here
is the role's credentials for preflight, the gates and the run's questions to ECS too, and the
STS client of a way in is made once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import anyio
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from orchestrator.errors import SpecError
from orchestrator.spec import Spec
from orchestrator.spec_access import access_of, region_of
from worker.access import CALLER, Access
from worker.aws_errors import error_message
from worker.credentials import STS_REGION, Clients

__all__ = [
    "Identities",
    "IdentityError",
    "Resolved",
    "accesses_of",
    "identify",
    "refusal_line",
    "resolve_accounts",
]


class IdentityError(SpecError):
    """Ways in that do not work: roles that cannot be assumed, profiles that do not resolve."""


def accesses_of(
    spec: Spec, region: str | None = None, default_region: str | None = None
) -> dict[Access, str]:
    """Every distinct way in the spec's entries use, in the order they first appear, with the
    region of its first entry (`region` wins, `default_region` fills in) for STS to answer in.
    No region at all is botocore's NoRegionError, which the CLI's boundary explains."""
    from botocore.exceptions import NoRegionError

    found: dict[Access, str] = {}
    for entry in spec.deploy:
        access = access_of(entry, spec)
        if access not in found:
            where = region or region_of(entry, spec.region) or default_region
            if where is None:
                raise NoRegionError()
            found[access] = where
    return found


def refusal_line(access: Access, reason: str) -> str:
    """What is said of a way in that does not work."""
    if access.role_arn is not None:
        return f"role {access.role_arn} cannot be assumed: {reason}"
    if access.profile is not None:
        return f"profile {access.profile!r} does not resolve: {reason}"
    return f"the caller's credentials do not work: {reason}"


async def _account(clients: Clients, access: Access, region: str) -> tuple[str, str]:
    """(account, ARN) of a way in: a role's from its ARN once assumed, else STS's answer."""
    if access.role_arn is not None:
        await clients.credentials(access, region)  # the check, and the run's credentials
        account = access.account
        assert account is not None
        return account, access.role_arn
    sts = await clients.get("sts", region, access)
    answer = await sts.get_caller_identity()
    return str(answer["Account"]), str(answer["Arn"])


class Resolved(NamedTuple):
    accounts: dict[Access, str]  # the account of each way in that works
    arns: dict[Access, str]  # who each one is (a role: its ARN; else STS's answer)
    refusals: list[str]  # a line per way in that does not work


async def resolve_accounts(clients: Clients, accesses: Mapping[Access, str | None]) -> Resolved:
    """The account of every way in, asking STS once per way in (in the region given with it),
    side by side. No credentials at all is raised as botocore's NoCredentialsError."""
    accounts: dict[Access, str] = {}
    arns: dict[Access, str] = {}
    refusals: dict[Access, str] = {}
    wanted = list(accesses)

    async def one(access: Access) -> None:
        try:
            accounts[access], arns[access] = await _account(clients, access, accesses[access] or STS_REGION)
        except NoCredentialsError:
            if access.profile is None:
                raise  # nothing to assume with: the CLI's boundary says how to give credentials
            refusals[access] = refusal_line(access, "the profile has no credentials")
        except ClientError as exc:
            refusals[access] = refusal_line(access, error_message(exc))
        except BotoCoreError as exc:  # a missing profile, a broken config
            if access.profile is None and access.role_arn is None:
                raise
            refusals[access] = refusal_line(access, str(exc))

    async with anyio.create_task_group() as tg:
        for access in wanted:
            tg.start_soon(one, access)
    return Resolved(accounts, arns, [refusals[access] for access in wanted if access in refusals])


class Identities(NamedTuple):
    accounts: Mapping[Access, str]  # the account of every way in of the spec
    caller: str  # who runs ecs-fanout: the caller's ARN, as STS says


async def identify(
    spec: Spec,
    spec_path: str,
    clients: Clients,
    region: str | None = None,
    default_region: str | None = None,
) -> Identities:
    """The account of every way in of `spec` and the caller's identity (shown in the output);
    IdentityError (exit 2, nothing changed) if any way in fails."""
    accesses = {CALLER: default_region} | dict(accesses_of(spec, region, default_region))
    try:
        resolved = await resolve_accounts(clients, accesses)
    except BaseExceptionGroup as group:  # one task's NoCredentialsError: raise it as itself
        first: BaseException = group
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    if resolved.refusals:
        raise IdentityError(spec_path, [*resolved.refusals, "nothing was changed"])
    return Identities(resolved.accounts, resolved.arns[CALLER])

"""Where a spec's entries live: their region and how to reach their account. Pure.

At the top level and per `[[deploy]]` entry: `region`, and `role_arn` (optional
`external_id`) or `profile`; an entry with neither uses the caller's credentials. An entry's
way in replaces the top level's as a whole (its `role_arn` or `profile`, with its
`external_id`), its region the top level's region.

Checked here: a role ARN's shape, a role given two ways (`role_arn` and `profile`),
`external_id` without `role_arn`, and two entries of one service that disagree on how to
reach it: the same region, cluster and service through two roles of the same account. Whether
a profile or the caller reaches the same account as a role only STS can tell: `plan` checks
that once the accounts are known (`conflicting_access`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Protocol, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from worker.access import CALLER, Access, check_role_arn

__all__ = ["Located", "Reach", "access_conflicts", "access_of", "conflicting_access", "region_of"]

RoleArn = Annotated[str, AfterValidator(check_role_arn)]


class Reach(BaseModel):
    """The fields that say how to reach an account (the top level's and each entry's)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    role_arn: RoleArn | None = None
    external_id: str | None = Field(default=None, min_length=2, max_length=1224)
    profile: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if self.role_arn is not None and self.profile is not None:
            raise ValueError(
                "a role given two ways: 'role_arn' and 'profile' (give one: the role to assume, "
                "or the local profile that reaches the account)"
            )
        if self.external_id is not None and self.role_arn is None:
            raise ValueError("'external_id' without 'role_arn': an external id goes with the role it opens")
        return self

    @property
    def own_access(self) -> Access | None:
        """The way in these fields give, None when they give none."""
        if self.role_arn is None and self.profile is None:
            return None
        return Access(role_arn=self.role_arn, external_id=self.external_id, profile=self.profile)


class Located(Protocol):
    """An entry: its own reach and region (`DeployEntry`)."""

    @property
    def own_access(self) -> Access | None: ...

    region: str | None
    cluster: str
    service: str

    @property
    def label(self) -> str: ...


def access_of(entry: Located, top: Reach) -> Access:
    """How to reach `entry`'s account: its own way in, else the top level's, else the caller's."""
    return entry.own_access or top.own_access or CALLER


def region_of(entry: Located, top_region: str | None) -> str | None:
    return entry.region or top_region


def _service(entry: Located) -> tuple[str, str]:
    return (entry.cluster.rsplit("/", 1)[-1], entry.service.rsplit("/", 1)[-1])


def access_conflicts(entries: Sequence[tuple[int, Located]], top: Reach, top_region: str | None) -> list[str]:
    """Entries of one service (same region, cluster, service) that reach it through two different
    roles of the same account. One pass."""
    first: dict[tuple[str | None, str, str, str], tuple[int, Located, Access]] = {}
    problems: list[str] = []
    for index, entry in entries:
        access = access_of(entry, top)
        if access.account is None:
            continue
        key = (region_of(entry, top_region), *_service(entry), access.account)
        earlier = first.setdefault(key, (index, entry, access))
        if earlier[2] != access:
            problems.append(_conflict(index, entry, access, earlier[0], earlier[1], earlier[2]))
    return problems


def conflicting_access(
    entries: Iterable[tuple[int, Located]],
    top: Reach,
    top_region: str | None,
    accounts: Mapping[Access, str],
) -> list[str]:
    """As `access_conflicts`, once STS told each way in's account: a profile or the caller's
    credentials and a role (or two profiles) reaching one service of one account."""
    first: dict[tuple[str | None, str, str, str], tuple[int, Located, Access]] = {}
    problems: list[str] = []
    for index, entry in entries:
        access = access_of(entry, top)
        key = (region_of(entry, top_region), *_service(entry), accounts[access])
        earlier = first.setdefault(key, (index, entry, access))
        if earlier[2] != access:
            problems.append(_conflict(index, entry, access, earlier[0], earlier[1], earlier[2]))
    return problems


def _conflict(index: int, entry: Located, access: Access, other: int, earlier: Located, was: Access) -> str:
    describe: Callable[[Access], str] = str
    return (
        f"entry {index} ({entry.label}): reaches service {'/'.join(_service(entry))} through "
        f"{describe(access)}, but entry {other} ({earlier.label}) reaches the same service of the same "
        f"account through {describe(was)}: give every entry of a service one way in"
    )

"""A target: one ECS service, named by where it lives. The one value everything is keyed by.

Job ids, SQS message groups, Redis keys, preflight grouping, run state, panes and results all
name a service through `Target`, never through ad hoc `(cluster, service)` tuples or strings.
`account` and `region` are part of the identity: two services with the same cluster and
service names in two accounts or regions are two targets. `None` means "the caller's" (the
account of the credentials in use, the region of the run).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Target"]


def _name(name_or_arn: str) -> str:
    """A cluster or service given as an ARN counts as its name (the part after the last `/`)."""
    return name_or_arn.rsplit("/", 1)[-1]


class Target(BaseModel):
    """One ECS service: account, region, cluster and service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cluster: str = Field(min_length=1)
    service: str = Field(min_length=1)
    region: str | None = None
    account: str | None = None

    @property
    def cluster_name(self) -> str:
        return _name(self.cluster)

    @property
    def service_name(self) -> str:
        return _name(self.service)

    @property
    def name(self) -> str:
        """`cluster/service`, as people say it (names, not ARNs)."""
        return f"{self.cluster_name}/{self.service_name}"

    @property
    def scope(self) -> str:
        """`account/region` ("-" where unknown): what ECS's API limits and clients are per."""
        return f"{self.account or '-'}/{self.region or '-'}"

    @property
    def key(self) -> str:
        """Stable text identity: `account/region/cluster/service`; an ARN and a name agree."""
        return f"{self.scope}/{self.name}"

    def __str__(self) -> str:
        where = [part for part in (self.account, self.region) if part]
        return f"{self.name} ({', '.join(where)})" if where else self.name

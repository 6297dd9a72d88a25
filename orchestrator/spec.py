"""The spec file: which containers of which ECS services get which image.

A spec is TOML (``.toml``) or JSON (``.json``) with the same fields: optional defaults at
the top level and one ``[[deploy]]`` entry per container::

    region = "eu-west-1"    # optional; an AWS region name (orchestrator.regions)
    timeout = "15m"         # deadline of each rollout
    rollback = true         # roll a failed rollout back
    max_parallel = 50       # rollouts in flight at once
    heartbeat = "60s"       # silence after which a job counts as lost
    poll_interval = "1s"    # shortest wait between two looks at a deployment
    done_when = "baked"     # or "traffic_shifted": when a rollout counts as done
    follow = "events"       # or "poll": ECS's EventBridge events end a rollout at once

    [[deploy]]
    cluster = "prod"
    service = "api"
    container = "app"
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api"
    tag = "v1.4.2"          # or digest = "sha256:<64 hex>", or both (image:tag@digest)
    timeout = "20m"         # optional per-entry overrides: timeout, rollback, done_when

A spec may also roll out in waves: `[[wave]]` tables (their order and gates) and a `wave` on
every entry, checked by `orchestrator.spec_waves`; the value types (`Seconds`, `Name`, ...) are
`orchestrator.spec_types`'.

`load_spec` reads and validates a file and raises `SpecError` listing *every* problem, each
naming the entry (``entry 3 (prod/api/app)``) and saying what is wrong in plain words.
Besides each entry on its own, the spec as a whole must hold at least one entry, must not
give one container two different images, and must not give one service two different
values of an override (an entry without the override does not conflict). A cluster or service
named by its ARN in one entry and by its name in another is the same one. Every check is one
pass over the entries, so a spec of 10,000 entries is checked (and named) in linear time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BeforeValidator, Field, PrivateAttr, ValidationError, model_validator

from orchestrator.errors import SpecError
from orchestrator.spec_access import Reach, access_conflicts, access_of, region_of
from orchestrator.spec_files import read_spec_data
from orchestrator.spec_types import Image, Name, Region, Seconds, StrictModel
from orchestrator.spec_waves import WaveSpec, check_waves
from orchestrator.spec_words import describe, kind, one_of, raw_label, seconds, show
from worker.access import Access
from worker.contract import DoneWhen, Follow
from worker.images import ImageRefError, compose_image, parse_image

__all__ = ["Defaults", "DeployEntry", "Spec", "load_spec", "spec_from_data"]


Done = Annotated[DoneWhen, BeforeValidator(lambda value: one_of(DoneWhen, value))]
"""When following a rollout ends with success: "baked" (ECS's service deployment SUCCESSFUL,
through its bake time) or "traffic_shifted" (production traffic all on the new revision)."""
FollowHow = Annotated[Follow, BeforeValidator(lambda value: one_of(Follow, value))]
"""How jobs learn their deployment moved: "events" (ECS's EventBridge events wake them, a slow
safety poll stays on; where the rule cannot be set up, "poll") or "poll" (they look as often
as the account's budget allows, at least every `poll_interval`)."""


class Defaults(StrictModel, Reach):
    """The top-level settings; every field has a default. `Reach`: role_arn, external_id, profile."""

    region: Region | None = None
    timeout: Seconds = 900.0
    rollback: bool = True
    max_parallel: int = Field(default=50, gt=0)
    heartbeat: Seconds = 60.0
    poll_interval: Seconds = 1.0
    keep_revisions: int | None = Field(default=None, gt=0)  # deregister older revisions after success
    api_budget: bool = True  # draw ECS calls from the shared token buckets in Redis
    pin_digests: bool = False  # deploy ECR images by the digest their tag resolves to at preflight
    done_when: Done = DoneWhen.BAKED
    follow: FollowHow = Follow.EVENTS  # ECS's events wake the jobs; "poll": they only poll

    @model_validator(mode="after")
    def _poll_within_heartbeat(self) -> Self:
        if self.poll_interval > self.heartbeat / 2:
            raise ValueError(
                f"poll_interval ({seconds(self.poll_interval)}) must be at most half of heartbeat "
                f"({seconds(self.heartbeat)}), or a healthy job could look lost between two polls"
            )
        return self


class DeployEntry(StrictModel, Reach):
    """One container of one service and the image it must run; `region` and the `Reach` fields
    (role_arn, external_id, profile) override the top level's (orchestrator.spec_access)."""

    cluster: Name
    service: Name
    container: Name
    image: Image
    tag: str | None = None
    digest: str | None = None
    timeout: Seconds | None = None
    rollback: bool | None = None
    done_when: Done | None = None
    region: Region | None = None
    wave: Name | None = None  # in a spec with [[wave]] tables: the wave it is deployed in

    @model_validator(mode="after")
    def _valid_reference(self) -> Self:
        self.reference  # noqa: B018 - composing it is the check; ValueError says what is wrong
        return self

    @property
    def key(self) -> tuple[str, str, str]:
        """(cluster, service, container): what the entry changes."""
        return (self.cluster, self.service, self.container)

    @property
    def label(self) -> str:
        return "/".join(self.key)

    @property
    def reference(self) -> str:
        """The full image reference the container must run."""
        return _compose_reference(self.image, self.tag, self.digest)

    @property
    def container_id(self) -> tuple[str, str, str]:
        """What the entry changes as ECS knows it: a cluster or service given as an ARN and
        by its name are the same one (the names `worker.target.Target` keys services by)."""
        return (_last_part(self.cluster), _last_part(self.service), self.container)


class Spec(Defaults):
    """A whole spec: the defaults, at least one entry, and its waves (none: all at once)."""

    deploy: list[DeployEntry] = Field(min_length=1)
    wave: list[WaveSpec] = Field(default_factory=list)
    _index: tuple[list[DeployEntry], dict[tuple[str, str, str], int]] | None = PrivateAttr(default=None)

    def entry_name(self, cluster: str, service: str, container: str) -> str:
        """How errors name the entry of a target: "entry 3 (cluster/service/container)".

        The first entry that names the container, by name or by ARN; looked up in an index
        built on the first call, so naming every entry of a large spec stays linear.
        """
        index = self._index
        if index is None or index[0] is not self.deploy:  # first call, or a copy with other entries
            numbers: dict[tuple[str, str, str], int] = {}
            for count, entry in enumerate(self.deploy, 1):
                numbers.setdefault(entry.container_id, count)
            self._index = index = (self.deploy, numbers)
        number = index[1].get((_last_part(cluster), _last_part(service), container))
        if number is None:  # not a container of this spec: still say which one
            return f"{cluster}/{service}/{container}"
        return f"entry {number} ({self.deploy[number - 1].label})"

    @model_validator(mode="after")
    def _consistent_entries(self) -> Self:
        problems = _cross_entry_problems(list(enumerate(self.deploy, 1)), self, self.region)
        if problems:
            raise ValueError("; ".join(problems))
        return self


_ENTRY_KEYS = tuple(DeployEntry.model_fields)
_TOP_KEYS = (*Defaults.model_fields, "deploy", "wave")
_WAVE_KEYS = frozenset(WaveSpec.model_fields) - {"name", "region", *Reach.model_fields}
# Keys met at the top level that belong in another table: said so instead of "unknown".
_ELSEWHERE = dict.fromkeys(_WAVE_KEYS, "a [[wave]] table") | dict.fromkeys(_ENTRY_KEYS, "a [[deploy]] entry")
_OVERRIDES = ("timeout", "rollback", "done_when")  # a region or a way in makes another service


def load_spec(path: str | Path) -> Spec:
    """Read and validate a ``.toml`` or ``.json`` spec; raise SpecError with every problem."""
    return spec_from_data(read_spec_data(path), str(Path(path)))


def spec_from_data(data: Mapping[str, Any], path: str) -> Spec:
    """Validate already-parsed spec data; `path` only names the source in messages."""
    try:
        return _validate(data, path)
    except RecursionError:
        raise SpecError(path, ["the spec is nested too deeply"]) from None


def _validate(data: object, path: str) -> Spec:
    if not isinstance(data, Mapping):
        raise SpecError(path, [f"the top level must be a table (a JSON object), got {kind(data)}"])
    top = {key: value for key, value in data.items() if key not in ("deploy", "wave")}
    problems: list[str] = []
    defaults: Defaults | None = None
    try:
        defaults = Defaults.model_validate(top)
    except ValidationError as error:
        problems += (f"top level: {describe(e, _TOP_KEYS, _ELSEWHERE)}" for e in error.errors())
    raw_entries = data.get("deploy")
    if raw_entries is None or (isinstance(raw_entries, list) and not raw_entries):
        problems.append("no [[deploy]] entries: the spec deploys nothing")
        raw_entries = []
    elif not isinstance(raw_entries, list):
        hint = " (write [[deploy]], not [deploy])" if isinstance(raw_entries, Mapping) else ""
        problems.append(f"'deploy' must be an array of tables{hint}, got {kind(raw_entries)}")
        raw_entries = []
    entries: list[tuple[int, DeployEntry]] = []
    for index, raw in enumerate(raw_entries, 1):
        try:
            entries.append((index, DeployEntry.model_validate(raw)))
        except ValidationError as error:
            label = f"entry {index} ({raw_label(raw)})"
            problems += (f"{label}: {describe(e, _ENTRY_KEYS)}" for e in error.errors())
    reach = defaults or Reach()
    top_region = defaults.region if defaults else None
    problems += _cross_entry_problems(entries, reach, top_region)
    waves, wave_problems = check_waves(data.get("wave"), entries, reach, top_region, describe)
    problems += wave_problems
    if problems or defaults is None:
        raise SpecError(path, problems)
    try:
        # exclude_unset: `Spec.model_fields_set` tells which defaults the file itself set.
        settings = defaults.model_dump(exclude_unset=True)
        deploy = [entry for _, entry in entries]
        return Spec.model_validate({**settings, "deploy": deploy, **({"wave": waves} if waves else {})})
    except ValidationError as error:  # pragma: no cover - every check above ran already
        raise SpecError(path, [describe(e, _TOP_KEYS) for e in error.errors()]) from None


# Memoised by value: a spec's checks and its plan ask for each entry's reference several times.
@lru_cache(maxsize=1 << 17)
def _compose_reference(image: str, tag: str | None, digest: str | None) -> str:
    """The one full reference image + tag + digest make; ValueError saying why there is none."""
    try:
        return compose_image(image, tag, digest)
    except ImageRefError as error:  # say it in the spec's terms where we can
        raise ValueError(_reference_problem(image, tag, digest) or str(error)) from None


def _reference_problem(image: str, tag: str | None, digest: str | None) -> str | None:
    """Why image + tag + digest is not one reference, in the spec's terms, or None."""
    try:
        base = parse_image(image)
    except ImageRefError as error:
        return str(error)
    if tag is None and digest is None and base.tag is None and base.digest is None:
        return f"missing field 'tag' (or 'digest'): image {image!r} carries neither"
    given = [f"'{name}'" for name, value in (("tag", tag), ("digest", digest)) if value is not None]
    carried = [f"{name} {value!r}" for name, value in (("tag", base.tag), ("digest", base.digest)) if value]
    if given and carried:
        return (
            f"{' and '.join(given)} conflicts with image {image!r}, which already carries "
            f"{' and '.join(carried)}: give the tag and digest either in 'image' or as separate fields"
        )
    return None


def _last_part(name_or_arn: str) -> str:
    """A cluster or service ARN's name (after its last '/'), as `worker.target.Target` keys it."""
    return name_or_arn.rsplit("/", 1)[-1]


def _cross_entry_problems(
    entries: Sequence[tuple[int, DeployEntry]], top: Reach, top_region: str | None
) -> list[str]:
    """Conflicts between entries: one container with two images, one service with two overrides
    or two ways in. Entries in two regions, or reached two ways, are two services."""
    problems: list[str] = access_conflicts(entries, top, top_region)
    Where = tuple[str | None, Access]
    images: dict[tuple[Where, str, str, str], tuple[int, str]] = {}
    overrides: dict[
        tuple[Where, str, str, str], tuple[int, DeployEntry]
    ] = {}  # (where, cluster, service, name)
    for index, entry in entries:  # one pass, dictionaries only: linear in the number of entries
        reference = entry.reference
        where = (region_of(entry, top_region), access_of(entry, top))
        first = images.setdefault((where, *entry.container_id), (index, reference))
        if first[1] != reference:
            problems.append(
                f"entry {index} ({entry.label}): image {reference!r} conflicts with entry {first[0]}, "
                f"which gives the same container {first[1]!r}"
            )
        for name in _OVERRIDES:
            value = getattr(entry, name)
            if value is None:
                continue
            slot = (where, *entry.container_id[:2], name)
            earlier_index, earlier = overrides.setdefault(slot, (index, entry))
            if getattr(earlier, name) != value:
                problems.append(
                    f"entry {index} ({entry.label}): {name} = {show(value)} conflicts with entry "
                    f"{earlier_index} ({earlier.label}), which sets {show(getattr(earlier, name))} "
                    f"for the same service {slot[1]}/{slot[2]}"
                )
    return problems

"""Turn a described task definition into a re-registration that changes only images.

ECS has no "update image" call: a rollout registers a new revision of the family and
points the service at it. The new revision must be the old one with *only* the named
containers' images changed. We therefore copy every field AWS returned except the few
it rejects on registration (a deny-list, never an allow-list): an allow-list would
silently drop any field AWS adds later (`enableFaultInjection` was one such) and the
rollout would quietly change far more than the image.

Everything here is pure - dicts in, dicts out, input never mutated - so the exact request
can be unit-tested and shown by a `plan` command before anything is registered.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = [
    "READ_ONLY_FIELDS",
    "UnknownContainerError",
    "build_registration",
    "current_images",
    "pending_changes",
    "revision_diff",
]

# Fields describe_task_definition returns but register_task_definition refuses.
READ_ONLY_FIELDS = frozenset(
    {
        "taskDefinitionArn",
        "revision",
        "status",
        "requiresAttributes",
        "compatibilities",
        "registeredAt",
        "registeredBy",
        "deregisteredAt",
    }
)


class UnknownContainerError(ValueError):
    """A change names a container that the task definition does not have."""

    def __init__(self, family: str, unknown: Iterable[str], available: Iterable[str]) -> None:
        self.family = family
        self.unknown = tuple(unknown)
        self.available = tuple(available)
        named = ", ".join(repr(name) for name in self.unknown)
        noun = "container" if len(self.unknown) == 1 else "containers"
        listed = ", ".join(self.available) or "(none)"
        super().__init__(
            f"task definition family {family!r} has no {noun} named {named}; its containers are: {listed}"
        )


def current_images(task_definition: Mapping[str, Any]) -> dict[str, str]:
    """Container name -> image, in definition order."""
    return {
        container["name"]: container["image"] for container in task_definition.get("containerDefinitions", ())
    }


def pending_changes(task_definition: Mapping[str, Any], changes: Mapping[str, str]) -> dict[str, str]:
    """The changes still to make: those whose container does not run that image yet.

    An empty result means the service is already where the job wants it ("skipped").
    """
    images = _check_known(task_definition, changes)
    return {name: image for name, image in changes.items() if images[name] != image}


def build_registration(described: Mapping[str, Any], changes: Mapping[str, str]) -> dict[str, Any]:
    """The register_task_definition kwargs for `described` with `changes` applied.

    `described` is the whole describe_task_definition(include=["TAGS"]) response; its tags
    are re-sent because a new revision does not inherit them.
    """
    task_definition: Mapping[str, Any] = described["taskDefinition"]
    _check_known(task_definition, changes)
    request = {
        key: copy.deepcopy(value) for key, value in task_definition.items() if key not in READ_ONLY_FIELDS
    }
    for container in request.get("containerDefinitions", ()):
        if container["name"] in changes:
            container["image"] = changes[container["name"]]
    tags = described.get("tags")
    if tags:  # register_task_definition rejects an empty tag list
        request["tags"] = copy.deepcopy(tags)
    return request


def revision_diff(old: Mapping[str, Any], new_request: Mapping[str, Any]) -> list[str]:
    """`path: old -> new` lines for everything that differs, read-only fields ignored.

    `old` is either the whole describe_task_definition response, whose tags are then
    compared too, or a bare task definition, which has no tags: then `tags` is not compared.
    Lists of named dicts (containers, environment, secrets, volumes...) are matched by name,
    e.g. `containerDefinitions[app].image: a:1 -> a:2`; other lists by position.
    """
    if "taskDefinition" in old:
        before = _registrable(old["taskDefinition"])
        if old.get("tags"):
            before["tags"] = old["tags"]
        after = _registrable(new_request)
    else:
        before = _registrable(old)
        after = {key: value for key, value in _registrable(new_request).items() if key != "tags"}
    return list(_diff("", before, after))


def _check_known(task_definition: Mapping[str, Any], changes: Mapping[str, str]) -> dict[str, str]:
    images = current_images(task_definition)
    unknown = [name for name in changes if name not in images]
    if unknown:
        raise UnknownContainerError(task_definition.get("family", "?"), unknown, images)
    return images


def _registrable(task_definition: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in task_definition.items() if key not in READ_ONLY_FIELDS}


_ABSENT = object()  # marks a key or list item present on one side only


def _diff(path: str, before: Any, after: Any) -> Iterator[str]:
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in [*before, *(key for key in after if key not in before)]:
            yield from _diff(
                f"{path}.{key}" if path else str(key), before.get(key, _ABSENT), after.get(key, _ABSENT)
            )
    elif isinstance(before, list) and isinstance(after, list):
        for label, item_before, item_after in _pair_items(before, after):
            yield from _diff(f"{path}[{label}]", item_before, item_after)
    elif before != after or type(before) is not type(after):
        yield f"{path}: {_show(before)} -> {_show(after)}"


def _pair_items(before: list[Any], after: list[Any]) -> Iterator[tuple[str, Any, Any]]:
    # Match by name when every item on both sides is a dict with a distinct name, so that
    # inserting one environment variable does not report every later one as changed.
    by_before, by_after = _by_name(before), _by_name(after)
    if by_before is not None and by_after is not None:
        for name in [*by_before, *(name for name in by_after if name not in by_before)]:
            yield name, by_before.get(name, _ABSENT), by_after.get(name, _ABSENT)
        return
    for index in range(max(len(before), len(after))):
        yield (
            str(index),
            before[index] if index < len(before) else _ABSENT,
            after[index] if index < len(after) else _ABSENT,
        )


def _by_name(items: list[Any]) -> dict[str, Any] | None:
    named: dict[str, Any] = {}
    for item in items:
        name = item.get("name") if isinstance(item, Mapping) else None
        if not isinstance(name, str) or name in named:
            return None
        named[name] = item
    return named


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "(absent)"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)

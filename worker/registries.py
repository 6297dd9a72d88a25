"""The registry allow-list: which registries a worker may deploy images from.

Enforced by the worker, from its own configuration (`ECS_FANOUT_ALLOWED_REGISTRIES`, set on
the Lambda function or in the local executor's environment), not from the job: a job is
input, and a check the input could switch off would be no check. An empty list allows all.
Patterns are shell-style (`fnmatch`), matched against the registry host in lower case;
an image without a registry is Docker Hub's, `docker.io`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase

from worker.images import parse_image

__all__ = ["ALLOWED_REGISTRIES_ENV", "DEFAULT_REGISTRY", "allowed_from_env", "refused_images", "registry_of"]

ALLOWED_REGISTRIES_ENV = "ECS_FANOUT_ALLOWED_REGISTRIES"
DEFAULT_REGISTRY = "docker.io"


def allowed_from_env(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The comma-separated patterns of `ECS_FANOUT_ALLOWED_REGISTRIES` (none: all allowed)."""
    raw = environ.get(ALLOWED_REGISTRIES_ENV, "")
    return tuple(part.strip().lower() for part in raw.split(",") if part.strip())


def registry_of(image: str) -> str:
    return (parse_image(image).registry or DEFAULT_REGISTRY).lower()


def refused_images(images: Iterable[str], allowed: Sequence[str]) -> list[str]:
    """The images whose registry matches none of `allowed` (none refused when it is empty)."""
    if not allowed:
        return []
    return [image for image in images if not any(fnmatchcase(registry_of(image), p) for p in allowed)]

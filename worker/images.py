"""Container image references: parse, validate and compose them before they reach AWS.

A typo in an image reference (`App:1.2`, `api:`, a digest one character short) is only
noticed by ECS when the new tasks fail to pull, minutes into a rollout and after the new
task-definition revision exists. Checking each reference against the Docker reference
grammar (github.com/distribution/reference) up front turns that into an immediate, precise
error. Nothing here does I/O: whether the image actually exists is another module's job.

The parsed form is not normalised (no implicit `docker.io/library/`, no implicit `latest`):
`str(parse_image(ref)) == ref` for every accepted reference, so what we register is
exactly what the user wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ECR_HOST", "ImageRef", "ImageRefError", "compose_image", "parse_image"]

# Limits from the grammar: a tag is at most 128 characters, a name (registry included)
# at most 255.
MAX_TAG_LENGTH = 128
MAX_NAME_LENGTH = 255

# An ECR registry's host: the registry's account and region.
ECR_HOST = re.compile(r"^(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com$")

# All classes are spelled out in ASCII on purpose: Python's `\w` and `\d` also match
# Unicode letters and digits, which the (Go, RE2) reference grammar does not.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_REGISTRY_RE = re.compile(rf"{_HOST}(?::[0-9]+)?")
_PATH_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_PATH_CHARS_RE = re.compile(r"[a-z0-9._-]+")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_ALGORITHM_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[+._-][A-Za-z][A-Za-z0-9]*)*")
_ANY_HEX_RE = re.compile(r"[0-9a-fA-F]{32,}")
_LOWER_HEX_RE = re.compile(r"[0-9a-f]+")

# Algorithms the OCI digest spec pins down: exact length, lowercase hex. Others only have
# to satisfy the grammar (at least 128 bits of hex).
_KNOWN_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


class ImageRefError(ValueError):
    """An image reference that the Docker reference grammar does not accept."""

    def __init__(self, reference: str, problem: str) -> None:
        super().__init__(f"invalid image reference {reference!r}: {problem}")
        self.reference = reference
        self.problem = problem


@dataclass(frozen=True)
class ImageRef:
    """The parts of a reference, exactly as written (see `parse_image`)."""

    registry: str | None  # None means "the runtime's default" (Docker Hub for ECS)
    repository: str
    tag: str | None = None
    digest: str | None = None  # "<algorithm>:<hex>", without the "@"

    @property
    def name(self) -> str:
        """registry/repository: the reference without tag and digest."""
        return self.repository if self.registry is None else f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        tag = "" if self.tag is None else f":{self.tag}"
        digest = "" if self.digest is None else f"@{self.digest}"
        return f"{self.name}{tag}{digest}"


def parse_image(ref: str) -> ImageRef:
    """Split `[registry/]repository[:tag][@digest]` into its parts, or raise ImageRefError."""
    if not ref:
        raise ImageRefError(ref, "reference is empty")
    if any(char.isspace() for char in ref):
        raise ImageRefError(ref, "reference contains whitespace")
    name_and_tag, at, digest = ref.partition("@")
    if "@" in digest:
        raise ImageRefError(ref, "more than one '@'")
    if at:
        _check_digest(ref, digest)
    name, tag = _split_tag(ref, name_and_tag)
    if not name:
        raise ImageRefError(ref, "repository name is missing")
    if len(name) > MAX_NAME_LENGTH:
        raise ImageRefError(ref, f"name is {len(name)} characters long (at most {MAX_NAME_LENGTH})")
    registry, repository = _split_registry(name)
    if registry is not None:
        _check_registry(ref, registry)
    _check_repository(ref, repository)
    return ImageRef(registry, repository, tag, digest if at else None)


def compose_image(image: str, tag: str | None = None, digest: str | None = None) -> str:
    """The full reference meant by an image plus an optional separate tag and/or digest.

    Either `image` carries its tag/digest itself, or they are given separately - never
    both, because it would be ambiguous which one should win. `digest` may be written
    `sha256:<hex>`, `@sha256:<hex>` or as bare 64-character sha256 hex.
    """
    base = parse_image(image)
    if tag is None and digest is None:
        if base.tag is None and base.digest is None:
            raise ImageRefError(image, "no tag or digest: put one in the image or give it separately")
        return str(base)
    if base.tag is not None or base.digest is not None:
        raise ImageRefError(
            image, "already carries a tag or digest; give it either in the image or separately, not both"
        )
    digest = _normalise_digest(digest)
    composed = str(ImageRef(base.registry, base.repository, tag, digest))
    # Check the parts on their own first: a stray '/' or '@' in a tag would otherwise be
    # reported as some confusing problem elsewhere in the composed text.
    if tag is not None:
        _check_tag(composed, tag)
    if digest is not None:
        _check_digest(composed, digest)
    # Then the whole text, since that is what ECS will receive.
    return str(parse_image(composed))


def _split_tag(ref: str, name_and_tag: str) -> tuple[str, str | None]:
    # A ':' after the last '/' starts the tag; an earlier one belongs to a registry port.
    colon = name_and_tag.rfind(":")
    if colon <= name_and_tag.rfind("/"):
        return name_and_tag, None
    tag = name_and_tag[colon + 1 :]
    _check_tag(ref, tag)
    return name_and_tag[:colon], tag


def _check_tag(ref: str, tag: str) -> None:
    if not tag:
        raise ImageRefError(ref, "':' must be followed by a tag")
    if len(tag) > MAX_TAG_LENGTH:
        raise ImageRefError(ref, f"tag is {len(tag)} characters long (at most {MAX_TAG_LENGTH})")
    if not _TAG_RE.fullmatch(tag):
        raise ImageRefError(
            ref,
            f"tag {tag!r} has invalid characters (letters, digits, '_', '.' and '-' only, "
            "not starting with '.' or '-')",
        )


def _split_registry(name: str) -> tuple[str | None, str]:
    # The grammar's rule: the first component is a registry host only if it looks like
    # one, so `library/nginx` is a Docker Hub path while `localhost/app` is not.
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, name


def _check_registry(ref: str, registry: str) -> None:
    if not _REGISTRY_RE.fullmatch(registry):
        raise ImageRefError(ref, f"registry {registry!r} is not a valid host[:port]")


def _check_repository(ref: str, repository: str) -> None:
    if not repository:
        raise ImageRefError(ref, "repository name is missing")
    for component in repository.split("/"):
        if not component:
            raise ImageRefError(
                ref, "repository has an empty path component (double, leading or trailing '/')"
            )
        if _PATH_COMPONENT_RE.fullmatch(component):
            continue
        if any("A" <= char <= "Z" for char in component):
            raise ImageRefError(ref, "repository must be lowercase")
        if not _PATH_CHARS_RE.fullmatch(component):
            raise ImageRefError(
                ref,
                f"path component {component!r} has invalid characters (a-z, 0-9, '.', '_' and '-' only)",
            )
        if component[0] in "._-" or component[-1] in "._-":
            raise ImageRefError(
                ref, f"path component {component!r} must start and end with a lowercase letter or digit"
            )
        raise ImageRefError(
            ref, f"path component {component!r} has an invalid separator (one '.', one or two '_', or '-'s)"
        )


def _check_digest(ref: str, digest: str) -> None:
    if not digest:
        raise ImageRefError(ref, "'@' must be followed by a digest")
    algorithm, colon, hex_part = digest.partition(":")
    if not colon or not _ALGORITHM_RE.fullmatch(algorithm):
        raise ImageRefError(ref, f"digest {digest!r} is not of the form <algorithm>:<hex>")
    expected = _KNOWN_DIGEST_LENGTHS.get(algorithm)
    if expected is None:
        if not _ANY_HEX_RE.fullmatch(hex_part):
            raise ImageRefError(ref, f"{algorithm} digest must be at least 32 hex characters")
        return
    if len(hex_part) != expected:
        raise ImageRefError(
            ref, f"{algorithm} digest must be exactly {expected} hex characters, got {len(hex_part)}"
        )
    if not _LOWER_HEX_RE.fullmatch(hex_part):
        raise ImageRefError(ref, f"{algorithm} digest must be lowercase hex (0-9, a-f)")


def _normalise_digest(digest: str | None) -> str | None:
    # Accept what people paste: "@sha256:..." from a reference, or bare hex from ECR output.
    if digest is None:
        return None
    digest = digest.removeprefix("@")
    if ":" not in digest and len(digest) == _KNOWN_DIGEST_LENGTHS["sha256"]:
        return f"sha256:{digest}"
    return digest

"""Image references: what parses into which parts, what is refused and why, and composing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.images import ImageRef, ImageRefError, compose_image, parse_image

SHA = "sha256:" + "0123456789abcdef" * 4
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("nginx", ImageRef(None, "nginx", None, None)),
        ("nginx:1.27", ImageRef(None, "nginx", "1.27", None)),
        ("library/nginx:1.27", ImageRef(None, "library/nginx", "1.27", None)),
        ("a/b/c/d", ImageRef(None, "a/b/c/d", None, None)),
        (
            "registry.example.com:5000/team/app:1.2",
            ImageRef("registry.example.com:5000", "team/app", "1.2", None),
        ),
        (f"{ECR}/api", ImageRef(ECR, "api", None, None)),
        (f"{ECR}/team/api:v2.3.4-rc.1", ImageRef(ECR, "team/api", "v2.3.4-rc.1", None)),
        (
            "public.ecr.aws/nginx/nginx:stable-alpine",
            ImageRef("public.ecr.aws", "nginx/nginx", "stable-alpine", None),
        ),
        ("localhost/app", ImageRef("localhost", "app", None, None)),
        ("localhost:5000/app:dev", ImageRef("localhost:5000", "app", "dev", None)),
        ("Registry.Example.COM/app", ImageRef("Registry.Example.COM", "app", None, None)),
        ("[::1]:5000/app:x", ImageRef("[::1]:5000", "app", "x", None)),
        ("10.0.0.1:5000/app", ImageRef("10.0.0.1:5000", "app", None, None)),
        ("my.app", ImageRef(None, "my.app", None, None)),  # no '/': never a registry
        ("localhost:5000", ImageRef(None, "localhost", "5000", None)),  # ditto: a tag
        ("a.b-c---d.e/g", ImageRef("a.b-c---d.e", "g", None, None)),
        ("x/a.b_c__d-e---f", ImageRef(None, "x/a.b_c__d-e---f", None, None)),
        ("app:_", ImageRef(None, "app", "_", None)),
        ("app:UPPER_ok-1.0", ImageRef(None, "app", "UPPER_ok-1.0", None)),
        ("app:" + "t" * 128, ImageRef(None, "app", "t" * 128, None)),
        (f"app@{SHA}", ImageRef(None, "app", None, SHA)),
        (f"app:1.0@{SHA}", ImageRef(None, "app", "1.0", SHA)),
        (f"{ECR}/api:1@{SHA}", ImageRef(ECR, "api", "1", SHA)),
        ("app@sha512:" + "ab" * 64, ImageRef(None, "app", None, "sha512:" + "ab" * 64)),
        ("app@multihash+base58:" + "AB" * 16, ImageRef(None, "app", None, "multihash+base58:" + "AB" * 16)),
        ("a" * 255, ImageRef(None, "a" * 255, None, None)),
    ],
)
def test_valid_references_parse_into_parts_and_round_trip(ref: str, expected: ImageRef) -> None:
    parsed = parse_image(ref)
    assert parsed == expected
    assert str(parsed) == ref
    assert parse_image(str(parsed)) == parsed


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        ("nginx:1", "nginx"),
        (f"{ECR}/team/api:1@{SHA}", f"{ECR}/team/api"),
        ("localhost:5000/app@" + SHA, "localhost:5000/app"),
    ],
)
def test_name_drops_tag_and_digest(ref: str, name: str) -> None:
    assert parse_image(ref).name == name


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        ("", "empty"),
        (" nginx", "whitespace"),
        ("nginx:1 ", "whitespace"),
        ("ng inx", "whitespace"),
        ("nginx\n", "whitespace"),
        ("Foo/bar", "repository must be lowercase"),
        ("nginX", "repository must be lowercase"),
        (f"{ECR}/Api", "repository must be lowercase"),
        ("app:", "':' must be followed by a tag"),
        ("app:@" + SHA, "':' must be followed by a tag"),
        ("app@", "'@' must be followed by a digest"),
        ("app:1@", "'@' must be followed by a digest"),
        ("app:" + "t" * 129, "tag is 129 characters long"),
        ("app:.hidden", "tag '.hidden' has invalid characters"),
        ("app:-x", "tag '-x' has invalid characters"),
        ("app:a+b", "tag 'a+b' has invalid characters"),
        ("app:ünï", "has invalid characters"),
        ("app@sha256:abc", "exactly 64 hex characters, got 3"),
        ("app@sha256:" + "0" * 65, "exactly 64 hex characters, got 65"),
        ("app@sha256:" + "g" * 64, "lowercase hex"),
        ("app@sha256:" + "A" * 64, "lowercase hex"),
        ("app@sha512:" + "0" * 64, "exactly 128 hex characters"),
        ("app@md5:" + "0" * 16, "at least 32 hex characters"),
        ("app@" + "0" * 64, "<algorithm>:<hex>"),
        ("app@1sha:" + "0" * 64, "<algorithm>:<hex>"),
        (f"app@{SHA}@{SHA}", "more than one '@'"),
        ("a//b", "empty path component"),
        ("/app", "empty path component"),
        ("app/", "empty path component"),
        (f"{ECR}//api", "empty path component"),
        (f"{ECR}/", "repository name is missing"),
        (":1.0", "repository name is missing"),
        ("@" + SHA, "repository name is missing"),
        ("-app", "must start and end with a lowercase letter or digit"),
        ("app_", "must start and end with a lowercase letter or digit"),
        ("team/.app", "must start and end with a lowercase letter or digit"),
        ("a..b", "invalid separator"),
        ("a___b", "invalid separator"),
        ("a._b", "invalid separator"),
        ("app!", "invalid characters"),
        ("ünicode/app", "invalid characters"),
        ("registry.example.com:port/app", "registry 'registry.example.com:port' is not a valid host[:port]"),
        ("-bad.example.com/app", "is not a valid host[:port]"),
        ("bad_host.com/app", "is not a valid host[:port]"),
        ("a" * 256, "name is 256 characters long (at most 255)"),
        (f"{ECR}/" + "a" * 250, "at most 255"),
    ],
)
def test_invalid_references_are_refused_with_the_problem(ref: str, problem: str) -> None:
    with pytest.raises(ImageRefError) as caught:
        parse_image(ref)
    message = str(caught.value)
    assert message.startswith(f"invalid image reference {ref!r}: ")
    assert problem in message
    assert caught.value.reference == ref


def test_message_matches_the_documented_example() -> None:
    with pytest.raises(
        ImageRefError, match=r"^invalid image reference 'Foo/bar': repository must be lowercase$"
    ):
        parse_image("Foo/bar")


def test_image_ref_error_is_a_value_error() -> None:
    assert issubclass(ImageRefError, ValueError)


@pytest.mark.parametrize(
    ("image", "tag", "digest", "expected"),
    [
        ("nginx", "1.27", None, "nginx:1.27"),
        (f"{ECR}/api", "v2", None, f"{ECR}/api:v2"),
        ("localhost:5000/app", "dev", None, "localhost:5000/app:dev"),
        ("app", None, SHA, f"app@{SHA}"),
        ("app", None, "@" + SHA, f"app@{SHA}"),
        ("app", None, SHA.removeprefix("sha256:"), f"app@{SHA}"),
        ("app", "1.0", SHA, f"app:1.0@{SHA}"),
        ("nginx:1.27", None, None, "nginx:1.27"),
        (f"app@{SHA}", None, None, f"app@{SHA}"),
        (f"app:1@{SHA}", None, None, f"app:1@{SHA}"),
    ],
)
def test_compose_image(image: str, tag: str | None, digest: str | None, expected: str) -> None:
    composed = compose_image(image, tag, digest)
    assert composed == expected
    assert str(parse_image(composed)) == composed


@pytest.mark.parametrize(
    ("image", "tag", "digest", "problem"),
    [
        ("nginx:1.27", "1.28", None, "already carries a tag or digest"),
        ("nginx:1.27", "1.27", None, "already carries a tag or digest"),
        ("nginx:1.27", None, SHA, "already carries a tag or digest"),
        (f"nginx@{SHA}", "1.27", None, "already carries a tag or digest"),
        (f"nginx@{SHA}", None, SHA, "already carries a tag or digest"),
        ("nginx", None, None, "no tag or digest"),
        ("Nginx", "1", None, "repository must be lowercase"),
        ("nginx", "", None, "':' must be followed by a tag"),
        ("nginx", "bad tag", None, "tag 'bad tag' has invalid characters"),
        ("nginx", "a/b", None, "tag 'a/b' has invalid characters"),
        ("nginx", "x" * 129, None, "tag is 129 characters long"),
        ("nginx", None, "", "'@' must be followed by a digest"),
        ("nginx", None, "sha256:abc", "exactly 64 hex characters, got 3"),
        ("nginx", None, "0" * 63, "<algorithm>:<hex>"),
        ("a" * 256, "1", None, "name is 256 characters long"),
    ],
)
def test_compose_image_refuses(image: str, tag: str | None, digest: str | None, problem: str) -> None:
    with pytest.raises(ImageRefError, match=r"^invalid image reference ") as caught:
        compose_image(image, tag, digest)
    assert problem in str(caught.value)


# Text drawn from the characters that matter to the grammar reaches the deep branches far
# more often than arbitrary Unicode does; both must behave.
_GRAMMAR_TEXT = st.text(alphabet="abAB019f:/@._-+[]lochst", max_size=40)


@given(st.one_of(st.text(), _GRAMMAR_TEXT))
def test_parse_image_accepts_and_round_trips_or_raises_image_ref_error(text: str) -> None:
    try:
        parsed = parse_image(text)
    except ImageRefError:
        return
    assert str(parsed) == text
    assert parse_image(str(parsed)) == parsed

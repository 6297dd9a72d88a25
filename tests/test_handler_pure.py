"""The pure parts of the Lambda path: SQS ids, the FIFO failure rule, grouping, time margins."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from orchestrator.sandbox.esm import reported_failures
from worker.contract import ContainerChange, DeployJob, dedup_id, group_id
from worker.handler import batch_item_failures, ordered_groups, recover_ids, safety_margin_s
from worker.target import Target

CLUSTER = "prod"
NEW = "123456789012.dkr.ecr.us-east-1.amazonaws.com/api:2.0"


def _job(
    cluster: str = CLUSTER, service: str = "api", job_id: str = "run:abc", continuation: int = 0
) -> DeployJob:
    return DeployJob(
        run_id="run",
        job_id=job_id,
        target=Target(cluster=cluster, service=service),
        changes=(ContainerChange(container="app", image=NEW),),
        continuation=continuation,
    )


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        pytest.param(Target(cluster="prod", service="api"), "-/-/prod/api", id="names"),
        pytest.param(
            Target(
                cluster="arn:aws:ecs:us-east-1:123456789012:cluster/prod",
                service="arn:aws:ecs:us-east-1:123456789012:service/prod/api",
            ),
            "-/-/prod/api",
            id="arns-share-the-names-group",
        ),
        pytest.param(
            Target(cluster="prod", service="api", region="eu-west-1", account="111111111111"),
            "111111111111/eu-west-1/prod/api",
            id="another-account-and-region-is-another-group",
        ),
    ],
)
def test_group_id_is_one_per_target(target: Target, expected: str) -> None:
    job = _job().model_copy(update={"target": target})
    assert group_id(job) == expected


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: group_id(_job(service="s" * 255)), id="long-service-group"),
        pytest.param(lambda: group_id(_job(service="café api")), id="non-ascii-group"),
        pytest.param(lambda: dedup_id(_job(job_id="j" * 200)), id="long-job-id-dedup"),
    ],
)
def test_sqs_ids_always_fit_sqs(make: Callable[[], str]) -> None:
    value = make()
    assert 0 < len(value) <= 128
    assert all(c.isascii() and c.isprintable() and c != " " for c in value)


def test_sqs_ids_that_had_to_be_shortened_stay_distinct() -> None:
    assert group_id(_job(service="s" * 200 + "a")) != group_id(_job(service="s" * 200 + "b"))
    assert group_id(_job(service="café")) != group_id(_job(service="cafe"))


@pytest.mark.parametrize(
    ("continuation", "expected"),
    [(0, f"{'r' * 80}:0"), (1, f"{'r' * 80}:1"), (12, f"{'r' * 80}:12")],
)
def test_dedup_id_tells_continuations_apart(continuation: int, expected: str) -> None:
    assert dedup_id(_job(job_id="r" * 80, continuation=continuation)) == expected


def test_continuation_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="continuation"):
        _job(continuation=-1)


@pytest.mark.parametrize(
    ("failed", "expected"),
    [
        pytest.param(set(), [], id="none"),
        pytest.param({"m1"}, ["m1", "m2", "m3"], id="first-fails-all"),
        pytest.param({"m2"}, ["m2", "m3"], id="middle"),
        pytest.param({"m3"}, ["m3"], id="last"),
        pytest.param({"m3", "m2"}, ["m2", "m3"], id="several"),
        pytest.param({"elsewhere"}, [], id="unknown-id-ignored"),
    ],
)
def test_batch_item_failures_follow_the_fifo_rule(failed: set[str], expected: list[str]) -> None:
    assert batch_item_failures(["m1", "m2", "m3"], failed) == [{"itemIdentifier": m} for m in expected]


def test_groups_keep_batch_order_and_ungrouped_records_run_alone() -> None:
    records: list[dict[str, Any]] = [
        {"messageId": "0", "attributes": {"MessageGroupId": "prod/api"}},
        {"messageId": "1", "attributes": {"MessageGroupId": "prod/web"}},
        {"messageId": "2", "attributes": {"MessageGroupId": "prod/api"}},
        {"messageId": "3", "attributes": {}},
        {"messageId": "4"},
    ]
    assert ordered_groups(records) == [[0, 2], [1], [3], [4]]


@pytest.mark.parametrize(
    ("remaining_s", "records", "expected"),
    [
        pytest.param(900.0, 1, 10.5, id="a-full-invocation-keeps-10s-and-a-bit"),
        pytest.param(900.0, 10, 15.0, id="more-for-a-full-batch"),
        pytest.param(4.0, 1, 1.0, id="short-invocation-keeps-most-of-its-time"),
    ],
)
def test_safety_margin(remaining_s: float, records: int, expected: float) -> None:
    assert safety_margin_s(remaining_s, records) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param('{"run_id": "r", "job_id": "j", "cluster": 3}', ("r", "j"), id="ids-readable"),
        pytest.param('{"run_id": "r"}', None, id="no-job-id"),
        pytest.param('{"run_id": "r", "job_id": 7}', None, id="job-id-not-text"),
        pytest.param("[1, 2]", None, id="not-an-object"),
        pytest.param("{not json", None, id="not-json"),
    ],
)
def test_recover_ids(body: str, expected: tuple[str, str] | None) -> None:
    assert recover_ids(body) == expected


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        pytest.param(None, (), id="no-response"),
        pytest.param({}, (), id="empty"),
        pytest.param({"batchItemFailures": []}, (), id="none-failed"),
        pytest.param({"batchItemFailures": [{"itemIdentifier": "b"}]}, ("b",), id="one"),
        pytest.param({"batchItemFailures": [{"itemIdentifier": "zz"}]}, None, id="unknown-id-fails-all"),
        pytest.param({"batchItemFailures": [{"itemIdentifier": ""}]}, None, id="empty-id-fails-all"),
        pytest.param("ok", None, id="not-an-object"),
    ],
)
def test_reported_failures_read_the_response_as_lambda_does(
    response: object, expected: tuple[str, ...] | None
) -> None:
    assert reported_failures(response, ["a", "b"]) == expected

"""Making sure the worker Lambda function exists and runs the code we just packed.

Upload only when the code changed: Lambda reports `CodeSha256` = base64(sha256(zip)), which
`pack.py` computes the same way; the zip (~21 MB) is read only then, so an up-to-date function
costs no memory for it. After any update, wait until `LastUpdateStatus` is
Successful: until then invocations still run the old code and a second update fails with
ResourceConflictException (which we wait out and retry).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from botocore.exceptions import ClientError

from orchestrator.errors import ConfigError
from orchestrator.settings import LambdaSettings

if TYPE_CHECKING:
    from types_aiobotocore_lambda import LambdaClient

__all__ = ["FunctionState", "desired_configuration", "ensure_function"]

HANDLER = "worker.handler.handler"
CONFLICT_RETRIES = 10
T = TypeVar("T")


@dataclass(frozen=True)
class FunctionState:
    arn: str
    created: bool
    code_uploaded: bool
    configuration_updated: bool


def desired_configuration(settings: LambdaSettings, environment: dict[str, str]) -> dict[str, Any]:
    """The function configuration we want (pure): compared with what Lambda reports."""
    return {
        "Runtime": settings.runtime,
        "Handler": HANDLER,
        "Timeout": settings.timeout_s,
        "MemorySize": settings.memory_mb,
        "Environment": {"Variables": dict(sorted(environment.items()))},
        "VpcConfig": {"SubnetIds": settings.subnet_ids, "SecurityGroupIds": settings.security_group_ids},
    }


def _differs(wanted: dict[str, Any], current: dict[str, Any]) -> bool:
    for key, value in wanted.items():
        if key == "VpcConfig":
            now = current.get("VpcConfig") or {}
            if sorted(now.get("SubnetIds", [])) != sorted(value["SubnetIds"]) or sorted(
                now.get("SecurityGroupIds", [])
            ) != sorted(value["SecurityGroupIds"]):
                return True
        elif key == "Environment":
            if (current.get("Environment") or {}).get("Variables", {}) != value["Variables"]:
                return True
        elif current.get(key) != value:
            return True
    return False


async def _retry_conflicts(call: Callable[[], Awaitable[T]]) -> T:
    delay = 0.5
    for _ in range(CONFLICT_RETRIES):
        try:
            return await call()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceConflictException":
                raise
            await anyio.sleep(delay)  # an update is still in progress
            delay = min(delay * 2, 10.0)
    return await call()


async def _wait_updated(client: LambdaClient, name: str) -> None:
    waiter = client.get_waiter("function_updated_v2")
    await waiter.wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 300})


async def ensure_function(
    client: LambdaClient,
    settings: LambdaSettings,
    *,
    load_zip: Callable[[], bytes],
    code_sha256: str,
    environment: dict[str, str],
) -> FunctionState:
    name = settings.function_name
    wanted = desired_configuration(settings, environment)
    try:
        current = (await client.get_function(FunctionName=name))["Configuration"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        if not settings.role_arn:
            raise ConfigError(
                f"Lambda function {name!r} does not exist and no role was given to create it: set "
                "ECS_FANOUT_LAMBDA_ROLE_ARN (see `python -m orchestrator iam-policy` for its policy)"
            ) from exc
        zip_bytes = await anyio.to_thread.run_sync(load_zip)
        created = await _retry_conflicts(
            lambda: client.create_function(
                FunctionName=name,
                Role=settings.role_arn or "",
                Code={"ZipFile": zip_bytes},
                Architectures=[settings.architecture],
                Publish=False,
                **wanted,
            )
        )
        del zip_bytes  # not held while waiting
        await client.get_waiter("function_active_v2").wait(FunctionName=name)
        return FunctionState(
            created["FunctionArn"], created=True, code_uploaded=True, configuration_updated=True
        )

    uploaded = current.get("CodeSha256") != code_sha256 or current.get("Architectures") != [
        settings.architecture
    ]
    if uploaded:
        zip_bytes = await anyio.to_thread.run_sync(load_zip)
        await _retry_conflicts(
            lambda: client.update_function_code(
                FunctionName=name, ZipFile=zip_bytes, Architectures=[settings.architecture]
            )
        )
        del zip_bytes  # not held while waiting
        await _wait_updated(client, name)
    reconfigured = _differs(wanted, dict(current))
    if reconfigured:
        await _retry_conflicts(lambda: client.update_function_configuration(FunctionName=name, **wanted))
        await _wait_updated(client, name)
    return FunctionState(
        current["FunctionArn"], created=False, code_uploaded=uploaded, configuration_updated=reconfigured
    )

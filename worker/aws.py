"""How to reach AWS: `AwsAccess`, one value per process that every client is made from.

Nothing here reads credentials itself: aioboto3 follows the standard chain (environment,
profile, SSO, container/instance role) and honours `AWS_ENDPOINT_URL`. A test bed (the
sandbox) says where its emulator is through `endpoint_url` and gives throw-away keys through
`static_credentials`, instead of writing the process's environment.

Every session of the process shares one botocore loader (`_models`): a session of its own would
parse ECS's, ECR's and the endpoint rules' JSON again, 0.1-0.3 s of CPU per client at start-up.
The loader holds parsed files only, no credentials and nothing of an event loop, so the
workers' loop (a thread of its own) shares it too.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.httpsession import AIOHTTPSession
from aiobotocore.retries.standard import (
    AioRetryHandler,
    AioRetryPolicy,
    AioStandardRetryConditions,
)
from botocore.credentials import CredentialProvider
from botocore.httpsession import create_urllib3_context, get_cert_path
from botocore.retries.quota import RetryQuota
from botocore.retries.standard import ExponentialBackoff, RetryEventAdapter, RetryQuotaChecker

from worker.access import Access

if TYPE_CHECKING:
    from types_aiobotocore_ecr import ECRClient
    from types_aiobotocore_ecs import ECSClient
    from types_aiobotocore_lambda import LambdaClient
    from types_aiobotocore_sqs import SQSClient

__all__ = ["AwsAccess", "few_attempts_when_unreachable", "retry_config"]

log = logging.getLogger(__name__)

# ECS throttles per account and region (RegisterTaskDefinition: 20 burst then 1/s), shared
# by every parallel worker: the standard mode's backoff with room for many attempts rides
# the bucket out instead of failing the job.
MAX_ATTEMPTS = 12  # including the first (botocore's `max_attempts` counts retries only)
# An endpoint that does not answer is no bucket to ride out, and a person is waiting: a few
# seconds in all (botocore's defaults, 60 s timeouts and the 12 attempts, make it minutes).
CONNECT_TIMEOUT_S = 1.5  # a TCP connect to AWS takes well under a second, with one lost SYN resent
READ_TIMEOUT_S = 10.0  # our calls are answered within seconds; a silent one is retried (below)
UNREACHABLE_ATTEMPTS = 3  # including the first
UNREACHABLE_BACKOFF_S = 0.5


def retry_config(max_attempts: int = MAX_ATTEMPTS, max_pool_connections: int = 50) -> AioConfig:
    return AioConfig(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        max_pool_connections=max_pool_connections,
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        http_session_cls=_SharedTlsSession,
    )


class _SharedTlsSession(AIOHTTPSession):
    """aiobotocore's HTTP session with one TLS context per CA bundle for the whole process:
    aiobotocore makes a context for every client and parses the CA bundle into it (~60 ms of
    CPU each, measured at start-up); a context may serve any number of connections, loops and
    threads. A proxy or a client certificate keeps aiobotocore's own."""

    def _create_connector(self, proxy_url: str | None) -> Any:
        own: Any = self  # aiobotocore's attributes (2.25, pinned through aioboto3); stubs omit them
        if proxy_url or own._cert_file or not own._verify:
            return cast(Any, super())._create_connector(proxy_url)
        return aiohttp.TCPConnector(
            limit=own._max_pool_connections,
            ssl=_tls_context(get_cert_path(own._verify)),
            **own._connector_args,
        )


@functools.cache
def _tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    context: ssl.SSLContext = create_urllib3_context()
    if ca_bundle:
        context.load_verify_locations(ca_bundle, None, None)
    return context


class _Conditions(AioStandardRetryConditions):
    """The standard conditions, except that an unreachable endpoint gets few attempts, the first
    silent one (a timeout) said on stderr."""

    def __init__(self, max_attempts: int) -> None:
        super().__init__(max_attempts=max_attempts)
        self._said = False

    async def is_retryable(self, context: Any) -> bool:  # type: ignore[override]  # async in aiobotocore
        caught = context.caught_exception
        if not isinstance(caught, _unreachable()):
            return bool(await super().is_retryable(context))
        if context.attempt_number >= UNREACHABLE_ATTEMPTS:
            return False
        if isinstance(caught, _timeouts()) and not self._said:
            self._said = True
            log.warning(
                "no answer from %s (%s); retrying, %d attempts in all",
                getattr(caught, "kwargs", {}).get("endpoint_url", "AWS"),
                type(caught).__name__,
                UNREACHABLE_ATTEMPTS,
            )
        return True


class _Backoff(ExponentialBackoff):
    def delay_amount(self, context: Any) -> float:
        if isinstance(context.caught_exception, _unreachable()):
            return UNREACHABLE_BACKOFF_S
        return float(super().delay_amount(context))


def _unreachable() -> tuple[type[Exception], ...]:
    from botocore.exceptions import ConnectionError as BotocoreConnectionError
    from botocore.exceptions import ReadTimeoutError

    return (BotocoreConnectionError, ReadTimeoutError)  # ConnectTimeout and EndpointConnection too


def _timeouts() -> tuple[type[Exception], ...]:
    from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

    return (ConnectTimeoutError, ReadTimeoutError)


def few_attempts_when_unreachable(client: Any) -> None:
    """Swap `client`'s standard retry handler for ours (`_Conditions`, `_Backoff`)."""
    retries = client.meta.config.retries or {}
    name = client.meta.service_model.service_id.hyphenize()
    quota = RetryQuotaChecker(RetryQuota())
    client.meta.events.register(f"after-call.{name}", quota.release_retry_quota)
    handler = AioRetryHandler(
        retry_policy=AioRetryPolicy(
            retry_checker=_Conditions(retries.get("total_max_attempts", MAX_ATTEMPTS)),
            retry_backoff=_Backoff(),
        ),
        retry_event_adapter=RetryEventAdapter(),
        retry_quota=quota,  # type: ignore[arg-type]  # the stubs say RetryQuota; aiobotocore passes this
    )
    unique_id = f"retry-config-{name}"  # the id aiobotocore registered its handler with
    client.meta.events.unregister(f"needs-retry.{name}", unique_id=unique_id)
    client.meta.events.register(f"needs-retry.{name}", handler.needs_retry, unique_id=unique_id)


class _Given(CredentialProvider):
    """A credential provider that hands over credentials already made (an assumed role's)."""

    METHOD = "assume-role"
    CANONICAL_NAME = "ecs-fanout"

    def __init__(self, credentials: Any) -> None:
        super().__init__()
        self._credentials = credentials

    async def load(self) -> Any:
        return self._credentials


_models: Any = None  # botocore's loader of the service models, shared by every session


def _core_session() -> Any:
    """A new botocore session that shares the process's loader (made by the first one)."""
    from aiobotocore.session import AioSession

    global _models
    core = AioSession()
    if _models is None:
        _models = core.get_component("data_loader")
    else:
        core.register_component("data_loader", _models)
    return core


def _deduplicated(session: Any) -> Any:
    """boto3 appends its own data path to the loader of every session it makes: once is enough
    for the shared one."""
    paths = _models.search_paths
    paths[:] = list(dict.fromkeys(paths))
    return session


@dataclass(frozen=True)
class AwsAccess:
    """The credential chain's profile and, for a test bed, an endpoint and throw-away keys."""

    profile: str | None = None
    endpoint_url: str | None = None
    static_credentials: tuple[str, str] | None = None  # (key id, secret): the sandbox's only

    def session(self, region: str | None, access: Access | None = None, credentials: Any = None) -> Any:
        """A session with the caller's credentials, `access`'s profile, or `credentials` (an
        assumed role's, refreshable: `worker.credentials`). For one event loop: its credentials
        may refresh under a lock of that loop."""
        import aioboto3  # deferred: `--help` and the pure modules must not pay for it

        profile = access.profile if access is not None and access.profile else self.profile
        core = _core_session()
        if credentials is not None:
            from aiobotocore.credentials import AioCredentialResolver

            core.register_component("credential_provider", AioCredentialResolver([_Given(credentials)]))
            return _deduplicated(aioboto3.Session(botocore_session=core, region_name=region))
        own_keys = self.static_credentials if not (access and access.profile) else None
        key_id, secret = own_keys or (None, None)
        return _deduplicated(
            aioboto3.Session(
                botocore_session=core,
                profile_name=profile,
                region_name=region,
                aws_access_key_id=key_id,
                aws_secret_access_key=secret,
            )
        )

    async def check_credentials(self) -> None:
        """botocore's NoCredentialsError unless the standard chain finds credentials. Calls no AWS
        API: for a command that would otherwise find out job by job, in its workers."""
        from botocore.exceptions import NoCredentialsError

        if await self.session(None).get_credentials() is None:
            raise NoCredentialsError()

    @asynccontextmanager
    async def client(
        self,
        service: str,
        region: str | None,
        access: Access | None = None,
        credentials: Any = None,
        *,
        session: Any = None,
    ) -> AsyncIterator[Any]:
        """An aioboto3 client of `service` with our retry settings (typed by the wrappers): with
        the caller's credentials, `access`'s profile, or the `credentials` given (a role's); or
        from `session` (one of `session()`'s, kept by `worker.credentials.Clients`)."""
        session = session or self.session(region, access, credentials)
        async with session.client(
            service, region_name=region, config=retry_config(), endpoint_url=self.endpoint_url
        ) as client:
            few_attempts_when_unreachable(client)
            yield client

    def ecs(self, region: str | None) -> AbstractAsyncContextManager[ECSClient]:
        return self.client("ecs", region)

    def ecr(self, region: str | None) -> AbstractAsyncContextManager[ECRClient]:
        return self.client("ecr", region)

    def sqs(self, region: str | None) -> AbstractAsyncContextManager[SQSClient]:
        return self.client("sqs", region)

    def lambda_(self, region: str | None) -> AbstractAsyncContextManager[LambdaClient]:
        return self.client("lambda", region)

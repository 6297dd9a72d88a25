"""Class-level hooks in moto's ECS, and the registry of who drives which backend.

The hooks route service creates, updates, reads and deletes to the driver, keep the
deploymentConfiguration moto drops, and serve the service-deployments actions moto lacks
(SERVICE_DEPLOYMENT_ACTIONS) for driven backends; a backend nobody drives answers as moto does.

Why at class level: moto's reset recreates backend instances, never classes, so the hooks
survive every reset. Why a registry: moto's backends are process-global, one per (account,
region); each may be claimed by one driver (a `RolloutSimulator`), the most specific key first,
and a backend nobody claims behaves as plain moto. One lock guards every hook: moto's server
answers from several threads and the simulated state lives on those shared backend objects.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from moto.backends import get_backend
from moto.core.responses import ActionResult
from moto.core.utils import camelcase_to_underscores
from moto.ecs.exceptions import InvalidParameterException
from moto.ecs.models import EC2ContainerServiceBackend
from moto.ecs.responses import EC2ContainerServiceResponse

from orchestrator.sandbox.deploy_schedule import STRATEGIES

__all__ = [
    "DEFAULT_DEPLOYMENT_CONFIGURATION",
    "LOCK",
    "SERVICE_DEPLOYMENT_ACTIONS",
    "Driver",
    "claim",
    "deployment_configuration",
    "driver_for",
    "ecs_backends",
    "holder",
    "release",
]

DEFAULT_DEPLOYMENT_CONFIGURATION: dict[str, Any] = {
    "deploymentCircuitBreaker": {"enable": False, "rollback": False},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
    "strategy": "ROLLING",
    "bakeTimeInMinutes": 0,
}
# moto does not implement these ECS actions: a driver answers them (`deployment_api`)
SERVICE_DEPLOYMENT_ACTIONS = ("ListServiceDeployments", "DescribeServiceDeployments", "StopServiceDeployment")

LOCK = threading.RLock()
Key = tuple[str | None, str | None]  # (account id, region); None = any


class Driver(Protocol):
    """What the hooks call, always under LOCK."""

    def on_create(self, backend: Any, service: Any) -> None: ...

    def on_update(self, backend: Any, original: Callable[..., Any], props: dict[str, Any]) -> Any: ...

    def on_read(self, backend: Any, service: Any) -> None: ...

    def on_delete(self, backend: Any, service: Any) -> None: ...

    def on_service_deployments(self, backend: Any, action: str, params: dict[str, Any]) -> Any:
        """The answer to one of SERVICE_DEPLOYMENT_ACTIONS (a response shape's dict)."""
        ...

    def on_run_task(self, backend: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]: ...

    def on_read_tasks(self, backend: Any) -> None: ...


_REGISTRY: dict[Key, Driver] = {}
_ORIGINAL: dict[str, Callable[..., Any]] = {}


def claim(key: Key, driver: Driver) -> None:
    """Make `driver` drive the backends of `key` (replacing any other); installs the hooks."""
    with LOCK:
        _install_hooks()
        _REGISTRY[key] = driver


def release(key: Key, driver: Driver) -> None:
    with LOCK:
        if _REGISTRY.get(key) is driver:
            del _REGISTRY[key]


def holder(key: Key) -> Driver | None:
    return _REGISTRY.get(key)


def driver_for(backend: Any) -> Driver | None:
    account, region = backend.account_id, backend.region_name
    for key in ((account, region), (account, None), (None, region), (None, None)):
        driver = _REGISTRY.get(key)
        if driver is not None:
            return driver
    return None


def ecs_backends() -> Iterator[Any]:
    """Every ECS backend that exists (BackendDict's accessors would create missing ones)."""
    for per_account in list(dict.values(get_backend("ecs"))):
        yield from list(dict.values(per_account))


def deployment_configuration(
    requested: dict[str, Any] | None, previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """ECS's defaults under the service's `previous` settings under what the caller asked for
    (an UpdateService keeps the settings it does not name); InvalidParameterException as ECS
    for a strategy, bake time or traffic step it does not take."""
    config = {**DEFAULT_DEPLOYMENT_CONFIGURATION, **(previous or {}), **(requested or {})}
    config["deploymentCircuitBreaker"] = {
        **DEFAULT_DEPLOYMENT_CONFIGURATION["deploymentCircuitBreaker"],
        **(config["deploymentCircuitBreaker"] or {}),
    }
    problem = _configuration_problem(config)
    if problem:
        raise InvalidParameterException(problem)
    return config


def _configuration_problem(config: dict[str, Any]) -> str | None:
    if config["strategy"] not in STRATEGIES:
        return f"strategy must be one of {', '.join(STRATEGIES)}."
    linear = config.get("linearConfiguration") or {}
    canary = config.get("canaryConfiguration") or {}
    minutes = {
        "bakeTimeInMinutes": config["bakeTimeInMinutes"],
        "stepBakeTimeInMinutes": linear.get("stepBakeTimeInMinutes"),
        "canaryBakeTimeInMinutes": canary.get("canaryBakeTimeInMinutes"),
    }
    for name, value in minutes.items():
        if value is not None and not 0 <= value <= 1440:
            return f"{name} must be between 0 and 1440."
    for name, value in (
        ("stepPercent", linear.get("stepPercent")),
        ("canaryPercent", canary.get("canaryPercent")),
    ):
        if value is not None and not 0 < value <= 100:
            return f"{name} must be more than 0 and at most 100."
    return None


def _read(backend: Any, cluster_str: str | None, names: Iterable[str] | None = None) -> None:
    driver = driver_for(backend)
    if driver is None:
        return
    cluster_name = (cluster_str or "default").split("/")[-1]
    if names is None:
        services = [s for s in backend.services.values() if s.cluster_name == cluster_name]
    else:
        keys = (f"{cluster_name}:{str(name).split('/')[-1]}" for name in names)
        services = [backend.services[key] for key in keys if key in backend.services]
    for service in services:
        driver.on_read(backend, service)


def _create_service(self: Any, *args: Any, **kwargs: Any) -> Any:
    with LOCK:
        service = _ORIGINAL["create_service"](self, *args, **kwargs)
        driver = driver_for(self)
        if driver is not None:
            driver.on_create(self, service)
        return service


def _update_service(self: Any, service_properties: dict[str, Any]) -> Any:
    with LOCK:
        driver = driver_for(self)
        if driver is None:
            return _ORIGINAL["update_service"](self, service_properties)
        return driver.on_update(self, _ORIGINAL["update_service"], service_properties)


def _describe_services(self: Any, cluster_str: str, service_names_or_arns: list[str]) -> Any:
    with LOCK:
        _read(self, cluster_str, service_names_or_arns)
        return _ORIGINAL["describe_services"](self, cluster_str, service_names_or_arns)


def _read_tasks(backend: Any, cluster_str: str | None) -> None:
    _read(backend, cluster_str)
    driver = driver_for(backend)
    if driver is not None:
        driver.on_read_tasks(backend)


def _run_task(self: Any, *args: Any, **kwargs: Any) -> Any:
    # moto's own fails for FARGATE with awsvpc (an ENI in a subnet that is not there)
    with LOCK:
        driver = driver_for(self)
        if driver is None:
            return _ORIGINAL["run_task"](self, *args, **kwargs)
        return driver.on_run_task(self, args, kwargs)


def _describe_tasks(self: Any, cluster_str: str, tasks: list[str]) -> Any:
    with LOCK:
        _read_tasks(self, cluster_str)
        return _ORIGINAL["describe_tasks"](self, cluster_str, tasks)


def _stop_task(self: Any, cluster_str: str, task_str: str, reason: str) -> Any:
    with LOCK:
        _read_tasks(self, cluster_str)  # a one-off task that ended meanwhile stays as it ended
        task = _ORIGINAL["stop_task"](self, cluster_str, task_str, reason)
        _read_tasks(self, cluster_str)
        return task


def _list_tasks(self: Any, cluster_str: str | None = None, *args: Any, **kwargs: Any) -> Any:
    with LOCK:
        _read_tasks(self, cluster_str)
        found: list[Any] = _ORIGINAL["list_tasks"](self, cluster_str, *args, **kwargs)
        if driver_for(self) is None:
            return found
        names = ("container_instance", "family", "started_by", "service_name", "desiredStatus")
        given = dict(zip(names, args, strict=False)) | kwargs
        # moto ignores serviceName and lists every status; ECS filters both (default RUNNING)
        if given.get("service_name"):
            group = f"service:{str(given['service_name']).split('/')[-1]}"
            found = [t for t in found if t.group == group]
        if not given.get("desiredStatus"):
            found = [t for t in found if t.desired_status == "RUNNING"]
        return found


def _delete_service(self: Any, cluster_name: str, service_name: str, force: bool) -> Any:
    with LOCK:
        service = _ORIGINAL["delete_service"](self, cluster_name, service_name, force)
        driver = driver_for(self)
        if driver is not None:
            driver.on_delete(self, service)
        return service


def _response_create_service(self: Any) -> Any:
    with LOCK:
        # moto drops deploymentConfiguration on create, and the circuit breaker lives there
        config = deployment_configuration(self._get_param("deploymentConfiguration"))
        result = _ORIGINAL["response.create_service"](self)
        result.result["service"].deployment_configuration = config
        return result


def _service_deployment_action(action: str) -> Callable[[Any], Any]:
    """A response method for `action`: the driver's answer; plain moto's failure without one."""

    def respond(self: Any) -> Any:
        backend = self.ecs_backend
        driver = driver_for(backend)
        if driver is None:
            raise NotImplementedError(
                f"The {camelcase_to_underscores(action)} action has not been implemented"
            )
        return ActionResult(driver.on_service_deployments(backend, action, self._get_params()))

    return respond


def _response_call_action(self: Any) -> Any:
    # moto serialises after the backend call returns: keep that under the lock too, so that no
    # concurrent request changes a deployment list while a response is being written
    with LOCK:
        return _ORIGINAL["response.call_action"](self)


def _install_hooks() -> None:
    if _ORIGINAL:
        return
    backend_hooks: dict[str, Callable[..., Any]] = {
        "create_service": _create_service,
        "update_service": _update_service,
        "describe_services": _describe_services,
        "describe_tasks": _describe_tasks,
        "list_tasks": _list_tasks,
        "run_task": _run_task,
        "stop_task": _stop_task,
        "delete_service": _delete_service,
    }
    response_hooks: dict[str, Callable[..., Any]] = {
        "create_service": _response_create_service,
        "call_action": _response_call_action,
    }
    for name, hook in backend_hooks.items():
        _ORIGINAL[name] = getattr(EC2ContainerServiceBackend, name)
        setattr(EC2ContainerServiceBackend, name, hook)
    for name, hook in response_hooks.items():
        _ORIGINAL[f"response.{name}"] = getattr(EC2ContainerServiceResponse, name)
        setattr(EC2ContainerServiceResponse, name, hook)
    for action in SERVICE_DEPLOYMENT_ACTIONS:  # moto dispatches an action to its snake_case method
        setattr(
            EC2ContainerServiceResponse, camelcase_to_underscores(action), _service_deployment_action(action)
        )

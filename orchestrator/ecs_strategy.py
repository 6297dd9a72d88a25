"""ECS's deployment strategies in words. Pure: no I/O, no clock of its own.

Two pictures of one thing:

- `DeploymentSetup`: how a service is set up to deploy, from DescribeServices (its
  `deploymentController` and `deploymentConfiguration`): what `plan` and `--dry-run` show per
  service, e.g. `ECS controller, strategy BLUE_GREEN, bake 10m, 2 hooks`, `strategy LINEAR 10%
  every 2m`, `strategy CANARY 5% for 3m`, `strategy ROLLING` (a configuration without a
  strategy is ROLLING, ECS's default);
- `deployment_text`: where a service deployment stands, from a worker event's details (the live
  view's pane, `--plain` lines), e.g. `waiting for hook check-traffic for 3m12s ·
  POST_TEST_TRAFFIC_SHIFT · traffic 0% · BLUE_GREEN IN_PROGRESS`: a deployment held by a
  lifecycle hook says so, and for how long, instead of looking stalled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.contract import EventDetails

__all__ = [
    "DEFAULT_STRATEGY",
    "DeploymentSetup",
    "deployment_text",
    "hook_name",
    "span_text",
    "speaks_of_deployment",
]

DEFAULT_STRATEGY = "ROLLING"  # what ECS does when the configuration names no strategy
_ECS_CONTROLLER = "ECS"


def span_text(seconds: float) -> str:
    """A span in the spec's duration words: `45s`, `3m12s`, `10m`, `1h30m` (seconds dropped
    past an hour)."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"


def _minutes(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _percent(value: float) -> str:
    return f"{round(value, 1):g}%"


def hook_name(hook: str) -> str:
    """A lifecycle hook by its function's name: the last ':'-part of its target ARN."""
    return hook.rsplit(":", 1)[-1]


@dataclass(frozen=True)
class DeploymentSetup:
    """How ECS deploys a service: its controller and, on the ECS controller, its strategy."""

    controller: str = _ECS_CONTROLLER  # ECS, CODE_DEPLOY, EXTERNAL
    strategy: str = DEFAULT_STRATEGY  # ROLLING, BLUE_GREEN, LINEAR, CANARY
    bake_minutes: float | None = None  # bakeTimeInMinutes
    hooks: tuple[str, ...] = ()  # the lifecycle hooks' target ARNs
    step_percent: float | None = None  # LINEAR: traffic moved each step ...
    step_minutes: float | None = None  # ... and the wait after each
    canary_percent: float | None = None  # CANARY: traffic on the new revision first ...
    canary_minutes: float | None = None  # ... and for how long before the rest

    @classmethod
    def of(cls, service: Mapping[str, Any]) -> DeploymentSetup:
        """From a DescribeServices answer's service."""
        config: Mapping[str, Any] = service.get("deploymentConfiguration") or {}
        linear: Mapping[str, Any] = config.get("linearConfiguration") or {}
        canary: Mapping[str, Any] = config.get("canaryConfiguration") or {}
        hooks = tuple(str(h.get("hookTargetArn", "?")) for h in config.get("lifecycleHooks") or ())
        return cls(
            controller=str((service.get("deploymentController") or {}).get("type") or _ECS_CONTROLLER),
            strategy=str(config.get("strategy") or DEFAULT_STRATEGY),
            bake_minutes=_minutes(config.get("bakeTimeInMinutes")),
            hooks=hooks,
            step_percent=_minutes(linear.get("stepPercent")),
            step_minutes=_minutes(linear.get("stepBakeTimeInMinutes")),
            canary_percent=_minutes(canary.get("canaryPercent")),
            canary_minutes=_minutes(canary.get("canaryBakeTimeInMinutes")),
        )

    @property
    def on_ecs(self) -> bool:
        """Deployed by ECS itself (any strategy): what ecs-fanout deploys."""
        return self.controller == _ECS_CONTROLLER

    @property
    def strategy_text(self) -> str:
        """`BLUE_GREEN, bake 10m, 2 hooks`, `LINEAR 10% every 2m`, `CANARY 5% for 3m`, `ROLLING`."""
        words = self.strategy
        if self.strategy == "LINEAR" and self.step_percent is not None:
            every = "" if self.step_minutes is None else f" every {span_text(self.step_minutes * 60)}"
            words += f" {_percent(self.step_percent)}{every}"
        elif self.strategy == "CANARY" and self.canary_percent is not None:
            during = "" if self.canary_minutes is None else f" for {span_text(self.canary_minutes * 60)}"
            words += f" {_percent(self.canary_percent)}{during}"
        parts = [words]
        if self.bake_minutes:
            parts.append(f"bake {span_text(self.bake_minutes * 60)}")
        if self.hooks:
            parts.append(f"{len(self.hooks)} hook{'s' if len(self.hooks) > 1 else ''}")
        return ", ".join(parts)

    @property
    def text(self) -> str:
        """`ECS controller, strategy BLUE_GREEN, bake 10m, 2 hooks`; another controller alone:
        `CODE_DEPLOY controller` (its strategy is not ECS's to follow)."""
        if not self.on_ecs:
            return f"{self.controller} controller"
        return f"{self.controller} controller, strategy {self.strategy_text}"

    def as_json(self) -> dict[str, Any]:
        """`plan --json`'s `deployment` object of a service."""
        return {
            "controller": self.controller,
            "strategy": self.strategy,
            "bake_minutes": self.bake_minutes,
            "hooks": list(self.hooks),
            "linear": None
            if self.strategy != "LINEAR"
            else {"step_percent": self.step_percent, "step_minutes": self.step_minutes},
            "canary": None
            if self.strategy != "CANARY"
            else {"percent": self.canary_percent, "minutes": self.canary_minutes},
            "text": self.text,
        }


def speaks_of_deployment(details: EventDetails) -> bool:
    """Whether an event says where ECS's service deployment stands (not only which one it is)."""
    return any(
        value is not None
        for value in (
            details.service_deployment_status,
            details.lifecycle_stage,
            details.traffic_percent,
            details.bake_left_s,
            details.hook,
        )
    )


def deployment_text(details: EventDetails, now: float, at: float) -> str:
    """Where the service deployment stands, as of `now` for details reported at `at` (both on
    the workers' clock, epoch seconds): the hook holding it and since when, the lifecycle stage,
    production traffic on the new revision (not for ROLLING: it shifts none), the bake time left,
    the strategy and ECS's status.
    "" when the details say none of it (a job following the rolloutState only)."""
    parts: list[str] = []
    if details.hook:
        held = "" if details.hook_since is None else f" for {span_text(now - details.hook_since)}"
        parts.append(f"waiting for hook {hook_name(details.hook)}{held}")
    if details.lifecycle_stage:
        parts.append(details.lifecycle_stage)
    if details.traffic_percent is not None and details.strategy != DEFAULT_STRATEGY:
        parts.append(f"traffic {_percent(details.traffic_percent)}")  # ROLLING shifts no traffic
    if details.bake_left_s is not None:
        parts.append(f"bake {span_text(details.bake_left_s - max(0.0, now - at))} left")
    ecs = " ".join(word for word in (details.strategy, details.service_deployment_status) if word)
    if ecs and (parts or details.service_deployment_status):
        parts.append(ecs)
    return " · ".join(parts)

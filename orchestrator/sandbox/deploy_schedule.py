"""The lifecycle stages of one ECS service deployment, per strategy. Pure: no moto, no clock.

Why apart: which stages a strategy walks through, how long each lasts, how much traffic the new
revision gets in each and which lifecycle hooks hold it is ECS's published behaviour, and easy
to get wrong; kept as data it is checked on its own, and the state machine
(`service_deployments`) only walks it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["STRATEGIES", "Schedule", "Stage", "Timing", "build_schedule"]

STRATEGIES = ("ROLLING", "BLUE_GREEN", "LINEAR", "CANARY")
_STEP_EPSILON = 1e-9  # 3 steps of 33.3% stay below 100% however the floats round


@dataclass(frozen=True)
class Timing:
    """Real seconds: SCALE_UP's, every other stage's, and one ECS minute's."""

    rollout_s: float
    stage_s: float
    minute_s: float


@dataclass(frozen=True)
class Stage:
    """One stage: its lifecycleStage name, how long its own work takes (before its hooks are
    asked), the traffic (production, test: 0-100%) the new revision gets while in it, and the
    hookTargetArns that must answer before the next stage starts."""

    name: str
    duration_s: float
    traffic: float
    test_traffic: float
    hooks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Schedule:
    """A deployment's stages in order. `rolled_out` is the index of the stage on entering which
    production traffic is all on the new revision: ECS's `rolloutState` says COMPLETED from then
    on, although the service deployment still has (at least) BAKE_TIME and CLEAN_UP to go."""

    strategy: str
    stages: tuple[Stage, ...]
    rolled_out: int

    def index(self, name: str) -> int:
        """The first stage called `name` (every schedule has SCALE_UP and CLEAN_UP)."""
        return next(i for i, stage in enumerate(self.stages) if stage.name == name)


def _hooks_at(hooks: Sequence[Mapping[str, Any]], stage: str) -> tuple[str, ...]:
    return tuple(str(h["hookTargetArn"]) for h in hooks if stage in (h.get("lifecycleStages") or ()))


def _production_steps(strategy: str, config: Mapping[str, Any], timing: Timing) -> list[tuple[float, float]]:
    """(traffic %, hold s) of each PRODUCTION_TRAFFIC_SHIFT step: blue/green moves all at once,
    linear by stepPercent held stepBakeTimeInMinutes, canary canaryPercent held
    canaryBakeTimeInMinutes; the last step (100%) takes stage_s."""
    steps: list[tuple[float, float]] = []
    if strategy == "LINEAR":
        linear = config.get("linearConfiguration") or {}
        step = float(linear.get("stepPercent") or 10.0)
        hold = float(linear.get("stepBakeTimeInMinutes") or 0) * timing.minute_s
        traffic = step
        while traffic < 100.0 - _STEP_EPSILON:
            steps.append((round(traffic, 6), hold))
            traffic += step
    elif strategy == "CANARY":
        canary = config.get("canaryConfiguration") or {}
        percent = float(canary.get("canaryPercent") or 10.0)
        if percent < 100.0:
            steps.append((percent, float(canary.get("canaryBakeTimeInMinutes") or 0) * timing.minute_s))
    return [*steps, (100.0, timing.stage_s)]


def build_schedule(config: Mapping[str, Any], timing: Timing) -> Schedule:
    """The stages a deployment under `config` (a DeploymentConfiguration) goes through."""
    strategy = str(config.get("strategy") or "ROLLING")
    hooks: Sequence[Mapping[str, Any]] = config.get("lifecycleHooks") or ()
    bake_s = float(config.get("bakeTimeInMinutes") or 0) * timing.minute_s
    rolling = strategy == "ROLLING"
    shifted = 100.0 if rolling else 0.0  # a rolling update sends traffic to tasks as they start

    def stage(name: str, duration_s: float, traffic: float, test_traffic: float) -> Stage:
        return Stage(name, duration_s, traffic, test_traffic, _hooks_at(hooks, name))

    stages = [
        stage("RECONCILE_SERVICE", timing.stage_s, 0.0, 0.0),
        stage("PRE_SCALE_UP", timing.stage_s, 0.0, 0.0),
        stage("SCALE_UP", timing.rollout_s, shifted, shifted),
        stage("POST_SCALE_UP", timing.stage_s, shifted, shifted),
    ]
    if not rolling:
        stages += [
            stage("TEST_TRAFFIC_SHIFT", timing.stage_s, 0.0, 100.0),
            stage("POST_TEST_TRAFFIC_SHIFT", timing.stage_s, 0.0, 100.0),
        ]
        steps = _production_steps(strategy, config, timing)
        for number, (traffic, hold_s) in enumerate(steps, 1):
            shift = stage("PRODUCTION_TRAFFIC_SHIFT", hold_s, traffic, 100.0)
            if number < len(steps):  # the stage's hooks answer once, when the shift is over
                shift = Stage(shift.name, shift.duration_s, shift.traffic, shift.test_traffic)
            stages.append(shift)
        stages.append(stage("POST_PRODUCTION_TRAFFIC_SHIFT", timing.stage_s, 100.0, 100.0))
    rolled_out = len(stages) - 1
    if not rolling or bake_s > 0:
        stages.append(stage("BAKE_TIME", bake_s, 100.0, 100.0))
    stages.append(stage("CLEAN_UP", timing.stage_s, 100.0, 100.0))
    return Schedule(strategy, tuple(stages), rolled_out)

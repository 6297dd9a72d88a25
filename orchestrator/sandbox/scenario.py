"""How simulated rollouts behave: their timing, which images fail, and which ECS APIs answer.

Why a scenario: tests and the sandbox need the same ECS to be fast or slow, healthy or broken on
demand. A deployment's fate is read from the scenario when it starts, so changing it affects
only deployments that start afterwards.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["RolloutScenario"]


def _first_match(images: Iterable[str], patterns: tuple[str, ...]) -> str | None:
    for image in images:
        if any(fnmatch.fnmatchcase(image, pattern) for pattern in patterns):
            return image
    return None


@dataclass(frozen=True)
class RolloutScenario:
    """The simulated ECS's timing and failures.

    `minute_s` is how many real seconds one of ECS's minutes lasts (bake times and the holds of
    linear steps and canaries are in minutes), so a test can bake in a second. `stage_s` is how
    long every lifecycle stage but SCALE_UP (which takes `rollout_s`) and the timed holds takes;
    at 0 a rolling deployment's service deployment succeeds the instant its rollout completes.
    `hook_hold_s` is how long a stage with a lifecycle hook waits for the hook's answer (None:
    until `RolloutSimulator.release_hooks`); the hooks of deployments of `hook_fail_images`
    answer FAILED. `service_deployments_api` False makes ECS refuse the service-deployments
    actions as an endpoint that predates them would.
    """

    rollout_s: float = 3.0  # SCALE_UP: until a healthy rollout's tasks all run
    failure_s: float | None = None  # into SCALE_UP until a bad image's rollout FAILS; None = rollout_s
    bad_images: tuple[str, ...] = ()  # fnmatch patterns against the new revision's images
    minute_s: float = 60.0
    stage_s: float = 0.0
    hook_hold_s: float | None = 0.0
    hook_fail_images: tuple[str, ...] = ()  # fnmatch patterns, as bad_images
    service_deployments_api: bool = True
    task_s: float = 1.5  # a one-off task (RunTask: a wave's smoke test) runs this long, then stops
    failing_tasks: tuple[str, ...] = ()  # fnmatch patterns: a one-off task's command or image exits 1

    def __post_init__(self) -> None:
        durations = (
            self.rollout_s,
            self.failure_s,
            self.minute_s,
            self.stage_s,
            self.hook_hold_s,
            self.task_s,
        )
        if any(d is not None and d < 0 for d in durations):
            raise ValueError(
                "rollout_s, failure_s, minute_s, stage_s, hook_hold_s and task_s must not be negative"
            )

    @property
    def effective_failure_s(self) -> float:
        return self.rollout_s if self.failure_s is None else self.failure_s

    def bad_image(self, images: Iterable[str]) -> str | None:
        """The first image that matches a bad pattern, if any."""
        return _first_match(images, self.bad_images)

    def hook_fails(self, images: Iterable[str]) -> bool:
        """Whether the lifecycle hooks of a deployment of these images answer FAILED."""
        return _first_match(images, self.hook_fail_images) is not None

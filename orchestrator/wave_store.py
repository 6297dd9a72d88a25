"""A run's wave plan in its Redis, next to its plan: what `attach`, `approve` and `stop` read."""

from __future__ import annotations

from redis.asyncio import Redis

from orchestrator.waves import WavePlan
from worker.keys import run_waves

__all__ = ["WAVES_TTL_S", "load_waves", "save_waves"]

WAVES_TTL_S = 7 * 24 * 3600  # as long as the run's plan


async def save_waves(redis: Redis, run_id: str, plan: WavePlan) -> None:
    await redis.set(run_waves(run_id), plan.model_dump_json(), ex=WAVES_TTL_S)


async def load_waves(redis: Redis, run_id: str) -> WavePlan | None:
    """The run's waves, or None for a run without waves (or unknown)."""
    raw = await redis.get(run_waves(run_id))
    return None if raw is None else WavePlan.model_validate_json(raw)

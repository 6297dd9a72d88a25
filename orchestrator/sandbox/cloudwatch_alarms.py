"""Which CloudWatch alarms are in ALARM, read from moto's CloudWatch backend.

Why: ECS rolls a deployment back when one of its `deploymentConfiguration.alarms` goes into
ALARM. The tests set alarm states through the real CloudWatch endpoint (PutMetricAlarm,
SetAlarmState) and the simulator reads them here, in the same account and region as the
service, as ECS would.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from moto.backends import get_backend

__all__ = ["alarms_in_alarm"]


def alarms_in_alarm(account: str, region: str, names: Sequence[str]) -> dict[str, float]:
    """Each of `names` in state ALARM, and since when (epoch seconds)."""
    # dict.get: BackendDict's own accessors would create a backend that nobody asked for
    per_account = dict.get(get_backend("cloudwatch"), account)
    backend = dict.get(per_account, region) if per_account is not None else None
    if backend is None:
        return {}
    found: dict[str, float] = {}
    for name in names:
        alarm = backend.alarms.get(name)
        if alarm is not None and alarm.state_value == "ALARM":
            found[name] = _epoch(alarm.state_updated_timestamp)
    return found


def _epoch(stamp: datetime) -> float:
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()

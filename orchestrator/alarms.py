"""Reading CloudWatch alarms for a wave's gate: DescribeAlarms by name, 100 names a call.

Both kinds of alarm count (metric and composite: `AlarmTypes` asks for both, as without it
CloudWatch answers metric alarms only). An alarm CloudWatch does not know is answered `None`:
the gate treats a name it cannot read as a reason to stop, not as an alarm that is fine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["NAMES_PER_CALL", "read_alarms"]

NAMES_PER_CALL = 100  # DescribeAlarms' limit on AlarmNames


async def read_alarms(cloudwatch: Any, names: Sequence[str]) -> dict[str, str | None]:
    """Each alarm's StateValue (OK, ALARM, INSUFFICIENT_DATA), None for an unknown name."""
    states: dict[str, str | None] = dict.fromkeys(names)
    unique = list(states)
    for start in range(0, len(unique), NAMES_PER_CALL):
        chunk = unique[start : start + NAMES_PER_CALL]
        token: str | None = None
        while True:
            extra = {"NextToken": token} if token else {}
            answer = await cloudwatch.describe_alarms(
                AlarmNames=chunk, AlarmTypes=["MetricAlarm", "CompositeAlarm"], **extra
            )
            for alarm in [*answer.get("MetricAlarms", []), *answer.get("CompositeAlarms", [])]:
                if alarm.get("AlarmName") in states:
                    states[alarm["AlarmName"]] = alarm.get("StateValue")
            token = answer.get("NextToken")
            if not token:
                break
    return states

"""moto's STS made strict enough to test accounts with: roles must exist, credentials expire.

moto 5.2.5 lets anyone assume any role ARN (the resources of the calls made with those
credentials land in the ARN's account) and never checks an expiry. AWS refuses a role its
account's IAM does not have, and refuses expired credentials. The hook on `STSBackend` (class
level: it survives moto's resets) refuses a role its account's IAM does not hold, with
`AccessDenied` as AWS answers; it caps the session at `Rules.session_s` when a test asks for
short-lived credentials, and records each assumed key's expiry and each AssumeRole, which the
emulator's middleware reads (`expired`, `assumed`).
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from moto.core.exceptions import ServiceException
from moto.iam.models import iam_backends
from moto.sts.models import STSBackend

__all__ = ["RULES", "Rules", "install_sts_hooks"]


class _AccessDenied(ServiceException):
    code = "AccessDenied"


class Rules:
    """What the hook enforces and what it saw. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.session_s: int | None = None  # cap on an assumed role's lifetime (None: as asked)
        self._expiries: dict[str, datetime] = {}  # assumed access key id -> expiry (naive UTC)
        self._assumed: list[str] = []  # role ARNs, one per successful AssumeRole

    def reset(self) -> None:
        with self._lock:
            self.session_s = None
            self._expiries.clear()
            self._assumed.clear()

    def record(self, access_key_id: str, expiry: datetime, role_arn: str) -> None:
        with self._lock:
            self._expiries[access_key_id] = expiry
            self._assumed.append(role_arn)

    def expired(self, access_key_id: str, now: datetime) -> bool:
        with self._lock:
            expiry = self._expiries.get(access_key_id)
        return expiry is not None and now >= expiry

    def assumed(self) -> list[str]:
        with self._lock:
            return list(self._assumed)


RULES = Rules()
_ORIGINAL: dict[str, Any] = {}


def _role_exists(role_arn: str) -> bool:
    account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
    try:
        iam_backends[account]["aws"].get_role_by_arn(role_arn)
    except Exception:  # moto's IAMNotFoundException, or an ARN it cannot read
        return False
    return True


def _assume_role(
    self: Any,
    region_name: str,
    role_session_name: str,
    role_arn: str,
    policy: str,
    duration: int,
    external_id: str,
) -> Any:
    if not _role_exists(role_arn):
        raise _AccessDenied(
            f"User: arn:aws:sts::{self.account_id}:assumed-caller is not authorized to perform: "
            f"sts:AssumeRole on resource: {role_arn}"
        )
    if RULES.session_s is not None:
        duration = min(duration, RULES.session_s)
    role = _ORIGINAL["assume_role"](
        self, region_name, role_session_name, role_arn, policy, duration, external_id
    )
    RULES.record(role.access_key_id, role.expiration, role_arn)
    return role


def install_sts_hooks() -> None:
    """Install the hook once per process (moto's STS backend class is process-global)."""
    if not _ORIGINAL:
        _ORIGINAL["assume_role"] = STSBackend.assume_role
        STSBackend.assume_role = _assume_role  # type: ignore[method-assign]

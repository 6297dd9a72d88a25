"""AWS region names: the one check that the spec, ``--region`` and ``AWS_REGION`` share.

botocore only refuses a region that is not a valid host label (``InvalidRegionError``, and
only once a client is made), so ``us_east_1`` or ``eu-west-1a`` would otherwise reach the
first AWS call. `check_region` accepts the *shape* of every region name AWS uses, new
regions included, and nothing else::

    us-east-1  eu-central-2  ap-southeast-5  il-central-1       (aws)
    cn-north-1  cn-northwest-1                                  (aws-cn)
    us-gov-west-1  us-iso-east-1  us-isob-east-1  eu-isoe-west-1  (GovCloud, ISO)
    eusc-de-east-1                                              (European Sovereign Cloud)

Every name it accepts is also a name botocore accepts. A refused name gets a hint when an
obvious fix exists: ``US_EAST_1`` -> ``us-east-1``, the availability zone ``eu-west-1a`` ->
its region ``eu-west-1``.
"""

from __future__ import annotations

import re

__all__ = ["REGION_PATTERN", "check_region"]

REGION_PATTERN = re.compile(r"[a-z]{2,4}(?:-[a-z]{2,4})?-[a-z]{2,12}-[0-9]{1,2}")
"""A partition prefix (``us``, ``cn``, ``eusc``), an optional qualifier (``gov``, ``iso``,
``isob``, ``de``), a direction (``east``, ``southeast``, ``central``) and a number."""

_EXAMPLE = "an AWS region name such as 'eu-west-1' or 'us-gov-west-1'"
_ZONE = re.compile(r"(?P<region>.+-[0-9]{1,2})[a-z]")  # eu-west-1a: an availability zone


def check_region(name: str) -> str:
    """`name` when it is an AWS region name; else ValueError saying why, with a fix if clear.

    The message names the value but not where it came from: callers prefix that
    (``'region': ...`` in a spec, ``--region: ...`` on the command line).
    """
    if REGION_PATTERN.fullmatch(name):
        return name
    if not name.strip():
        raise ValueError(f"must not be empty: give {_EXAMPLE}")
    raise ValueError(f"{name!r} is not {_EXAMPLE}{_hint(name)}")


def _hint(name: str) -> str:
    fixed = re.sub(r"[\s_]+", "-", name.strip()).lower()
    zone = _ZONE.fullmatch(fixed)
    if zone and REGION_PATTERN.fullmatch(zone["region"]):
        return f" ({name!r} is an availability zone; its region is {zone['region']!r})"
    if fixed != name and REGION_PATTERN.fullmatch(fixed):
        return f" (did you mean {fixed!r}?)"
    return ""

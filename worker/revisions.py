"""Old task-definition revisions: which to deregister after a successful rollout.

Every deploy registers a revision; families grow without bound unless old ones go. After a
success, with `keep_revisions = N`, the newest N ACTIVE revisions of the family stay, and
so do, whatever their age, the live one and the rollback target (the revision the service
ran before: `rollback RUN_ID` and `--all-or-nothing` put it back). A deregistered revision
keeps running wherever it runs; it can no longer be used for new services or updates.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

__all__ = ["family_and_revision", "revisions_to_deregister"]


def family_and_revision(arn: str) -> tuple[str, int]:
    """("web", 7) for "arn:aws:ecs:...:task-definition/web:7" (or "web:7")."""
    family, _, revision = arn.rsplit("/", 1)[-1].rpartition(":")
    return family, int(revision)


def revisions_to_deregister(
    active_arns: Iterable[str], family: str, keep: int, protected: Collection[str]
) -> list[str]:
    """The ACTIVE revisions of `family` beyond the newest `keep`, minus `protected`, oldest first.

    `familyPrefix` listings also return other families that start with the same name
    ("web" lists "web-admin" too): only exact family matches count.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1: the live revision always stays")
    mine = sorted(
        (family_and_revision(arn)[1], arn) for arn in active_arns if family_and_revision(arn)[0] == family
    )
    older = mine[: max(0, len(mine) - keep)]
    kept = {family_and_revision(arn) for arn in protected}
    return [arn for revision, arn in older if (family, revision) not in kept]

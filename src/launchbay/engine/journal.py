"""A deployment's journal: its events and log lines in one ordered, resumable stream.

Each entry's `sequence` comes from an atomic increment of the deployment row, which holds the
row lock until the entry commits; so entries of one deployment become visible in sequence
order, and a reader resuming after sequence N can never skip one.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import update
from sqlalchemy.orm import Session as DbSession

from launchbay.crypto import mask
from launchbay.store.models import Deployment, DeploymentEntry, DeploymentStatus

TERMINAL = (DeploymentStatus.SUCCEEDED, DeploymentStatus.FAILED, DeploymentStatus.CANCELED,
            DeploymentStatus.ROLLED_BACK)


def append(db: DbSession, deployment_id: str, message: str, *, kind: str = "log",
           phase: str = "deploy", level: str = "info", event_type: str | None = None,
           status: str | None = None, source: str = "launchbay",
           secrets: Iterable[str] = ()) -> DeploymentEntry:
    message, masked = mask(message, list(secrets))
    sequence = db.execute(
        update(Deployment).where(Deployment.id == deployment_id)
        .values(entry_count=Deployment.entry_count + 1)
        .returning(Deployment.entry_count)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    entry = DeploymentEntry(deployment_id=deployment_id, sequence=sequence, kind=kind,
                            phase=phase, level=level, source=source, event_type=event_type,
                            status=status, message=message[:16000], masked=masked)
    db.add(entry)
    return entry

"""The auto-update watcher's eyes: which hosted deployments that follow their image's tag now
run another image than the tag names (a new push to the registry, or a re-tagged local image).

It only looks; redeploying is an operation (`deployments.hosted.auto-update.apply`), which the
control plane runs on behalf of whoever turned auto-update on. A deployment is skipped while
one of its releases is under way, and an image whose release already failed is not tried
again (until the tag moves once more).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from launchbay.engine.journal import TERMINAL
from launchbay.engine.plan import ReleasePlan
from launchbay.engine.runtime import RuntimeFailure
from launchbay.engine.targets import Targets
from launchbay.store.models import (
    Deployment,
    DeploymentStatus,
    HostedDeployment,
    LifecycleStatus,
    Resource,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outdated:
    organization_id: str
    user_id: str
    name: str
    image_id: str


def outdated(sessions: sessionmaker, targets: Targets) -> list[Outdated]:
    found = []
    with sessions() as db:
        rows = db.execute(select(HostedDeployment, Resource).join(
            Resource, Resource.id == HostedDeployment.resource_id).where(
            HostedDeployment.auto_update.is_(True), HostedDeployment.auto_update_by.is_not(None),
            Resource.lifecycle_status == LifecycleStatus.ACTIVE,
            Resource.current_deployment_id.is_not(None))).all()
        candidates = []
        for h, r in rows:
            latest = db.scalar(select(Deployment).where(Deployment.resource_id == r.id)
                               .order_by(Deployment.created_at.desc()).limit(1))
            current = db.get(Deployment, r.current_deployment_id)
            if latest is None or latest.status not in TERMINAL or current is None \
                    or not current.container_id:
                continue
            failed = ReleasePlan.model_validate(latest.plan).labels.get("launchbay.image-id") \
                if latest.status == DeploymentStatus.FAILED else None
            candidates.append((h, r, current.container_id,
                               ReleasePlan.model_validate(current.plan).image, failed))
    for h, r, container_id, image, failed in candidates:
        if not image:
            continue
        try:
            docker = targets.of(r.server_id)
            running = docker.inspect(container_id)
            now = docker.current_image_id(image)
        except RuntimeFailure as exc:
            log.warning("auto-update: cannot inspect %s: %s", r.slug, exc)
            continue
        if now and running and running.image_id != now and now != failed:
            found.append(Outdated(r.organization_id, h.auto_update_by, r.slug, now))
    return found

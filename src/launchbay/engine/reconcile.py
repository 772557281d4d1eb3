"""The reconciler: what a crash or a lost worker left behind is put right.

- A deployment that is not finished but whose work is closed (failed, canceled, dead-lettered)
  is failed with that reason (or canceled, if that was asked for): nothing stays "running"
  forever.
- A container carrying launchbay's labels whose deployment is unknown, failed or canceled, or
  superseded (not current, with no release of its resource under way) is removed.
- A network of an environment that no longer exists, or of a release that ended (a compose
  stack's), is removed once nothing is attached.
- Built images of a resource beyond the newest `keep` successful releases (and the current
  one) are removed.
Volumes are never removed here.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from launchbay.engine.image_access import built_repository
from launchbay.engine.journal import TERMINAL
from launchbay.engine.ledger import OPEN
from launchbay.engine.plan import ReleasePlan
from launchbay.engine.release import ACTIVE, finish
from launchbay.engine.runtime import RuntimeFailure
from launchbay.engine.targets import Targets
from launchbay.store.models import (
    Deployment,
    DeploymentStatus,
    Environment,
    OperatorWork,
    Resource,
    ScheduledTaskRun,
)

log = logging.getLogger("launchbay.reconcile")


def sweep(sessions: sessionmaker, targets: Targets, keep_images: int = 5) -> dict[str, int]:
    failed = _fail_abandoned_deployments(sessions)
    removed = 0
    for server_id in targets.server_ids():
        try:
            removed += _remove_stray_containers(sessions, targets, server_id)
            _remove_stray_networks(sessions, targets, server_id)
            _prune_old_images(sessions, targets, server_id, keep_images)
        except (RuntimeFailure, OSError) as exc:
            log.warning("cannot reach the Docker engine of %s: %s", server_id, exc)
    return {"failedDeployments": failed, "removedContainers": removed}


def _fail_abandoned_deployments(sessions: sessionmaker) -> int:
    with sessions() as db:
        unfinished = db.scalars(select(Deployment).where(
            Deployment.status.in_((DeploymentStatus.CREATED, *ACTIVE)))).all()
        abandoned = []
        for d in unfinished:
            work = db.scalars(select(OperatorWork).where(
                OperatorWork.deployment_id == d.id)
                .order_by(OperatorWork.created_at.desc())).first()
            if work is None or work.status not in OPEN:
                reason = (f"its work item ended as {work.status}: {work.error_message or '-'}"
                          if work else "it has no work item")
                abandoned.append((d.id, d.status, reason))
    for deployment_id, status, reason in abandoned:
        # What was asked for, even if its worker is gone.
        if status == DeploymentStatus.CANCEL_REQUESTED:
            finish(sessions, deployment_id, DeploymentStatus.CANCELED)
        else:
            finish(sessions, deployment_id, DeploymentStatus.FAILED, "work-lost",
                   f"abandoned: {reason}")
    return len(abandoned)


def _remove_stray_containers(sessions: sessionmaker, targets: Targets, server_id: str) -> int:
    docker = targets.of(server_id)
    found = docker.containers(**{"launchbay.server": server_id})
    owners = {c.labels.get("launchbay.deployment") for c in found} - {None}
    with sessions() as db:  # four queries for the whole server
        deployments = {d.id: d for d in db.scalars(select(Deployment).where(
            Deployment.id.in_(owners)))}
        resources = {r.id: r for r in db.scalars(select(Resource).where(
            Resource.id.in_({d.resource_id for d in deployments.values()})))}
        # A release of a resource is under way until its work ends (the drain and the
        # retirement of older releases come after its deployment succeeded).
        busy = set(db.scalars(select(OperatorWork.resource_id).where(
            OperatorWork.resource_id.in_(resources), OperatorWork.kind == "deployment",
            OperatorWork.status.in_(OPEN))))
        # A task's run is watched while it runs: a container of a run gone (deleted with its
        # task) or ended is a leftover.
        runs = {c.labels["launchbay.task-run"] for c in found if "launchbay.task-run" in c.labels}
        live_runs = set(db.scalars(select(ScheduledTaskRun.id).where(
            ScheduledTaskRun.id.in_(runs), ScheduledTaskRun.status.in_(
                ("accepted", "running"))))) if runs else set()
    removed = 0
    for container in found:
        run = container.labels.get("launchbay.task-run")
        if run is not None and run not in live_runs:
            docker.remove(container.id)
            removed += 1
            continue
        # A database, or a one-off tool (a backup's: it removes itself), is never a release.
        if {"launchbay.database", "launchbay.run"} & container.labels.keys():
            continue
        d = deployments.get(container.labels.get("launchbay.deployment", ""))
        resource = resources.get(d.resource_id) if d else None
        if d is None or resource is None:
            why = "unknown deployment"
        elif d.status in (DeploymentStatus.FAILED, DeploymentStatus.CANCELED) \
                and resource.current_deployment_id != d.id:
            why = f"deployment {d.status}"
        elif (d.status in TERMINAL and resource.current_deployment_id != d.id
              and resource.id not in busy):
            why = "superseded release"
        else:
            continue
        log.info("removing container %s: %s", container.name, why)
        docker.remove(container.id)
        removed += 1
    return removed


def _remove_stray_networks(sessions: sessionmaker, targets: Targets, server_id: str) -> None:
    docker = targets.of(server_id)
    for name, labels, attached in docker.networks(**{"launchbay.server": server_id}):
        if attached:
            continue
        with sessions() as db:
            if "launchbay.deployment" in labels:  # a release's stack network
                d = db.get(Deployment, labels["launchbay.deployment"])
                gone = d is None or d.status in TERMINAL
            else:
                gone = db.get(Environment, labels.get("launchbay.environment", "")) is None
        if gone:
            docker.remove_network(name)


def _prune_old_images(sessions: sessionmaker, targets: Targets, server_id: str,
                      keep: int) -> None:
    """Removes a resource's built images (`lb/<organization>/<resource>:*`, and the
    `lb/<resource>:*` of older versions) but those of its current release and its newest `keep`
    successful releases. The work follows the built images on the server (one listing), not
    the resources in the store."""
    docker = targets.of(server_id)
    tags = docker.built_tags()
    named = {tag.rsplit(":", 1)[0].rsplit("/", 1)[-1] for tag in tags}
    if not named:
        return
    with sessions() as db:
        resources = list(db.scalars(select(Resource).where(
            Resource.server_id == server_id, Resource.id.in_(named))))
        # A release under way may have built an image its plan does not name yet: leave the
        # resource alone until its work ends.
        busy = set(db.scalars(select(OperatorWork.resource_id).where(
            OperatorWork.kind == "deployment", OperatorWork.status.in_(OPEN))))
        ranked = select(Deployment.resource_id, Deployment.plan, func.row_number().over(
            partition_by=Deployment.resource_id, order_by=Deployment.created_at.desc()
        ).label("n")).where(Deployment.resource_id.in_([r.id for r in resources]),
                            Deployment.status.in_((DeploymentStatus.SUCCEEDED,
                                                   DeploymentStatus.ROLLED_BACK))).subquery()
        plans = [*db.execute(select(ranked.c.resource_id, ranked.c.plan).where(
            ranked.c.n <= keep)), *db.execute(select(Deployment.resource_id, Deployment.plan)
                                              .where(Deployment.id.in_(
                                                  [r.current_deployment_id for r in resources
                                                   if r.current_deployment_id])))]
    wanted: dict[str, set[str]] = {}
    for resource_id, plan in plans:
        wanted.setdefault(resource_id, set()).update(ReleasePlan.model_validate(plan).images())
    # Its built images' names, then and now, to the resource.
    owner = {name: r.id for r in resources if r.id not in busy
             for name in (built_repository(r.organization_id, r.id), f"lb/{r.id}")}
    for tag in tags:
        resource_id = owner.get(tag.rsplit(":", 1)[0])
        if resource_id is not None and tag not in wanted.get(resource_id, set()):
            docker.remove_image(tag)  # untags; the layers go when nothing else uses them

"""Runtime controls of a resource's current release: stop, start, restart, scale (a Swarm
service's replicas); and removing the containers of a deleted resource. Volumes are never
touched."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.orm import sessionmaker

from launchbay.engine.release import remove_containers
from launchbay.engine.runtime import SwarmManager
from launchbay.engine.targets import Targets
from launchbay.engine.worker import Job, Refused
from launchbay.store.models import Deployment, Environment, OperatorWork, Resource
from launchbay.store.profiles import MaintenancePayload

ACTIONS = ("stop", "start", "restart", "scale", "remove-resource")


class RuntimeControl:
    """The handler of `runtime-maintenance` work items."""

    def __init__(self, sessions: sessionmaker, targets: Targets,
                 reroute: Callable[[str | None], None] | None = None,
                 drain_seconds: float = 0):
        self.sessions, self.targets, self.reroute = sessions, targets, reroute
        self.drain_seconds = drain_seconds

    def run(self, job: Job) -> str:
        item = job.item
        payload = MaintenancePayload.model_validate(item.payload)
        action = payload.action
        docker = self.targets.of(item.server_id)  # type: ignore[arg-type]  # runtime work always names its server
        if action == "remove-resource":
            if self.reroute is not None:  # its route goes first, then its containers, once
                self.reroute(item.server_id)  # the requests the proxy had sent are answered
                time.sleep(self.drain_seconds)
            remove_containers(docker, **{"launchbay.resource": item.resource_id})  # type: ignore[arg-type]  # runtime work always names its resource
            remove_containers(docker, **{"launchbay.task-resource": item.resource_id})  # type: ignore[arg-type]  # its jobs' runs too
            if payload.delete_resource:  # it was kept to show `Deleting` until now
                with self.sessions() as db:
                    if (resource := db.get(Resource, item.resource_id)) is not None:
                        env = db.get(Environment, resource.environment_id)
                        db.delete(env if payload.delete_environment and env
                                  else resource)
                        db.commit()
            return "succeeded"
        with self.sessions() as db:
            resource = db.get(Resource, item.resource_id)
            current = resource and resource.current_deployment_id
            deployment = db.get(Deployment, current) if current else None
        if deployment is None or deployment.container_id is None:
            raise Refused("no-runtime", "the resource has no running release")
        job.progress(phase=action, step=f"{action} {deployment.container_name}")
        if docker.inspect(deployment.container_id) is None:
            raise Refused("runtime-missing", f"container {deployment.container_name} is gone")
        if action == "scale":
            if not isinstance(docker, SwarmManager):
                raise Refused("not-a-cluster", "only a Docker Swarm runs replicas")
            docker.scale(deployment.container_id, payload.replicas or 1)
        else:
            getattr(docker, action)(deployment.container_id)
        info = docker.inspect(deployment.container_id)
        if info is not None and info.host_port != deployment.host_port:
            # A started container gets a new loopback port: record where it answers now.
            with self.sessions() as db:
                db.get_one(Deployment, deployment.id).host_port = info.host_port
                db.commit()
            if self.reroute is not None:
                self.reroute(item.server_id)
        return "succeeded"

    def give_up(self, item: OperatorWork, code: str, message: str) -> None:
        pass

"""The control plane as one object: settings, store, engine and operations. Faces and the CLI's
`serve` and `worker` build one and call nothing else."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import text

from launchbay.crypto import SecretBox
from launchbay.drivers.edge_proxy import Caddy
from launchbay.engine import auto_update, reconcile, server_probe, task_runs
from launchbay.engine.databases import DatabaseWork
from launchbay.engine.health_monitor import HealthMonitor
from launchbay.engine.image_access import ImageAccess
from launchbay.engine.ledger import Ledger
from launchbay.engine.release import DeploymentRunner
from launchbay.engine.routing import EdgeProxy, ProxyBootstrap, RemoteEdges, RouteRealization
from launchbay.engine.runtime import LogLine
from launchbay.engine.runtime_control import RuntimeControl
from launchbay.engine.swarm_release import SwarmRelease
from launchbay.engine.targets import Targets
from launchbay.engine.task_runs import TaskRunStart
from launchbay.engine.volume_backups import VolumeWork
from launchbay.engine.worker import Defer, Job, Periodic, Refused, Workers
from launchbay.operations import (
    Actor,
    Operations,
    Visit,
    credential_rotations,
    databases,
    instances,
    integrations,
    previews,
    scheduled_tasks,
    templates,
)
from launchbay.operations.errors import NotYet, OperationError
from launchbay.operations.identity.accounts import authenticate
from launchbay.operations.resources import RuntimeTarget
from launchbay.operations.servers import ensure_local_server
from launchbay.settings import Settings
from launchbay.store.db import make_engine, make_sessionmaker
from launchbay.store.migrate import is_current, upgrade
from launchbay.store.models import OperatorWork, utcnow

log = logging.getLogger(__name__)


class OnBehalf:
    """The handler of `operation` work items: an operation run as the user who set it up (a
    webhook's dispatch runs as the author of the policy it concerns), within what that user
    may still do; a refusal fails the item with the operation's own reason."""

    def __init__(self, ops: Operations):
        self.ops = ops

    def run(self, job: Job) -> str:
        item = job.item
        try:
            self.ops.run(item.payload["key"], Actor(user_id=item.payload["user_id"],
                                                    organization_id=item.organization_id),
                         {**item.payload.get("input", {}),
                          "organizationId": item.organization_id})
        except NotYet as exc:  # not a failure: the same again later
            raise Defer(exc.seconds, exc.message) from None
        except OperationError as exc:
            raise Refused(exc.code, exc.message) from None
        return "succeeded"

    def give_up(self, item: OperatorWork, code: str, message: str) -> None:
        """Nothing of its own to undo: what it did (or not) is the operation's record."""


class ControlPlane:
    def __init__(self, settings: Settings, *, migrate: bool = True):
        self.settings = settings
        self.engine = make_engine(settings.resolved_database_url)
        self.sessions = make_sessionmaker(self.engine)
        if migrate:
            upgrade(self.engine)
            with self.sessions() as db:
                ensure_local_server(db)
                if settings.shipped_templates:
                    templates.load_files(db, templates.SHIPPED, origin="shipped")
                templates.load_files(db, settings.resolved_templates_dir)
        self.targets = Targets(self.sessions, SecretBox(settings.secret_key),
                               settings.ssh_connect_timeout)
        self.ledger = Ledger(self.sessions, settings.work_lease_seconds)
        self.ops = Operations(settings, self.sessions, self.targets, self.wake)
        self.edge = EdgeProxy(self.sessions, settings, Caddy(
            settings.edge_admin, state_dir=settings.data_dir / "caddy",
            manage=settings.edge_manage), self.ops.secrets, remote=RemoteEdges(
                self.sessions, settings, self.ops.secrets, self.targets)) \
            if settings.edge_enabled else None
        self.ops.edge = self.edge
        reroute = self.edge.apply if self.edge else None
        self.health = self.ops.health = HealthMonitor(self.sessions, settings, self.targets)
        background = [Periodic("reconcile", settings.reconcile_seconds, self.reconcile),
                      Periodic("health", settings.health_observe_seconds, self.health.sweep),
                      Periodic("auto-update", settings.auto_update_seconds, self.auto_update),
                      Periodic("reap", settings.instance_reap_seconds, self.reap),
                      Periodic("warm-pools", settings.instance_pool_seconds, self.fill_pools),
                      Periodic("database-backups", settings.backup_schedule_seconds,
                               self.run_backup_schedule),
                      Periodic("credential-rotations", settings.backup_schedule_seconds,
                               self.advance_rotations),
                      Periodic("previews", settings.instance_reap_seconds, self.expire_previews),
                      Periodic("commit-statuses", settings.commit_status_seconds,
                               self.report_statuses),
                      Periodic("preview-reconcile", settings.preview_reconcile_seconds,
                               self.reconcile_previews),
                      Periodic("server-probe", settings.server_probe_seconds,
                               self.probe_servers),
                      # In each process: a fire is admitted once, and a run ended once,
                      # whoever does it; no claim to write every second.
                      Periodic("scheduled-tasks", settings.task_schedule_seconds,
                               self.run_tasks, once=False)]
        if self.edge:  # each process watches its own Caddy
            background += [Periodic("edge-watch", 1.0, self.edge.watch, once=False),
                           Periodic("certificates", settings.reconcile_seconds,
                                    self.edge.refresh_certificates, once=False)]
        self.workers = Workers(
            self.ledger,
            {"deployment": DeploymentRunner(self.sessions, self.ops.secrets, self.targets,
                                            ImageAccess(self.sessions, [
                                                *settings.shared_images,
                                                *settings.build_base_images.values()]),
                                            settings.git_policy, reroute,
                                            settings.data_dir / "workspaces",
                                            settings.build_slots,
                                            cluster_release=SwarmRelease),
             "runtime-maintenance": RuntimeControl(self.sessions, self.targets, reroute,
                                                   settings.edge_drain_seconds),
             "route-realization": RouteRealization(self.sessions, settings, self.edge),
             "database": DatabaseWork(self.sessions, self.ops.secrets, self.targets, settings),
             "storage-volume": VolumeWork(self.sessions, self.ops.secrets, self.targets,
                                          settings),
             "operation": OnBehalf(self.ops),
             "scheduled-task-run": TaskRunStart(self.sessions, self.ops.secrets, self.targets,
                                                settings),
             "proxy-bootstrap": ProxyBootstrap(self.edge)},
            count=settings.workers, poll_seconds=settings.worker_poll_seconds,
            lease_seconds=settings.work_lease_seconds, background=background)
        self._started = self._closed = False

    def authenticate(self, secret: str, visit: Visit | None = None,
                     address: str | None = None) -> Actor | None:
        """The actor behind a launchbay session or API token, or (when OpenID Connect is
        configured) an id_token from the provider: its user, provisioned at first sight.
        Read in `visit`'s session when the request has one; `address`: the client's."""
        if visit is not None:
            actor = authenticate(visit.db, secret, address)
        else:
            with self.sessions() as db:
                actor = authenticate(db, secret, address)
        if actor is None and self.ops.oidc is not None and secret.count(".") == 2:
            try:
                who = self.ops.run("auth.oidc.sign-in", None, {"idToken": secret})
            except OperationError as exc:
                if exc.status != 401:
                    raise
                return None
            actor = Actor(user_id=who.user_id, organization_id=who.organization_id)
        return actor

    def start_workers(self) -> None:
        """Runs the engine in this process: workers, and the reconciler (which also runs once
        now, so that what a crash left is put right at start)."""
        if not self._started and self.settings.workers > 0:
            self._started = True
            if self.edge:  # Caddy (adopted, or started) has its routes before anything
                self.edge.watch()  # observes the apps' public access
            self.workers.start()

    def wake(self) -> None:
        self.workers.wake()

    def reconcile(self) -> dict[str, int]:
        return reconcile.sweep(self.sessions, self.targets, self.settings.keep_images)

    def auto_update(self) -> int:
        """Redeploys the hosted deployments whose image tag moved, each on behalf of whoever
        turned auto-update on (so their permissions still apply); returns how many."""
        return self._on_behalf("deployments.hosted.auto-update.apply", [
            (found.user_id, found.organization_id, {"deploymentName": found.name})
            for found in auto_update.outdated(self.sessions, self.targets)])

    def reap(self) -> int:
        """Removes the ephemeral environments whose lifetime is over, each on behalf of its
        owner (the audit trail says who and why); returns how many."""
        return self._on_behalf("instances.expire", [
            (user_id, org_id, {"uuid": uuid})
            for uuid, org_id, user_id in instances.expired(self.sessions)])

    def fill_pools(self) -> int:
        """Keeps the warm pools of templates at their size, on behalf of the owner of the
        organization they are kept in; returns how many pools were looked at."""
        return self._on_behalf("instances.pool.fill", instances.pools(self.sessions,
                                                                      self.settings))

    def run_backup_schedule(self) -> int:
        """Runs the backup policies that are due, each on behalf of whoever configured it;
        returns how many."""
        with self.sessions() as db:
            due = databases.due_policies(db, utcnow())
        return self._on_behalf("dependency-resources.backup-policies.run", due)

    def advance_rotations(self) -> int:
        """Moves on the database password rotations waiting for their redeploys, each on
        behalf of whoever asked for it; returns how many were looked at."""
        with self.sessions() as db:
            under_way = credential_rotations.rotations_under_way(db)
        return self._on_behalf("dependency-resources.credential-rotations.advance", under_way)

    def expire_previews(self) -> int:
        """Cleans up the previews of pull requests whose time is over, each on behalf of whoever
        it was made for; returns how many."""
        with self.sessions() as db:
            due = previews.due(db, utcnow())
        return self._on_behalf("preview-environments.expire", due)

    def run_tasks(self) -> int:
        """The scheduler's period: fires what is due, then follows the runs under way."""
        return self.fire_tasks() + self.watch_task_runs()

    def fire_tasks(self) -> int:
        """Fires the scheduled tasks that are due, each on behalf of whoever made it, until
        the next period: a fire due before then is made at its time (slept until), not at
        the next tick. Returns how many tasks were fired."""
        ends = time.monotonic() + self.settings.task_schedule_seconds
        fired = 0
        while True:
            with self.sessions() as db:
                due = scheduled_tasks.due(db, utcnow())
                soonest = scheduled_tasks.next_due(db)
            fired += self._on_behalf("scheduled-tasks.fire", due)
            if soonest is None:
                return fired
            wait = (soonest - utcnow()).total_seconds()
            if wait >= ends - time.monotonic():
                return fired
            time.sleep(max(0.0, wait))

    def watch_task_runs(self) -> int:
        """Follows the running runs of scheduled tasks; how many ended."""
        return task_runs.watch(self.sessions, self.targets, self.ops.secrets, self.settings)

    def probe_servers(self) -> int:
        """Probes the servers reached over SSH; how many changed reachability."""
        return server_probe.probe_servers(self.sessions, self.targets)

    def reconcile_previews(self) -> int:
        """Asks GitHub about the pull requests previewed, for each organization with a GitHub
        App, on behalf of whoever connected it: closed ones are cleaned up."""
        with self.sessions() as db:
            calls = previews.connected(db)
        return self._on_behalf("preview-environments.reconcile", calls)

    def report_statuses(self) -> int:
        """Tells GitHub the outcome of the deployments its events made, for each organization
        with statuses due, on behalf of whoever connected its GitHub App; returns how many
        organizations."""
        with self.sessions() as db:
            due = integrations.due(db, utcnow())
        return self._on_behalf("integrations.github.commit-statuses.report", due)

    def _on_behalf(self, key: str, calls: list[tuple[str, str, dict[str, Any]]]) -> int:
        """Runs `key` once per (user, organization, input) as that user: the platform acts
        for people, within what they may do. Returns how many were done."""
        done = 0
        for user_id, org_id, data in calls:
            try:
                self.ops.run(key, Actor(user_id=user_id, organization_id=org_id),
                             {**data, "organizationId": org_id})
                done += 1
            except OperationError as exc:
                log.warning("%s for %s refused: %s", key, user_id, exc.message)
        return done

    def follow_logs(self, target: RuntimeTarget, tail: int,
                    stop: threading.Event) -> Iterator[LogLine]:
        """Lines of a release's container as it writes them, its secrets masked (`target`
        comes from the `resources.runtime-logs.follow` operation, which authorized it)."""
        for line in self.targets.of(target.server_id).follow(target.container_id,
                                                                 tail=tail, stop=stop):
            yield target.masked(line)

    def runtime_reachable(self) -> bool:
        """Whether the local runtime target (the Docker engine) answers."""
        with self.sessions() as db:
            local = ensure_local_server(db).id
        return self.targets.of(local).ping()

    def readiness(self) -> dict[str, Any]:
        """Whether the store answers and is at the newest migration."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means not ready
            return {"ready": False, "database": f"unreachable: {type(exc).__name__}"}
        if not is_current(self.engine):
            return {"ready": False, "database": "ok", "migrations": "pending"}
        return {"ready": True, "database": "ok", "migrations": "current"}

    def close(self) -> None:
        """Stops the workers and lets go of everything; closing twice does nothing more."""
        if self._started:
            self.workers.stop()
            self._started = False
            self.health.flush()
        if self.edge and not self._closed:
            self.edge.stop()
        self._closed = True
        self.targets.close()
        if self.ops.oidc:
            self.ops.oidc.close()
        self.engine.dispose()

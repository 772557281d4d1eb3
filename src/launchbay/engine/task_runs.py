"""Runs of scheduled tasks on the runtime: a `scheduled-task-run` work item starts the run's
container (a fresh one of the image the resource's current release runs, with that release's
variables and secrets, on its network, with its limits) and returns; a periodic look
(`watch`) then follows the running runs of each server with one container listing: it stops
a run past its timeout or replaced, and when a container has ended, keeps its lines (secrets
masked), records the outcome, schedules a retry, removes the container and trims the task's
history.

Nothing holds a worker while a job runs, and nothing depends on the process that started
it: a control plane killed mid-run finds the run at its next look (or a work item taken up
again adopts the container it had started), so no run stays `running` without a container
and no container outlives its run (the reconciler removes those of runs deleted with their
task). Run containers carry `launchbay.run=task` (never taken for
a release: the reconciler leaves them alone) and `launchbay.task-resource`, never
`launchbay.resource` (a release's retirement stops that resource's other containers).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from launchbay.crypto import SecretBox, mask
from launchbay.engine import ledger
from launchbay.engine.plan import ReleasePlan
from launchbay.engine.release import runtime_env
from launchbay.engine.runtime import ContainerSpec, Runtime, RuntimeFailure, RuntimeRefused
from launchbay.engine.targets import Targets
from launchbay.engine.worker import Defer, Job
from launchbay.settings import Settings
from launchbay.store import audit
from launchbay.store.db import changed
from launchbay.store.models import (
    Deployment,
    OperatorWork,
    Resource,
    ScheduledTask,
    ScheduledTaskRun,
    TaskRunLine,
    WorkStatus,
    new_id,
    utcnow,
)

log = logging.getLogger("launchbay.task-runs")
RUN_LABEL = "launchbay.task-run"


def container_name(run_id: str) -> str:
    return f"lb-job-{run_id.split('_')[-1]}"


class TaskRunStart:
    """The handler of `scheduled-task-run` work: the run's container started (or adopted,
    when an earlier attempt started it), the run `running`."""

    def __init__(self, sessions: sessionmaker, secrets: SecretBox, targets: Targets,
                 settings: Settings):
        self.sessions, self.secrets, self.targets = sessions, secrets, targets
        self.backoff = settings.task_retry_backoff_seconds

    def run(self, job: Job) -> str:
        run_id = job.item.payload.get("runId", "")
        with self.sessions() as db:
            run = db.get(ScheduledTaskRun, run_id)
            task = db.get(ScheduledTask, run.task_id) if run else None
            if run is None or task is None or run.status != "accepted":
                return WorkStatus.SUCCEEDED  # deleted, or started by an earlier attempt
            if run.stop_reason is not None:
                _end(db, run, "failed", f"{run.stop_reason} before it started")
                db.commit()
                return WorkStatus.SUCCEEDED
            if run.not_before is not None and run.not_before > utcnow():
                raise Defer((run.not_before - utcnow()).total_seconds(), "a retry's backoff")
            resource = db.get_one(Resource, run.resource_id)
            current = db.get(Deployment, resource.current_deployment_id) \
                if resource.current_deployment_id else None
            if current is None or current.container_id is None:
                _end(db, run, "failed", "the resource has no release to run the task in")
                db.commit()
                return WorkStatus.SUCCEEDED
            command = ["/bin/sh", "-c", task.command[0]] if task.command_kind == "shell" \
                else list(task.command)
            plan = ReleasePlan.model_validate(current.plan)
            env, _ = runtime_env(current.environment_snapshot, self.secrets,
                                 plan.build.credential_key if plan.build else None)
            labels = {"launchbay.run": "task", RUN_LABEL: run.id,
                      "launchbay.task": task.id, "launchbay.task-resource": resource.id,
                      "launchbay.organization": run.organization_id,
                      "launchbay.server": run.server_id}
            deployment_id, release = current.id, current.container_id
        docker = self.targets.of(run.server_id)
        found = docker.containers(**{RUN_LABEL: run_id})
        if found:  # an earlier attempt started it and was lost before recording it
            info = found[0]
        else:
            released = docker.inspect(release)
            if released is None or released.image_id is None:
                return self._failed(run_id, "the current release's container is gone")
            try:
                info = docker.run(ContainerSpec(
                    name=container_name(run_id), image=released.image_id, labels=labels,
                    network=plan.network, env={**plan.env, **env}, command=command,
                    cpu_limit=plan.cpu_limit, memory_limit_mb=plan.memory_limit_mb,
                    restart_policy="no"))
            except RuntimeRefused as exc:
                if "Conflict" in str(exc):  # started meanwhile by another attempt
                    raise
                return self._failed(run_id, f"the engine refused the run: "
                                            f"{exc.explanation or exc}")
        with self.sessions() as db:
            run = db.get(ScheduledTaskRun, run_id)
            if run is not None and run.status == "accepted":
                run.status, run.started_at = "running", utcnow()
                run.container_id, run.deployment_id = info.id, deployment_id
                run.not_before = None
                db.commit()
        return WorkStatus.SUCCEEDED

    def _failed(self, run_id: str, why: str) -> str:
        with self.sessions() as db:
            run = db.get(ScheduledTaskRun, run_id)
            if run is not None:
                _end(db, run, "failed", why)
                _retry(db, run, self.backoff)
                db.commit()
        return WorkStatus.SUCCEEDED

    def give_up(self, item: OperatorWork, code: str, message: str) -> None:
        with self.sessions() as db:
            run = db.get(ScheduledTaskRun, item.payload.get("runId", ""))
            if run is not None and run.status in ("accepted", "running"):
                _end(db, run, "failed", f"could not be started: {message}")
                _retry(db, run, self.backoff)
                db.commit()


def _end(db: DbSession, run: ScheduledTaskRun, status: str, summary: str | None = None,
         exit_code: int | None = None) -> None:
    run.status, run.finished_at = status, utcnow()
    run.failure_summary, run.exit_code = summary, exit_code
    audit.record(db, f"scheduled-task-run.{status}", run.id,
                 organization_id=run.organization_id, taskId=run.task_id,
                 exitCode=exit_code)


def _retry(db: DbSession, run: ScheduledTaskRun, backoff: float) -> None:
    """A failed run is run again while the task's retries allow (not one that was replaced),
    after a backoff doubling each time."""
    task = db.get(ScheduledTask, run.task_id)
    if task is None or run.status not in ("failed", "timed-out") or \
            run.stop_reason in ("replaced", "deleted") or run.attempt > task.retry_limit:
        return
    after = utcnow() + timedelta(seconds=backoff * 2 ** (run.attempt - 1))
    again = ScheduledTaskRun(
        id=new_id("run"), organization_id=run.organization_id, task_id=run.task_id,
        resource_id=run.resource_id, server_id=run.server_id, trigger_kind=run.trigger_kind,
        scheduled_for=run.scheduled_for, attempt=run.attempt + 1, not_before=after)
    db.add(again)
    ledger.enqueue(db, "scheduled-task-run", "scheduled-tasks.retry",
                   organization_id=run.organization_id, resource_id=run.resource_id,
                   server_id=run.server_id, payload={"runId": again.id}).run_after = after


def watch(sessions: sessionmaker, targets: Targets, secrets: SecretBox,
          settings: Settings) -> int:
    """Follows the running runs (one container listing per server that has any); how many
    ended. Every control plane looks (one indexed read when nothing runs); each run is ended
    by one of them (`_ending`). The reconciler removes the containers of runs deleted with
    their task."""
    with sessions() as db:
        running = list(db.scalars(select(ScheduledTaskRun).where(
            ScheduledTaskRun.status == "running")))
    servers = {r.server_id for r in running}
    ended = 0
    for server_id in servers:
        try:
            ended += _watch_server(sessions, targets, secrets, settings, server_id,
                                   [r for r in running if r.server_id == server_id])
        except (RuntimeFailure, OSError) as exc:
            log.warning("cannot follow the task runs on %s: %s", server_id, exc)
    return ended


def _watch_server(sessions: sessionmaker, targets: Targets, secrets: SecretBox,
                  settings: Settings, server_id: str, running: list[ScheduledTaskRun]) -> int:
    docker = targets.of(server_id)
    containers = {c.labels.get(RUN_LABEL): c for c in docker.containers(
        **{"launchbay.run": "task", "launchbay.server": server_id})}
    ended = 0
    now = utcnow()
    for run in running:
        container = containers.pop(run.id, None)
        if container is None:
            with sessions() as db:
                if (fresh := _ending(db, run.id)) is not None:
                    _end(db, fresh, "failed", "its container disappeared")
                    _retry(db, fresh, settings.task_retry_backoff_seconds)
                    db.commit()
                    ended += 1
            continue
        if container.status in ("running", "created", "restarting"):
            with sessions() as db:
                fresh = db.get(ScheduledTaskRun, run.id)
                task = db.get(ScheduledTask, run.task_id)
                stop = "deleted" if fresh is None or task is None else fresh.stop_reason
                if stop is None and fresh is not None and task is not None and \
                        fresh.started_at is not None and now - fresh.started_at >= \
                        timedelta(seconds=task.timeout_seconds):
                    stop = fresh.stop_reason = "timed-out"
                    db.commit()
            if stop is not None:
                docker.stop(container.id, timeout=5)  # seen ended at the next look
            if fresh is None:
                docker.remove(container.id)
            continue
        ended += _collect(sessions, docker, secrets, settings, run.id, container.id,
                          container.exit_code)
    for run_id, container in containers.items():  # containers of runs that are not running
        with sessions() as db:
            other = db.get(ScheduledTaskRun, run_id) if run_id else None
        if other is None or other.status not in ("accepted", "running"):
            docker.remove(container.id)
    return ended


def _collect(sessions: sessionmaker, docker: Runtime, secrets: SecretBox, settings: Settings,
             run_id: str, container_id: str, exit_code: int | None) -> int:
    """Keeps an ended run's lines (secrets masked) and outcome, then removes its container."""
    with sessions() as db:
        run = db.get(ScheduledTaskRun, run_id)
        deployment = db.get(Deployment, run.deployment_id) if run and run.deployment_id \
            else None
        hidden = runtime_env(deployment.environment_snapshot, secrets)[1] if deployment else []
    try:
        lines = docker.logs(container_id, tail=settings.task_log_lines_kept)
    except (RuntimeFailure, OSError):
        lines = []
    with sessions() as db:
        run = _ending(db, run_id)
        if run is not None:
            db.add_all(TaskRunLine(run_id=run_id, at=line.timestamp, stream=line.stream,
                                   message=mask(line.message, hidden)[0][:16000])
                       for line in lines)
            if run.stop_reason == "timed-out":
                task = db.get(ScheduledTask, run.task_id)
                _end(db, run, "timed-out", f"killed after its timeout of "
                     f"{task.timeout_seconds if task else '?'} s", exit_code)
            elif run.stop_reason == "replaced":
                _end(db, run, "failed", "stopped: a newer run replaced it", exit_code)
            elif exit_code == 0:
                _end(db, run, "succeeded", None, 0)
            else:
                _end(db, run, "failed", f"exited with code {exit_code}", exit_code)
            _retry(db, run, settings.task_retry_backoff_seconds)
            _trim(db, run.task_id, settings.task_runs_kept)
            db.commit()
    docker.remove(container_id)
    return 1


def _ending(db: DbSession, run_id: str) -> ScheduledTaskRun | None:
    """The run, if this look is the one to end it: a conditional update that one control
    plane wins (every process looks; the others find it no longer running)."""
    won = changed(db, update(ScheduledTaskRun).where(
        ScheduledTaskRun.id == run_id, ScheduledTaskRun.status == "running")
        .values(status="ending").execution_options(synchronize_session=False))
    return db.get(ScheduledTaskRun, run_id) if won == 1 else None


def _trim(db: DbSession, task_id: str, keep: int) -> None:
    """Keeps the task's newest `keep` runs (with their lines)."""
    old = list(db.scalars(select(ScheduledTaskRun.id).where(
        ScheduledTaskRun.task_id == task_id, ScheduledTaskRun.status.not_in(
            ("accepted", "running"))).order_by(ScheduledTaskRun.created_at.desc())
        .offset(keep)))
    if old:
        db.execute(delete(TaskRunLine).where(TaskRunLine.run_id.in_(old)))
        db.execute(delete(ScheduledTaskRun).where(ScheduledTaskRun.id.in_(old)))

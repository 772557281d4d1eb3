"""Scheduled tasks (seed 004's `scheduled-tasks` and `scheduled-task-runs`): a resource's jobs,
each a command run on a schedule in a fresh container of the resource's current release.

Scheduled fires and manual runs are admitted through one path (`admit`), so the task's
concurrency policy and the resource's state apply to both. A fire is admitted once: its run
carries the task and the fire time under a unique key, so two control planes on one store
cannot both run it. Fires missed while no control plane ran follow the task's misfire policy
and are recorded as skipped (`missed`).
"""

from __future__ import annotations

import re
import shlex
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import model_validator
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from launchbay import schedules
from launchbay.crypto import mask
from launchbay.engine.runtime import RuntimeFailure
from launchbay.operations.catalog import Context, operation
from launchbay.operations.errors import Invalid, NotFound
from launchbay.operations.resources import RuntimeTarget, get_resource, secret_values
from launchbay.operations.schemas import Field, Id, Name, Schema, Timestamp
from launchbay.store.models import (
    Deployment,
    LifecycleStatus,
    Resource,
    ScheduledTask,
    ScheduledTaskRun,
    TaskRunLine,
    new_id,
    utcnow,
)

OPEN = ("accepted", "running")
MISSED_KEPT = 50  # skipped runs recorded for fires missed at once (the rest are counted)

# What a command must not carry: secrets belong in secret variables, which reach the run's
# environment and are masked in its logs; a command is shown in lists, logs and audit.
_SECRETS = [
    ("a private key", re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")),
    ("a password, token or key", re.compile(
        r"(?i)\b(?:pass(?:word|wd)?|pwd|secret|token|api[_-]?key|access[_-]?key)"
        r"\s*[=:]\s*['\"]?(?![$'\"{<])[^\s'\"]{4,}")),
    ("credentials in a URL", re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:(?![$'\"{<])[^@\s/]{3,}@")),
    ("an access token", re.compile(
        r"\b(?:ghp_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{16,}|"
        r"xox[abpr]-[A-Za-z0-9-]{10,}|sk_live_[A-Za-z0-9]{10,}|AKIA[0-9A-Z]{16})\b")),
    ("a bearer token", re.compile(r"(?i)\bbearer\s+(?![$'\"{<])[A-Za-z0-9._~+/-]{20,}")),
]


def secret_in(command: str) -> str | None:
    """What kind of secret the command seems to carry, or None."""
    return next((what for what, pattern in _SECRETS if pattern.search(command)), None)


def _checked_command(intent: str | None, argv: list[str] | None) -> tuple[str, list[str]]:
    """(kind, stored command) of a task's command, refused (400) when it carries a secret."""
    kind, command = ("argv", argv) if argv is not None else ("shell", [intent or ""])
    if found := secret_in(" ".join(command)):
        raise Invalid(f"the command seems to contain {found}: keep it in a secret variable of "
                      "the resource (it reaches the run's environment and is masked in its "
                      "logs) and name it in the command, such as $API_TOKEN",
                      code="command_contains_secret", details=[{
                          "field": "command" if argv is not None else "commandIntent",
                          "message": f"contains {found}"}])
    return kind, command


def _checked_schedule(expression: str, zone: str) -> None:
    if problem := schedules.problem(expression, zone):
        raise Invalid(problem, code="invalid_schedule", details=[{
            "field": "timezone" if "time zone" in problem else "schedule", "message": problem}])


# -- shapes ------------------------------------------------------------------------------------

class RunOut(Schema):
    run_id: str
    task_id: str
    resource_id: str
    trigger_kind: Literal["manual", "scheduled"]
    status: str  # accepted | running | succeeded | failed | timed-out | skipped
    scheduled_for: Timestamp
    attempt: int
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    duration_ms: int | None
    exit_code: int | None
    failure_summary: str | None
    skipped_reason: str | None


def run_out(r: ScheduledTaskRun) -> RunOut:
    duration = int((r.finished_at - r.started_at).total_seconds() * 1000) \
        if r.started_at and r.finished_at else None
    return RunOut(run_id=r.id, task_id=r.task_id, resource_id=r.resource_id,
                  trigger_kind=r.trigger_kind, status=r.status,
                  scheduled_for=r.scheduled_for, attempt=r.attempt, created_at=r.created_at,
                  started_at=r.started_at, finished_at=r.finished_at, duration_ms=duration,
                  exit_code=r.exit_code, failure_summary=r.failure_summary,
                  skipped_reason=r.skipped_reason)


class TaskOut(Schema):
    task_id: str
    resource_id: str
    name: str
    schedule: str
    timezone: str
    command_intent: str  # the shell command, or the argv quoted as a shell would
    command: list[str] | None  # the argv of a task run without a shell
    timeout_seconds: int
    retry_limit: int
    concurrency_policy: Literal["forbid", "allow", "replace"]
    misfire_policy: Literal["skip", "run-once"]
    status: Literal["enabled", "disabled"]
    next_fire_times: list[Timestamp]
    created_at: Timestamp
    updated_at: Timestamp
    latest_run: RunOut | None


def task_out(t: ScheduledTask, latest: ScheduledTaskRun | None) -> TaskOut:
    argv = t.command if t.command_kind == "argv" else None
    upcoming = schedules.upcoming(t.schedule, t.timezone, None, utcnow()) \
        if t.status == "enabled" else []
    return TaskOut(task_id=t.id, resource_id=t.resource_id, name=t.name, schedule=t.schedule,
                   timezone=t.timezone,
                   command_intent=shlex.join(argv) if argv is not None else t.command[0],
                   command=argv, timeout_seconds=t.timeout_seconds, retry_limit=t.retry_limit,
                   concurrency_policy=t.concurrency_policy,
                   misfire_policy=t.misfire_policy,
                   status=t.status,
                   next_fire_times=upcoming, created_at=t.created_at, updated_at=t.updated_at,
                   latest_run=run_out(latest) if latest else None)


def _latest_runs(ctx: Context, task_ids: list[str]) -> dict[str, ScheduledTaskRun]:
    """The newest run of each task, in one statement."""
    if not task_ids:
        return {}
    ranked = select(ScheduledTaskRun.id, func.row_number().over(
        partition_by=ScheduledTaskRun.task_id,
        order_by=(ScheduledTaskRun.created_at.desc(), ScheduledTaskRun.id.desc())).label("n")
    ).where(ScheduledTaskRun.task_id.in_(task_ids)).subquery()
    return {r.task_id: r for r in ctx.db.scalars(select(ScheduledTaskRun).join(
        ranked, ranked.c.id == ScheduledTaskRun.id).where(ranked.c.n == 1))}


def get_task(ctx: Context, task_id: str) -> ScheduledTask:
    task = ctx.db.get(ScheduledTask, task_id)
    if task is None or task.organization_id != ctx.org_id:
        raise NotFound("scheduled task not found", code="scheduled_task_not_found")
    return task


# -- tasks -------------------------------------------------------------------------------------

class TaskSettings(Schema):
    schedule: str | None = Field(None, min_length=1, max_length=100,
                                 description="5-field cron, @hourly|@daily|@weekly|@monthly, "
                                             "or @every 30s|5m|2h")
    timezone: str | None = Field(None, min_length=1, max_length=64)
    command_intent: str | None = Field(None, min_length=1, max_length=4000,
                                       description="a shell command (run with /bin/sh -c)")
    command: list[str] | None = Field(None, min_length=1, max_length=100,
                                      description="an argv, run without a shell")
    timeout_seconds: int | None = Field(None, ge=1, le=86400)
    retry_limit: int | None = Field(None, ge=0, le=10)
    concurrency_policy: Literal["forbid", "allow", "replace"] | None = None
    misfire_policy: Literal["skip", "run-once"] | None = None
    status: Literal["enabled", "disabled"] | None = None
    name: Name | None = None

    @model_validator(mode="after")
    def one_command(self) -> TaskSettings:
        if self.command_intent is not None and self.command is not None:
            raise ValueError("give commandIntent (a shell command) or command (an argv), "
                             "not both")
        if self.command is not None and not all(0 < len(a) <= 4000 for a in self.command):
            raise ValueError("each argument of command is 1 to 4000 characters")
        return self


class TaskCreate(TaskSettings):
    resource_id: Id
    schedule: str = Field(min_length=1, max_length=100)
    timezone: str = Field("UTC", min_length=1, max_length=64)


class TaskCommandOut(Schema):
    schema_version: str = "scheduled-tasks.command/v1"
    task: TaskOut


@operation("scheduled-tasks.create", role="developer", audit="scheduled-task.created")
def create_task(ctx: Context, data: TaskCreate) -> TaskCommandOut:
    """A job of a resource: `commandIntent` runs with /bin/sh -c, `command` (an argv) without
    a shell (for images that have none)."""
    resource = get_resource(ctx, data.resource_id, mutable=True)
    if data.command_intent is None and data.command is None:
        raise Invalid("give the command to run: commandIntent or command",
                      code="validation_failed", details=[{"field": "commandIntent",
                                                          "message": "required"}])
    _checked_schedule(data.schedule, data.timezone)
    kind, command = _checked_command(data.command_intent, data.command)
    now = utcnow()
    task = ScheduledTask(
        id=new_id("tsk"), organization_id=ctx.org_id, project_id=resource.project_id,
        environment_id=resource.environment_id, resource_id=resource.id,
        created_by=ctx.user_id, name=data.name or command[0][:60], schedule=data.schedule,
        timezone=data.timezone, command_kind=kind, command=command,
        timeout_seconds=data.timeout_seconds or 3600, retry_limit=data.retry_limit or 0,
        concurrency_policy=data.concurrency_policy or "forbid",
        misfire_policy=data.misfire_policy or "skip", status=data.status or "enabled",
        created_at=now, updated_at=now)
    task.next_fire_at = schedules.next_fire(task.schedule, task.timezone, None, now)
    ctx.db.add(task)
    ctx.db.flush()
    ctx.audit(task.id, resourceId=resource.id, schedule=task.schedule, timezone=task.timezone)
    return TaskCommandOut(task=task_out(task, None))


class TaskList(Schema):
    project_id: Id | None = None
    environment_id: Id | None = None
    resource_id: Id | None = None
    status: Literal["enabled", "disabled"] | None = None
    limit: int = Field(50, ge=1, le=100)
    cursor: str | None = Field(None, pattern=r"^\d{1,9}$")


class TaskListOut(Schema):
    schema_version: str = "scheduled-tasks.list/v1"
    items: list[TaskOut]
    next_cursor: str | None
    generated_at: Timestamp


@operation("scheduled-tasks.list")
def list_tasks(ctx: Context, data: TaskList) -> TaskListOut:
    """The organization's tasks, newest first, each with its latest run and next fire times."""
    page, more = _page(ctx, ScheduledTask, data.limit, data.cursor, {
        ScheduledTask.project_id: data.project_id,
        ScheduledTask.environment_id: data.environment_id,
        ScheduledTask.resource_id: data.resource_id, ScheduledTask.status: data.status})
    latest = _latest_runs(ctx, [t.id for t in page])
    return TaskListOut(items=[task_out(t, latest.get(t.id)) for t in page], next_cursor=more,
                       generated_at=utcnow())


def _page(ctx: Context, model: Any, limit: int, cursor: str | None,
          filters: dict[Any, str | None]) -> tuple[list[Any], str | None]:
    """A page of the organization's rows of `model`, newest first, with the filters given;
    and the cursor of the next page, if any."""
    query = select(model).where(model.organization_id == ctx.org_id, *(
        column == value for column, value in filters.items() if value is not None))
    offset = int(cursor or 0)
    rows = list(ctx.db.scalars(query.order_by(model.created_at.desc(), model.id.desc())
                               .offset(offset).limit(limit + 1)))
    return rows[:limit], str(offset + limit) if len(rows) > limit else None


class TaskRef(Schema):
    task_id: Id
    resource_id: Id | None = None  # the seed's: when given, the task must be of it


def _task_of(ctx: Context, data: TaskRef) -> ScheduledTask:
    task = get_task(ctx, data.task_id)
    if data.resource_id is not None and data.resource_id != task.resource_id:
        raise NotFound("scheduled task not found", code="scheduled_task_not_found")
    return task


class TaskShow(Schema):
    schema_version: str = "scheduled-tasks.show/v1"
    task: TaskOut
    generated_at: Timestamp


@operation("scheduled-tasks.show")
def show_task(ctx: Context, data: TaskRef) -> TaskShow:
    """One task with its latest run and next fire times."""
    task = _task_of(ctx, data)
    return TaskShow(task=task_out(task, _latest_runs(ctx, [task.id]).get(task.id)),
                    generated_at=utcnow())


class TaskConfigure(TaskSettings):
    task_id: Id
    resource_id: Id | None = None


@operation("scheduled-tasks.configure", role="developer", audit="scheduled-task.configured")
def configure_task(ctx: Context, data: TaskConfigure) -> TaskCommandOut:
    """Changes what is given of the schedule, command, timeout, retries, policies or state;
    the next fire is computed again."""
    task = _task_of(ctx, TaskRef(task_id=data.task_id, resource_id=data.resource_id))
    get_resource(ctx, task.resource_id, mutable=True)
    schedule, zone = data.schedule or task.schedule, data.timezone or task.timezone
    _checked_schedule(schedule, zone)
    if data.command_intent is not None or data.command is not None:
        task.command_kind, task.command = _checked_command(data.command_intent, data.command)
    for field in ("timeout_seconds", "retry_limit", "concurrency_policy", "misfire_policy",
                  "status", "name"):
        if (value := getattr(data, field)) is not None:
            setattr(task, field, value)
    task.schedule, task.timezone = schedule, zone
    task.updated_at = utcnow()
    task.next_fire_at = schedules.next_fire(schedule, zone, None, task.updated_at)
    ctx.audit(task.id, fields=sorted(data.model_fields_set - {"task_id", "resource_id"}))
    return TaskCommandOut(task=task_out(task, _latest_runs(ctx, [task.id]).get(task.id)))


class TaskDeleted(Schema):
    schema_version: str = "scheduled-tasks.delete/v1"
    task_id: str
    resource_id: str
    status: Literal["deleted"] = "deleted"
    deleted_at: Timestamp


@operation("scheduled-tasks.delete", role="developer", audit="scheduled-task.deleted")
def delete_task(ctx: Context, data: TaskRef) -> TaskDeleted:
    """Deletes the task with its runs; a run under way is stopped (its container removed) by
    the engine's next look."""
    task = _task_of(ctx, data)
    ctx.db.delete(task)
    ctx.audit(task.id, resourceId=task.resource_id)
    return TaskDeleted(task_id=task.id, resource_id=task.resource_id, deleted_at=utcnow())


# -- runs --------------------------------------------------------------------------------------

def admit(ctx: Context, task: ScheduledTask, trigger: str, at: datetime,
          reason: str | None = None) -> ScheduledTaskRun | None:
    """The run of `task` for the fire (or manual request) at `at`, skipped with its reason
    when it may not run, else accepted with the work item that starts it; None when that
    fire was admitted already (by another control plane)."""
    resource = ctx.db.get_one(Resource, task.resource_id)
    open_runs = list(ctx.db.scalars(select(ScheduledTaskRun).where(
        ScheduledTaskRun.task_id == task.id, ScheduledTaskRun.status.in_(OPEN))))
    if reason is None:
        if trigger == "scheduled" and task.status != "enabled":
            reason = "task-disabled"
        elif resource.lifecycle_status != LifecycleStatus.ACTIVE:
            reason = "resource-archived"
        elif resource.current_deployment_id is None:
            reason = "resource-not-deployed"
        elif open_runs and task.concurrency_policy == "forbid":
            reason = "concurrency-forbidden"
        elif len(open_runs) >= ctx.settings.task_max_concurrent_runs and \
                task.concurrency_policy == "allow":
            reason = "concurrency-limit"  # `allow` is not a way to start containers unbounded
    now = utcnow()
    run = ScheduledTaskRun(id=new_id("run"), organization_id=task.organization_id,
                           task_id=task.id, resource_id=task.resource_id,
                           server_id=resource.server_id, trigger_kind=trigger,
                           scheduled_for=at, attempt=1, created_at=now,
                           status="skipped" if reason else "accepted", skipped_reason=reason,
                           finished_at=now if reason else None)
    try:
        with ctx.db.begin_nested():
            ctx.db.add(run)
    except IntegrityError:  # this fire is another control plane's
        return None
    if reason is None:
        if task.concurrency_policy == "replace":
            for other in open_runs:  # the engine stops them at its next look
                other.stop_reason = "replaced"
        start_work(ctx, run)
    return run


def start_work(ctx: Context, run: ScheduledTaskRun) -> None:
    ctx.enqueue("scheduled-task-run", "scheduled-tasks.run", resource_id=run.resource_id,
                server_id=run.server_id, payload={"runId": run.id})


class RunNowOut(Schema):
    schema_version: str = "scheduled-tasks.run-now/v1"
    run: RunOut


@operation("scheduled-tasks.run-now", role="developer", audit="scheduled-task.run-requested")
def run_now(ctx: Context, data: TaskRef) -> RunNowOut:
    """Runs the task now (its concurrency policy applies, as to a fire); answers before it
    runs: follow the run."""
    task = _task_of(ctx, data)
    get_resource(ctx, task.resource_id, mutable=True)
    run = admit(ctx, task, "manual", utcnow())
    assert run is not None, "a manual run's time is its own"
    ctx.audit(task.id, runId=run.id, status=run.status)
    return RunNowOut(run=run_out(run))


class FireIn(Schema):
    task_id: Id


class FireOut(Schema):
    admitted: int
    missed: int


@operation("scheduled-tasks.fire", role="developer", audit="scheduled-task.fired")
def fire(ctx: Context, data: FireIn) -> FireOut:
    """What the scheduler runs, for the task's creator, when a task is due (and `POST
    /scheduled-tasks/{id}/fires`: nothing when none is due): each fire time passed since its
    last look is admitted once. Those later than the misfire grace (the
    control plane was down) are skipped as `missed`, but the latest when the policy is
    `run-once`."""
    get_task(ctx, data.task_id)
    task = ctx.db.get_one(ScheduledTask, data.task_id, with_for_update=True)
    now = utcnow()
    if task.status != "enabled" or task.next_fire_at is None or task.next_fire_at > now:
        ctx.unchanged = True
        return FireOut(admitted=0, missed=0)
    due: list[datetime] = []
    at = task.next_fire_at
    while at <= now and len(due) < 10_000:
        due.append(at)
        at = schedules.next_fire(task.schedule, task.timezone, None, at)
    task.next_fire_at = at if at > now else schedules.next_fire(task.schedule, task.timezone,
                                                                None, now)
    grace = timedelta(seconds=ctx.settings.task_misfire_grace_seconds)
    on_time = [t for t in due if now - t <= grace]
    missed = [t for t in due if now - t > grace]
    if missed and not on_time and task.misfire_policy == "run-once":
        on_time.append(missed.pop())
    for t in missed[-MISSED_KEPT:]:
        admit(ctx, task, "scheduled", t, reason="missed")
    admitted = sum(admit(ctx, task, "scheduled", t) is not None for t in on_time)
    ctx.audit(task.id, admitted=admitted, missed=len(missed))
    return FireOut(admitted=admitted, missed=len(missed))


def due(db: Any, now: datetime) -> list[tuple[str, str, dict[str, str]]]:
    """(user, organization, input) of each task due at `now`, by index."""
    return [(t.created_by, t.organization_id, {"taskId": t.id}) for t in db.execute(
        select(ScheduledTask.id, ScheduledTask.created_by, ScheduledTask.organization_id)
        .where(ScheduledTask.status == "enabled", ScheduledTask.next_fire_at <= now)
        .limit(1000))]


def next_due(db: Any) -> datetime | None:
    """When the next enabled task is due (by index)."""
    return db.scalar(select(func.min(ScheduledTask.next_fire_at)).where(
        ScheduledTask.status == "enabled"))


class RunList(Schema):
    task_id: Id | None = None
    resource_id: Id | None = None
    status: Literal["accepted", "running", "succeeded", "failed", "timed-out",
                    "skipped"] | None = None
    trigger_kind: Literal["manual", "scheduled"] | None = None
    limit: int = Field(50, ge=1, le=100)
    cursor: str | None = Field(None, pattern=r"^\d{1,9}$")


class RunListOut(Schema):
    schema_version: str = "scheduled-task-runs.list/v1"
    items: list[RunOut]
    next_cursor: str | None
    generated_at: Timestamp


@operation("scheduled-task-runs.list")
def list_runs(ctx: Context, data: RunList) -> RunListOut:
    """Runs, newest first."""
    page, more = _page(ctx, ScheduledTaskRun, data.limit, data.cursor, {
        ScheduledTaskRun.task_id: data.task_id, ScheduledTaskRun.resource_id: data.resource_id,
        ScheduledTaskRun.status: data.status, ScheduledTaskRun.trigger_kind: data.trigger_kind})
    return RunListOut(items=[run_out(r) for r in page], next_cursor=more, generated_at=utcnow())


class RunRef(Schema):
    run_id: Id
    task_id: Id | None = None
    resource_id: Id | None = None


def get_run(ctx: Context, data: RunRef) -> ScheduledTaskRun:
    run = ctx.db.get(ScheduledTaskRun, data.run_id)
    if run is None or run.organization_id != ctx.org_id or \
            data.task_id not in (None, run.task_id) or \
            data.resource_id not in (None, run.resource_id):
        raise NotFound("scheduled task run not found", code="scheduled_task_run_not_found")
    return run


class RunShow(Schema):
    schema_version: str = "scheduled-task-runs.show/v1"
    run: RunOut
    generated_at: Timestamp


@operation("scheduled-task-runs.show")
def show_run(ctx: Context, data: RunRef) -> RunShow:
    """One run: its status, exit code, duration, and why it failed or was skipped."""
    return RunShow(run=run_out(get_run(ctx, data)), generated_at=utcnow())


class RunLogsIn(RunRef):
    cursor: str | None = Field(None, pattern=r"^\d{1,18}$")
    limit: int = Field(100, ge=1, le=1000)


class RunLine(Schema):
    timestamp: Timestamp
    stream: Literal["stdout", "stderr"]
    message: str


class RunLogs(Schema):
    schema_version: str = "scheduled-task-runs.logs/v1"
    run_id: str
    task_id: str
    resource_id: str
    status: str
    entries: list[RunLine]
    next_cursor: str | None
    generated_at: Timestamp


@operation("scheduled-task-runs.logs")
def run_logs(ctx: Context, data: RunLogsIn) -> RunLogs:
    """The lines the run wrote (secrets masked), oldest first, a page at a time; kept once
    the run ends. Of a run under way: its last `limit` lines so far, read from its
    container (or follow them with the stream)."""
    run = get_run(ctx, data)
    if run.status == "running" and run.container_id is not None and ctx.targets is not None:
        d = ctx.db.get(Deployment, run.deployment_id) if run.deployment_id else None
        hidden = secret_values(ctx, d) if d else []
        try:
            live = ctx.runtime.of(run.server_id).logs(run.container_id, tail=data.limit)
        except (RuntimeFailure, OSError):
            live = []
        return RunLogs(run_id=run.id, task_id=run.task_id, resource_id=run.resource_id,
                       status=run.status, next_cursor=None, generated_at=utcnow(),
                       entries=[RunLine(timestamp=line.timestamp, stream=line.stream,
                                        message=mask(line.message, hidden)[0])
                                for line in live])
    after = int(data.cursor or 0)
    rows = ctx.db.scalars(select(TaskRunLine).where(
        TaskRunLine.run_id == run.id, TaskRunLine.id > after).order_by(TaskRunLine.id)
        .limit(data.limit + 1)).all()
    page = rows[: data.limit]
    return RunLogs(run_id=run.id, task_id=run.task_id, resource_id=run.resource_id,
                   status=run.status,
                   entries=[RunLine(timestamp=line.at, stream=line.stream,
                                    message=line.message) for line in page],
                   next_cursor=str(page[-1].id) if len(rows) > data.limit else None,
                   generated_at=utcnow())


class RunFollow(RunRef):
    tail: int = Field(1000, ge=0, le=10000)


@operation("scheduled-task-runs.logs.follow")
def follow_run_logs(ctx: Context, data: RunFollow) -> RuntimeTarget:
    """Authorizes following a running run's lines (the face streams them from its container,
    secrets masked); 404 `no_runtime` once it ended: its lines are then read page by page."""
    run = get_run(ctx, data)
    if run.status != "running" or run.container_id is None:
        raise NotFound("the run is not running: read its lines", code="no_runtime")
    d = ctx.db.get(Deployment, run.deployment_id) if run.deployment_id else None
    return RuntimeTarget(resource_id=run.resource_id, deployment_id=run.deployment_id or "",
                         server_id=run.server_id, container_id=run.container_id,
                         service_name=run.task_id, hidden=secret_values(ctx, d) if d else [],
                         include_probes=True)

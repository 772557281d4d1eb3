"""`launchbay jobs`: an app's scheduled tasks, their runs and the lines runs wrote."""

from __future__ import annotations

import time
from typing import Annotated, Any, Optional

import typer

from launchbay.cli.apps import Json, resolve_app
from launchbay.cli.client import Client, err
from launchbay.cli.output import emit, out

jobs_app = typer.Typer(help="Scheduled tasks of apps: a command run on a schedule in a fresh "
                       "container of the app's current release.", no_args_is_help=True)
JobRef = Annotated[str, typer.Argument(metavar="JOB", help="Name or id.")]
Follow = Annotated[bool, typer.Option("--follow", "-f", help="Print its lines as they come, "
                                      "until it ends.")]
ENDED = ("succeeded", "failed", "timed-out", "skipped")


def resolve_job(client: Client, ref: str) -> dict[str, Any]:
    if ref.startswith("tsk_"):
        return client.get(f"/scheduled-tasks/{ref}")["task"]
    found = [t for t in client.get("/scheduled-tasks", limit=100)["items"] if t["name"] == ref]
    if len(found) == 1:
        return found[0]
    err.print(f"[red]error:[/] {'no job' if not found else 'more than one job'} {ref!r}"
              f"{'' if not found else '; use its id'}")
    raise typer.Exit(1)


@jobs_app.command("add")
def jobs_add(
    app_ref: Annotated[str, typer.Argument(metavar="APP")],
    schedule: Annotated[str, typer.Option(help="Cron (`0 3 * * *`), @hourly, @daily, "
                                          "@weekly, @monthly, or @every 30s|5m|2h.")],
    command: Annotated[Optional[str], typer.Option(
        help="A shell command (run with /bin/sh -c).")] = None,
    argv: Annotated[Optional[list[str]], typer.Option(
        help="The command as arguments, without a shell (repeat it: --argv /app/report "
             "--argv --daily); for images with no shell.")] = None,
    tz: Annotated[str, typer.Option(help="The schedule's IANA time zone.")] = "UTC",
    name: Annotated[Optional[str], typer.Option(help="Its name.")] = None,
    timeout: Annotated[int, typer.Option(help="Seconds before a run is killed.")] = 3600,
    retries: Annotated[int, typer.Option(help="Runs again after a failure (0-10).")] = 0,
    concurrency: Annotated[str, typer.Option(
        help="While a run goes on: forbid (skip the fire), allow, or replace.")] = "forbid",
    misfire: Annotated[str, typer.Option(
        help="Fires missed while launchbay was down: skip, or run-once.")] = "skip",
    as_json: Json = False,
) -> None:
    """Add a job to an app."""
    client = Client()
    body: dict[str, Any] = {
        "resourceId": resolve_app(client, app_ref)["id"], "schedule": schedule, "timezone": tz,
        "timeoutSeconds": timeout, "retryLimit": retries, "concurrencyPolicy": concurrency,
        "misfirePolicy": misfire, **({"name": name} if name else {})}
    if argv:
        body["command"] = argv
    else:
        body["commandIntent"] = command
    task = client.post("/scheduled-tasks", body)["task"]
    if as_json:
        emit(task, True)
        return
    out.print(f"added {task['name']} ({task['taskId']}); next runs (UTC): "
              + ", ".join(t[:19].replace("T", " ") for t in task["nextFireTimes"][:3]))


@jobs_app.command("list")
def jobs_list(app_ref: Annotated[Optional[str], typer.Argument(metavar="[APP]")] = None,
              as_json: Json = False) -> None:
    """List jobs (of an app) with their next run and last run."""
    client = Client()
    params = {"resourceId": resolve_app(client, app_ref)["id"]} if app_ref else {}
    items = client.get("/scheduled-tasks", limit=100, **params)["items"]
    emit(items if as_json else [{
        "name": t["name"], "schedule": f"{t['schedule']} ({t['timezone']})",
        "status": t["status"], "next": (t["nextFireTimes"] or [None])[0],
        "last": (t["latestRun"] or {}).get("status"), "command": t["commandIntent"],
        "id": t["taskId"]} for t in items], as_json,
        [("JOB", "name"), ("SCHEDULE", "schedule"), ("STATUS", "status"), ("NEXT", "next"),
         ("LAST RUN", "last"), ("COMMAND", "command"), ("ID", "id")])


@jobs_app.command("run")
def jobs_run(job: JobRef, follow: Follow = False) -> None:
    """Run a job now (its concurrency policy applies)."""
    client = Client()
    run = client.post(f"/scheduled-tasks/{resolve_job(client, job)['taskId']}/runs")["run"]
    if run["status"] == "skipped":
        err.print(f"[yellow]skipped[/]: {run['skippedReason']}")
        raise typer.Exit(1)
    out.print(f"run {run['runId']} {run['status']}")
    if follow:
        _finish(client, _follow(client, run["runId"]))


@jobs_app.command("runs")
def jobs_runs(job: JobRef, as_json: Json = False) -> None:
    """A job's runs, newest first."""
    client = Client()
    items = client.get("/scheduled-task-runs", taskId=resolve_job(client, job)["taskId"],
                       limit=50)["items"]
    emit(items if as_json else [{
        "id": r["runId"], "trigger": r["triggerKind"], "for": r["scheduledFor"],
        "status": r["status"], "exit": r["exitCode"], "ms": r["durationMs"],
        "why": r["failureSummary"] or r["skippedReason"]} for r in items], as_json,
        [("RUN", "id"), ("TRIGGER", "trigger"), ("SCHEDULED FOR", "for"), ("STATUS", "status"),
         ("EXIT", "exit"), ("MS", "ms"), ("WHY", "why")])


@jobs_app.command("logs")
def jobs_logs(run_id: Annotated[str, typer.Argument(metavar="RUN")],
              follow: Follow = False) -> None:
    """The lines a run wrote (secrets masked); `-f` follows a run under way."""
    client = Client()
    run = client.get(f"/scheduled-task-runs/{run_id}")["run"]
    if follow and run["status"] in ("accepted", "running"):
        _finish(client, _follow(client, run_id))
        return
    cursor = None
    while True:
        page = client.get(f"/scheduled-task-runs/{run_id}/logs", limit=1000,
                          **({"cursor": cursor} if cursor else {}))
        for line in page["entries"]:
            print(line["message"], flush=True)
        cursor = page["nextCursor"]
        if not cursor:
            break


def _follow(client: Client, run_id: str) -> dict[str, Any]:
    """Prints a run's lines as they come (those kept when it ended, if it ended first); the
    run once it ended."""
    path = f"/scheduled-task-runs/{run_id}"
    while (run := client.get(path)["run"])["status"] == "accepted":
        time.sleep(0.2)
    printed = 0
    if run["status"] == "running":
        try:
            for message in client.stream(f"{path}/logs/stream"):
                if message.get("event") == "done":
                    break
                print(message["data"]["message"], flush=True)
                printed += 1
        except typer.Exit:  # it ended meanwhile: its lines are kept
            pass
    while (run := client.get(path)["run"])["status"] not in ENDED:
        time.sleep(0.2)
    kept = client.get(f"{path}/logs", limit=1000)["entries"]
    for line in kept[printed:]:
        print(line["message"], flush=True)
    return run


def _finish(client: Client, run: dict[str, Any]) -> None:
    colour = "green" if run["status"] == "succeeded" else "red"
    why = f": {run['failureSummary']}" if run["failureSummary"] else ""
    out.print(f"[{colour}]{run['status']}[/]{why}")
    if run["status"] != "succeeded":
        raise typer.Exit(1)

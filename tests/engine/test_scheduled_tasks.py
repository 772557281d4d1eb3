"""Scheduled tasks on the real engine: fires on time in a fresh container of the current
release with its secrets masked in the run's lines, run-now, timeouts, retries, the `forbid`
policy, an argv command in an image with no shell, and the control plane killed mid-run."""

from __future__ import annotations

import signal
import time
from typing import Any

import docker
import pytest

from launchbay.settings import Settings

import images
from docker_support import deployed, first_admin, listed, remove_runtime, serve
from support import ADMIN_EMAIL, ADMIN_PASSWORD, Api, add_member, free_port, make_app

SECRET = "s3cr3t-t0ken-value"


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, workers=2,
                    edge_enabled=False, shipped_templates=False, worker_poll_seconds=0.1,
                    work_lease_seconds=5, reconcile_seconds=2, task_schedule_seconds=0.2,
                    task_retry_backoff_seconds=0.2)


def app(api: Api, image: str = "lbtest/hello:v1") -> dict[str, str]:
    ids = make_app(api, image)
    api.post(f"/resources/{ids['resource']}/secrets", {"key": "API_TOKEN", "value": SECRET})
    deployed(api, ids)
    return ids


def task(api: Api, ids: dict[str, str], **body: Any) -> dict[str, Any]:
    return api.post("/scheduled-tasks", {"resourceId": ids["resource"], **body})["task"]


def runs_of(api: Api, task_id: str) -> list[dict[str, Any]]:
    return api.get("/scheduled-task-runs", params={"taskId": task_id, "limit": 100})["items"]


def until(check, within: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not (found := check()):
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.1)
    return found


def ended(api: Api, run_id: str, within: float = 30) -> dict[str, Any]:
    return until(lambda: (r := api.get(f"/scheduled-task-runs/{run_id}")["run"])["status"]
                 not in ("accepted", "running") and r, within)


def job_containers(ids: dict[str, str]) -> list[Any]:
    return listed(docker.from_env(), label=f"launchbay.task-resource={ids['resource']}")


def test_a_task_fires_on_time_with_its_secrets_masked_and_runs_now(api):
    ids = app(api)
    t = task(api, ids, schedule="@every 2s", commandIntent=(
        'echo "token is $API_TOKEN"; echo "from $HOSTNAME" >&2; echo done'))
    assert len(t["nextFireTimes"]) == 5 and t["commandIntent"].startswith("echo")
    fired = until(lambda: [r for r in runs_of(api, t["taskId"])
                           if r["triggerKind"] == "scheduled" and r["status"] == "succeeded"])
    run = fired[-1]
    lag = _seconds(run["startedAt"]) - _seconds(run["scheduledFor"])
    assert 0 <= lag < 3, run  # started within moments of its fire time
    logs = api.get(f"/scheduled-task-runs/{run['runId']}/logs")
    messages = [(e["stream"], e["message"]) for e in logs["entries"]]
    assert ("stdout", "token is ****") in messages and ("stdout", "done") in messages
    assert any(stream == "stderr" and m.startswith("from ") for stream, m in messages)
    assert SECRET not in str(logs)
    # Each fire time ran once, in a container of its own that is gone once it ended.
    scheduled = [r["scheduledFor"] for r in runs_of(api, t["taskId"])
                 if r["triggerKind"] == "scheduled" and r["status"] != "skipped"]
    assert len(scheduled) == len(set(scheduled))

    api.post(f"/scheduled-tasks/{t['taskId']}", {"status": "disabled"})
    now = api.post(f"/scheduled-tasks/{t['taskId']}/runs", {})["run"]
    assert now["triggerKind"] == "manual"
    assert ended(api, now["runId"])["status"] == "succeeded"
    shown = api.get(f"/scheduled-tasks/{t['taskId']}")["task"]
    assert shown["latestRun"]["runId"] == now["runId"] and shown["nextFireTimes"] == []
    until(lambda: not [c for c in job_containers(ids) if c.status != "running"])


def test_a_run_past_its_timeout_is_killed_and_a_failing_one_retried(api):
    ids = app(api)
    slow = task(api, ids, schedule="@daily", commandIntent="echo starting; sleep 60",
                timeoutSeconds=2)
    run = api.post(f"/scheduled-tasks/{slow['taskId']}/runs", {})["run"]
    done = ended(api, run["runId"], within=30)
    assert done["status"] == "timed-out" and "timeout of 2 s" in done["failureSummary"]
    assert 2 <= done["durationMs"] / 1000 < 10
    assert [e["message"] for e in api.get(
        f"/scheduled-task-runs/{run['runId']}/logs")["entries"]] == ["starting"]

    failing = task(api, ids, schedule="@daily", commandIntent="echo attempt; exit 3",
                   retryLimit=2)
    api.post(f"/scheduled-tasks/{failing['taskId']}/runs", {})
    attempts = until(lambda: (found := runs_of(api, failing["taskId"])) and len(found) == 3
                     and all(r["status"] == "failed" for r in found) and found, within=30)
    assert sorted(r["attempt"] for r in attempts) == [1, 2, 3]
    assert {r["exitCode"] for r in attempts} == {3}
    time.sleep(1)
    assert len(runs_of(api, failing["taskId"])) == 3  # no fourth: the limit is 2 retries
    until(lambda: job_containers(ids) == [])


def test_forbid_skips_a_fire_while_the_previous_run_goes_on(api):
    ids = app(api)
    t = task(api, ids, schedule="@every 1s", commandIntent="sleep 3", concurrencyPolicy="forbid")
    skipped = until(lambda: [r for r in runs_of(api, t["taskId"])
                             if r["skippedReason"] == "concurrency-forbidden"], within=30)
    assert skipped[0]["status"] == "skipped"
    api.post(f"/scheduled-tasks/{t['taskId']}", {"status": "disabled"})
    until(lambda: all(r["status"] not in ("accepted", "running")
                      for r in runs_of(api, t["taskId"])), within=30)
    running_at_once = [r for r in runs_of(api, t["taskId"]) if r["status"] == "succeeded"]
    for a in running_at_once:  # never two runs of the task at the same time
        for b in running_at_once:
            if a is not b:
                assert a["finishedAt"] <= b["startedAt"] or b["finishedAt"] <= a["startedAt"]


def test_replace_stops_the_run_going_on_for_the_new_one(api):
    ids = app(api)
    t = task(api, ids, schedule="@daily", commandIntent="echo $1; sleep 30",
             concurrencyPolicy="replace")
    first = api.post(f"/scheduled-tasks/{t['taskId']}/runs", {})["run"]
    until(lambda: api.get(f"/scheduled-task-runs/{first['runId']}")["run"]["status"]
          == "running")
    second = api.post(f"/scheduled-tasks/{t['taskId']}/runs", {})["run"]
    assert second["status"] == "accepted"
    replaced = ended(api, first["runId"])
    assert (replaced["status"], replaced["failureSummary"]) == (
        "failed", "stopped: a newer run replaced it")
    until(lambda: api.get(f"/scheduled-task-runs/{second['runId']}")["run"]["status"]
          == "running")
    api.ok("DELETE", f"/scheduled-tasks/{t['taskId']}", {})  # the run going on goes with it
    until(lambda: job_containers(ids) == [], within=30)


def test_an_image_without_a_shell_runs_an_argv_command(api):
    images.ensure("lbtest/shellless:v1")
    ids = app(api, "lbtest/shellless:v1")
    argv = task(api, ids, schedule="@daily", command=["/bin/busybox", "echo", "argv ran"])
    assert argv["commandIntent"] == "/bin/busybox echo 'argv ran'"
    run = api.post(f"/scheduled-tasks/{argv['taskId']}/runs", {})["run"]
    assert ended(api, run["runId"])["status"] == "succeeded"
    assert [e["message"] for e in api.get(
        f"/scheduled-task-runs/{run['runId']}/logs")["entries"]] == ["argv ran"]
    shell = task(api, ids, schedule="@daily", commandIntent="echo needs a shell")
    failed = ended(api, api.post(f"/scheduled-tasks/{shell['taskId']}/runs", {})["run"]["runId"])
    assert failed["status"] == "failed"  # no /bin/sh in the image


def _seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_two_control_planes_on_one_postgresql_run_each_fire_once(tmp_path, postgres_url):
    ports = [free_port(), free_port()]
    fast = {"LAUNCHBAY_DATABASE_URL": postgres_url, "LAUNCHBAY_TASK_SCHEDULE_SECONDS": "0.2"}
    procs = [serve(tmp_path, ports[0], **fast)]
    procs.append(serve(tmp_path, ports[1], **fast))  # the same store and master key
    server_id = None
    try:
        api = first_admin(ports[0])
        server_id = api.get("/servers")["items"][0]["id"]
        ids = make_app(api, "lbtest/hello:v1")
        deployed(api, ids)
        since = time.time()
        t = task(api, ids, schedule="@every 1s", commandIntent="echo fired",
                 concurrencyPolicy="allow")
        time.sleep(6)
        first_admin(ports[1], bootstrap=False).post(f"/scheduled-tasks/{t['taskId']}",
                                           {"status": "disabled"})
        until(lambda: all(r["status"] not in ("accepted", "running")
                          for r in runs_of(api, t["taskId"])), within=30)
        runs = [r for r in runs_of(api, t["taskId"]) if r["status"] != "skipped"]
        fires = [r["scheduledFor"] for r in runs]
        assert len(fires) >= 4 and len(fires) == len(set(fires))  # each fire once
        assert all(r["status"] == "succeeded" for r in runs)
        starts = list(docker.from_env().events(
            since=since, until=time.time(), decode=True,
            filters={"label": f"launchbay.task={t['taskId']}", "event": "start"}))
        assert len(starts) == len(runs)  # one container started per run, by one of them
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        if server_id:
            remove_runtime(server_id)


def test_sigkill_during_a_run_leaves_no_run_running_nor_container(tmp_path):
    port = free_port()
    proc = serve(tmp_path, port, LAUNCHBAY_TASK_SCHEDULE_SECONDS="0.2")
    server_id = None
    try:
        api = first_admin(port)
        server_id = api.get("/servers")["items"][0]["id"]
        ids = make_app(api, "lbtest/hello:v1")
        deployed(api, ids)
        t = task(api, ids, schedule="@daily", commandIntent="echo begun; sleep 4; echo over")
        run = api.post(f"/scheduled-tasks/{t['taskId']}/runs", {})["run"]
        until(lambda: api.get(f"/scheduled-task-runs/{run['runId']}")["run"]["status"]
              == "running")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert job_containers(ids)  # the job goes on without the control plane
        proc = serve(tmp_path, port, LAUNCHBAY_TASK_SCHEDULE_SECONDS="0.2")
        done = ended(api, run["runId"], within=60)  # the new process took it up
        assert done["status"] == "succeeded", done
        assert [e["message"] for e in api.get(
            f"/scheduled-task-runs/{run['runId']}/logs")["entries"]] == ["begun", "over"]
        until(lambda: job_containers(ids) == [])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if server_id:
            remove_runtime(server_id)


def test_the_cli_adds_runs_and_follows_a_job(api, cli):
    ids = app(api)
    added = cli("jobs", "add", "web-project/production/web", "--schedule", "@daily", "--name",
                "report", "--command", 'echo "from the cli"; echo "key $API_TOKEN"')
    assert "added report" in added
    listed = cli("jobs", "list", "web-project/production/web")
    assert "report" in listed and "@daily (UTC)" in listed
    followed = cli("jobs", "run", "report", "-f")
    assert "from the cli" in followed and "key ****" in followed and "succeeded" in followed
    assert SECRET not in followed
    (run,) = api.get("/scheduled-task-runs", params={"resourceId": ids["resource"]})["items"]
    assert "manual" in cli("jobs", "runs", "report")
    assert cli("jobs", "logs", run["runId"]).splitlines() == ["from the cli", "key ****"]
    failing = cli("jobs", "add", "web-project/production/web", "--schedule", "@daily",
                  "--name", "broken", "--argv", "/bin/false")
    assert "added broken" in failing
    assert "failed" in cli("jobs", "run", "broken", "-f", ok=False)


def test_the_console_adds_a_job_runs_it_and_shows_its_output(api, cp):
    from test_console import Browser

    ids = app(api)
    browser = Browser(cp).sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
    page = browser.get(f"/resources/{ids['resource']}")
    assert "No job." in page.text
    added = browser.post(f"/resources/{ids['resource']}/jobs", {
        "name": "nightly", "schedule": "0 3 * * *", "timezone": "Europe/Berlin",
        "commandIntent": 'echo "console says $API_TOKEN"', "timeoutSeconds": "60"})
    assert added.status_code == 303, added.text
    page = browser.get(f"/resources/{ids['resource']}")
    assert "nightly" in page.text and "Europe/Berlin" in page.text
    refused = browser.post(f"/resources/{ids['resource']}/jobs", {
        "schedule": "sometimes", "commandIntent": "echo x"})
    assert refused.status_code == 400 and "invalid cron expression" in refused.text
    typo = browser.post(f"/resources/{ids['resource']}/jobs", {
        "schedule": "@daily", "commandIntent": "echo x", "timeoutSeconds": "ten"})
    assert typo.status_code == 400
    (task,) = api.get("/scheduled-tasks", params={"resourceId": ids["resource"]})["items"]
    ran = browser.post(f"/jobs/{task['taskId']}/run")
    assert ran.status_code == 303
    run_page = ran.headers["location"]
    shown = until(lambda: "console says ****" in (p := browser.get(run_page).text) and
                  "succeeded" in p and p)
    assert SECRET not in shown
    org_b = api.post("/organizations", {"name": "Beta"})["organizationId"]
    add_member(api, org_b, "bob@example.com", "admin")
    bob = Browser(cp).sign_in("bob@example.com", "member-password-1")
    assert bob.get(run_page).status_code == 404
    assert bob.post(f"/jobs/{task['taskId']}/run").status_code == 404

"""Scheduled tasks without an engine: the schedule's fire times (across a daylight-saving
change), commands that carry secrets refused, validation that changes nothing, the scheduler
admitting each fire once and recording those it skips, and tenancy."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from launchbay import schedules
from launchbay.operations.scheduled_tasks import secret_in
from launchbay.store.models import Deployment, Resource, ScheduledTask, utcnow

from support import Api, add_member, make_app, snapshot

UTC = timezone.utc


def test_fire_times_follow_berlins_daylight_saving_changes():
    # 2026-03-29: 02:00 CET becomes 03:00 CEST (02:30 does not exist that day).
    spring = schedules.upcoming("30 2 * * *", "Europe/Berlin", None,
                                datetime(2026, 3, 27, 12, tzinfo=UTC), 4)
    assert spring == [datetime(2026, 3, 28, 1, 30, tzinfo=UTC),  # 02:30 CET
                      datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # 03:00 CEST: the next that is
                      datetime(2026, 3, 30, 0, 30, tzinfo=UTC),  # 02:30 CEST
                      datetime(2026, 3, 31, 0, 30, tzinfo=UTC)]
    # 2026-10-25: 03:00 CEST becomes 02:00 CET (02:30 happens twice: it fires once).
    autumn = schedules.upcoming("30 2 * * *", "Europe/Berlin", None,
                                datetime(2026, 10, 24, 12, tzinfo=UTC), 3)
    assert autumn == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
                      datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
                      datetime(2026, 10, 27, 1, 30, tzinfo=UTC)]
    hourly = schedules.upcoming("0 * * * *", "Europe/Berlin", None,
                                datetime(2026, 10, 25, 0, 30, tzinfo=UTC), 3)
    assert [t - hourly[0] for t in hourly] == [timedelta(0), timedelta(hours=1),
                                              timedelta(hours=2)]  # no hour lost or doubled
    assert schedules.upcoming("@every 90s", "UTC", None,
                              datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC), 2) == [
        datetime(2026, 1, 1, 0, 1, 30, tzinfo=UTC), datetime(2026, 1, 1, 0, 3, tzinfo=UTC)]


@pytest.mark.parametrize("command", [
    "curl -H 'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig' https://x",
    "psql postgres://app:hunter22@db/app -c 'select 1'",
    "mysqldump --password=hunter22 app",
    "API_KEY=abcd1234 ./sync",
    "echo ghp_0123456789abcdefghijABCDEFGHIJ",
    "echo '-----BEGIN OPENSSH PRIVATE KEY-----'",
    "aws s3 ls # AKIAIOSFODNN7EXAMPLE",
])
def test_a_command_that_carries_a_secret_is_noticed(command):
    assert secret_in(command) is not None


@pytest.mark.parametrize("command", [
    "psql \"postgres://app:$DB_PASSWORD@db/app\" -c 'select 1'",
    "mysqldump --password=$MYSQL_PWD app", "./manage.py clearsessions",
    "curl -H \"Authorization: Bearer $API_TOKEN\" https://x", "echo token=${TOKEN}",
])
def test_a_command_naming_its_secrets_by_variable_is_fine(command):
    assert secret_in(command) is None


def test_bad_input_is_refused_and_changes_nothing(admin: Api, cp):
    ids = make_app(admin, "lbtest/hello:v1")
    before = snapshot(cp)
    for body, code in (
            ({"schedule": "every day", "commandIntent": "x"}, "invalid_schedule"),
            ({"schedule": "@daily", "timezone": "Mars/Base", "commandIntent": "x"},
             "invalid_schedule"),
            ({"schedule": "@every 0s", "commandIntent": "x"}, "invalid_schedule"),
            ({"schedule": "@daily"}, "validation_failed"),
            ({"schedule": "@daily", "commandIntent": "x", "command": ["x"]},
             "validation_failed"),
            ({"schedule": "@daily", "commandIntent": "x", "timeoutSeconds": 0},
             "validation_failed"),
            ({"schedule": "@daily", "commandIntent": "x", "retryLimit": 11},
             "validation_failed"),
            ({"schedule": "@daily", "commandIntent": "x", "concurrencyPolicy": "queue"},
             "validation_failed"),
            ({"schedule": "@daily", "commandIntent": "mysqldump --password=hunter22 app"},
             "command_contains_secret")):
        refused = admin.request("POST", "/scheduled-tasks",
                                {"resourceId": ids["resource"], **body})
        assert refused.status_code == 400, (body, refused.text)
        assert refused.json()["code"] == code, (body, refused.json())
    assert snapshot(cp) == before


def test_the_scheduler_admits_each_fire_once_and_records_what_it_skips(admin: Api, cp):
    ids = make_app(admin, "lbtest/hello:v1")
    task = admin.post("/scheduled-tasks", {"resourceId": ids["resource"],
                                           "schedule": "*/5 * * * *",
                                           "commandIntent": "echo hi"})["task"]
    assert len(task["nextFireTimes"]) == 5 and task["status"] == "enabled"
    hour_ago = utcnow() - timedelta(hours=1)
    with cp.sessions() as db:  # the control plane was down for an hour: its fires missed
        db.get_one(ScheduledTask, task["taskId"]).next_fire_at = hour_ago
        db.commit()
    cp.fire_tasks()
    runs = admin.get("/scheduled-task-runs", params={"taskId": task["taskId"]})["items"]
    cp.fire_tasks()  # nothing is due any more: nothing more is admitted
    assert admin.get("/scheduled-task-runs", params={"taskId": task["taskId"]})["items"] == runs
    fires = [hour_ago, *schedules.upcoming("*/5 * * * *", "UTC", None, hour_ago, 13)]
    expected = [t for t in fires if t <= utcnow()]
    assert len(runs) == len(expected) and len({r["scheduledFor"] for r in runs}) == len(runs)
    assert all(r["status"] == "skipped" for r in runs)
    # Those later than the grace are missed; one just due (if any) ran into the app's state.
    late = [t for t in expected if utcnow() - t > timedelta(seconds=60)]
    assert [r["skippedReason"] for r in runs].count("missed") == len(late) >= 11
    shown = admin.get(f"/scheduled-tasks/{task['taskId']}")["task"]
    assert shown["latestRun"]["runId"] in {r["runId"] for r in runs}

    # `run-once`: after downtime the latest missed fire runs (here: it finds the app not
    # deployed, and says so).
    yearly = admin.post("/scheduled-tasks", {"resourceId": ids["resource"],
                                             "schedule": "0 0 1 1 *", "commandIntent": "x",
                                             "misfirePolicy": "run-once"})["task"]["taskId"]
    with cp.sessions() as db:
        db.get_one(ScheduledTask, yearly).next_fire_at = hour_ago
        db.commit()
    cp.fire_tasks()
    (once,) = admin.get("/scheduled-task-runs", params={"taskId": yearly})["items"]
    assert once["skippedReason"] == "resource-not-deployed"

    # A manual run of an app never deployed is skipped with its reason, not lost.
    now = admin.post(f"/scheduled-tasks/{task['taskId']}/runs", {})["run"]
    assert (now["status"], now["skippedReason"]) == ("skipped", "resource-not-deployed")


def test_a_fire_runs_when_the_app_serves_and_forbid_skips_the_next(admin: Api, cp):
    ids = make_app(admin, "lbtest/hello:v1")
    deployment = admin.post("/deployments", {"projectId": ids["project"],
                                             "environmentId": ids["env"],
                                             "resourceId": ids["resource"]})["id"]
    with cp.sessions() as db:  # serving, as far as the store knows (no engine here)
        db.get_one(Deployment, deployment).status = "succeeded"
        db.get_one(Resource, ids["resource"]).current_deployment_id = deployment
        db.commit()
    task = admin.post("/scheduled-tasks", {"resourceId": ids["resource"], "schedule": "@hourly",
                                           "command": ["/bin/busybox", "true"]})["task"]
    first = admin.post(f"/scheduled-tasks/{task['taskId']}/runs", {})["run"]
    assert first["status"] == "accepted"
    work = admin.get("/operator-work", params={"resourceId": ids["resource"],
                                               "kind": "scheduled-task-run"})["items"]
    assert len(work) == 1
    second = admin.post(f"/scheduled-tasks/{task['taskId']}/runs", {})["run"]
    assert (second["status"], second["skippedReason"]) == ("skipped", "concurrency-forbidden")
    events = admin.get("/audit-events", params={"aggregateId": task["taskId"]})["items"]
    assert [e["eventType"] for e in events][:3] == ["scheduled-task.run-requested"] * 2 + [
        "scheduled-task.created"]
    # `allow` runs side by side, up to a bound: it never starts containers without limit.
    admin.post(f"/scheduled-tasks/{task['taskId']}", {"concurrencyPolicy": "allow"})
    statuses = [admin.post(f"/scheduled-tasks/{task['taskId']}/runs", {})["run"]
                for _ in range(cp.settings.task_max_concurrent_runs + 1)]
    assert [r["status"] for r in statuses].count("accepted") == \
        cp.settings.task_max_concurrent_runs - 1  # one was still open from before
    assert statuses[-1]["skippedReason"] == "concurrency-limit"


def test_tasks_and_runs_stay_in_their_organization(admin: Api, cp):
    ids = make_app(admin, "lbtest/hello:v1")
    task = admin.post("/scheduled-tasks", {"resourceId": ids["resource"], "schedule": "@daily",
                                           "commandIntent": "echo hi"})["task"]["taskId"]
    run = admin.post(f"/scheduled-tasks/{task}/runs", {})["run"]["runId"]
    org_b = admin.post("/organizations", {"name": "Beta"})["organizationId"]
    bob = add_member(admin, org_b, "bob@example.com", "admin")
    for method, path, body in (
            ("GET", f"/scheduled-tasks/{task}", None),
            ("POST", f"/scheduled-tasks/{task}", {"status": "disabled"}),
            ("DELETE", f"/scheduled-tasks/{task}", {}),
            ("POST", f"/scheduled-tasks/{task}/runs", {}),
            ("GET", f"/scheduled-task-runs/{run}", None),
            ("GET", f"/scheduled-task-runs/{run}/logs", None),
            ("POST", "/scheduled-tasks", {"resourceId": ids["resource"], "schedule": "@daily",
                                          "commandIntent": "echo mine"})):
        assert bob.request(method, path, body).status_code == 404, (method, path)
    assert bob.get("/scheduled-tasks")["items"] == []
    assert bob.get("/scheduled-task-runs")["items"] == []
    viewer = add_member(admin, admin.org_id, "vic@example.com", "viewer")
    assert viewer.get(f"/scheduled-tasks/{task}")["task"]["taskId"] == task
    assert viewer.request("POST", f"/scheduled-tasks/{task}/runs", {}).status_code == 403
    assert admin.ok("DELETE", f"/scheduled-tasks/{task}", {})["status"] == "deleted"
    assert admin.request("GET", f"/scheduled-task-runs/{run}").status_code == 404

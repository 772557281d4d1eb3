"""Project and environment lifecycles, variables, promote and diff."""

from __future__ import annotations

import pytest


@pytest.fixture
def project(admin):
    return admin.post("/projects", {"name": "Shop", "description": "the shop"})["id"]


def test_project_lifecycle(admin, project):
    assert admin.get("/projects/count")["count"] == 1
    admin.post(f"/projects/{project}/rename", {"name": "Big Shop"})
    shown = admin.get(f"/projects/{project}")
    assert shown["name"] == "Big Shop" and shown["slug"] == "big-shop"
    admin.post(f"/projects/{project}/description", {"description": "now bigger"})
    assert admin.get(f"/projects/{project}")["description"] == "now bigger"

    check = admin.get(f"/projects/{project}/delete-check")
    assert check["eligible"] is False and check["blockers"][0]["kind"] == "active-project"
    admin.post(f"/projects/{project}/archive", {"reason": "done"})
    archived = admin.get(f"/projects/{project}")
    assert archived["lifecycleStatus"] == "archived" and archived["archiveReason"] == "done"
    refused = admin.request("POST", f"/projects/{project}/rename", {"name": "x"})
    assert refused.status_code == 409 and refused.json()["code"] == "project_archived"
    assert admin.request("POST", "/environments", {"projectId": project, "name": "e"}
                         ).status_code == 409
    admin.post(f"/projects/{project}/restore")
    assert admin.get(f"/projects/{project}")["lifecycleStatus"] == "active"
    admin.post(f"/projects/{project}/archive")
    assert admin.get(f"/projects/{project}/delete-check")["eligible"] is True
    assert admin.ok("DELETE", f"/projects/{project}",
                    {"confirmation": {"projectId": project}}) == {"id": project}
    assert admin.request("GET", f"/projects/{project}").status_code == 404
    assert admin.get("/projects/count")["count"] == 0


def test_deleting_an_environment_and_a_project_that_holds_resources(admin, project):
    env = admin.post("/environments", {"projectId": project, "name": "staging"})["id"]
    admin.post(f"/environments/{env}/variables", {"key": "A", "value": "1"})
    resource = admin.post("/resources", {"projectId": project, "environmentId": env,
                                         "name": "web"})["id"]
    wrong = admin.request("DELETE", f"/environments/{env}",
                          {"confirmation": {"environmentName": "Staging"}})
    assert wrong.status_code == 400 and wrong.json()["code"] == "confirmation_mismatch"
    blocked = admin.request("DELETE", f"/environments/{env}",
                            {"confirmation": {"environmentName": "staging"}})
    assert blocked.status_code == 409 and blocked.json()["code"] == "environment_delete_blocked"
    # An archived project whose resources would be orphaned (their containers left running)
    # cannot be deleted either.
    admin.post(f"/environments/{env}/archive")
    admin.post(f"/projects/{project}/archive")
    check = admin.get(f"/projects/{project}/delete-check")
    assert [b["kind"] for b in check["blockers"]] == ["resource"] and not check["eligible"]
    admin.ok("DELETE", f"/resources/{resource}", {"confirmation": {"resourceSlug": "web"}})
    assert admin.ok("DELETE", f"/environments/{env}",
                    {"confirmation": {"environmentName": "staging"}}) == {"id": env}
    assert admin.request("GET", f"/environments/{env}").status_code == 404
    events = [e["eventType"] for e in admin.get("/audit-events")["items"]]
    assert "environment.deleted" in events
    assert admin.get(f"/projects/{project}/delete-check")["eligible"] is True


def test_deleting_with_resources_removes_them_in_the_same_change(admin, project, cp):
    envs = [admin.post("/environments", {"projectId": project, "name": n})["id"]
            for n in ("staging", "production")]
    apps = [admin.post("/resources", {"projectId": project, "environmentId": env,
                                      "name": "web"})["id"] for env in envs]
    admin.ok("DELETE", f"/environments/{envs[0]}", {
        "confirmation": {"environmentName": "staging"}, "withResources": True})
    assert admin.request("GET", f"/resources/{apps[0]}").status_code == 404
    assert admin.get(f"/resources/{apps[1]}")["resource"]["id"] == apps[1]
    admin.post(f"/projects/{project}/archive")
    admin.ok("DELETE", f"/projects/{project}", {"confirmation": {"projectId": project},
                                               "withResources": True})
    assert admin.get("/resources/count")["count"] == 0
    # The engine is asked to remove each one's containers and routes.
    removals = [w["resourceId"] for w in admin.get("/operator-work")["items"]
                if w["operationKey"] == "resources.delete"]
    assert sorted(removals) == sorted(apps)
    deleted = [e["aggregateId"] for e in admin.get("/audit-events")["items"]
               if e["eventType"] == "resource.deleted"]
    assert sorted(deleted) == sorted(apps)


def test_environment_lock_archive_rename(admin, project):
    env = admin.post("/environments", {"projectId": project, "name": "prod",
                                       "kind": "production"})["id"]
    admin.post(f"/environments/{env}/lock", {"reason": "release freeze"})
    locked = admin.get(f"/environments/{env}")
    assert locked["lifecycleStatus"] == "locked" and locked["lockReason"] == "release freeze"
    for path, body in [("variables", {"key": "A", "value": "1"}), ("rename", {"name": "x"})]:
        response = admin.request("POST", f"/environments/{env}/{path}", body)
        assert response.status_code == 409 and response.json()["code"] == "environment_locked"
    assert admin.get(f"/environments/{env}")["name"] == "prod"  # readable
    admin.post(f"/environments/{env}/unlock")
    admin.post(f"/environments/{env}/rename", {"name": "production"})
    assert admin.get(f"/environments/{env}")["name"] == "production"
    admin.post(f"/environments/{env}/archive")
    assert admin.get(f"/environments/{env}")["lifecycleStatus"] == "archived"
    assert admin.request("POST", f"/environments/{env}/clone", {"targetName": "c"}
                         ).status_code == 409
    assert admin.get("/environments/count", params={"projectId": project})["count"] == 1


def test_variables_exposures_precedence_and_delete(admin, project):
    env = admin.post("/environments", {"projectId": project, "name": "prod"})["id"]
    admin.post(f"/environments/{env}/variables",
               {"key": "API_URL", "value": "https://build", "exposure": "build-time"})
    admin.post(f"/environments/{env}/variables",
               {"key": "API_URL", "value": "https://run", "exposure": "runtime"})
    admin.post(f"/environments/{env}/variables",
               {"key": "API_URL", "value": "https://run2", "exposure": "runtime"})  # replaces
    view = admin.get(f"/environments/{env}/effective-precedence")
    order = view["precedence"]
    assert order.index("environment") < order.index("resource") < order.index("deployment-snapshot")
    values = {(e["key"], e["exposure"]): e["value"] for e in view["effectiveEntries"]}
    assert values == {("API_URL", "build-time"): "https://build",
                      ("API_URL", "runtime"): "https://run2"}
    admin.ok("DELETE", f"/environments/{env}/variables/API_URL", {"exposure": "build-time"})
    left = admin.get(f"/environments/{env}")["maskedVariables"]
    assert [(v["key"], v["exposure"]) for v in left] == [("API_URL", "runtime")]


def test_promote_and_diff(admin, project):
    staging = admin.post("/environments", {"projectId": project, "name": "staging",
                                           "kind": "staging"})["id"]
    for key, value, kind in [("A", "1", "plain-config"), ("B", "2", "plain-config"),
                             ("S", "secret-1", "secret")]:
        admin.post(f"/environments/{staging}/variables", {"key": key, "value": value, "kind": kind})
    prod = admin.post(f"/environments/{staging}/promote",
                      {"targetName": "production", "targetKind": "production"})["id"]
    created = admin.get(f"/environments/{prod}")
    assert created["kind"] == "production" and created["parentEnvironmentId"] == staging
    assert {d["change"] for d in admin.get(f"/environments/{staging}/diff/{prod}")} == {"unchanged"}

    admin.post(f"/environments/{staging}/variables", {"key": "A", "value": "changed"})
    admin.post(f"/environments/{staging}/variables", {"key": "S", "value": "secret-2",
                                                      "kind": "secret"})
    admin.ok("DELETE", f"/environments/{staging}/variables/B", {"exposure": "runtime"})
    admin.post(f"/environments/{prod}/variables", {"key": "ONLY_PROD", "value": "x"})
    changes = {d["key"]: d["change"] for d in admin.get(f"/environments/{staging}/diff/{prod}")}
    # From staging (left) to production (right): B is only in production now.
    assert changes == {"A": "changed", "B": "added", "S": "changed", "ONLY_PROD": "added"}
    # Promote again into the existing environment: it now equals staging.
    again = admin.post(f"/environments/{staging}/promote", {"targetName": "production"})
    assert again["id"] == prod
    assert {d["change"] for d in admin.get(f"/environments/{staging}/diff/{prod}")} == {"unchanged"}
    assert admin.request("POST", f"/environments/{staging}/promote",
                         {"targetName": "staging"}).status_code == 409

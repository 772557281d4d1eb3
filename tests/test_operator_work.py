"""The operator work API and the reconciler's rules for abandoned deployments (no workers run
here, so work stays where the test puts it)."""

from __future__ import annotations

import pytest

from launchbay.engine import reconcile
from launchbay.engine.ledger import enqueue
from launchbay.store.models import Deployment, OperatorWork, Resource

from support import make_app


@pytest.fixture
def app_ids(admin):
    return make_app(admin, "lbtest/hello:v1")


def deploy(admin, ids):
    return admin.post("/deployments", {"projectId": ids["project"], "environmentId": ids["env"],
                                       "resourceId": ids["resource"]})["id"]


def test_canceling_pending_deployment_work_cancels_the_deployment(admin, app_ids):
    deployment = deploy(admin, app_ids)
    (work,) = admin.get("/operator-work", params={"deploymentId": deployment})["items"]
    assert work["status"] == "pending" and work["kind"] == "deployment"
    assert "cancel" in work["nextActions"]
    canceled = admin.post(f"/operator-work/{work['id']}/cancel", {"reason": "not today"})
    assert canceled["status"] == "canceled"
    d = admin.get(f"/deployments/{deployment}")["deployment"]
    assert d["status"] == "canceled" and d["finishedAt"]
    again = admin.request("POST", f"/operator-work/{work['id']}/cancel", {})
    assert again.status_code == 409
    refused = admin.request("POST", f"/operator-work/{work['id']}/retry")
    assert refused.status_code == 409 and refused.json()["code"] == "use_deployment_retry"


def test_dead_letter_retry_recover_and_prune(admin, app_ids, cp):
    with cp.sessions() as db:  # a release that serves, so runtime controls are accepted
        db.get_one(Resource, app_ids["resource"]).current_deployment_id = deploy(admin, app_ids)
        db.commit()
    accepted = admin.ok("POST", f"/resources/{app_ids['resource']}/runtime/restart")
    work_id = accepted["runtimeControlAttemptId"]
    assert accepted["status"] == "accepted" and accepted["operation"] == "restart"
    parked = admin.post(f"/operator-work/{work_id}/dead-letter", {"reason": "investigating"})
    assert parked["status"] == "dead-lettered"
    shown = admin.get(f"/operator-work/{work_id}")["item"]
    assert shown["errorMessage"] == "investigating" and "retry" in shown["nextActions"]
    retried = admin.post(f"/operator-work/{work_id}/retry")
    assert retried["retryOfWorkId"] == work_id and retried["status"] == "pending"
    assert admin.get(f"/operator-work/{retried['workId']}")["item"]["operationKey"] == \
        "resources.runtime.restart"
    recovered = admin.post(f"/operator-work/{work_id}/mark-recovered")
    assert recovered["status"] == "succeeded"
    assert admin.request("POST", f"/operator-work/{work_id}/mark-recovered").status_code == 409
    dry = admin.post("/operator-work/prune", {"before": "2100-01-01T00:00:00Z",
                                              "statuses": ["succeeded"]})
    assert dry["dryRun"] is True and dry["matchedCount"] == 1 and dry["prunedCount"] == 0
    admin.get(f"/operator-work/{work_id}")
    done = admin.post("/operator-work/prune", {"before": "2100-01-01T00:00:00Z",
                                               "statuses": ["succeeded"], "dryRun": False})
    assert done["prunedCount"] == 1
    assert admin.request("GET", f"/operator-work/{work_id}").status_code == 404
    bad = admin.request("POST", "/operator-work/prune", {"before": "2100-01-01T00:00:00"})
    assert bad.status_code == 400


def test_reconciler_ends_deployments_whose_work_ended(admin, app_ids, cp):
    running, canceling, healthy = (deploy(admin, app_ids) for _ in range(3))
    with cp.sessions() as db:
        for deployment_id, status, work_status in ((running, "running", "failed"),
                                                   (canceling, "cancel-requested", "canceled"),
                                                   (healthy, "running", "running")):
            db.get_one(Deployment, deployment_id).status = status
            for work in db.query(OperatorWork).filter_by(deployment_id=deployment_id):
                work.status = work_status
                work.error_message = "worker crashed" if work_status == "failed" else None
        db.commit()
    assert reconcile._fail_abandoned_deployments(cp.sessions) == 2
    first = admin.get(f"/deployments/{running}")["deployment"]
    assert first["status"] == "failed" and first["errorCode"] == "work-lost"
    assert "worker crashed" in first["errorMessage"]
    assert admin.get(f"/deployments/{canceling}")["deployment"]["status"] == "canceled"
    assert admin.get(f"/deployments/{healthy}")["deployment"]["status"] == "running"
    events = admin.get(f"/deployments/{running}/events")
    assert events["terminal"] is True and events["envelopes"][-1]["event"]["eventType"] == \
        "deployment-failed"


def test_work_is_enqueued_with_the_change_or_not_at_all(admin, app_ids, cp):
    before = len(admin.get("/operator-work")["items"])
    with cp.sessions() as db:
        enqueue(db, "system", "test.rolled-back")
        db.rollback()
    refused = admin.request("POST", "/deployments", {
        "projectId": app_ids["project"], "environmentId": "env_other",
        "resourceId": app_ids["resource"]})
    assert refused.status_code == 400
    assert len(admin.get("/operator-work")["items"]) == before

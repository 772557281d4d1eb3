"""The Dployr face against its exact contract (`../shared/specs/dployr-openapi-1.1.1.yaml`):
schemathesis generates requests for every operation and every response is checked against the
contract (status code, content type, body schema), errors included; nothing answers 500.

The contract leaves some refusals out (a 401 on /system/doctor, a 400 for a claim that does
not verify, a 409 for a taken domain); those must be 4xx in the contract's `Error` shape.
The control plane here runs no engine: deployments stay pending, nothing is pulled.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from launchbay.control_plane import ControlPlane
from launchbay.http.app import create_app
from launchbay.settings import Settings

from support import ADMIN_EMAIL, ADMIN_PASSWORD, login

pytestmark = pytest.mark.contract

SPEC = Path(__file__).resolve().parents[2] / "shared" / "specs" / "dployr-openapi-1.1.1.yaml"
schema = schemathesis.openapi.from_path(SPEC)
# Valid inputs, and inputs that break the contract on purpose (those must be refused, not 500).
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
PUBLIC = {"/system/register", "/system/domain"}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[dict]:
    folder = tmp_path_factory.mktemp("contract")
    cp = ControlPlane(Settings(data_dir=folder / "data",
                               database_url=f"sqlite:///{folder / 'lb.db'}", edge_enabled=False,
                               workers=0))
    client = TestClient(create_app(control_plane=cp))  # no lifespan: no engine runs
    client.post("/api/bootstrap/auth/first-admin",
                json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    admin = login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    created = client.post("/compat/dployr/deployments", json={
        "name": "known", "user_id": "u", "source": "image", "runtime": {"type": "docker"},
        "image": "lbtest/hello:v1", "port": 8080},
        headers={"Authorization": f"Bearer {admin.token}"})
    assert created.status_code == 201, created.text
    service = client.get("/compat/dployr/services",
                         headers={"Authorization": f"Bearer {admin.token}"}).json()
    yield {"client": client, "token": admin.token,
           "service": service["services"][0]["id"], "calls": 0}
    cp.close()


def _refusal_in_error_shape(case, response) -> None:
    documented = case.operation.definition.raw["responses"]
    if str(response.status_code) in documented:
        return
    assert 400 <= response.status_code < 500, (case.method, case.path, response.status_code,
                                               response.text)
    body = response.json()
    assert isinstance(body.get("error"), str) and isinstance(body.get("code"), str), body


@schema.parametrize()
@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_response_follows_the_contract(case, world):
    client: TestClient = world["client"]
    if case.path_parameters and "serviceId" in case.path_parameters and case.method == "GET":
        case.path_parameters["serviceId"] = world["service"]  # a service that exists
    headers = {} if case.path in PUBLIC else {"Authorization": f"Bearer {world['token']}"}
    if case.path == "/logs/stream" and case.query:
        case.query["token"] = world["token"]  # ids are random: a 404 before any stream
    kwargs = case.as_transport_kwargs(base_url="http://testserver/compat/dployr",
                                      headers=headers)
    response = client.request(kwargs.pop("method"), kwargs.pop("url"),
                              **{k: v for k, v in kwargs.items()
                                 if k in ("headers", "params", "json", "content")})
    case.validate_response(response, checks=[not_a_server_error, content_type_conformance,
                                             response_schema_conformance])
    _refusal_in_error_shape(case, response)


@pytest.mark.parametrize("operation", list(schema.get_all_operations()),
                         ids=lambda op: op.ok().label)
def test_without_credentials_every_protected_path_answers_401(operation, world):
    op = operation.ok()
    if op.path in PUBLIC:
        return
    path = op.path.replace("{serviceId}", world["service"])
    response = world["client"].request(op.method.upper(), f"/compat/dployr{path}")
    assert response.status_code == 401, (op.label, response.text)
    assert response.json() == {"error": "Unauthorized", "code": "auth.unauthorized"}

"""The native API against its own `/api/openapi.json`, as an authenticated admin:
schemathesis generates valid and invalid requests for every operation; nothing answers 5xx,
every answer has the documented content type and, when its status is documented, the
documented body; every refusal is a 4xx in launchbay's error shape.

The control plane here runs no engine (work items stay pending). Operations that act on the
machine itself (install, doctor, prune, proxy bootstrap) or end the test's own session are
left out: they are tested on their own elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
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

LEFT_OUT = {"system.install", "system.doctor", "servers.capacity.prune", "auth.logout",
            "account.password.change", "servers.edge-proxy.bootstrap",
            "bootstrap.first-admin"}


def _world() -> tuple[ControlPlane, TestClient, str]:
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="lb-native-contract-"))
    cp = ControlPlane(Settings(data_dir=folder / "data",
                               database_url=f"sqlite:///{folder / 'lb.db'}", edge_enabled=False,
                               workers=0, shipped_templates=False))
    client = TestClient(create_app(control_plane=cp))  # no lifespan: no engine runs
    client.post("/api/bootstrap/auth/first-admin",
                json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    return cp, client, login(client, ADMIN_EMAIL, ADMIN_PASSWORD).token


CP, CLIENT, TOKEN = _world()
schema = schemathesis.openapi.from_dict(CLIENT.get("/api/openapi.json").json())
schema.config.generation.update(modes=[GenerationMode.POSITIVE])


@pytest.fixture(scope="module", autouse=True)
def _closed() -> Iterator[None]:
    yield
    CP.close()


@schema.parametrize()
@settings(max_examples=2, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
def test_every_native_response_follows_the_schema(case):
    if case.operation.definition.raw.get("operationId") in LEFT_OUT:
        return
    kwargs = case.as_transport_kwargs(base_url="http://testserver",
                                      headers={"Authorization": f"Bearer {TOKEN}"})
    response = CLIENT.request(kwargs.pop("method"), kwargs.pop("url"),
                              **{k: v for k, v in kwargs.items()
                                 if k in ("headers", "params", "json", "content")})
    case.validate_response(response, checks=[not_a_server_error, content_type_conformance,
                                             response_schema_conformance])
    if response.status_code >= 400:
        assert response.status_code < 500, (case.method, case.path, response.text)
        body = response.json()
        assert isinstance(body.get("error"), str) and isinstance(body.get("code"), str), body

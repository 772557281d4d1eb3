"""Reading compose files into stacks (pure logic)."""

from __future__ import annotations

import pytest

from launchbay.engine.build.compose_files import ComposeError, parse

STACK = """
services:
  web:
    build: {context: ./web, target: prod, args: [MODE=fast]}
    ports: ["8080:3000"]
    environment: {API_URL: "http://api:5000", EMPTY: null}
    depends_on: {api: {condition: service_started}}
  api:
    image: example/api:1
    command: serve --port 5000
    expose: ["5000"]
    environment: [A=1, FROM_SHELL]
    volumes: ["data:/var/lib/api:ro"]
volumes:
  data: {}
"""


def test_a_stack_in_start_order():
    stack = parse(STACK)
    assert [s.name for s in stack.services] == ["api", "web"] and stack.web == "web"
    web, api = stack.service("web"), stack.service("api")
    assert (web.build_context, web.build_target, web.build_args) == ("./web", "prod",
                                                                     {"MODE": "fast"})
    assert web.port == 3000 and web.environment == {"API_URL": "http://api:5000", "EMPTY": ""}
    assert api.command == ["serve", "--port", "5000"] and api.port == 5000
    assert api.environment == {"A": "1"}  # a bare name would come from a shell: left out
    assert api.volumes == [("data", "/var/lib/api", "ro")]


def test_the_web_service_is_chosen_or_named():
    assert parse(STACK, "api").web == "api"
    only = parse("services:\n  app: {image: a, ports: ['80']}\n  worker: {image: b}\n")
    assert only.web == "app"
    with pytest.raises(ComposeError) as e:
        parse("services:\n  a: {image: a, ports: ['80']}\n  b: {image: b, ports: ['81']}\n")
    assert e.value.code == "compose-target-unknown" and "targetServiceName" in e.value.fix
    with pytest.raises(ComposeError) as e:
        parse(STACK, "nope")
    assert e.value.code == "compose-target-missing"


@pytest.mark.parametrize("text, code", [
    ("services: [", "compose-invalid"),
    ("version: '3'\n", "compose-invalid"),
    ("services:\n  a: {command: x}\n", "compose-invalid"),
    ("services:\n  a: {image: a, volumes: ['./data:/data']}\n", "compose-bind-mount"),
    ("services:\n  a: {image: a, volumes: ['/etc:/etc']}\n", "compose-bind-mount"),
    ("services:\n  a: {image: a, volumes: ['undeclared:/x']}\n", "compose-bind-mount"),
    ("services:\n  a: {image: a, network_mode: host}\n", "compose-unsupported"),
    ("services:\n  a: {image: a, privileged: true}\n", "compose-unsupported"),
    ("services:\n  a: {image: a, depends_on: [b]}\n  b: {image: b, depends_on: [a]}\n",
     "compose-invalid"),
])
def test_what_cannot_run_is_refused_with_a_fix(text, code):
    with pytest.raises(ComposeError) as e:
        parse(text)
    assert e.value.code == code and e.value.fix

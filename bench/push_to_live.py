"""Push to deploy: seconds from a push's webhook request (signed, as GitHub sends it) to the
pushed commit serving, for the Python fixture with a warm build cache, against the same kind
of change deployed through the API in the same run (the build and release alone).

Last line: `push_to_live: webhook_to_live_s=... build_s=...` (medians of `BENCH_N` each).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from build_deploy import serving
from harness import launchbay
from test_push_to_deploy import Repository

from launchbay import webhooks

import images  # the tests' locally built images (harness puts them on the path)
from test_builds import APP  # the same fixture as the tests

N = int(os.environ.get("BENCH_N", "2"))


def main() -> None:
    base = images.ensure_python_base()
    repo = Repository(Path(tempfile.mkdtemp(prefix="lb-bench-git-")))
    _, first = repo.push({"requirements.txt": "# none\n", "app.py": APP})
    try:
        with launchbay(edge_enabled="false", git_allowed_networks=json.dumps(["127.0.0.0/8"]),
                       build_base_images=json.dumps({"python": base})) as lb:
            app = lb.create_app("web", source={"kind": "git", "locator": repo.url,
                                               "gitRef": "main"},
                                networkProfile={"internalPort": 8000})
            secret = lb.api.post(f"/resources/{app['resourceId']}/auto-deploy", json={
                "mode": "enable", "policy": {"refs": ["main"]}}).json()["webhookSecret"]
            lb.succeeded(lb.deploy(app))  # the build cache, warmed

            def pushed(text: str) -> tuple[str, str]:
                return repo.push({"app.py": APP.replace("hello from python", text)})

            def by_webhook(n: int) -> float:
                before, after = pushed(f"pushed {n}")
                body = json.dumps({"ref": "refs/heads/main", "before": before, "after": after,
                                   "repository": {"clone_url": repo.url}}).encode()
                start = time.monotonic()
                sent = lb.api.post("/integrations/github/source-events", content=body, headers={
                    "X-GitHub-Event": "push", "X-GitHub-Delivery": f"bench-{n}",
                    "X-Hub-Signature-256": webhooks.sign(body, secret)})
                assert sent.status_code == 202, sent.text
                event = f"/source-events/{sent.json()['sourceEventIds'][0]}"
                deadline = start + 300
                while not (made := lb.api.get(event).json()["createdDeploymentIds"]):
                    assert time.monotonic() < deadline, lb.api.get(event).json()
                    time.sleep(0.02)
                serving(lb.succeeded(made[0])["url"], f"pushed {n}\n")
                return time.monotonic() - start

            def by_api(n: int) -> float:
                pushed(f"deployed {n}")
                start = time.monotonic()
                serving(lb.succeeded(lb.deploy(app))["url"], f"deployed {n}\n")
                return time.monotonic() - start

            hooks, builds = [], []
            for n in range(N):  # alternating: both see the same machine
                builds.append(by_api(n))
                hooks.append(by_webhook(n))
    finally:
        repo.close()
    print(f"push_to_live: webhook_to_live_s={statistics.median(hooks):.2f} "
          f"build_s={statistics.median(builds):.2f}")


if __name__ == "__main__":
    main()

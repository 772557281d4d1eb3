"""Build and deploy from source: seconds from a new commit to the new code serving, for the
Python fixture (auto-detected, Dockerfile generated), cold (nothing of the app cached) and warm
(a one-line change: the dependency layer is reused).

Last line: `build_deploy: cold_s=... warm_s=...`
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from harness import launchbay

import images  # the tests' locally built images (harness puts them on the path)
from test_builds import APP, repo  # the same fixture as the tests


def serving(url: str, text: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).text == text:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(url)


def main() -> None:
    base = images.ensure_python_base()
    source = Path(tempfile.mkdtemp(prefix="lb-bench-src-")) / "app"
    # A requirements file nobody has built: the dependency layer is built cold.
    repo(source, {"requirements.txt": f"# {uuid.uuid4()}\n", "app.py": APP})
    with launchbay(edge_enabled="false", git_local_folders=json.dumps([str(source.parent)]),
                   build_base_images=json.dumps({"python": base})) as lb:
        app = lb.create_app("web", source={"kind": "git", "locator": str(source),
                                           "gitRef": "main"},
                            networkProfile={"internalPort": 8000})

        def push_and_serve(text: str) -> float:
            repo(source, {"app.py": APP.replace("hello from python", text)})
            start = time.monotonic()
            shown = lb.succeeded(lb.deploy(app))
            serving(shown["url"], text + "\n")
            return time.monotonic() - start

        cold = push_and_serve("cold release")
        warm = push_and_serve("warm release")
    print(f"build_deploy: cold_s={cold:.2f} warm_s={warm:.2f}")


if __name__ == "__main__":
    main()

"""Images the tests deploy, built locally from the static busybox (no registry is reachable).
Built once per machine and reused: each tag carries a label with the recipe's hash."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import docker

BUSYBOX = shutil.which("busybox") or "/bin/busybox"

SERVE = ["httpd", "-f", "-v", "-p", "8080", "-h", "/www"]
RECIPES: dict[str, tuple[str, list[str]]] = {
    # tag: (index.html, command)
    "lbtest/hello:v1": ("hello v1\n", SERVE),
    "lbtest/hello:v2": ("hello v2\n", SERVE),
    "lbtest/hello:v3": ("hello v3\n", SERVE),
    # Answers only after $DELAY seconds (30 by default): a deployment stays in health
    # verification that long.
    "lbtest/slow:v1": ("slow\n", ["sh", "-c", "echo warming up; sleep ${DELAY:-30}; "
                                               "exec httpd -f -p 8080 -h /www"]),
    # What the README's first steps deploy in place of nginx:1.26 and nginx:1.27.
    "lbtest/readme:1.26": ("nginx 1.26\n", ["httpd", "-f", "-v", "-p", "80", "-h", "/www"]),
    "lbtest/readme:1.27": ("nginx 1.27\n", ["httpd", "-f", "-v", "-p", "80", "-h", "/www"]),
    # Exits at once with an error on stderr.
    "lbtest/crash:v1": ("", ["sh", "-c", "echo 'fatal: cannot open config' >&2; exit 3"]),
    # A busybox with a shell and httpd: the base image of static sites in tests.
    "lbtest/busybox:v1": ("", ["sh"]),
    # Prints the environment it got, then serves it.
    "lbtest/env:v1": ("", ["sh", "-c", "env > /www/index.html; exec httpd -f -p 8080 -h /www"]),
    # Serves its environment, logs a line a second and keeps part of a core busy (metrics).
    "lbtest/busy:v1": ("", ["sh", "-c", "env > /www/index.html; (while :; do i=0; while "
                                        "[ $i -lt 3000 ]; do i=$((i+1)); done; sleep 0.1; "
                                        "done) & "
                                        "(while :; do echo tick; sleep 1; done) & "
                                        "exec httpd -f -p 8080 -h /www"]),
}


def _context(html: str, command: list[str]) -> bytes:
    dockerfile = (
        "FROM scratch\nCOPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        "COPY www /www\n"
        f"CMD {__import__('json').dumps(command)}\n"
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile.encode()), ("www/index.html", html.encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.add(BUSYBOX, arcname="busybox")
    return buf.getvalue()


def ensure(tag: str) -> str:
    html, command = RECIPES[tag]
    digest = hashlib.sha256(repr((html, command)).encode()).hexdigest()[:16]
    client = docker.from_env()
    try:
        image = client.images.get(tag)
        if image.labels.get("launchbay.test-recipe") == digest:
            return tag
    except docker.errors.ImageNotFound:
        pass
    client.images.build(fileobj=io.BytesIO(_context(html, command)), custom_context=True,
                        tag=tag, labels={"launchbay.test-recipe": digest}, rm=True)
    return tag


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses."""
    for source in Path("/etc/apt/sources.list.d").glob("*.sources"):
        for line in source.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    for line in Path("/etc/apt/sources.list").read_text().splitlines():
        if line.startswith("deb ") and "security" not in line:
            return line.split()[1]
    return "http://deb.debian.org/debian"


PYTHON_BASE = "lbtest/python:bookworm"
NODE_BASE = "lbtest/node:bookworm"


def debian_image(tag: str, packages: list[str], env: list[str], later: list[str] = ()) -> str:
    """A Debian bookworm image with `packages` (debootstrap, a minute or two, once per
    machine: the tag is reused), then `later` installed by apt inside it (debootstrap cannot
    resolve virtual packages, which npm's dependencies need)."""
    client = docker.from_env()
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    with tempfile.TemporaryDirectory(prefix="lb-debootstrap-") as root:
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(packages)}",
                        "bookworm", root, debian_mirror()],
                       check=True, capture_output=True, timeout=1200)
        if later:
            subprocess.run(["chroot", root, "sh", "-c", "apt-get update -q && DEBIAN_FRONTEND="
                            "noninteractive apt-get install -y -q --no-install-recommends "
                            + " ".join(later) + " && apt-get clean"],
                           check=True, capture_output=True, timeout=1200)
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        changes = [arg for e in env for arg in ("--change", f"ENV {e}")]
        subprocess.run(["docker", "import", *changes, "-", tag], stdin=tar.stdout, check=True,
                       capture_output=True, timeout=600)
        tar.wait()
    return tag


def ensure_python_base() -> str:
    return debian_image(PYTHON_BASE, ["python3", "python3-pip", "python-is-python3"],
                        ["PIP_BREAK_SYSTEM_PACKAGES=1", "PIP_DISABLE_PIP_VERSION_CHECK=1"])


def ensure_node_base() -> str:
    return debian_image(NODE_BASE, ["nodejs"], ["NPM_CONFIG_UPDATE_NOTIFIER=false",
                                                "NPM_CONFIG_FUND=false"], later=["npm"])


def ensure_all() -> None:
    for tag in RECIPES:
        ensure(tag)

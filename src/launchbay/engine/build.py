"""Building a release's image from source: check it out, detect how to build it, generate a
Dockerfile when there is none, and build it with the Docker engine, streaming its output into
the deployment's log (phase `build`). Layers are cached between builds of a resource."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from launchbay import dockerfiles, source_checkout
from launchbay.docker_engine import APIError, DockerEngine
from launchbay.engine.plan import BuildSpec
from launchbay.runtime_detection import detect

GENERATED = ".launchbay.Dockerfile"


class BuildFailed(Exception):
    """The source could not be fetched, detected or built; the message says why."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def build(spec: BuildSpec, deployment_id: str, docker: DockerEngine, workspace: Path,
          build_args: dict[str, str], log: Callable[[str, str], None]) -> tuple[str, str]:
    """Builds the image of one deployment; returns (image tag, commit SHA)."""
    where = workspace / deployment_id
    try:
        try:
            if spec.archive:
                log(f"unpacking the uploaded archive {Path(spec.archive).name}", "info")
                sha = source_checkout.unpack(Path(spec.archive), where)
            else:
                log(f"fetching {spec.repository}" + (f" at {spec.ref}" if spec.ref else ""),
                    "info")
                sha = source_checkout.checkout(spec.repository, spec.ref, where)  # type: ignore[arg-type]
                log(f"checked out {sha[:12]}", "info")
        except (source_checkout.CheckoutError, OSError) as exc:
            raise BuildFailed("source-unavailable", f"cannot fetch the source: {exc}") from exc
        root = (where / spec.base_directory).resolve()
        if where.resolve() not in [root, *root.parents] or not root.is_dir():
            raise BuildFailed("base-directory-missing",
                              f"{spec.base_directory} is not a folder of the repository")
        found = detect(root, spec.runtime_profile)
        for reason in found.reasoning:
            log(f"detected: {reason}", "info")
        if not found.buildable:
            problem = found.unsupported[0]
            raise BuildFailed(problem["code"], f"{problem['message']} ({problem['fix']})")
        if found.runtime_family == "compose":
            raise BuildFailed("compose-not-supported-yet",
                              "compose stacks are not deployed yet; add a Dockerfile")
        dockerfile = found.dockerfile_path
        if dockerfile is None:
            base = spec.base_images.get(found.runtime_family)
            if not base:
                raise BuildFailed("no-base-image",
                                  f"no base image is configured for {found.runtime_family}")
            text = dockerfiles.generate(found, base, {p.name for p in root.iterdir()})
            if build_args:
                text = text.replace("WORKDIR /app\n", "WORKDIR /app\n" + "".join(
                    f"ARG {key}\n" for key in sorted(build_args)), 1)
            (root / GENERATED).write_text(text)
            dockerfile = GENERATED
            log(f"generated a Dockerfile for {found.runtime_family} on {base}", "info")
        tag = f"{spec.image_repository}:{deployment_id.split('_')[-1]}"
        _docker_build(docker, root, dockerfile, tag, build_args, spec, log)
        return tag, sha
    finally:
        shutil.rmtree(where, ignore_errors=True)


def _docker_build(docker: DockerEngine, root: Path, dockerfile: str, tag: str,
                  build_args: dict[str, str], spec: BuildSpec,
                  log: Callable[[str, str], None]) -> None:
    started = time.monotonic()
    target = spec.runtime_profile.get("buildTarget") or spec.runtime_profile.get("build_target")
    try:
        stream = docker.client.api.build(
            path=str(root), dockerfile=dockerfile, tag=tag, buildargs=build_args or None,
            target=target or None, rm=True, forcerm=True, decode=True,
            container_limits={"memory": spec.memory_mb * 1024 * 1024},
            timeout=spec.timeout_seconds, labels={"launchbay.managed": "true"})
        for chunk in stream:
            if "error" in chunk:
                raise BuildFailed("build-failed", str(chunk["error"]).strip())
            for line in str(chunk.get("stream", "")).splitlines():
                if line.strip():
                    log(line.rstrip(), "info")
            if time.monotonic() - started > spec.timeout_seconds:
                raise BuildFailed("build-timeout",
                                  f"the build took longer than {spec.timeout_seconds}s")
    except APIError as exc:
        raise BuildFailed("build-failed", exc.explanation or str(exc)) from exc

"""Building a release's image from source: check it out, detect how to build it, generate a
Dockerfile when there is none, and build it with the Docker engine, streaming its output into
the deployment's log (phase `build`). Layers are cached between builds of a resource.
A compose stack builds each service that has a build context."""

from __future__ import annotations

import re
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from launchbay.drivers import source_checkout
from launchbay.drivers.source_checkout import GitPolicy
from launchbay.engine.build import dockerfiles
from launchbay.engine.build.compose_files import Stack
from launchbay.engine.build.runtime_detection import Detection, detect
from launchbay.engine.image_access import ImageRefused
from launchbay.engine.plan import BuildSpec, ServicePlan, Volume
from launchbay.engine.runtime import BuildError, ImageBuild, Runtime

Log = Callable[[str, str], None]
# Admits an image a build reads for the organization (its id), or raises ImageRefused.
Admit = Callable[[str], str]

GENERATED = ".launchbay.Dockerfile"


class BuildFailed(Exception):
    """The source could not be fetched, detected or built; the message says why."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class Built:
    """What a build adds to the release plan."""

    image: str
    commit_sha: str
    port: int | None = None  # detected; the network profile's port wins
    # A compose stack: the web service's name, command, environment and volumes, and the others.
    service_name: str | None = None
    command: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    volumes: list[Volume] = field(default_factory=list)
    services: list[ServicePlan] = field(default_factory=list)


@dataclass
class BuildVariables:
    """The build-time variables of a release: plain ones are build arguments; secrets are
    BuildKit secrets, which never reach a layer or the image's history."""

    plain: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)


def build(spec: BuildSpec, deployment_id: str, docker: Runtime, workspace: Path,
          variables: BuildVariables, log: Log, *, admit: Admit, labels: dict[str, str],
          policy: GitPolicy, credential: str | None = None) -> Built:
    """Builds the image (or the stack's images) of one deployment. Every image its
    Dockerfiles read must pass `admit` (the organization may use it) first."""
    where = workspace / deployment_id
    try:
        try:
            if spec.archive:
                log("unpacking the uploaded archive", "info")
                sha = source_checkout.unpack(Path(spec.archive), where)
            else:
                log(f"fetching {spec.repository}" + (f" at {spec.ref}" if spec.ref else ""),
                    "info")
                sha = source_checkout.checkout(spec.repository, spec.ref, where,  # type: ignore[arg-type]  # a git build has a repository
                                               credential, policy)
                log(f"checked out {sha[:12]}", "info")
        except (source_checkout.CheckoutError, OSError) as exc:
            raise BuildFailed("source-unavailable", f"cannot fetch the source: {exc}") from exc
        root = _inside(where, spec.base_directory)
        found = detect(root, spec.runtime_profile, spec.target_service)
        for reason in found.reasoning:
            log(f"detected: {reason}", "info")
        if not found.buildable:
            problem = found.unsupported[0]
            raise BuildFailed(problem["code"], f"{problem['message']} ({problem['fix']})")
        tag = f"{spec.image_repository}:{deployment_id.split('_')[-1]}"
        builder = _Builder(docker, spec, variables, log, admit, labels)
        if found.stack is not None:
            return _build_stack(found.stack, root, tag, builder, sha)
        if found.dockerfile_path:
            builder.build(root, found.dockerfile_path, tag, {}, spec.runtime_profile.build_target)
        else:
            try:
                builder.build(root, _generate(found, root, spec, variables, log), tag, {},
                              spec.runtime_profile.build_target)
            except ImageRefused as exc:  # a base image of ours: say which setting names it
                raise ImageRefused(exc.reference, exc.why, (
                    f"it is the base image launchbay builds {found.runtime_family} apps on: "
                    "set LAUNCHBAY_BUILD_BASE_IMAGES to one this server has or can pull"
                )) from exc
        start = spec.runtime_profile.start_command
        return Built(tag, sha, port=found.port, command=shlex.split(start)
                     if start and found.dockerfile_path else None)
    finally:
        shutil.rmtree(where, ignore_errors=True)


def _inside(where: Path, relative: str) -> Path:
    """`relative` under `where`, refused if it is not a folder there."""
    root = (where / relative).resolve()
    if where.resolve() not in [root, *root.parents] or not root.is_dir():
        raise BuildFailed("base-directory-missing", f"{relative} is not a folder of the source")
    return root


def _base_image(spec: BuildSpec, family: str) -> str:
    """The family's configured base image; a version asked for by the runtime profile
    (`runtimeName: python@3.11`) picks `build_base_images["python@3.11"]` when configured."""
    name, _, version = (spec.runtime_profile.runtime_name or "").partition("@")
    base = (version and name == family and spec.base_images.get(f"{family}@{version}")) \
        or spec.base_images.get(family)
    if not base:
        raise BuildFailed("no-base-image", f"no base image is configured for {family}")
    return base


def _generate(found: Detection, root: Path, spec: BuildSpec, variables: BuildVariables,
              log: Log) -> str:
    if found.runtime_family == "workspace":
        base = spec.base_images.get(found.base_image or "") or found.base_image or ""
    else:
        base = _base_image(spec, found.runtime_family)
    builder = (_base_image(spec, found.builder_family) if found.builder_family
               and (found.install_command or found.build_command) else None)
    text = dockerfiles.generate(found, base, {p.name for p in root.iterdir()}, builder,
                                arguments=sorted(variables.plain),
                                secrets=bool(variables.secrets))
    (root / GENERATED).write_text(text)
    log(f"generated a Dockerfile for {found.runtime_family} on {base}", "info")
    return GENERATED


def _build_stack(stack: Stack, root: Path, tag: str, builder: _Builder, sha: str) -> Built:
    """Builds the services that have a build context, one image each; the others run their
    image as named. Named volumes become the resource's volumes."""
    images: dict[str, str] = {}
    for service in stack.services:
        if not service.build_context:
            images[service.name] = service.image  # type: ignore[assignment]  # a service without a build context has an image (compose_files checks)
            continue
        builder.log(f"building service {service.name}", "info")
        images[service.name] = f"{tag}-{service.name}"
        builder.build(_inside(root, service.build_context), service.dockerfile or "Dockerfile",
                      images[service.name], service.build_args, service.build_target)
    # `lb-<resource>-<volume>`: the names volumes always had (their data stays theirs).
    volume_prefix = "lb-" + builder.spec.image_repository.rsplit("/", 1)[-1]

    def volumes(service):
        return [Volume(docker_name=f"{volume_prefix}-{name}", path=path, mode=mode)
                for name, path, mode in service.volumes]
    web = stack.service(stack.web)
    return Built(images[web.name], sha, port=web.port, service_name=web.name,
                 command=web.command, env=web.environment, volumes=volumes(web),
                 services=[ServicePlan(name=s.name, image=images[s.name], command=s.command,
                                       env=s.environment, volumes=volumes(s))
                           for s in stack.services if s.name != web.name])


@dataclass
class _Builder:
    """Builds the images of one release with BuildKit, once the images each Dockerfile reads
    are admitted for the organization."""

    docker: Runtime
    spec: BuildSpec
    variables: BuildVariables
    log: Log
    admit: Admit
    labels: dict[str, str]

    def build(self, root: Path, dockerfile: str, tag: str, args: dict[str, str],
              target: str | None) -> None:
        path = _inside(root, str(Path(dockerfile).parent)) / Path(dockerfile).name
        try:
            text = path.read_text(errors="replace")
        except OSError as exc:
            raise BuildFailed("dockerfile-missing", f"cannot read {dockerfile}: {exc}") from exc
        arguments = {**args, **self.variables.plain}
        try:
            for image in dockerfiles.images_used(text, arguments):
                self._admit_with_triggers(image)
        except ValueError as exc:
            raise BuildFailed("image-not-found", str(exc)) from exc
        for key in self.variables.secrets:
            if re.search(rf"^\s*ARG\s+{re.escape(key)}\b", text, re.M | re.I):
                self.log(f"{key} is a secret: it is not a build argument (it would stay in the "
                         f"image); read it with RUN --mount=type=secret,id={key}", "warn")
        secrets = {**self.variables.secrets}
        if secrets:
            secrets[dockerfiles.SECRETS_ID] = dockerfiles.secrets_file(self.variables.secrets)
        started = time.monotonic()
        try:
            for line in self.docker.build(ImageBuild(
                    context=root, dockerfile=str(path.relative_to(root)), tag=tag,
                    args=arguments, secrets=secrets, labels=self.labels, target=target,
                    timeout_seconds=self.spec.timeout_seconds)):
                self.log(line, "info")
        except BuildError as exc:
            timed_out = time.monotonic() - started >= self.spec.timeout_seconds
            raise BuildFailed("build-timeout" if timed_out else "build-failed", str(exc)) \
                from exc

    def _admit_with_triggers(self, image: str) -> None:
        """Admits `image`, and the images its ONBUILD triggers read (they run in this build)."""
        image_id = self.admit(image)
        info = self.docker.image(image_id)
        for triggered in dockerfiles.image_triggers(info.onbuild if info else []):
            self.admit(triggered)

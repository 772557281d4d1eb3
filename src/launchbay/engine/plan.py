"""The release plan a deployment freezes: what to run and how to tell it is healthy.

Operations build it from the resource's profiles when the deployment is created; the engine
only ever reads it, so a later change of the resource never changes a past deployment.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from launchbay.store.profiles import RuntimeProfile


class HealthSpec(BaseModel):
    enabled: bool = True
    path: str = "/"
    # None: any 2xx or 3xx answer counts as healthy.
    expected_status: int | None = None
    expected_text: str | None = None
    interval_seconds: float = 5
    timeout_seconds: float = 3
    retries: int = 3
    start_period_seconds: float = 10

    @property
    def deadline_seconds(self) -> float:
        """How long a new release has to become healthy before it is failed."""
        checks = self.retries * self.interval_seconds
        return self.start_period_seconds + checks + self.timeout_seconds


class Volume(BaseModel):
    docker_name: str
    path: str
    mode: str = "rw"


class BuildSpec(BaseModel):
    """Where the source is and how to build it; the image is built when the deployment runs."""

    repository: str | None = None  # a git URL or path...
    ref: str | None = None
    archive: str | None = None  # ...or an uploaded archive (tar.gz or zip) on this server
    base_directory: str = "."
    runtime_profile: RuntimeProfile = RuntimeProfile()
    base_images: dict[str, str] = {}
    image_repository: str  # built images are tagged `{image_repository}:{deployment id}`
    target_service: str | None = None  # a compose stack's web service
    # The key of the secret variable that holds the git deploy key or access token (it is
    # never passed to the build or the container).
    credential_key: str | None = None
    timeout_seconds: int = 1800


class ServicePlan(BaseModel):
    """A service of a compose stack beside the web one: on the release's own network only,
    reachable there by its name."""

    name: str
    image: str
    command: list[str] | None = None
    env: dict[str, str] = {}
    volumes: list[Volume] = []


class ReleasePlan(BaseModel):
    # Empty until a build produced it (`build` is then set); frozen afterwards.
    image: str
    command: list[str] | None = None
    env: dict[str, str] = {}  # defaults from the source (a compose file); variables win
    internal_port: int | None = None
    health: HealthSpec = HealthSpec()
    cpu_limit: float | None = None
    memory_limit_mb: int | None = None
    restart_policy: str = "unless-stopped"
    volumes: list[Volume] = []
    network: str
    aliases: list[str] = []
    labels: dict[str, str] = {}
    # Seconds the old release keeps serving in-flight requests after the switch.
    drain_seconds: float = 0
    # Stop the running release before starting this one (never two at once; a short outage).
    # If this one fails, the stopped release is started again.
    recreate: bool = False
    build: BuildSpec | None = None
    commit_sha: str | None = None
    # A compose stack: the web service's name and the other services, started first.
    service_name: str | None = None
    services: list[ServicePlan] = []
    # The source profile (as the resource stores it) the plan was made from, and whether the
    # resource adopts it once this release serves: a deploy of another image, a rollback.
    source_profile: dict[str, Any] | None = None
    adopt_source: bool = False
    # The kind of server it runs on: a replicated service on an `orchestrator-cluster`.
    target_kind: str = "single-server"

    def images(self) -> set[str]:
        return {i for i in (self.image, *(s.image for s in self.services)) if i}

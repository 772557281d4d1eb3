"""The shapes of the JSON the store keeps: a resource's profiles (its columns `source`,
`runtime_profile`, `network_profile`, `health_policy`, `access_profile`), a deployment's
environment snapshot and work items' payloads. One spelling, camelCase as on the wire, read
and written only through these models (`stored` and `Model.model_validate(column)`), by the
operations and the engine alike."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from launchbay.drivers import source_checkout


class Profile(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


def stored(profile: BaseModel) -> dict[str, Any]:
    """A profile as resources keep it (one shape for every writer)."""
    return profile.model_dump(mode="json", by_alias=True, exclude_none=True)


ARCHIVE_ID = re.compile(r"^[0-9a-f]{40}$")


class SourceProfile(Profile):
    kind: Literal["docker-image", "git", "archive", "local-folder"] = "docker-image"
    # git: the repository's URL; archive: the `archiveId` of an upload of this resource.
    locator: str | None = Field(None, max_length=2000)
    display_name: str | None = Field(None, max_length=200)
    image_name: str | None = Field(None, max_length=500, pattern=r"^[a-z0-9][a-z0-9._/:-]*$")
    image_tag: str | None = Field(None, max_length=128, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    image_digest: str | None = Field(None, pattern=r"^sha256:[a-f0-9]{64}$")
    # A branch or tag (never read as a git option), or a commit.
    git_ref: str | None = Field(None, max_length=500, pattern=r"^[A-Za-z0-9_.][^\s~^:?*\[\\]*$")
    commit_sha: str | None = Field(None, max_length=64, pattern=r"^[0-9a-f]{7,64}$")
    base_directory: str | None = Field(None, max_length=500)
    metadata: dict[str, str] = Field(default_factory=dict)

    @field_validator("locator")
    @classmethod
    def _where(cls, locator: str | None, info: ValidationInfo) -> str | None:
        """A git locator is a remote URL nothing in which git could take for an option; an
        archive's is an upload id, never a path."""
        kind = info.data.get("kind")
        if kind == "git" and locator:
            try:
                source_checkout.parse_remote(locator)
            except source_checkout.CheckoutError as exc:
                raise ValueError(str(exc)) from None
        if kind == "archive" and locator and not ARCHIVE_ID.match(locator):
            raise ValueError("an archive source's locator is the archiveId of an upload of "
                             "the resource (POST /api/resources/{id}/source/archive)")
        return locator

    @model_validator(mode="after")
    def _what_is_needed(self) -> SourceProfile:
        if self.kind == "docker-image" and not self.image_name:
            raise ValueError("a docker-image source needs imageName")
        if self.kind in ("git", "archive") and not self.locator:
            raise ValueError(f"a {self.kind} source needs locator (where it is)")
        return self

    @property
    def image(self) -> str | None:
        if not self.image_name:
            return None
        if self.image_digest:
            return f"{self.image_name}@{self.image_digest}"
        return f"{self.image_name}:{self.image_tag or 'latest'}"


PlacementConstraint = Annotated[str, Field(
    max_length=200, pattern=r"^node\.(id|hostname|role|platform\.os|platform\.arch|"
                            r"labels\.[A-Za-z0-9_.-]+)\s*(==|!=)\s*[A-Za-z0-9_.-]+$")]


class RuntimeProfile(Profile):
    strategy: Literal["auto", "dockerfile", "docker-compose", "static",
                      "workspace-commands"] = "auto"
    install_command: str | None = Field(None, max_length=4000)
    build_command: str | None = Field(None, max_length=4000)
    start_command: str | None = Field(None, max_length=4000)
    runtime_name: str | None = Field(None, max_length=100)
    publish_directory: str | None = Field(None, max_length=500)
    dockerfile_path: str | None = Field(None, max_length=500)
    docker_compose_file_path: str | None = Field(None, max_length=500)
    build_target: str | None = Field(None, max_length=200)
    health_check_path: str | None = Field(None, max_length=500, pattern=r"^/")
    cpu_limit: float | None = Field(None, gt=0, le=256)
    memory_limit_mb: int | None = Field(None, ge=6, le=1_048_576)
    restart_policy: Literal["unless-stopped", "always", "on-failure", "no"] = "unless-stopped"
    # Tasks of the resource's service on a Docker Swarm (a server runs one container), and
    # where Swarm may place them (`node.hostname==db1`, `node.labels.disk!=hdd`...).
    replicas: int = Field(1, ge=1, le=100)
    placement_constraints: list[PlacementConstraint] = Field(default_factory=list,
                                                             max_length=10)

    @property
    def pinned(self) -> bool:
        """Whether its tasks all run on one node (a local volume is then theirs to share)."""
        return any(re.match(r"^node\.(hostname|id)\s*==", c) for c in self.placement_constraints)


class NetworkProfile(Profile):
    internal_port: int | None = Field(None, ge=1, le=65535)
    upstream_protocol: Literal["http", "tcp"] = "http"
    exposure_mode: Literal["none", "reverse-proxy", "direct-port"] = "reverse-proxy"
    target_service_name: str | None = Field(None, max_length=200)
    host_port: int | None = Field(None, ge=1, le=65535)


class HttpCheck(Profile):
    method: Literal["GET", "HEAD"] = "GET"
    scheme: Literal["http"] = "http"
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    path: str = Field("/", max_length=500, pattern=r"^/")
    expected_status_code: int | None = Field(None, ge=100, le=599)
    expected_response_text: str | None = Field(None, max_length=500)


class HealthPolicy(Profile):
    enabled: bool = True
    type: Literal["http", "none"] = "http"
    interval_seconds: int = Field(5, ge=1, le=3600)
    timeout_seconds: int = Field(3, ge=1, le=600)
    retries: int = Field(3, ge=1, le=100)
    start_period_seconds: int = Field(10, ge=0, le=3600)
    http: HttpCheck = Field(default_factory=HttpCheck)


class AccessProfile(Profile):
    generated_access_mode: Literal["inherit", "disabled"] = "inherit"
    path_prefix: str = Field("/", max_length=500, pattern=r"^/")


class SnapshotVariable(Profile):
    key: str
    value: str  # sealed (SecretBox) when the variable is a secret
    scope: str = ""
    exposure: str = "runtime"
    kind: str = "plain-config"
    is_secret: bool = False


class EnvironmentSnapshot(Profile):
    """The variables a deployment was given, frozen when it was created (`environment_snapshot`
    of a deployment)."""

    id: str | None = None
    environment_id: str | None = None
    created_at: str | None = None
    precedence: list[str] = Field(default_factory=list)
    variables: list[SnapshotVariable] = Field(default_factory=list)


class MaintenancePayload(Profile):
    """What a `runtime-maintenance` work item does: a runtime control (stop, start,
    restart, scale) or removing a deleted resource's containers, then its row (and its
    environment, made for it alone)."""

    action: str
    replicas: int | None = None  # of a `scale`
    delete_resource: bool = False
    delete_environment: bool = False


class RoutePayload(Profile):
    """A `route-realization` work item: the binding it is about, if one."""

    domain_binding_id: str | None = None


class ObservedStatus(Profile):
    status: str = "unknown"


class ObservedRuntime(Profile):
    lifecycle: str = "unknown"
    health: str = "unknown"


class ObservedDeployment(Profile):
    id: str


class HealthRecord(Profile):
    """What a health observation keeps (`health_observations.summary`, a `resources.health/v1`
    summary): the parts its history shows."""

    observed_at: str | None = None
    overall: str
    runtime: ObservedRuntime = Field(default_factory=ObservedRuntime)
    public_access: ObservedStatus = Field(default_factory=ObservedStatus)
    proxy: ObservedStatus = Field(default_factory=ObservedStatus)
    health_policy: ObservedStatus = Field(default_factory=ObservedStatus)
    latest_deployment: ObservedDeployment | None = None


class UserClaims(BaseModel):
    """What `users.claims` keeps of a person signed in with OpenID Connect: the provider's
    claims about them (kept as given, any name), with the configured username and groups
    claims under `username` and `groups`."""

    model_config = ConfigDict(extra="allow")
    username: str | None = None
    groups: list[str] = []

    def claim(self, name: str) -> Any:
        """Any claim kept, by the provider's name for it (a template's owner claim)."""
        return getattr(self, name, None) if name in type(self).model_fields \
            else (self.model_extra or {}).get(name)

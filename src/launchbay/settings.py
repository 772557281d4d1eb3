"""Runtime settings: `LAUNCHBAY_*` environment variables, then `launchbay.toml`, then defaults."""

from __future__ import annotations

import ipaddress
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

if TYPE_CHECKING:
    from launchbay.drivers.source_checkout import GitPolicy


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "launchbay"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LAUNCHBAY_",
        toml_file=os.environ.get("LAUNCHBAY_CONFIG", "launchbay.toml"),
        extra="ignore",
    )

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = None
    listen: str = "127.0.0.1:8420"
    # Reverse proxies whose X-Forwarded-For/-Proto are believed (a proxy on this machine, by
    # default): behind one, the client's address (login limits, sessions) and HTTPS (Secure
    # cookies) are what it says; from anyone else these headers are ignored.
    trusted_proxies: list[str] = ["127.0.0.1", "::1"]
    base_domain: str = "localhost"
    master_secret: str | None = None
    session_ttl_hours: int = 24 * 14
    # Password guessing: after `login_max_failures` wrong attempts for one e-mail address (or
    # `login_max_failures_per_address` from one client address, across e-mail addresses)
    # within `login_window_seconds`, logins there are refused for `login_lockout_seconds`,
    # doubling with each lock-out (at most an hour).
    login_max_failures: int = 5
    login_max_failures_per_address: int = 20
    login_window_seconds: int = 900
    login_lockout_seconds: int = 30
    # The engine: worker threads in `serve`, how long a claimed work item stays leased without
    # a heartbeat, how often idle workers look for work, and how often the reconciler sweeps.
    # Releases mostly wait on the engine: two per core (at most 16; more only contend for the
    # CPU with dockerd, measured by bench/deploy_latency.py). Builds use the CPU:
    # `build_slots` of them at once (others wait for a slot; image deploys never do).
    workers: int = Field(default_factory=lambda: min(16, 2 * (os.cpu_count() or 1)), ge=0)
    build_slots: int = Field(default_factory=lambda: max(1, (os.cpu_count() or 1) // 2), ge=1)
    work_lease_seconds: float = 30
    worker_poll_seconds: float = 0.5
    reconcile_seconds: float = 60
    health_observe_seconds: float = 30
    # Health history: a row when a resource's health state changes (within a budget, so that
    # a flapping app cannot fill the store) and an hour's row of per-minute states, both kept
    # `health_retention_days`; the monitor probes `health_concurrency` resources at once.
    health_retention_days: float = 7
    health_concurrency: int = Field(16, ge=1, le=256)
    # How often hosted deployments with auto-update look for a new image behind their tag.
    auto_update_seconds: float = 60
    # The edge proxy (Caddy): launchbay runs its own unless `edge_manage` is off, in which case
    # it drives the Caddy whose admin API answers at `edge_admin`.
    # Builds from source: the base image of each detected runtime (public images by default),
    # and limits that keep one build from taking the host down.
    build_base_images: dict[str, str] = {
        "python": "python:3.12-slim", "nodejs": "node:20-slim", "golang": "golang:1.22",
        "php": "php:8.3-cli", "ruby": "ruby:3.3-slim", "java": "maven:3-eclipse-temurin-21",
        "dotnet": "mcr.microsoft.com/dotnet/sdk:8.0", "static": "busybox:1.36"}
    # Databases: the image of each kind (any organization may run them, and their backups
    # run in the same image, so the tools match the server), and where backups are written
    # on the server (`{data_dir}/backups` by default).
    database_images: dict[str, str] = {"postgres": "postgres:16", "mysql": "mariadb:11",
                                       "redis": "redis:7"}
    backups_dir: Path | None = None
    # The image storage volumes are archived and restored with (it needs `sh` and `tar`).
    volume_tool_image: str = "busybox:1.36"
    backup_schedule_seconds: float = 30  # due backup policies and rotations are looked at
    # Networks (CIDR) object stores may be at besides public addresses (as for git remotes).
    backup_allowed_networks: list[str] = []
    # Networks (CIDR) a GitHub App's API (a GitHub Enterprise Server) may be at besides public
    # addresses; and how often the outcome of deployments GitHub events made is reported.
    integration_allowed_networks: list[str] = []
    commit_status_seconds: float = 5
    # Networks (CIDR) servers reached over SSH may be at besides public addresses, and how
    # long a connection to one may take.
    server_allowed_networks: list[str] = []
    ssh_connect_timeout: float = 10
    # Seconds between background probes of servers reached over SSH (two failures in a row
    # make one unreachable).
    server_probe_seconds: float = 60
    # Scheduled tasks: how often due tasks are fired and running runs looked at (the lag of a
    # fire is at most this), how late a fire may be before it counts as missed, the first
    # retry's backoff (doubling), and what each task keeps: runs, and lines of each run.
    task_schedule_seconds: float = 1.0
    task_misfire_grace_seconds: float = 60
    task_retry_backoff_seconds: float = 10
    task_runs_kept: int = 100
    task_max_concurrent_runs: int = 5  # of one task with `allow` (more fires are skipped)
    task_log_lines_kept: int = 5000
    # How often the pull requests previewed are asked about (through the GitHub App), so that
    # a preview whose close was never sent still goes.
    preview_reconcile_seconds: float = 600
    # Where git repositories may be fetched from: public addresses, and these networks (CIDR)
    # besides; never the denied ones. Folders of the server are fetched only under
    # `git_local_folders` (for an operator's own mirrors; a user could otherwise read the disk).
    git_allowed_networks: list[str] = []
    git_denied_networks: list[str] = []
    git_local_folders: list[str] = []
    build_timeout_seconds: int = 1800
    upload_max_mb: int = 200
    # Images of the local engine every organization may use as they are (patterns such as
    # `mirror.example.com/*`); the builders' base images always are. Any other image is
    # pulled for the organization that names it, so the registry decides who gets it.
    shared_images: list[str] = []
    # Built images kept per resource: the current one and the newest successful releases (the
    # rollback targets); older ones are pruned. Volumes are never pruned.
    keep_images: int = 5
    edge_enabled: bool = True
    # The edge proxy outlives the control plane: apps stay online while launchbay restarts or
    # upgrades, and the next start adopts the running Caddy (`launchbay proxy stop` stops
    # it). `edge_stop_on_exit` stops it with the control plane instead (tests, throwaways).
    edge_stop_on_exit: bool = False
    edge_manage: bool = True
    edge_admin: str = "127.0.0.1:2019"
    edge_bind: str = ""  # the address Caddy listens on; empty: every interface
    edge_http_port: int = 80
    edge_https_port: int = 443
    # Seconds a replaced release keeps serving the requests it has before it is stopped.
    edge_drain_seconds: float = 2
    # The image of the edge proxy on each node of a Docker Swarm (a container of it per node).
    swarm_edge_image: str = "caddy:2"
    # TLS of generated hostnames: disabled (the default `localhost` base domain cannot have a
    # public certificate), internal (Caddy's CA) or auto (ACME, for a real wildcard domain).
    edge_generated_tls: Literal["disabled", "internal", "auto"] = "disabled"
    # Where custom domains should point (the server's public addresses or hostnames); domain
    # ownership checks compare DNS answers with these. The resolver is `IP:PORT`, or the system's.
    edge_public_addresses: list[str] = []
    # TLS of domains bound through a face whose requests have no TLS field (Dployr's `domain`
    # and its proxy routes): auto (ACME), internal (Caddy's CA) or disabled.
    edge_domain_tls: Literal["disabled", "internal", "auto"] = "auto"
    dns_resolver: str | None = None
    # ACME for `auto` TLS: the directory (Let's Encrypt by default), a contact address, and a
    # PEM file of extra roots to trust for the directory itself (a private or test CA).
    acme_directory: str = "https://acme-v02.api.letsencrypt.org/directory"
    acme_email: str | None = None
    acme_trusted_roots: str | None = None
    # Registration with a base control plane (Dployr's /system/register and /system/domain):
    # the claims it signs are verified against its public key (PEM text or a file) and issuer.
    # As a base, launchbay signs claims as `claims_issuer` with a key generated in the data dir.
    base_issuer: str | None = None
    base_public_key: str | None = None
    claims_issuer: str = "launchbay"
    claims_audience: str = "dployr-instance"
    # Plans of hosted deployments (the Shipyard face): how many each plan allows (None:
    # unlimited), and the plan of an organization nobody assigned one.
    plans: dict[str, int | None] = {"free": 1, "business": 10, "enterprise": None}
    default_plan: str = "free"
    # Ephemeral environments: how many a user may run (a template's `quota` may say less),
    # what one extension adds when the template does not say, how often expired ones (and
    # expired previews of pull requests) go.
    instance_quota: int = 5
    instance_extend_seconds: int = 7200
    instance_reap_seconds: float = 30
    # How often warm pools are topped up (a claim is refilled within this time).
    instance_pool_seconds: float = 10
    # OpenID Connect sign-in (the Dploy face's /auth/*): the provider, this client's
    # credentials, the scopes asked for, the claims that hold the username and the groups, the
    # organization (slug) users join as developers at first sign-in (default: the instance's
    # first), and the origins `return_url` may point at besides the face's own.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_scopes: str = "openid profile email groups"
    oidc_username_claim: str = "preferred_username"
    oidc_groups_claim: str = "groups"
    oidc_organization: str | None = None
    oidc_redirect_url: str | None = None  # default: the face's own /auth/callback
    oidc_return_origins: list[str] = []
    # The folder of template files (YAML, one template each), loaded at start; default
    # `{data_dir}/templates`.
    templates_dir: Path | None = None
    # Whether the templates shipped with launchbay (webterm, static-site) are in the catalog;
    # a template file or an API change of the same name takes precedence.
    shipped_templates: bool = True
    # Where `system install` may fetch another launchbay version from (a pip index URL or a
    # folder of wheels); without one, only the running version "installs".
    upgrade_source: str | None = None

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("listen must be HOST:PORT")
        return value

    @field_validator("git_allowed_networks", "git_denied_networks")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # a ValueError names the bad one
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def git_policy(self) -> GitPolicy:
        from launchbay.drivers.source_checkout import GitPolicy

        return GitPolicy(local_folders=tuple(self.git_local_folders),
                         allowed_networks=tuple(self.git_allowed_networks),
                         denied_networks=tuple(self.git_denied_networks))

    @property
    def resolved_templates_dir(self) -> Path:
        return self.templates_dir or self.data_dir / "templates"

    @property
    def resolved_backups_dir(self) -> Path:
        return self.backups_dir or self.data_dir / "backups"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'launchbay.db'}"

    @cached_property
    def secret_key(self) -> bytes:
        """The master secret; generated into the data dir (mode 0600) on first use."""
        if self.master_secret:
            return self.master_secret.encode()
        path = self.data_dir / "master.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(os.urandom(32).hex())
        return path.read_text().strip().encode()

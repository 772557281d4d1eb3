"""Integrations (seed 004's `integrations`): an organization's GitHub App connection, the
repositories its installation reaches, and the commit statuses that tell a pull request or a
commit what its deployment did.

The connection names the app, its installation and its API (github.com's, or a GitHub
Enterprise Server's at an address the operator allows), with the app's private key, sealed and
never shown again. A deployment a GitHub event made (a push's, a preview's) gets a commit
status when the connection reports them: `pending` at once, then `success` with the URL it
serves at, or `failure`. Reports are made by a periodic job on behalf of whoever set the
connection up, retried with a growing delay, and given up after `ATTEMPTS`; a report that
fails never changes the deployment.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import HttpUrl
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from launchbay.drivers.github_app import GitHubApp, GitHubError, check_private_key
from launchbay.engine.backups import outbound_problem
from launchbay.operations.catalog import Context, operation
from launchbay.operations.deployments import deployment_out
from launchbay.operations.errors import Invalid, NotFound
from launchbay.operations.schemas import Field, Schema, Timestamp
from launchbay.store.models import CommitStatus, Deployment, GitHubConnection, new_id, utcnow

ATTEMPTS = 10  # reports of one status before it is given up
GITHUB = "https://api.github.com"

# -- the catalog of integrations ----------------------------------------------------------------


class ConnectionMode(Schema):
    key: str
    title: str
    audience: str
    external_setup: str
    creates_external_resources: bool
    secret_material_required: bool
    description: str


class Diagnostic(Schema):
    code: str
    severity: Literal["info", "warning", "error"]
    message: str


class Configuration(Schema):
    status: Literal["configured", "not-configured"]
    diagnostics: list[Diagnostic]


class ProviderApp(Schema):
    install_url: str | None
    callback_url: str | None
    webhook_url: str


class Setup(Schema):
    provider_app: ProviderApp


class Integration(Schema):
    key: str
    title: str
    capabilities: list[str]
    default_connection_mode_key: str
    connection_modes: list[ConnectionMode]
    setup: Setup
    configuration: Configuration


class IntegrationList(Schema):
    items: list[Integration]


class NoInput(Schema):
    pass


@operation("integrations.list")
def list_integrations(ctx: Context, data: NoInput) -> IntegrationList:
    """The integrations launchbay has, and whether the organization set each up."""
    c = ctx.db.get(GitHubConnection, ctx.org_id)
    diagnostics = [] if c else [Diagnostic(
        code="github-app-not-connected", severity="info",
        message="Pull requests and pushes still reach resources through their webhooks; "
                "connect a GitHub App to list repositories and report deployments' outcomes "
                "on commits.")]
    if c and c.suspended_at:
        diagnostics.append(Diagnostic(code="github-app-suspended", severity="warning",
                                      message=f"the installation is suspended ({c.suspended_at})"))
    return IntegrationList(items=[Integration(
        key="github", title="GitHub", capabilities=[
            "source-events", "preview-environments", "repositories", "commit-statuses"],
        default_connection_mode_key="github-app", connection_modes=[ConnectionMode(
            key="github-app", title="GitHub App", audience="organization-admin",
            external_setup="github-app-installation", creates_external_resources=False,
            secret_material_required=True,
            description="An app the organization creates on GitHub (or its GitHub Enterprise "
                        "Server) and installs on its repositories: its id, installation id and "
                        "private key are given here.")],
        setup=Setup(provider_app=ProviderApp(
            install_url=None, callback_url=None,
            webhook_url="/api/integrations/github/source-events")),
        configuration=Configuration(status="configured" if c else "not-configured",
                                    diagnostics=diagnostics))])


# -- the GitHub App connection ------------------------------------------------------------------


class ConnectionOut(Schema):
    account_login: str | None
    account_type: str | None
    callback_url: str | None
    configuration_status: Literal["configured", "not-configured"]
    connected: bool
    install_url: str | None
    installation_id: str | None
    app_id: str | None
    api_url: str | None
    repository_count: int | None
    repositories_selection: str | None
    report_commit_statuses: bool
    suspended_at: str | None
    tenant_id: str
    updated_at: Timestamp | None
    webhook_url: str


def _connection_out(ctx: Context, c: GitHubConnection | None) -> ConnectionOut:
    return ConnectionOut(
        account_login=c.account_login if c else None,
        account_type=c.account_type if c else None, callback_url=None,
        configuration_status="configured" if c else "not-configured",
        connected=bool(c) and not (c and c.suspended_at), install_url=None,
        installation_id=c.installation_id if c else None, app_id=c.app_id if c else None,
        api_url=c.api_url if c else None, repository_count=None,
        repositories_selection=c.repositories_selection if c else None,
        report_commit_statuses=c.report_statuses if c else False,
        suspended_at=c.suspended_at if c else None, tenant_id=ctx.org_id,
        updated_at=c.updated_at if c else None,
        webhook_url="/api/integrations/github/source-events")


@operation("integrations.github.app-connection.show")
def show_connection(ctx: Context, data: NoInput) -> ConnectionOut:
    """The organization's GitHub App connection (never its private key)."""
    return _connection_out(ctx, ctx.db.get(GitHubConnection, ctx.org_id))


class ConnectionIn(Schema):
    app_id: str = Field(pattern=r"^[0-9]{1,20}$")
    installation_id: str = Field(pattern=r"^[0-9]{1,20}$")
    private_key: str = Field(min_length=1, max_length=20000)
    api_url: HttpUrl = HttpUrl(GITHUB)
    report_commit_statuses: bool = True


def app_of(ctx: Context, c: GitHubConnection) -> GitHubApp:
    """The connection's client, once its API is at an address launchbay may reach."""
    if problem := outbound_problem(c.api_url, ctx.settings,
                                   allowed=ctx.settings.integration_allowed_networks):
        raise GitHubError(0, problem)
    return GitHubApp(api=c.api_url, app_id=c.app_id, installation_id=c.installation_id,
                     private_key=ctx.secrets.decrypt(c.sealed_private_key))


@operation("integrations.github.app-connection.configure", role="admin",
           audit="integration.github-connected")
def configure_connection(ctx: Context, data: ConnectionIn) -> ConnectionOut:
    """Connects the organization's GitHub App installation: checked with GitHub at once (the
    app's token, the installation's account), then kept with its private key sealed."""
    try:
        check_private_key(data.private_key)
    except ValueError as exc:
        raise Invalid("Validation failed", details=[
            {"field": "privateKey", "message": str(exc)}]) from None
    api = str(data.api_url).rstrip("/")
    c = ctx.db.get(GitHubConnection, ctx.org_id) or GitHubConnection(
        organization_id=ctx.org_id, created_by=ctx.user_id)
    c.app_id, c.installation_id, c.api_url = data.app_id, data.installation_id, api
    c.sealed_private_key = ctx.secrets.encrypt(data.private_key)
    try:
        found = app_of(ctx, c).installation()
    except GitHubError as exc:
        raise Invalid(f"GitHub does not accept this app: {exc.message}",
                      code="github_app_invalid") from None
    account = found.get("account")
    account = account if isinstance(account, dict) else {}
    c.account_login, c.account_type = account.get("login"), account.get("type")
    c.repositories_selection = found.get("repository_selection")
    c.suspended_at = found.get("suspended_at")
    c.report_statuses, c.updated_at = data.report_commit_statuses, utcnow()
    c.created_by = ctx.user_id
    ctx.db.add(c)
    ctx.audit(ctx.org_id, appId=c.app_id, installationId=c.installation_id, apiUrl=api,
              account=c.account_login, reportCommitStatuses=c.report_statuses)
    return _connection_out(ctx, c)


@operation("integrations.github.app-connection.delete", role="admin",
           audit="integration.github-disconnected")
def delete_connection(ctx: Context, data: NoInput) -> ConnectionOut:
    """Forgets the connection and its private key; statuses not yet reported are dropped."""
    c = ctx.db.get(GitHubConnection, ctx.org_id)
    if c is None:
        raise NotFound("no GitHub App is connected", code="github_app_not_connected")
    ctx.db.delete(c)
    for s in ctx.db.scalars(select(CommitStatus).where(CommitStatus.organization_id == ctx.org_id,
                                                       CommitStatus.done.is_(False))):
        s.done, s.last_error = True, "the GitHub App was disconnected"
    ctx.audit(ctx.org_id, appId=c.app_id)
    return _connection_out(ctx, None)


class RepositoryFilter(Schema):
    search: str | None = Field(None, max_length=200)


class RepositoryOut(Schema):
    id: str
    name: str
    full_name: str
    owner_login: str
    description: str | None
    private: bool
    default_branch: str | None
    html_url: str | None
    clone_url: str | None
    updated_at: str | None


class RepositoryList(Schema):
    items: list[RepositoryOut]


def _connected(ctx: Context) -> GitHubConnection:
    c = ctx.db.get(GitHubConnection, ctx.org_id)
    if c is None:
        raise NotFound("no GitHub App is connected", code="github_app_not_connected")
    return c


@operation("integrations.github.repositories")
def list_repositories(ctx: Context, data: RepositoryFilter) -> RepositoryList:
    """The repositories the installation reaches (asked of GitHub now)."""
    app = app_of_or_refused(ctx, _connected(ctx))
    ctx.end_reads()  # GitHub answers in its own time; nothing waits on the store meanwhile
    try:
        found = app.repositories(data.search)
    except GitHubError as exc:
        raise Invalid(f"GitHub refused: {exc.message}", code="github_unavailable") from None
    return RepositoryList(items=[RepositoryOut(
        id=str(r.get("id", "")), name=str(r.get("name", "")),
        full_name=str(r.get("full_name", "")),
        owner_login=str((r.get("owner") or {}).get("login", "")),
        description=r.get("description"), private=bool(r.get("private")),
        default_branch=r.get("default_branch"), html_url=r.get("html_url"),
        clone_url=r.get("clone_url"), updated_at=r.get("updated_at")) for r in found])


def app_of_or_refused(ctx: Context, c: GitHubConnection) -> GitHubApp:
    try:
        return app_of(ctx, c)
    except GitHubError as exc:
        raise Invalid(exc.message, code="github_unavailable") from None


# -- commit statuses ----------------------------------------------------------------------------


def track(ctx: Context, source_kind: str, repository: str, sha: str, d: Deployment,
          context: str) -> None:
    """Has the deployment's outcome reported on the commit, when the organization's GitHub App
    reports statuses and the event was GitHub's (`repository`: `host/owner/name`)."""
    c = ctx.db.get(GitHubConnection, ctx.org_id)
    if c is None or not c.report_statuses or source_kind != "github" or not sha:
        return
    ctx.db.add(CommitStatus(id=new_id("cst"), organization_id=ctx.org_id, deployment_id=d.id,
                            repository=repository.partition("/")[2], sha=sha, context=context))


STATES = {"succeeded": "success", "failed": "failure", "canceled": "error",
          "rolled-back": "success"}


class ReportOut(Schema):
    reported: int
    failed: int
    given_up: int


class ReportIn(Schema):
    limit: int = Field(100, gt=0, le=500)


@operation("integrations.github.commit-statuses.report", role="admin",
           audit="integration.github-statuses-reported")
def report_statuses(ctx: Context, data: ReportIn) -> ReportOut:
    """Reports the deployments whose commit status is due (what the control plane does every
    few seconds on behalf of whoever connected the app): each one's state now, once."""
    c = ctx.db.get(GitHubConnection, ctx.org_id)
    due = ctx.db.execute(select(CommitStatus, Deployment).join(
        Deployment, Deployment.id == CommitStatus.deployment_id, isouter=True).where(
        CommitStatus.organization_id == ctx.org_id, CommitStatus.done.is_(False),
        CommitStatus.next_attempt_at <= utcnow()).limit(data.limit)).all()
    out = ReportOut(reported=0, failed=0, given_up=0)
    if not due:
        ctx.unchanged = True
        return out
    for status, d in due:
        state = "error" if d is None else STATES.get(d.status, "pending")
        if state == status.reported_state:
            status.next_attempt_at = utcnow() + timedelta(seconds=ctx.settings.
                                                          commit_status_seconds)
            continue
        try:
            if c is None:
                raise GitHubError(0, "no GitHub App is connected")
            shown = deployment_out(ctx, d) if d is not None else None
            app_of(ctx, c).status(
                status.repository, status.sha, state, context=status.context,
                description={"pending": "deploying", "success": "serving",
                             "failure": f"failed: {shown.error_code if shown else ''}",
                             "error": "the deployment is gone or canceled"}[state],
                target_url=shown.url if shown and state == "success" else None)
        except GitHubError as exc:
            status.attempts += 1
            status.last_error = exc.message
            status.done = status.attempts >= ATTEMPTS
            status.next_attempt_at = utcnow() + timedelta(seconds=min(
                3600, ctx.settings.commit_status_seconds * 2 ** status.attempts))
            out.given_up += status.done
            out.failed += not status.done
        else:
            status.reported_state, status.last_error, status.attempts = state, None, 0
            status.done = state != "pending"
            status.next_attempt_at = utcnow()
            out.reported += 1
        status.updated_at = utcnow()
    if out.reported or out.failed or out.given_up:
        ctx.audit(ctx.org_id, reported=out.reported, failed=out.failed, givenUp=out.given_up)
    else:  # deployments still under way, their `pending` told already
        ctx.unchanged = True
    return out


def due(db: DbSession, now: datetime) -> list[tuple[str, str, dict[str, Any]]]:
    """(user, organization, input) of each organization with commit statuses to report."""
    orgs = db.execute(select(CommitStatus.organization_id, GitHubConnection.created_by).join(
        GitHubConnection, GitHubConnection.organization_id == CommitStatus.organization_id
    ).where(CommitStatus.done.is_(False), CommitStatus.next_attempt_at <= now).distinct()
        .limit(100)).all()
    return [(user, org, {"limit": 100}) for org, user in orgs]


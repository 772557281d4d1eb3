"""Projects: the unit that groups an application's environments and resources."""

from __future__ import annotations

import re
from typing import Literal

from sqlalchemy import exists, func, or_, select
from sqlalchemy.exc import IntegrityError

from launchbay.operations.catalog import Context, operation
from launchbay.operations.errors import Conflict, Invalid, NotFound
from launchbay.operations.removal import forget_databases, remove_resources
from launchbay.operations.schemas import CountOut, Field, Id, IdOut, Name, Schema, Timestamp
from launchbay.slugs import slugify
from launchbay.store.models import (
    Environment,
    EnvironmentVariable,
    LifecycleStatus,
    Project,
    Resource,
    new_id,
    utcnow,
)


class ProjectOut(Schema):
    id: str
    organization_id: str
    name: str
    slug: str
    description: str | None
    lifecycle_status: Literal["active", "archived"]
    archived_at: Timestamp | None
    archive_reason: str | None
    created_at: Timestamp


def _out(p: Project) -> ProjectOut:
    return ProjectOut(id=p.id, organization_id=p.organization_id, name=p.name, slug=p.slug,
                      description=p.description, lifecycle_status=p.lifecycle_status,
                      archived_at=p.archived_at, archive_reason=p.archive_reason,
                      created_at=p.created_at)


def get_project(ctx: Context, project_id: str, *, active: bool = False) -> Project:
    """The project if it belongs to the caller's organization; 404 otherwise."""
    project = ctx.db.get(Project, project_id)
    if project is None or project.organization_id != ctx.org_id:
        raise NotFound("project not found", code="project_not_found")
    if active and project.lifecycle_status != LifecycleStatus.ACTIVE:
        raise Conflict("the project is archived; restore it first", code="project_archived")
    return project


# The slugs of the features' own projects (store.models.ProjectKind), made on first use.
RESERVED = re.compile(r"^(services|ephemeral|hosted-.+)$")


def _slug_free(ctx: Context, name: str, except_id: str | None = None) -> str:
    slug = slugify(name)
    if RESERVED.match(slug):
        raise Conflict(f"the project name {slug!r} is reserved for launchbay's own projects",
                       code="project_name_reserved")
    clash = ctx.db.scalar(select(Project.id).where(
        Project.organization_id == ctx.org_id, Project.slug == slug, Project.id != except_id))
    if clash:
        raise Conflict(f"a project named {slug!r} already exists", code="project_exists",
                       details={"projectId": clash})
    return slug


@operation("projects.count")
def count_projects(ctx: Context, _: Schema) -> CountOut:
    """How many projects the organization has."""
    return CountOut(count=ctx.db.scalar(select(func.count()).select_from(Project).where(
        Project.organization_id == ctx.org_id)) or 0)


class ProjectList(Schema):
    items: list[ProjectOut]


class ListIn(Schema):
    limit: int = Field(100, gt=0, le=500)


@operation("projects.list")
def list_projects(ctx: Context, data: ListIn) -> ProjectList:
    """The organization's projects by name."""
    rows = ctx.db.scalars(select(Project).where(Project.organization_id == ctx.org_id)
                          .order_by(Project.name, Project.id).limit(data.limit))
    return ProjectList(items=[_out(p) for p in rows])


class ProjectCreate(Schema):
    name: Name
    description: str | None = Field(None, max_length=2000)


@operation("projects.create", role="developer", audit="project.created")
def create_project(ctx: Context, data: ProjectCreate) -> IdOut:
    """Creates a project; its slug comes from the name and is unique in the organization."""
    project = Project(id=new_id("prj"), organization_id=ctx.org_id, name=data.name,
                      slug=_slug_free(ctx, data.name), description=data.description)
    ctx.db.add(project)
    try:
        ctx.db.flush()
    except IntegrityError:  # a concurrent create took the slug
        raise Conflict("a project with this name already exists", code="project_exists") from None
    ctx.audit(project.id, name=project.name)
    return IdOut(id=project.id)


class ProjectRef(Schema):
    project_id: Id


@operation("projects.show")
def show_project(ctx: Context, data: ProjectRef) -> ProjectOut:
    """One project."""
    return _out(get_project(ctx, data.project_id))


class ProjectRename(ProjectRef):
    name: Name


@operation("projects.rename", role="developer", audit="project.renamed")
def rename_project(ctx: Context, data: ProjectRename) -> IdOut:
    """Renames a project (its slug follows)."""
    project = get_project(ctx, data.project_id, active=True)
    previous = project.name
    project.slug = _slug_free(ctx, data.name, except_id=project.id)
    project.name = data.name
    ctx.audit(project.id, previousName=previous, name=data.name)
    return IdOut(id=project.id)


class ProjectDescribe(ProjectRef):
    description: str | None = Field(None, max_length=2000)


@operation("projects.describe", role="developer", audit="project.description-changed")
def describe_project(ctx: Context, data: ProjectDescribe) -> IdOut:
    """Sets or clears a project's description."""
    project = get_project(ctx, data.project_id, active=True)
    project.description = data.description or None
    ctx.audit(project.id)
    return IdOut(id=project.id)


class ProjectArchive(ProjectRef):
    reason: str | None = Field(None, max_length=500)


@operation("projects.archive", role="admin", audit="project.archived")
def archive_project(ctx: Context, data: ProjectArchive) -> IdOut:
    """Archives a project: it stays readable, and changes to it are refused until restored."""
    project = get_project(ctx, data.project_id, active=True)
    project.lifecycle_status, project.archived_at = LifecycleStatus.ARCHIVED, utcnow()
    project.archive_reason = data.reason
    ctx.audit(project.id, reason=data.reason)
    return IdOut(id=project.id)


@operation("projects.restore", role="admin", audit="project.restored")
def restore_project(ctx: Context, data: ProjectRef) -> IdOut:
    """Makes an archived project active again."""
    project = get_project(ctx, data.project_id)
    if project.lifecycle_status != LifecycleStatus.ARCHIVED:
        raise Conflict("the project is not archived", code="project_not_archived")
    project.lifecycle_status = LifecycleStatus.ACTIVE
    project.archived_at, project.archive_reason = None, None
    ctx.audit(project.id)
    return IdOut(id=project.id)


class Blocker(Schema):
    kind: str
    related_entity_id: str | None = None
    related_entity_type: str | None = None
    count: int


class DeleteCheck(Schema):
    schema_version: str = "projects.delete-check/v1"
    project_id: str
    lifecycle_status: str
    eligible: bool
    blockers: list[Blocker]
    checked_at: Timestamp


def _blockers(ctx: Context, project: Project) -> list[Blocker]:
    """What deleting would lose: resources (their containers would be orphaned), and
    environments still in use (with resources or variables). Empty environments go with it."""
    blockers = []
    if project.lifecycle_status == LifecycleStatus.ACTIVE:
        blockers.append(Blocker(kind="active-project", related_entity_id=project.id,
                                related_entity_type="project", count=1))
    used = or_(exists().where(Resource.environment_id == Environment.id),
               exists().where(EnvironmentVariable.environment_id == Environment.id))
    environments = ctx.db.scalar(select(func.count()).select_from(Environment).where(
        Environment.project_id == project.id,
        Environment.lifecycle_status != LifecycleStatus.ARCHIVED, used))
    if environments:
        blockers.append(Blocker(kind="environment", related_entity_type="environment",
                                count=environments))
    resources = ctx.db.scalar(select(func.count()).select_from(Resource).where(
        Resource.project_id == project.id))
    if resources:
        blockers.append(Blocker(kind="resource", related_entity_type="resource",
                                count=resources))
    return blockers


@operation("projects.delete-check")
def check_project_delete(ctx: Context, data: ProjectRef) -> DeleteCheck:
    """What still stands in the way of deleting a project."""
    project = get_project(ctx, data.project_id)
    blockers = _blockers(ctx, project)
    return DeleteCheck(project_id=project.id, lifecycle_status=project.lifecycle_status,
                       eligible=not blockers, blockers=blockers, checked_at=utcnow())


class ProjectConfirmation(Schema):
    project_id: Id


class ProjectDelete(ProjectRef):
    confirmation: ProjectConfirmation
    # Also delete its resources (their containers and routes; never their volumes) and its
    # environments in use.
    with_resources: bool = False


@operation("projects.delete", role="admin", audit="project.deleted")
def delete_project(ctx: Context, data: ProjectDelete) -> IdOut:
    """Deletes an archived project with its environments; its resources too if asked (else
    it must have none). Needs the id as confirmation."""
    project = get_project(ctx, data.project_id)
    if data.confirmation.project_id != project.id:
        raise Invalid("confirmation.projectId does not match", code="confirmation_mismatch")
    blockers = [b for b in _blockers(ctx, project) if not data.with_resources
                or b.kind == "active-project"]
    if blockers:
        raise Conflict("the project cannot be deleted yet", code="project_delete_blocked",
                       details={"blockers": [b.model_dump(by_alias=True) for b in blockers]})
    forget_databases(ctx, list(ctx.db.scalars(select(Environment.id).where(
        Environment.project_id == project.id))))
    remove_resources(ctx, ctx.db.scalars(select(Resource).where(
        Resource.project_id == project.id)).all())
    ctx.db.delete(project)
    ctx.audit(project.id, name=project.name)
    return IdOut(id=project.id)

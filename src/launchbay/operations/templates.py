"""Templates: the instance's catalog of things users run in one call (a hosted deployment, an
ephemeral environment).

A template names what to run (an image, or a compose stack whose services all have images),
the parameters a user fills in (`${name}` in the blueprint), and the lifetime and sharing
policy of what is made from it. The catalog is the instance's: every organization sees the
visible, enabled templates; only operators (admins of the instance's first organization)
change it. Files in the templates folder are loaded at start; a file's template is reloaded
when the file changes, and the API may change it meanwhile.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import re
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from launchbay.engine.build.compose_files import ComposeError, parse
from launchbay.operations.catalog import Context, operation
from launchbay.operations.compat.blueprints import put_variables, split_image
from launchbay.operations.edge.domains import realize
from launchbay.operations.errors import Conflict, Invalid, NotFound, validation_failed
from launchbay.operations.resources import (
    archive_source,
)
from launchbay.operations.schemas import UNPAGED_MAX, Field, Schema, Timestamp
from launchbay.operations.servers import (
    default_server,
    operators_organization,
    require_instance_operator,
)
from launchbay.store import audit
from launchbay.store.models import (
    Deployment,
    DomainBinding,
    Environment,
    LifecycleStatus,
    Resource,
    Template,
    new_id,
    newest_deployments,
    utcnow,
)
from launchbay.store.profiles import (
    AccessProfile,
    MaintenancePayload,
    NetworkProfile,
    RuntimeProfile,
    SourceProfile,
    stored,
)

log = logging.getLogger(__name__)

NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"
IMAGE = r"^[a-z0-9][a-z0-9._/:@${}-]*$"  # placeholders allowed: `app:${version}`
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# A value never spans lines: it is substituted into compose documents too.
SAFE_VALUE = re.compile(r"^[^\x00-\x1f\x7f]*$")
FILE_PATH = re.compile(r"^[A-Za-z0-9_.-][A-Za-z0-9_./-]{0,254}$")


class Parameter(Schema):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)
    description: str | None = Field(None, max_length=500)
    required: bool = False
    default: str | None = Field(None, max_length=500)
    pattern: str | None = Field(None, max_length=500)
    values: list[str] | None = Field(None, max_length=100)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value


class Blueprint(Schema):
    """What runs: an image, a compose document (the `web` service, or `webService`, gets
    the route and the health check), or the `files` of a source tree that launchbay builds
    like any other (runtime detected, base images from `build_base_images`)."""

    image: str | None = Field(None, max_length=500, pattern=IMAGE)
    compose: str | None = Field(None, max_length=100_000)
    files: dict[str, str] | None = Field(None, max_length=200)
    web_service: str | None = Field(None, max_length=100)
    port: int = Field(8080, ge=1, le=65535)
    command: str | None = Field(None, max_length=4000)
    health_path: str = Field("/", max_length=500, pattern=r"^/")
    variables: dict[str, str] = Field(default_factory=dict, max_length=200)
    cpu_limit: float | None = Field(None, gt=0, le=256)
    memory_limit_mb: int | None = Field(None, ge=6, le=1_048_576)

    @field_validator("files")
    @classmethod
    def _relative_paths(cls, files: dict[str, str] | None) -> dict[str, str] | None:
        for path in files or {}:
            if not FILE_PATH.match(path) or ".." in path.split("/"):
                raise ValueError(f"{path!r} is not a relative path of the source")
        if files is not None and sum(len(text) for text in files.values()) > 1_000_000:
            raise ValueError("the files hold more than 1 MB")
        return files

    @model_validator(mode="after")
    def _one_kind(self) -> Blueprint:
        if [self.image, self.compose, self.files].count(None) != 2:
            raise ValueError("a blueprint has one of image, compose or files")
        if self.compose is not None:
            try:
                stack = parse(self.compose, self.web_service)
            except ComposeError as exc:
                raise ValueError(f"compose: {exc.message} ({exc.fix})") from None
            built = [s.name for s in stack.services if not s.image]
            if built:
                raise ValueError(f"compose: services of a template run images; "
                                 f"{', '.join(built)} only has a build context")
        return self


class TemplateDoc(Schema):
    """A template as written (in a file or through the API)."""

    name: str = Field(pattern=NAME)
    description: str = Field("", max_length=2000)
    icon: str | None = Field(None, max_length=200)
    category: str | None = Field(None, max_length=200)
    visible: bool = True
    enabled: bool = True
    blueprint: Blueprint
    parameters: list[Parameter] = Field(default_factory=list, max_length=50)
    # Lifetime of an instance in seconds (None: unlimited), how much one extension adds and
    # how many are allowed.
    ttl: int | None = Field(None, ge=60)
    extend_ttl: int | None = Field(None, ge=60, alias="extendTTL")
    max_extends: int = Field(0, ge=0, le=1000)
    quota: int | None = Field(None, ge=1, le=1000)  # instances per user
    owner_claim: str | None = Field(None, max_length=100)  # a group claim: team-owned
    pool_size: int = Field(0, ge=0, le=50)  # warm, unowned instances kept ready

    @model_validator(mode="after")
    def _parameters(self) -> TemplateDoc:
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names):
            raise ValueError("parameter names must be unique")
        return self


class TemplateOut(TemplateDoc):
    is_unlimited: bool
    origin: str
    created_at: Timestamp
    updated_at: Timestamp
    # Operators see what a template runs; others what they may fill in.
    blueprint: Blueprint | None = None  # type: ignore[assignment]  # narrower than the base field on purpose


def template_out(ctx: Context, t: Template, operator: bool | None = None) -> TemplateOut:
    """A template as shown; its blueprint only to operators (`operator`, when the caller
    already knows)."""
    doc = TemplateDoc.model_validate(t.document)
    data = doc.model_dump()
    if not (_operator(ctx) if operator is None else operator):
        data["blueprint"] = None
    return TemplateOut(**data, is_unlimited=doc.ttl is None, origin=t.origin,
                       created_at=t.created_at, updated_at=t.updated_at)


def _operator(ctx: Context) -> bool:
    return ctx.org_id == operators_organization(ctx.db) and ctx.role in ("admin", "owner")


def get_template(ctx: Context, name: str, usable: bool = False) -> tuple[Template, TemplateDoc]:
    """The template called `name`; `usable` also refuses a disabled one (as not found)."""
    t = ctx.db.scalar(select(Template).where(Template.name == name))
    doc = TemplateDoc.model_validate(t.document) if t is not None else None
    if t is None or doc is None or (usable and not doc.enabled):
        raise NotFound(f"template {name} not found", code="template_not_found",
                       details={"template": name})
    return t, doc


# -- instantiating ----------------------------------------------------------------------------


def render(doc: TemplateDoc, given: dict[str, str]) -> Blueprint:
    """The blueprint with its parameters filled in from `given` (defaults otherwise);
    400 for a missing required parameter or a value the template does not allow."""
    values: dict[str, str] = {}
    for p in doc.parameters:
        value = given.get(p.name, p.default)
        if value is None or (p.required and value == ""):
            if p.required:
                raise Invalid(f"missing required parameter {p.name}",
                              code="missing_parameter", details={"parameter": p.name})
            value = ""
        if not SAFE_VALUE.match(value) or len(value) > 500 \
                or (p.values is not None and value not in p.values) \
                or (p.pattern is not None and value and not re.fullmatch(p.pattern, value)):
            raise Invalid(f"invalid value for parameter {p.name}", code="invalid_parameter",
                          details={"parameter": p.name})
        values[p.name] = value

    def fill(text: str) -> str:
        return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)

    b = doc.blueprint
    try:
        return Blueprint.model_validate({
            **b.model_dump(), "image": b.image and fill(b.image),
            "compose": b.compose and fill(b.compose), "command": b.command and fill(b.command),
            "files": b.files and {path: fill(text) for path, text in b.files.items()},
            "variables": {k: fill(v) for k, v in b.variables.items()}})
    except ValidationError as exc:
        raise Invalid(f"the parameters make an invalid blueprint: {exc.errors()[0]['msg']}",
                      code="invalid_parameter") from None


def files_archive(files: dict[str, str]) -> bytes:
    """A source tree as the engine builds it: a tar.gz of `files` (path: text), the same bytes
    for the same files (the archive is named by its content)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=6, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        for path, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_resource(ctx: Context, env: Environment, name: str, b: Blueprint, description: str,
                  variables: dict[str, str]) -> Resource:
    """The resource that runs a (rendered) blueprint in `env`, with its variables; served
    only at the URLs its maker binds (no generated hostname)."""
    runtime = RuntimeProfile(start_command=b.command, health_check_path=b.health_path,
                             cpu_limit=b.cpu_limit, memory_limit_mb=b.memory_limit_mb)
    r = Resource(id=new_id("res"), organization_id=ctx.org_id, project_id=env.project_id,
                 environment_id=env.id, server_id=default_server(ctx).id, name=name, slug=name,
                 kind="application", description=description,
                 network_profile=stored(NetworkProfile(
                     internal_port=b.port, target_service_name=b.web_service)),
                 access_profile=stored(AccessProfile(generated_access_mode="disabled")))
    if b.compose is not None or b.files is not None:
        files = b.files if b.files is not None else {"docker-compose.yml": b.compose or ""}
        r.source = archive_source(ctx, r, files_archive(files), "tar.gz", description)
        runtime.strategy = "auto" if b.files is not None else "docker-compose"
    else:
        image, tag = split_image(b.image or "")
        r.source = stored(SourceProfile(kind="docker-image", image_name=image,
                                                image_tag=tag))
    r.runtime_profile = stored(runtime)
    ctx.db.add(r)
    ctx.db.flush()
    put_variables(ctx, r, {**b.variables, **variables}, "plain-config")
    return r


def made_state(ctx: Context, r: Resource) -> tuple[str, str | None]:
    return made_states(ctx, [r])[r.id]


def made_states(ctx: Context, resources: Sequence[Resource]) -> dict[str, tuple[str, str | None]]:
    """(status, last error) of each resource made from a blueprint, from its releases:
    Pending, Provisioning (a release starting or being verified), Ready, Error, Deleting. Two
    queries whatever their number (the lists of the faces)."""
    ids = [r.id for r in resources]
    latest = {row.resource_id: row for row in ctx.db.execute(select(
        Deployment.resource_id, Deployment.status, Deployment.error_message).where(
        Deployment.id.in_(newest_deployments(ids))))}
    running = set(ctx.db.scalars(select(Deployment.id).where(
        Deployment.id.in_([r.current_deployment_id for r in resources
                           if r.current_deployment_id]),
        Deployment.container_id.is_not(None))))
    states: dict[str, tuple[str, str | None]] = {}
    for r in resources:
        last = latest.get(r.id)
        failed = last is not None and last.status in ("failed", "canceled")
        error = last.error_message if last is not None and failed else None
        if r.lifecycle_status == LifecycleStatus.DELETING:
            states[r.id] = ("Deleting", None)
        elif r.current_deployment_id in running:
            states[r.id] = ("Ready", error)
        elif failed:
            states[r.id] = ("Error", error or "the deployment failed")
        elif last is not None and last.status in ("running", "cancel-requested"):
            states[r.id] = ("Provisioning", None)
        else:
            states[r.id] = ("Pending", None)
    return states


def take_down(ctx: Context, r: Resource, operation_key: str, *,
              environment: bool = False) -> None:
    """Stops serving a resource made from a blueprint at once (its domains go) and shows it
    as `deleting` until the engine has removed its containers; the engine then deletes its
    row, and its `environment` too when that was made for it alone."""
    for b in ctx.db.scalars(select(DomainBinding).where(DomainBinding.resource_id == r.id)):
        ctx.db.delete(b)
        realize(ctx, b, "delete")
    r.lifecycle_status = LifecycleStatus.DELETING
    ctx.enqueue("runtime-maintenance", operation_key, resource_id=r.id, server_id=r.server_id,
                project_id=r.project_id, payload=stored(MaintenancePayload(
                    action="remove-resource", delete_resource=True,
                    delete_environment=environment)))


# -- the catalog ------------------------------------------------------------------------------


class TemplateListIn(Schema):
    include_hidden: bool = False


class TemplateList(Schema):
    items: list[TemplateOut]


@operation("templates.list")
def list_templates(ctx: Context, data: TemplateListIn) -> TemplateList:
    """The visible, enabled templates (operators may ask for every one)."""
    operator = _operator(ctx)
    every = data.include_hidden and operator
    rows = ctx.db.scalars(select(Template).order_by(Template.name).limit(UNPAGED_MAX))
    items = [template_out(ctx, t, operator) for t in rows]
    return TemplateList(items=[i for i in items if every or (i.visible and i.enabled)])


class TemplateRef(Schema):
    name: str = Field(min_length=1, max_length=100)


@operation("templates.show")
def show_template(ctx: Context, data: TemplateRef) -> TemplateOut:
    """One template (a hidden or disabled one only for operators)."""
    t, doc = get_template(ctx, data.name)
    if not _operator(ctx) and not (doc.visible and doc.enabled):
        raise NotFound(f"template {data.name} not found", code="template_not_found")
    return template_out(ctx, t)


@operation("templates.create", role="admin", audit="template.created")
def create_template(ctx: Context, data: TemplateDoc) -> TemplateOut:
    """Adds a template to the instance's catalog (operators)."""
    require_instance_operator(ctx, "the template catalog")
    if ctx.db.scalar(select(Template.id).where(Template.name == data.name)):
        raise Conflict(f"template {data.name} already exists", code="template_exists")
    t = Template(id=new_id("tpl"), name=data.name, document=data.model_dump(mode="json"))
    ctx.db.add(t)
    ctx.db.flush()
    ctx.audit(t.id, name=t.name)
    return template_out(ctx, t)


class TemplateUpdate(TemplateRef):
    """The fields to change; the others keep their values."""

    description: str | None = None
    icon: str | None = None
    category: str | None = None
    visible: bool | None = None
    enabled: bool | None = None
    blueprint: dict[str, Any] | None = None
    parameters: list[dict[str, Any]] | None = None
    ttl: int | None = None
    extend_ttl: int | None = Field(None, alias="extendTTL")
    max_extends: int | None = None
    quota: int | None = None
    owner_claim: str | None = None
    pool_size: int | None = None


def _change(ctx: Context, name: str, changes: dict[str, Any]) -> TemplateOut:
    require_instance_operator(ctx, "the template catalog")
    t, doc = get_template(ctx, name)
    try:
        new = TemplateDoc.model_validate({**doc.model_dump(by_alias=True), **changes})
    except ValidationError as exc:
        raise validation_failed(exc.errors()) from None
    t.document, t.updated_at = new.model_dump(mode="json"), utcnow()
    ctx.audit(t.id, name=t.name, changed=sorted(changes))
    return template_out(ctx, t)


@operation("templates.update", role="admin", audit="template.updated")
def update_template(ctx: Context, data: TemplateUpdate) -> TemplateOut:
    """Changes a template (operators); what was made from it keeps running as it was."""
    changes = data.model_dump(by_alias=True, exclude_unset=True, exclude={"name"})
    return _change(ctx, data.name, changes)


@operation("templates.disable", role="admin", audit="template.disabled")
def disable_template(ctx: Context, data: TemplateRef) -> TemplateOut:
    """Takes a template out of the catalog: nothing new is made from it (operators)."""
    return _change(ctx, data.name, {"enabled": False})


# -- the templates folder ---------------------------------------------------------------------


SHIPPED = Path(__file__).resolve().parent.parent / "shipped_templates"


def load_files(db: DbSession, folder: Path, origin: str = "file") -> list[str]:
    """Loads the folder's template files (`*.yaml`, `*.yml`) into the catalog: new ones, and
    those whose file changed since it was last loaded. A blueprint's `filesFrom` names a folder
    beside the file whose files become the blueprint's `files`. A file that is not a valid
    template is logged and skipped. Templates `shipped` with launchbay never replace one of
    another origin. Returns the names loaded."""
    import yaml

    loaded = []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() \
            else []:
        raw = path.read_bytes()
        try:
            document = yaml.safe_load(raw) or {}
            document.setdefault("name", path.stem)
            files = _files_from(path.parent, document.get("blueprint"))
            doc = TemplateDoc.model_validate(document)
        except (yaml.YAMLError, ValidationError, AttributeError, OSError, ValueError) as exc:
            log.warning("template file %s is not a valid template: %s", path, exc)
            continue
        digest = hashlib.sha256(raw + repr(sorted(files.items())).encode()).hexdigest()
        t = db.scalar(select(Template).where(Template.name == doc.name))
        if t is not None and (t.file_digest == digest or
                              (origin == "shipped" and t.origin != "shipped")):
            continue
        if t is None:
            t = Template(id=new_id("tpl"), name=doc.name)
            db.add(t)
        t.document, t.origin, t.file_digest, t.updated_at = \
            doc.model_dump(mode="json"), origin, digest, utcnow()
        db.flush()
        audit.record(db, "template.loaded", t.id, organization_id=None, actor_user_id=None,
                     actor_token_id=None, name=doc.name, file=str(path))
        loaded.append(doc.name)
    db.commit()
    return loaded


def _files_from(folder: Path, blueprint: Any) -> dict[str, str]:
    """Replaces a blueprint's `filesFrom` (a folder under `folder`) by the files in it."""
    if not isinstance(blueprint, dict) or "filesFrom" not in blueprint:
        return {}
    root = (folder / str(blueprint.pop("filesFrom"))).resolve()
    if folder.resolve() not in root.parents or not root.is_dir():
        raise ValueError(f"filesFrom: {root} is not a folder beside the template")
    blueprint["files"] = {str(p.relative_to(root)): p.read_text()
                          for p in sorted(root.rglob("*")) if p.is_file()
                          and not any(part.startswith((".", "__")) for part in
                                      p.relative_to(root).parts)}
    return blueprint["files"]

"""Plans: how many hosted deployments an organization may run (Free 1, Business 10,
Enterprise unlimited by default; `LAUNCHBAY_PLANS`). Operators assign them."""

from __future__ import annotations

from pydantic import field_validator

from launchbay.operations.catalog import Context, operation
from launchbay.operations.errors import Forbidden, NotFound
from launchbay.operations.schemas import Empty, Field, Id, Schema
from launchbay.operations.servers import require_instance_operator
from launchbay.store.models import Organization


def plan_of(ctx: Context, org_id: str) -> tuple[str, int | None]:
    """The organization's plan and its deployment limit (None: unlimited)."""
    org = ctx.db.get_one(Organization, org_id)
    name = org.plan if org.plan in ctx.settings.plans else ctx.settings.default_plan
    return name, ctx.settings.plans.get(name)


def check_limit(ctx: Context, org_id: str, running: int) -> None:
    """403 when one more hosted deployment would exceed the organization's plan."""
    name, limit = plan_of(ctx, org_id)
    if limit is not None and running >= limit:
        raise Forbidden(f"Deployment limit reached: the {name.title()} plan allows {limit} "
                        f"deployment{'s' if limit != 1 else ''}", code="plan_limit_reached",
                        details={"plan": name, "limit": limit})


class PlanOut(Schema):
    name: str
    deployment_limit: int | None


class PlansOut(Schema):
    plans: list[PlanOut]
    current: str


@operation("plans.list")
def list_plans(ctx: Context, _: Empty) -> PlansOut:
    """The plans this instance offers, and the organization's."""
    return PlansOut(plans=[PlanOut(name=n, deployment_limit=limit)
                           for n, limit in ctx.settings.plans.items()],
                    current=plan_of(ctx, ctx.org_id)[0])


class PlanAssign(Schema):
    target_organization_id: Id
    plan: str = Field(min_length=1, max_length=40)

    @field_validator("plan")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()


@operation("plans.assign", role="owner", audit="plan.assigned")
def assign_plan(ctx: Context, data: PlanAssign) -> PlanOut:
    """Puts an organization on a plan (operators: the owner of the instance's first
    organization)."""
    require_instance_operator(ctx, "plans", "owner")
    if data.plan not in ctx.settings.plans:
        raise NotFound(f"no plan {data.plan}; plans: {', '.join(ctx.settings.plans)}",
                       code="plan_not_found")
    org = ctx.db.get(Organization, data.target_organization_id)
    if org is None:
        raise NotFound("organization not found", code="organization_not_found")
    previous, org.plan = org.plan, data.plan
    ctx.audit(org.id, plan=data.plan, previous=previous)
    return PlanOut(name=data.plan, deployment_limit=ctx.settings.plans[data.plan])

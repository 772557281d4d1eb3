"""The reachability of servers reached over SSH, probed in the background with hysteresis: a
single failure is a blip and changes nothing shown; the second in a row makes the server
`unreachable`; the first success makes it `healthy` again. Each change is audited. A sweep
costs one probe per server (at most 8 at once), never a read of what runs there."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from launchbay.engine.targets import Targets
from launchbay.store import audit
from launchbay.store.models import LifecycleStatus, Server, utcnow

FAILURES_TO_UNREACHABLE = 2


def probe_servers(sessions: sessionmaker, targets: Targets, only: list[str] | None = None,
                  retest: bool = False) -> int:
    """Probes every active server reached over SSH (or those `only`); how many changed
    state. A `retest` (after their credential changed) believes a single failure."""
    with sessions() as db:
        query = select(Server.id).where(Server.credential_id.is_not(None),
                                        Server.lifecycle_status == LifecycleStatus.ACTIVE)
        ids = list(db.scalars(query.where(Server.id.in_(only)) if only is not None else query))
    if not ids:
        return 0
    with ThreadPoolExecutor(min(8, len(ids)), thread_name_prefix="launchbay-probe") as pool:
        answers = dict(zip(ids, pool.map(lambda i: targets.of(i).ping(), ids), strict=True))
    changed = 0
    for server_id, reached in answers.items():
        with sessions() as db:
            server = db.get_one(Server, server_id, with_for_update=True)
            server.probe_failures = 0 if reached else server.probe_failures + 1
            server.connectivity_checked_at = utcnow()
            status = "healthy" if reached else (
                "unreachable" if retest or server.probe_failures >= FAILURES_TO_UNREACHABLE
                else server.connectivity_status)
            if status != server.connectivity_status:
                audit.record(db, "server.reachability-changed", server.id,
                             organization_id=server.organization_id, status=status,
                             previous=server.connectivity_status)
                server.connectivity_status = status
                changed += 1
            db.commit()
    return changed

"""Server-Sent Events: a deployment's events and logs until it ends, a work item's progress
(a database's provisioning, backup, restore or rotation; a volume's backup...) until it ends,
and a release's runtime logs as they are written.

Each stream sends one JSON object per `data:` line with `id:` set to its cursor, so a client
that reconnects with `Last-Event-ID` resumes without losing or repeating anything; a comment
line every `HEARTBEAT` seconds keeps proxies from closing an idle stream; a deployment's
stream ends with `event: done`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from launchbay.control_plane import ControlPlane
from launchbay.engine.runtime import LogLine
from launchbay.http.common import meta_of, resolve_actor
from launchbay.operations import CATALOG
from launchbay.operations.resources import RuntimeTarget, log_line

# The operations whose results are streamed (besides their JSON routes, if any).
STREAMED = ("deployments.events", "resources.runtime-logs.follow",
            "deployments.hosted.logs.follow", "scheduled-task-runs.logs.follow")
WORK_ENDED = ("succeeded", "failed", "canceled", "dead-lettered")
HEARTBEAT = 15.0
POLL = 0.2
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def message(data: Any, id: str | None = None, event: str | None = None) -> str:
    lines = [f"id: {id}"] if id is not None else []
    if event:
        lines.append(f"event: {event}")
    lines.append(f"data: {json.dumps(data, separators=(',', ':'))}")
    return "\n".join(lines) + "\n\n"


async def journal_pages(request: Request, read: Callable[[str | None], Any], first: Any,
                        after: str | None) -> AsyncIterator[Any]:
    """A deployment's journal, page by page (`read(cursor)`), until the deployment ends or
    the client leaves; None when a heartbeat is due."""
    page, beat = first, time.monotonic()
    while True:
        yield page
        after = page.next_cursor or after
        if page.terminal:
            return
        if time.monotonic() - beat >= HEARTBEAT:
            beat = time.monotonic()
            yield None
        if await request.is_disconnected():
            return
        if not page.envelopes:  # caught up: wait for more (a long history pages at once)
            await asyncio.sleep(POLL)
        page = await run_in_threadpool(read, after)


def install(api: APIRouter, cp: ControlPlane) -> None:
    events_op = CATALOG["deployments.events"]

    @api.get("/deployments/{deploymentId}/events/stream", tags=["deployments"],
             operation_id="deployments.events.stream",
             summary="A deployment's events and logs as Server-Sent Events, until it ends.")
    async def deployment_stream(request: Request, deploymentId: str) -> StreamingResponse:
        actor = await resolve_actor(cp, request, events_op)
        meta = meta_of(request)
        cursor = request.headers.get("last-event-id") or request.query_params.get("cursor")
        query = {"deploymentId": deploymentId, "historyLimit": 200,
                 "includeHistory": request.query_params.get("includeHistory", "true")}

        def read(after: str | None) -> Any:
            return cp.ops.run("deployments.events", actor, {**query, "cursor": after}, meta)

        first = await run_in_threadpool(read, cursor)  # errors (404...) before the stream opens

        async def stream() -> AsyncIterator[str]:
            after = cursor
            async for page in journal_pages(request, read, first, cursor):
                if page is None:
                    yield ": heartbeat\n\n"
                    continue
                for envelope in page.envelopes:
                    yield message(envelope.model_dump(mode="json", by_alias=True),
                                  id=envelope.event.cursor)
                after = page.next_cursor or after
                if page.terminal:
                    yield message({"deploymentId": deploymentId, "cursor": after}, id=after,
                                  event="done")

        return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)

    work_op = CATALOG["operator-work.show"]

    @api.get("/operator-work/{workId}/events/stream", tags=["operator-work"],
             operation_id="operator-work.events.stream",
             summary="A work item's progress as Server-Sent Events (one `work` event each time "
                     "its status, phase or step changes), until it ends.")
    async def work_stream(request: Request, workId: str) -> StreamingResponse:
        actor = await resolve_actor(cp, request, work_op)
        meta = meta_of(request)

        def read() -> Any:
            return cp.ops.run("operator-work.show", actor, {"workId": workId}, meta).item

        first = await run_in_threadpool(read)  # errors (404...) before the stream opens

        async def stream() -> AsyncIterator[str]:
            item, seen, n, beat = first, None, 0, time.monotonic()
            while True:
                state = (item.status, item.phase, item.step, item.attempts, item.error_code)
                if state != seen:
                    seen, n = state, n + 1
                    yield message(item.model_dump(mode="json", by_alias=True), id=str(n),
                                  event="work")
                if item.status in WORK_ENDED:
                    yield message({"workId": workId, "status": item.status}, event="done")
                    return
                if time.monotonic() - beat >= HEARTBEAT:
                    beat = time.monotonic()
                    yield ": heartbeat\n\n"
                if await request.is_disconnected():
                    return
                await asyncio.sleep(POLL)
                item = await run_in_threadpool(read)

        return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)

    @api.get("/resources/{resourceId}/runtime-logs/stream", tags=["resources"],
             operation_id="resources.runtime-logs.stream",
             summary="A release's runtime logs as Server-Sent Events, as they are written.")
    async def runtime_stream(request: Request, resourceId: str) -> StreamingResponse:
        params = dict(request.query_params)
        return await log_stream(request, cp, "resources.runtime-logs.follow",
                                {**params, "resourceId": resourceId},
                                number(params, "tailLines", 100))

    @api.get("/scheduled-task-runs/{runId}/logs/stream", tags=["scheduled-tasks"],
             operation_id="scheduled-task-runs.logs.stream",
             summary="A running run's lines as Server-Sent Events, as they are written.")
    async def task_run_stream(request: Request, runId: str) -> StreamingResponse:
        params = dict(request.query_params)
        return await log_stream(request, cp, "scheduled-task-runs.logs.follow",
                                {**params, "runId": runId}, number(params, "tail", 1000))

    @api.get("/hosted-deployments/{name}/logs/stream", tags=["deployments"],
             operation_id="deployments.hosted.logs.stream",
             summary="A hosted deployment's logs as Server-Sent Events, as they are written.")
    async def hosted_stream(request: Request, name: str) -> StreamingResponse:
        params = dict(request.query_params)
        return await log_stream(request, cp, "deployments.hosted.logs.follow",
                                {**params, "name": name}, number(params, "tail", 0))


def number(params: dict[str, Any], key: str, default: int) -> int:
    """A count from the query string (the operation validated it; a follower only needs it)."""
    value = str(params.get(key, ""))
    return int(value) if value.isdigit() else default


async def log_stream(request: Request, cp: ControlPlane, key: str, data: dict[str, Any],
                     tail: int) -> StreamingResponse:
    """The SSE stream of a container's log lines (`key` authorizes it and names the
    container), ending with `event: done` when the container stops."""
    actor = await resolve_actor(cp, request, CATALOG[key])
    target = await run_in_threadpool(cp.ops.run, key, actor, data, meta_of(request))

    async def stream() -> AsyncIterator[str]:
        n = 0
        async for line in followed(request, cp, target, tail):
            if line is None:
                yield ": heartbeat\n\n"
                continue
            if not target.shown(line):
                continue
            n += 1
            entry = log_line(target, n, line)
            yield message(entry.model_dump(mode="json", by_alias=True), id=entry.cursor)
        if not await request.is_disconnected():
            yield message({"resourceId": target.resource_id, "reason": "runtime stopped"},
                          event="done")

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


async def followed(request: Request, cp: ControlPlane, target: RuntimeTarget,
                   tail: int) -> AsyncIterator[LogLine | None]:
    """The container's lines as it writes them (the last `tail` first), until it stops or the
    client leaves; None when a heartbeat is due."""
    stop = threading.Event()
    lines: asyncio.Queue[Any] = asyncio.Queue(maxsize=1000)
    loop = asyncio.get_running_loop()

    def pump() -> None:
        try:
            for line in cp.follow_logs(target, tail, stop):
                asyncio.run_coroutine_threadsafe(lines.put(line), loop).result()
        finally:
            asyncio.run_coroutine_threadsafe(lines.put(None), loop)

    threading.Thread(target=pump, daemon=True, name="launchbay-log-follow").start()
    try:
        while True:
            try:
                line = await asyncio.wait_for(lines.get(), HEARTBEAT)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                yield None
                continue
            if line is None:
                return
            yield line
    finally:
        stop.set()

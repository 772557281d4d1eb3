"""Request bodies read within limits, for every face: a body over its limit is refused (413)
before it is all in memory, and JSON nesting is bounded (400), so no input can exhaust the
server's memory or its parser's recursion."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from starlette.datastructures import FormData

from launchbay.operations.errors import Invalid, TooLarge

# The largest JSON input (a pasted `.env` file of 1,000,000 characters, escaped) fits.
MAX_JSON_BYTES = 4 * 1024 * 1024
MAX_FORM_BYTES = 1024 * 1024
MAX_DEPTH = 64


async def read(request: Request, limit: int) -> bytes:
    """The whole body, refused as soon as it is known to be over `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the request body is larger than {limit} bytes",
                       details={"limitBytes": limit})
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the request body is larger than {limit} bytes",
                           details={"limitBytes": limit})
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # what request.body() and request.form() read from now on
    return body


def depth(value: Any) -> int:
    """How deeply lists and objects nest in a decoded JSON value (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in item)
    return deepest


async def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object ({} when empty)."""
    raw = await read(request, MAX_JSON_BYTES)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Invalid("request body is not valid JSON", code="malformed_json") from None
    if depth(body) > MAX_DEPTH:
        raise Invalid(f"request body nests deeper than {MAX_DEPTH} levels",
                      code="malformed_json")
    if not isinstance(body, dict):
        raise Invalid("request body must be a JSON object", code="malformed_json")
    return body


async def form_body(request: Request) -> FormData:
    """A posted form (urlencoded or multipart), within the form limit."""
    await read(request, MAX_FORM_BYTES)
    return await request.form()

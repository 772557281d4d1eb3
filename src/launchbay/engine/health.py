"""Health verification of a new release before it takes traffic."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from launchbay.engine.plan import HealthSpec

# Probing cadence while a release is being verified: very fast at first (most apps answer
# within moments of starting), then fast, so a healthy app is switched to as soon as it
# answers; the policy's interval and retries set the deadline.
PROBE_FIRST, PROBE_FIRST_SECONDS, PROBE_EVERY = 0.005, 2.0, 0.02


# One client for every probe: building one per request (an SSL context, the CA bundle) costs
# more than the probe itself. Probes go to plain HTTP on loopback; no proxy from the env.
# Probes say who they are: an app's access log can leave them out, and its runtime logs in
# launchbay leave out the lines that name this agent (unless asked for them).
PROBE_AGENT = "launchbay-health-check"
_client = httpx.Client(follow_redirects=False, trust_env=False,
                       headers={"User-Agent": PROBE_AGENT})


@dataclass
class Verdict:
    outcome: str  # healthy | unhealthy | exited | canceled
    reason: str


def failure(exc: httpx.HTTPError, timeout: float) -> str:
    """What a failed request means, in words (not `RemoteProtocolError`)."""
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, httpx.ConnectError):
        return "nothing accepts connections on the app's port yet (is it listening there?)"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.NetworkError)):
        return "the app closed the connection without an HTTP answer"
    return f"the request failed: {exc}"[:300]


def probe(url: str, spec: HealthSpec) -> tuple[bool, str]:
    """One HTTP check: (healthy, what was seen)."""
    try:
        response = _client.get(url, timeout=spec.timeout_seconds)
    except httpx.HTTPError as exc:
        return False, failure(exc, spec.timeout_seconds)
    if spec.expected_status is not None:
        healthy = response.status_code == spec.expected_status
    else:
        healthy = 200 <= response.status_code < 400
    if healthy and spec.expected_text and spec.expected_text not in response.text:
        return False, f"HTTP {response.status_code} without the expected text"
    return healthy, f"HTTP {response.status_code}"


def verify(url: str | None, spec: HealthSpec, *, running: Callable[[], tuple[bool, str]],
           canceled: Callable[[], bool], note: Callable[[str], None]) -> Verdict:
    """Waits until the release answers its health check, exits, is canceled, or runs out of
    time (`spec.deadline_seconds`). Without a URL or with checks disabled, a release is healthy
    when its container is still running after a short grace period."""
    started = time.monotonic()
    if url is None or not spec.enabled:
        grace = min(2.0, spec.start_period_seconds) if spec.enabled else 1.0
        while time.monotonic() - started < grace:
            if canceled():
                return Verdict("canceled", "canceled during start")
            alive, state = running()
            if not alive:
                return Verdict("exited", state)
            time.sleep(0.1)
        return Verdict("healthy", "running")
    last, attempts, last_note = "no answer yet", 0, 0.0
    while True:
        if canceled():
            return Verdict("canceled", "canceled during health verification")
        alive, state = running()
        if not alive:
            return Verdict("exited", state)
        healthy, last = probe(url, spec)
        attempts += 1
        if healthy:
            return Verdict("healthy", last)
        elapsed = time.monotonic() - started
        if elapsed > spec.deadline_seconds:
            return Verdict("unhealthy", f"no healthy answer within {spec.deadline_seconds:.0f}s "
                                        f"({attempts} checks, last: {last})")
        if elapsed - last_note >= max(spec.interval_seconds, 1):
            last_note = elapsed
            note(f"waiting for a healthy answer from {spec.path} ({last})")
        time.sleep(PROBE_FIRST if elapsed < PROBE_FIRST_SECONDS else PROBE_EVERY)

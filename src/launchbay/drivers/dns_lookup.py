"""DNS observation of a custom domain: what A, AAAA and CNAME records say, against where the
domain should point. Uses dnspython (imported on first use: the server does not carry it until
a domain is checked), with the system resolver or a configured one."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


def observe(domain: str, expected: list[str], resolver_address: str | None = None,
            timeout: float = 3.0) -> dict[str, Any]:
    """{status, expectedTargets, observedTargets, checkedAt, message}; status is `matched`,
    `mismatched`, `unresolvable` or `pending` (nothing to compare with)."""
    import dns.exception
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=resolver_address is None)
    if resolver_address:
        host, _, port = resolver_address.rpartition(":")
        resolver.nameservers, resolver.port = [host], int(port)
    resolver.lifetime = resolver.timeout = timeout
    observed: list[str] = []
    error = None
    for kind in ("CNAME", "A", "AAAA"):
        try:
            answer = resolver.resolve(domain, kind, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            error = f"{domain} does not exist in DNS (yet): add its record"
            break
        except dns.resolver.NoNameservers:
            error = f"{domain} does not resolve: its DNS servers refuse to answer"
            break
        except dns.exception.Timeout:
            error = f"DNS lookup of {domain} got no answer within {timeout:g} s"
            continue
        except dns.exception.DNSException as exc:
            error = f"DNS lookup of {domain} failed: {exc}"
            continue
        observed += [r.to_text().rstrip(".") for r in answer]
    wanted = [t.rstrip(".").lower() for t in expected]
    if observed and wanted:
        status = "matched" if set(observed) & set(wanted) else "mismatched"
        message = (f"{domain} points here" if status == "matched" else
                   f"{domain} points to {', '.join(observed)}, not {', '.join(wanted)}")
    elif observed:
        status, message = "pending", "no expected target is configured " \
            "(LAUNCHBAY_EDGE_PUBLIC_ADDRESSES)"
    else:
        status, message = "unresolvable", error or f"{domain} has no A, AAAA or CNAME record"
    return {"status": status, "expectedTargets": wanted, "observedTargets": observed,
            "checkedAt": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "message": message}

"""An OpenID Connect relying party: discovery, the provider's keys (cached), the
authorization-code flow with PKCE, and id_token verification (PyJWT for the JOSE part, httpx for
the provider's endpoints).

Knows nothing of users or the store: `operations/oidc_login.py` decides what a verified
identity means for launchbay.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from launchbay.settings import Settings

# Signature algorithms accepted for id_tokens (never `none`, never HMAC with a public key).
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
              "EdDSA"]
LEEWAY_SECONDS = 60  # clock skew tolerated between the provider and this host


class OidcError(Exception):
    """The provider is unreachable or said something this client cannot accept."""


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) of RFC 7636."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class OidcClient:
    """One configured provider. Thread-safe; the discovery document and the key set are
    fetched lazily, kept for `cache_seconds`, and the keys fetched again (at most every
    `refetch_seconds`) when a token names a key this client has not seen (key rotation)."""

    def __init__(self, issuer: str, client_id: str, client_secret: str | None, scopes: str,
                 *, cache_seconds: float = 3600, refetch_seconds: float = 10):
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.scopes = scopes
        self._http = httpx.Client(timeout=10)
        self._lock = threading.Lock()
        self._cache_seconds = cache_seconds
        self._refetch_seconds = refetch_seconds
        self._metadata: tuple[float, dict[str, Any]] | None = None
        self._keys: tuple[float, jwt.PyJWKSet] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcClient | None:
        if not (settings.oidc_issuer and settings.oidc_client_id):
            return None
        return cls(settings.oidc_issuer, settings.oidc_client_id, settings.oidc_client_secret,
                   settings.oidc_scopes)

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document, checked to be for the configured issuer."""
        with self._lock:
            if self._metadata and time.monotonic() - self._metadata[0] < self._cache_seconds:
                return self._metadata[1]
        doc = self._get(f"{self.issuer}/.well-known/openid-configuration")
        if doc.get("issuer", "").rstrip("/") != self.issuer:
            raise OidcError(f"the discovery document is for issuer {doc.get('issuer')!r}")
        for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(doc.get(field), str):
                raise OidcError(f"the discovery document has no {field}")
        with self._lock:
            self._metadata = (time.monotonic(), doc)
        return doc

    def authorization_url(self, redirect_uri: str, state: str, nonce: str,
                          code_challenge: str) -> str:
        query = {"response_type": "code", "client_id": self.client_id,
                 "redirect_uri": redirect_uri, "scope": self.scopes, "state": state,
                 "nonce": nonce, "code_challenge": code_challenge,
                 "code_challenge_method": "S256"}
        endpoint = self.metadata()["authorization_endpoint"]
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}"

    def exchange(self, code: str, redirect_uri: str, code_verifier: str) -> str:
        """The id_token the provider gives for an authorization code."""
        meta = self.metadata()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": code_verifier, "client_id": self.client_id}
        auth = None
        methods = meta.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
        if self.client_secret and "client_secret_basic" in methods:
            auth = httpx.BasicAuth(self.client_id, self.client_secret)
        elif self.client_secret:
            form["client_secret"] = self.client_secret
        try:
            response = self._http.post(meta["token_endpoint"], data=form,
                                       auth=auth or httpx.USE_CLIENT_DEFAULT)
        except httpx.HTTPError as exc:
            raise OidcError(f"the provider's token endpoint is unreachable: {exc}") from exc
        if response.status_code != 200:
            raise OidcError(f"the provider refused the code: {response.text[:200]}")
        token = response.json().get("id_token")
        if not isinstance(token, str):
            raise OidcError("the provider's answer has no id_token")
        return token

    def verify(self, id_token: str, nonce: str | None = None) -> dict[str, Any]:
        """The claims of an id_token signed by the provider, for this client, from the
        configured issuer, not expired, and carrying `nonce` when one is given."""
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as exc:
            raise OidcError(f"not a JWT: {exc}") from exc
        if header.get("alg") not in ALGORITHMS:
            raise OidcError(f"unaccepted signature algorithm {header.get('alg')!r}")
        key = self._key(header.get("kid"))
        try:
            claims = jwt.decode(id_token, key.key, algorithms=[header["alg"]],
                                audience=self.client_id, issuer=self.metadata()["issuer"],
                                leeway=LEEWAY_SECONDS,
                                options={"require": ["iss", "aud", "exp", "iat", "sub"]})
        except jwt.PyJWTError as exc:
            raise OidcError(f"the id_token is not valid: {exc}") from exc
        if nonce is not None and not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise OidcError("the id_token's nonce is not this sign-in's")
        return claims

    def _key(self, kid: str | None) -> jwt.PyJWK:
        now = time.monotonic()
        with self._lock:
            cached = self._keys
        if cached is None or now - cached[0] > self._cache_seconds or \
                (_find(cached[1], kid) is None and now - cached[0] > self._refetch_seconds):
            cached = (now, jwt.PyJWKSet.from_dict(self._get(self.metadata()["jwks_uri"])))
            with self._lock:
                self._keys = cached
        key = _find(cached[1], kid)
        if key is None:
            raise OidcError(f"the provider has no signing key {kid!r}")
        return key

    def _get(self, url: str) -> dict[str, Any]:
        try:
            response = self._http.get(url)
            response.raise_for_status()
            doc = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcError(f"the provider did not answer {url}: {exc}") from exc
        if not isinstance(doc, dict):
            raise OidcError(f"{url} did not answer a JSON object")
        return doc

    def close(self) -> None:
        self._http.close()


def _find(keys: jwt.PyJWKSet, kid: str | None) -> jwt.PyJWK | None:
    usable = [k for k in keys.keys if k.public_key_use in (None, "sig")]
    if kid is None:
        return usable[0] if len(usable) == 1 else None
    return next((k for k in usable if k.key_id == kid), None)

"""Optional bearer-token or basic auth on both receivers, compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac

from costspan.gateway.config import Auth


def allowed(auth: Auth, header: str | None) -> bool:
    """Whether an ``Authorization`` header value passes (always, when no auth is configured)."""
    if not auth.required:
        return True
    if not header:
        return False
    scheme, _, credentials = header.strip().partition(" ")
    scheme, credentials = scheme.lower(), credentials.strip()
    if scheme == "bearer" and auth.bearer_token is not None:
        return hmac.compare_digest(credentials.encode(), auth.bearer_token.encode())
    if scheme == "basic" and auth.username is not None and auth.password is not None:
        try:
            decoded = base64.b64decode(credentials, validate=True)
        except (binascii.Error, ValueError):
            return False
        expected = f"{auth.username}:{auth.password}".encode()
        return hmac.compare_digest(decoded, expected)
    return False

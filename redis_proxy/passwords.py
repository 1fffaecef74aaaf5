"""Password checks shared by the Redis listener and the admin app."""

from __future__ import annotations

import hashlib
import hmac


def password_matches(given: bytes, expected: bytes) -> bool:
    """Constant time, over fixed-size digests, so neither the content nor the length of the password leaks."""
    return hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(expected).digest())

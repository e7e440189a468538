"""Join codes and secrets.

A join code is short and read aloud or off a projector, so its alphabet has
no 0/O or 1/I; guessing one is slowed by the per-address join limit. The
instructor's and the learners' secrets are 128-bit tokens, kept in the
database as SHA-256 digests only, so a copy of the file holds no key.
"""

from __future__ import annotations

import hashlib
import secrets

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6
TOKEN_BYTES = 16  # 128 bits


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normal_code(code: str) -> str | None:
    """The code as stored, or None when it cannot be one (so no lookup is made)."""
    code = code.strip().upper()
    if len(code) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in code):
        return None
    return code


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_learner_id() -> str:
    return secrets.token_urlsafe(6)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def same(token: str, expected_digest: str) -> bool:
    return secrets.compare_digest(digest(token), expected_digest)


def equal(sent: str, expected: str) -> bool:
    """A secret as sent against the real one, in constant time; any text may be sent
    (compare_digest refuses non-ASCII str, so both are compared as bytes)."""
    return secrets.compare_digest(sent.encode("utf-8", "surrogatepass"),
                                  expected.encode("utf-8", "surrogatepass"))

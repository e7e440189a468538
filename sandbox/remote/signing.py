"""What workers put in Redis is signed: Redis carries messages, it is no trust boundary.

Anyone who can write to Redis could otherwise register a worker that takes
runs and answers them with whatever it likes, and those answers would reach
pages and the output cache. A heartbeat and a run's result therefore travel
sealed: their JSON, when they were sealed, and an HMAC-SHA256 over both
(and, for a result, over the task it answers, so no result can be replayed
for another run) with the secret every web server and worker shares
(`SIDEBYSIDE_WORKER_SECRET`). The web side opens each before parsing it and
refuses anything unsigned, tampered with, or too old.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Literal

from pydantic import BaseModel, Field

from sandbox.wire import ProtocolError

Purpose = Literal["beat", "result"]
MIN_SECRET_CHARS = 16
CLOCK_SKEW_S = 5.0  # a message sealed a little "in the future" by another host's clock


class Sealed(BaseModel):
    body: str
    at: float  # Unix time it was sealed
    mac: str = Field(min_length=64, max_length=64)


class Signer:
    def __init__(self, secret: str) -> None:
        if len(secret) < MIN_SECRET_CHARS:
            raise ValueError(f"the worker secret needs at least {MIN_SECRET_CHARS} characters")
        self._key = secret.encode("utf-8", "surrogatepass")

    def _mac(self, purpose: Purpose, bound_to: str, at: float, body: str) -> str:
        message = f"{purpose}\n{bound_to}\n{at!r}\n".encode() + body.encode("utf-8",
                                                                        "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def seal(self, purpose: Purpose, body: str, *, bound_to: str = "") -> Sealed:
        at = time.time()
        return Sealed(body=body, at=at, mac=self._mac(purpose, bound_to, at, body))

    def open(self, purpose: Purpose, data: object, *, max_age_s: float,
             bound_to: str = "") -> str:
        """The sealed body, if the seal is good and fresh; else a ProtocolError saying why."""
        try:
            if isinstance(data, bytes | bytearray | str):
                sealed = Sealed.model_validate_json(data)
            else:
                sealed = Sealed.model_validate(data)
        except ValueError:
            raise ProtocolError(f"an unsigned {purpose}") from None
        expected = self._mac(purpose, bound_to, sealed.at, sealed.body)
        if not hmac.compare_digest(expected, sealed.mac):
            raise ProtocolError(f"a {purpose} with a bad signature")
        age = time.time() - sealed.at
        if age > max_age_s or age < -CLOCK_SKEW_S:
            raise ProtocolError(f"a stale {purpose} (sealed {age:.0f} s ago)")
        return sealed.body


def sealed_json(sealed: Sealed) -> str:
    return json.dumps(sealed.model_dump())

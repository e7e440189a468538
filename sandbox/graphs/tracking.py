"""Which `tf.function`s a snippet called, and with what, in call order.

A tf.function keeps every trace it made but not which one ran last, nor
when, so the class's `__call__` is wrapped once per run: after each call
that finished, from eager code (not from inside another function being
traced), the function and its arguments are remembered. Asking the function
for the concrete function of those same arguments later is a cache lookup,
not a new trace. The wrapper costs a dict update per call, well under the
noise of a timed step.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

_calls: dict[int, Call] = {}  # id(function) -> its last call; dict order is call order
_MARK = "_sidebyside_records_calls"


@dataclasses.dataclass
class Call:
    function: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def install() -> None:
    import tensorflow as tf

    # The concrete class behind tf.function, reached through the public API.
    cls = type(tf.function(_nothing))
    original = cls.__call__
    if getattr(original, _MARK, False):
        return
    inside_function = tf.inside_function

    @functools.wraps(original)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        if not inside_function():
            _calls.pop(id(self), None)
            _calls[id(self)] = Call(self, args, kwargs)
        return result

    setattr(call, _MARK, True)
    cls.__call__ = call


def _nothing() -> None:
    return None


def last_call(function: Any | None = None) -> Call | None:
    """The last call of `function`, or of any tf.function when it is None."""
    if function is None:
        return next(reversed(_calls.values()), None)
    return _calls.get(id(function))


def forget() -> None:
    _calls.clear()

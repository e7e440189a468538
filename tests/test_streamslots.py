"""The caps on held event streams, counted: per address, per token, in all, given back."""

from __future__ import annotations

import resource

import pytest

from app.classes.streamslots import StreamSlots, TooManyStreams


def test_each_cap_refuses_with_its_own_reason_and_a_retry() -> None:
    slots = StreamSlots(per_address=3, per_token=2, total=4)
    slots.take("10.0.0.1", "learner:a")
    slots.take("10.0.0.1", "learner:a")
    with pytest.raises(TooManyStreams, match="for this sign-in") as refused:
        slots.take("10.0.0.2", "learner:a")
    assert refused.value.status_code == 429 and refused.value.retry_after_s
    slots.take("10.0.0.1", None)  # the live preview's stream has no token
    with pytest.raises(TooManyStreams, match="from this address"):
        slots.take("10.0.0.1", "learner:b")
    slots.take("10.0.0.2", "learner:b")
    with pytest.raises(TooManyStreams, match="as many live streams as it may"):
        slots.take("10.0.0.3", "learner:c")


def test_a_slot_given_back_twice_counts_once_and_nothing_is_left_behind() -> None:
    slots = StreamSlots(per_address=1, per_token=1, total=1)
    slot = slots.take("10.0.0.1", "instructor:ABCDEF")
    slot.release()
    slot.release()
    assert slots.held == 0
    again = slots.take("10.0.0.1", "instructor:ABCDEF")
    with pytest.raises(TooManyStreams):
        slots.take("10.0.0.1", "instructor:ABCDEF")
    again.release()
    assert slots.held == 0 and not slots._addresses and not slots._tokens


def test_the_total_is_a_quarter_of_the_descriptor_limit() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    slots = StreamSlots.for_this_process(per_address=128, per_token=6)
    assert soft == resource.RLIM_INFINITY or slots.total == soft // 4

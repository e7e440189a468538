"""The sliding-window limit behind joins and new classes: counting, memory, floods."""

from __future__ import annotations

from app.classes.ratelimit import MAX_KEYS, RateLimit


def test_an_address_at_its_limit_waits_for_its_oldest_attempt_to_leave_the_window() -> None:
    limit = RateLimit(3)
    assert [limit.attempt("10.0.0.1", now=t) for t in (0.0, 10.0, 20.0)] == [0, 0, 0]
    assert limit.attempt("10.0.0.1", now=30.0) == 30
    assert limit.wait_s("10.0.0.1", now=30.0) == 30
    assert limit.attempt("10.0.0.2", now=30.0) == 0  # others are not held up
    assert limit.attempt("10.0.0.1", now=60.5) == 0  # the first attempt has left the window


def test_refused_attempts_do_not_extend_the_wait() -> None:
    limit = RateLimit(1)
    assert limit.attempt("a", now=0.0) == 0
    assert [limit.attempt("a", now=t) for t in (10.0, 20.0, 59.0)] == [50, 40, 1]
    assert limit.attempt("a", now=60.1) == 0


def test_a_flood_of_new_addresses_cannot_wipe_a_limited_address() -> None:
    limit = RateLimit(2)
    limit.attempt("attacker", now=0.0)
    limit.attempt("attacker", now=0.0)
    assert limit.attempt("attacker", now=1.0) > 0
    for i in range(MAX_KEYS + 500):
        limit.attempt(f"flood-{i}", now=2.0)
    assert len(limit) == MAX_KEYS
    assert limit.attempt("attacker", now=3.0) == 57  # still counted from its own attempts


def test_a_table_full_of_live_addresses_refuses_strangers_until_the_oldest_window_passes(
        ) -> None:
    limit = RateLimit(5, max_keys=3)
    for at, key in enumerate(("a", "b", "c")):
        assert limit.attempt(key, now=float(at)) == 0
    assert limit.attempt("stranger", now=10.0) == 50  # "a" leaves the window at 60
    assert limit.wait_s("stranger", now=10.0) == 50
    assert limit.attempt("b", now=10.0) == 0  # addresses already known go on as before
    assert limit.attempt("stranger", now=60.5) == 0  # "a" was forgotten to make room
    assert len(limit) == 3


def test_memory_is_given_back_once_every_window_has_passed() -> None:
    limit = RateLimit(5, window_s=3600.0)
    for i in range(100):
        limit.attempt(f"10.0.{i}.1", now=float(i))
    assert len(limit) == 100
    limit.wait_s("anyone", now=3600.0 + 50.5)
    assert len(limit) == 49
    limit.attempt("anyone", now=7200.0)
    assert len(limit) == 1

"""The class service: what the API and the pages both call.

State lives in SQLite (`app.store.classes`, `app.store.class_learners`), so
a restart loses nothing; the only things kept in memory are the runs in
flight (one per learner) and the join rate limit, both of which a restart
may forget. Every change is published on the bus for the open streams.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from app import tokens
from app.classes import roster
from app.classes.bus import ClassEvent, EventBus
from app.classes.errors import (
    ClassEnded,
    ClassFull,
    ClassRefused,
    NoSuchClass,
    NotSignedIn,
    NotTheInstructor,
    RunInFlight,
    RunsPaused,
    TooManyClasses,
    TooManyJoins,
)
from app.classes.models import RosterEntry
from app.classes.ratelimit import RateLimit
from app.classes.streamslots import StreamSlots
from app.packs.models import Catalog
from app.store import class_learners, classes
from app.store.class_learners import Code, Learner, RunRecord, Seat
from app.store.classes import Class
from app.store.db import Database
from sandbox.fairqueue import Client

T = TypeVar("T")
PAUSED_MESSAGE = "Runs are paused by the instructor."
HOUR_S = 3600.0


class ClassService:
    def __init__(self, db: Database, catalog: Catalog, *, max_learners: int,
                 joins_per_minute: int, joins_per_class_per_minute: int = 120,
                 classes_per_address_per_hour: int = 10, streams: StreamSlots,
                 bus: EventBus | None = None) -> None:
        self.db, self.catalog = db, catalog
        self.max_learners = max_learners
        self.bus = bus or EventBus()
        self.joins = RateLimit(joins_per_minute)  # per client address, right code or wrong
        self.seats = RateLimit(joins_per_class_per_minute)  # per class, every address
        self.new_classes = RateLimit(classes_per_address_per_hour, window_s=HOUR_S)
        self.streams = streams  # the event streams' slots: the bus's, and any other
        self._in_flight: set[str] = set()

    # ---- the instructor -----------------------------------------------------

    async def create(self, pack_id: str, title: str, lesson_ids: list[str] | None,
                     address: str) -> tuple[Class, str]:
        pack = self.catalog.pack(pack_id)
        if pack is None:
            raise NoSuchClass(f"No pack '{pack_id}'.")
        known = [lesson.id for lesson in pack.lessons if lesson.steps]
        chosen = lesson_ids if lesson_ids else known
        unknown = [x for x in chosen if x not in known]
        if unknown or len(set(chosen)) != len(chosen) or not chosen:
            raise ClassRefused(f"lessons must be distinct lessons of '{pack_id}' with steps; "
                               f"not {', '.join(unknown) or 'those'}")
        wait_s = self.new_classes.attempt(address)
        if wait_s:
            raise TooManyClasses(
                f"This address has started {self.new_classes.per_window} classes in the last "
                f"hour; try again in {_minutes(wait_s)}.", wait_s)
        token = tokens.new_token()
        while True:  # 32**6 codes: a clash is rare, and simply drawn again
            klass = Class(tokens.new_code(), title, pack_id, tuple(chosen),
                          tokens.digest(token), time.time())
            if await classes.create(self.db, klass):
                return klass, token

    async def get(self, code: str) -> Class:
        normal = tokens.normal_code(code)
        klass = await classes.get(self.db, normal) if normal else None
        if klass is None:
            raise NoSuchClass("No class with that code.")
        return klass

    async def as_instructor(self, code: str, token: str | None) -> Class:
        """The class, if `token` is its instructor's; 401 without one, 403 with another.

        An unknown code gets the same answers as a known one, so these calls
        can't be used to find live codes; only the join page, which is
        rate-limited, tells them apart.
        """
        if not token:
            raise NotSignedIn("This needs the class's instructor token.")
        normal = tokens.normal_code(code)
        klass = await classes.get(self.db, normal) if normal else None
        if klass is None or not tokens.same(token, klass.instructor_digest):
            raise NotTheInstructor("That is not the instructor token of a class with this code.")
        return klass

    async def find_to_join(self, code: str, address: str) -> Class:
        """The class behind a join code; a miss counts against the address's join limit."""
        self._joins_left(address, count=False)
        try:
            return await self.get(code)
        except NoSuchClass:
            self._joins_left(address, count=True)
            raise

    async def roster(self, klass: Class) -> list[RosterEntry]:
        return roster.entries(await class_learners.roster(self.db, klass.code), self.catalog)

    async def learner_code(self, klass: Class, learner_id: str) -> tuple[Learner, Code]:
        found = await class_learners.code(self.db, klass.code, learner_id)
        if found is None:
            raise NoSuchClass("No such learner in this class.")
        return found

    async def follow(self, klass: Class, lesson_id: str, step_id: str) -> None:
        self._still_open(klass)
        lesson = self.catalog.lesson(lesson_id)
        if lesson_id not in klass.lessons or lesson is None or lesson.step(step_id) is None:
            raise ClassRefused("That step is not in this class's lessons.")
        await classes.follow(self.db, klass.code, lesson_id, step_id)
        self._publish(klass, ClassEvent(kind="follow", lesson=lesson_id, step=step_id))

    async def message(self, klass: Class, text: str) -> None:
        self._still_open(klass)
        await classes.message(self.db, klass.code, text)
        self._publish(klass, ClassEvent(kind="message", text=text))

    async def pause(self, klass: Class, paused: bool) -> None:
        self._still_open(klass)
        await classes.pause(self.db, klass.code, paused)
        self._publish(klass, ClassEvent(kind="pause", paused=paused))

    async def remove(self, klass: Class, learner_id: str) -> None:
        """Take a learner out: their token no longer seats them, so their runs are their
        own again and their banner goes; they may join again, as a new learner."""
        self._still_open(klass)
        name = await class_learners.remove(self.db, klass.code, learner_id[:200])
        if name is None:
            raise NoSuchClass("No such learner in this class.")
        self._publish(klass, ClassEvent(kind="removed", learner=learner_id, name=name))

    async def end(self, klass: Class) -> None:
        await classes.end(self.db, klass.code)
        self._publish(klass, ClassEvent(kind="end"))

    # ---- learners -----------------------------------------------------------

    async def join(self, code: str, name: str, address: str) -> tuple[Seat, str]:
        self._joins_left(address, count=True)
        klass = await self.get(code)
        self._still_open(klass)
        wait_s = self.seats.attempt(klass.code)
        if wait_s:
            raise TooManyJoins(f"Too many people are joining this class at once (more than "
                               f"{self.seats.per_window} a minute); try again in {wait_s} s.",
                               wait_s)
        lesson = self.catalog.lesson(klass.lessons[0])
        first_step = lesson.steps[0].id if lesson and lesson.steps else ""
        token, now = tokens.new_token(), time.time()
        learner = Learner(tokens.new_learner_id(), klass.code, name, now, now,
                          klass.lessons[0], first_step, now)
        seated = await class_learners.join(self.db, learner, tokens.digest(token),
                                           self.max_learners)
        if seated is None:
            raise ClassFull(f"This class is full ({self.max_learners} learners).")
        learner, name = dataclasses.replace(learner, name=seated), seated
        self._publish(klass, ClassEvent(kind="joined", learner=learner.id, name=name,
                                        lesson=learner.lesson, step=learner.step))
        return Seat(learner, klass), token

    async def seat(self, token: str) -> Seat | None:
        if not token or len(token) > 64:
            return None
        return await class_learners.seat(self.db, tokens.digest(token))

    async def seat_again(self, seat: Seat) -> Seat | None:
        """The same learner, with the class's state as it is now; None once removed."""
        return await class_learners.seat_of(self.db, seat.learner.id)

    def client(self, seat: Seat, address: str) -> Client:
        """The learner in the fair queue: their class is their group."""
        return Client(learner=f"class:{seat.klass.code}:{seat.learner.id}", address=address,
                      group=f"class:{seat.klass.code}")

    async def moved(self, seat: Seat, lesson: str, step: str) -> None:
        if seat.klass.ended:
            return
        await class_learners.move(self.db, seat.learner.id, lesson, step)
        self._publish(seat.klass, ClassEvent(kind="moved", learner=seat.learner.id,
                                             name=seat.learner.name, lesson=lesson, step=step))

    def claim(self, seat: Seat) -> bool:
        """Take the learner's one run in flight; False once the class has ended (not counted).

        Raises RunsPaused or RunInFlight when the run must not start.
        """
        if seat.klass.ended:
            return False
        if seat.klass.paused:
            raise RunsPaused(PAUSED_MESSAGE)
        if seat.learner.id in self._in_flight:
            raise RunInFlight("Your previous run is still going; one run at a time in a class.",
                              1)
        self._in_flight.add(seat.learner.id)
        return True

    def track(self, seat: Seat | None, make: Callable[[], Coroutine[Any, Any, T]],
              outcome: Callable[[T], RunRecord]) -> Coroutine[Any, Any, T]:
        """The work to start, counted in the learner's class when they sit in one.

        Raises RunsPaused or RunInFlight before any work is made.
        """
        if seat is None or not self.claim(seat):
            return make()
        return self.counted(seat, make(), outcome)

    async def counted(self, seat: Seat, work: Awaitable[T],
                      outcome: Callable[[T], RunRecord]) -> T:
        """Run claimed work, free the learner's claim, and put the outcome on the roster."""
        try:
            result = await work
        finally:
            self._in_flight.discard(seat.learner.id)
        done = outcome(result)
        if not await class_learners.record(self.db, seat.learner.id, done):
            return result  # removed while it ran: it is theirs, not the class's
        self._publish(seat.klass, ClassEvent(
            kind="run", learner=seat.learner.id, name=seat.learner.name, lesson=done.lesson,
            step=done.step, status=done.status, error=done.error))
        return result

    def _joins_left(self, address: str, *, count: bool) -> None:
        wait_s = self.joins.attempt(address) if count else self.joins.wait_s(address)
        if wait_s:
            raise TooManyJoins(f"Too many join attempts; try again in {wait_s} s.", wait_s)

    def _still_open(self, klass: Class) -> None:
        if klass.ended:
            raise ClassEnded("This class has ended.")

    def _publish(self, klass: Class, event: ClassEvent) -> None:
        self.bus.publish(klass.code, event)


def _minutes(seconds: int) -> str:
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"

"""What the class service refuses, each with its HTTP status and a message for people."""

from __future__ import annotations


class ClassRefused(Exception):
    status_code = 400

    def __init__(self, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class NoSuchClass(ClassRefused):
    status_code = 404


class NotSignedIn(ClassRefused):
    status_code = 401  # no instructor token at all


class NotTheInstructor(ClassRefused):
    status_code = 403  # a token, but not this class's instructor's


class ClassEnded(ClassRefused):
    status_code = 409


class ClassFull(ClassRefused):
    status_code = 409


class TooManyJoins(ClassRefused):
    status_code = 429


class TooManyClasses(ClassRefused):
    status_code = 429


class RunsPaused(ClassRefused):
    status_code = 423


class RunInFlight(ClassRefused):
    status_code = 429

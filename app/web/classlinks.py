"""A class's links and cookies, built in one place for the API and the pages."""

from __future__ import annotations

from fastapi import Request, Response

from app.store.classes import Class
from app.web.security import CLASS_COOKIE, teach_cookie

CLASS_COOKIE_MAX_AGE_S = 7 * 24 * 3600


def join_url(request: Request, code: str) -> str:
    return str(request.url_for("read_join", code=code))


def teach_url(request: Request, code: str, token: str) -> str:
    # The token rides in the fragment, which browsers never send to a server:
    # it stays out of access logs and Referer headers. The page posts it once.
    return f"{request.url_for('read_teach', code=code)}#key={token}"


def first_lesson_url(request: Request, klass: Class) -> str:
    return lesson_url(request, klass.lessons[0])


def lesson_url(request: Request, lesson_id: str, step_id: str | None = None) -> str:
    # by path: the lesson page and the lessons API share the handler name read_lesson
    url = f"{str(request.base_url).rstrip('/')}/lessons/{lesson_id}"
    return f"{url}#step-{step_id}" if step_id else url


def set_class_cookie(response: Response, token: str) -> None:
    response.set_cookie(CLASS_COOKIE, token, max_age=CLASS_COOKIE_MAX_AGE_S, path="/",
                        httponly=True, samesite="lax")


def set_teach_cookie(response: Response, code: str, token: str) -> None:
    # Strict: a link from elsewhere never arrives signed in as the instructor.
    response.set_cookie(teach_cookie(code), token, max_age=CLASS_COOKIE_MAX_AGE_S, path="/",
                        httponly=True, samesite="strict")

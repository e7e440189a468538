"""Uploaded packs on a real server: checked in the real sandbox, owned by a token, versioned."""

from __future__ import annotations

import io
import re
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx

from app.settings import ROOT
from tests.conftest import ADMIN_TOKEN

EXAMPLE = ROOT / "lessons" / "example"


def example_zip(pack_id: str, *, break_compare: bool = False, evil: str = "",
                release: str = "1.0.0") -> bytes:
    """The example pack, as an author copies it: under their own pack id (and release)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(EXAMPLE.iterdir()):
            text = path.read_text()
            if path.name == "pack.yaml":
                text = text.replace("id: example", f"id: {pack_id}").replace(
                    "version: 1.0.0", f"version: {release}")
            if break_compare:  # the PyTorch side of the first step computes something else
                text = text.replace("total = torch.sum(x, dim=0)", "total = torch.sum(x, dim=1)")
            archive.writestr(f"{pack_id}/{path.name}", text)
        if evil:
            archive.writestr(evil, "x")
    return buffer.getvalue()


def upload(api: httpx.Client, data: bytes, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return api.post("/api/packs", files={"file": ("pack.zip", data, "application/zip")},
                    headers=headers)


def finished_report(api: httpx.Client, url: str, token: str) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        report = api.get(url, headers={"Authorization": f"Bearer {token}"}).json()
        if report["status"] != "checking":
            return report  # type: ignore[no-any-return]
        time.sleep(0.5)
    raise AssertionError("the check did not finish")


def test_an_uploaded_pack_is_checked_versioned_and_owned(api: httpx.Client) -> None:
    first = upload(api, example_zip("uploaded-example"))
    assert first.status_code == 202, first.text
    body = first.json()
    token = body["author_token"]
    assert body["pack"] == "uploaded-example" and body["version"] == 1
    assert body["status"] == "checking" and len(token) >= 22  # 128 bits, url-safe
    report = finished_report(api, body["report_url"], token)
    assert report["status"] == "ready", report
    assert [c["status"] for c in report["checks"]] == ["ok"] * 4
    assert all(c["message"] == "" and c["file"] == "01-layers.md" for c in report["checks"])
    # a second version needs the author's token; with it, it is version 2
    assert upload(api, example_zip("uploaded-example", release="1.1.0")).status_code == 403
    assert upload(api, example_zip("uploaded-example", release="1.1.0"),
                  token="not-the-token").status_code == 403
    second = upload(api, example_zip("uploaded-example", release="1.1.0"), token=token)
    assert second.status_code == 202 and second.json()["version"] == 2
    assert second.json()["author_token"] is None
    mine = api.get("/api/packs/uploaded-example", headers={"Authorization": f"Bearer {token}"})
    assert [v["version"] for v in mine.json()["versions"]] == [1, 2] and mine.json()["yours"]
    # the download is the pack as uploaded
    download = api.get("/api/packs/uploaded-example/1.zip",
                       headers={"Authorization": f"Bearer {token}"})
    assert download.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(download.content)).namelist()
    assert sorted(names) == ["uploaded-example/01-layers.md", "uploaded-example/pack.yaml"]
    # the author removes a version; the other stays
    removed = api.delete("/api/packs/uploaded-example/2",
                         headers={"Authorization": f"Bearer {token}"})
    assert removed.status_code == 204
    mine = api.get("/api/packs/uploaded-example", headers={"Authorization": f"Bearer {token}"})
    assert [v["version"] for v in mine.json()["versions"]] == [1]


def test_a_failing_version_is_reported_at_its_file_and_line(api: httpx.Client) -> None:
    accepted = upload(api, example_zip("broken-example", break_compare=True)).json()
    report = finished_report(api, accepted["report_url"], accepted["author_token"])
    assert report["status"] == "failed", report
    failing = [c for c in report["checks"] if c["status"] != "ok"]
    assert len(failing) == 1 and failing[0]["step"].endswith("/sum-along-an-axis")
    assert failing[0]["file"] == "01-layers.md" and failing[0]["line"] > 1
    assert "total" in failing[0]["message"]


def test_a_refused_zip_says_which_file_and_why_and_writes_nothing(
        api: httpx.Client, data_dir: Path) -> None:
    before = sorted((data_dir / "packs").rglob("*")) if (data_dir / "packs").exists() else []
    refused = upload(api, example_zip("slipping", evil="../../escape.md"))
    assert refused.status_code == 422
    assert "../../escape.md" in refused.json()["detail"] and "leaves" in refused.json()["detail"]
    not_a_pack = upload(api, b"this is not a zip")
    assert not_a_pack.status_code == 422 and "not a zip" in not_a_pack.json()["detail"]
    bundled = upload(api, example_zip("example"))
    assert bundled.status_code == 409 and "bundled" in bundled.json()["detail"]
    after = sorted((data_dir / "packs").rglob("*")) if (data_dir / "packs").exists() else []
    assert [p for p in after if p not in before and ".incoming" not in p.parts] == []
    assert not any((data_dir / "packs" / ".incoming").glob("*"))
    too_big = upload(api, b"PK" + b"\0" * (5 * 1024 * 1024))
    assert too_big.status_code == 413
    assert api.post("/api/packs", json={"file": "x"}).status_code == 422


def test_a_pack_is_private_until_an_administrator_publishes_it(api: httpx.Client) -> None:
    accepted = upload(api, example_zip("private-example")).json()
    token = accepted["author_token"]
    listed = [p["pack"] for p in api.get("/api/packs").json()]
    assert "private-example" not in listed and "tf-to-torch" in listed  # bundled: listed
    assert api.get("/api/packs/private-example").status_code == 404
    assert api.get("/api/packs/private-example/1.zip").status_code == 404
    assert api.delete("/api/packs/private-example/1").status_code == 401
    mine = api.get("/api/packs", headers={"Authorization": f"Bearer {token}"}).json()
    assert any(p["pack"] == "private-example" and p["yours"] for p in mine)

    def publish(value: str, admin: str) -> int:
        return api.put(f"/api/packs/private-example/published?published={value}",
                       headers={"Authorization": f"Bearer {admin}"}).status_code

    assert publish("true", token) == 403  # the author is not the administrator
    assert publish("true", ADMIN_TOKEN) == 204
    assert "private-example" in [p["pack"] for p in api.get("/api/packs").json()]
    assert api.get("/api/packs/private-example").status_code == 200
    assert publish("false", ADMIN_TOKEN) == 204
    assert "private-example" not in [p["pack"] for p in api.get("/api/packs").json()]


def test_a_class_pins_a_ready_version_that_its_learners_then_see(api: httpx.Client) -> None:
    first = upload(api, example_zip("class-example")).json()
    token = first["author_token"]
    author = {"Authorization": f"Bearer {token}"}
    assert finished_report(api, first["report_url"], token)["status"] == "ready"
    lesson = "class-example--v1--example-layers"
    # private: only its author previews it, or teaches from it
    assert api.get(f"/api/lessons/{lesson}").status_code == 404
    assert api.get(f"/api/lessons/{lesson}", headers=author).status_code == 200
    exercise = f"/lessons/{lesson}/steps/reshape-to-a-column/exercise"
    assert api.get(exercise).status_code == 404  # the steps' own routes too
    assert api.get(exercise, headers={"Cookie": f"sbs_author={token}"}).status_code == 200
    assert [x["id"] for x in api.get("/api/lessons?pack=class-example", headers=author).json()] \
        == [lesson]
    body = {"pack": "class-example", "title": "Authors' class"}
    assert api.post("/api/classes", json=body).status_code == 404
    created = api.post("/api/classes", json=body, headers=author)
    assert created.status_code == 201, created.text
    code = created.json()["code"]
    with httpx.Client(base_url=api.base_url) as ada:  # her cookie stays in her client
        student = ada.post(f"/api/classes/{code}/join", json={"name": "Ada"}).json()[
            "student_token"]
    assert "sbs_class" not in api.cookies
    learner = {"Authorization": f"Bearer {student}"}
    assert api.get(f"/api/lessons/{lesson}", headers=learner).status_code == 200
    # a later version does not move the class; a failing one can't start a class
    broken = upload(api, example_zip("class-example", break_compare=True), token=token).json()
    assert finished_report(api, broken["report_url"], token)["status"] == "failed"
    refused = api.post("/api/classes", json={**body, "version": 2}, headers=author)
    assert refused.status_code == 409 and "passed its check" in refused.json()["detail"]
    assert api.get("/api/lessons/class-example--v2--example-layers",
                   headers=learner).status_code == 404
    state = api.get(f"/api/classes/{code}/roster",
                    headers={"Authorization": f"Bearer {created.json()['instructor_token']}"})
    assert state.status_code == 200 and [r["name"] for r in state.json()] == ["Ada"]
    # the version a class uses stays
    kept = api.delete("/api/packs/class-example/1", headers=author)
    assert kept.status_code == 409 and "class" in kept.json()["detail"]
    assert api.post("/api/classes", json={"pack": "example", "title": "x", "version": 1}
                    ).status_code == 422  # bundled packs have no versions


def test_an_upload_lists_every_parse_error_of_its_pack(api: httpx.Client) -> None:
    broken = zipfile.ZipFile(io.BytesIO(example_zip("many-errors")))
    lesson = broken.read("many-errors/01-layers.md").decode()
    lesson = lesson.replace("level: beginner", "level: expert").replace(
        "minutes: 10", "minutes: 0").replace("```python pytorch", "```python pytorh", 1)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("many-errors/pack.yaml", broken.read("many-errors/pack.yaml").decode()
                         .replace("  - 01-layers.md\n", "  - 01-layers.md\n  - 02-gone.md\n"))
        archive.writestr("many-errors/01-layers.md", lesson)
    refused = upload(api, buffer.getvalue())
    assert refused.status_code == 422, refused.text
    problems = refused.json()["detail"].splitlines()
    assert [p.split(":")[0] for p in problems] == ["01-layers.md"] * 3 + ["pack.yaml"], problems
    assert "level" in problems[0] and "minutes" in problems[1]
    assert "unknown block kind" in problems[2] and "'02-gone.md' does not exist" in problems[3]


def test_an_upload_identical_to_a_version_says_so_and_makes_none(api: httpx.Client) -> None:
    first = upload(api, example_zip("same-again")).json()
    token = first["author_token"]
    again = upload(api, example_zip("same-again"), token=token)
    assert again.status_code == 409, again.text
    assert "identical to version 1" in again.json()["detail"]
    # not for someone else: their upload is refused as before, identical or not
    assert upload(api, example_zip("same-again")).status_code == 403
    changed = upload(api, example_zip("same-again", release="2.0.0"), token=token)
    assert changed.status_code == 202 and changed.json()["version"] == 2
    back = upload(api, example_zip("same-again"), token=token)
    assert back.status_code == 409 and "identical to version 1" in back.json()["detail"]
    mine = api.get("/api/packs/same-again", headers={"Authorization": f"Bearer {token}"})
    assert [v["version"] for v in mine.json()["versions"]] == [1, 2]


def test_the_catalogue_lists_each_pack_once_at_its_latest_ready_version(
        api: httpx.Client) -> None:
    first = upload(api, example_zip("listed-once")).json()
    token = first["author_token"]
    author = {"Cookie": f"sbs_author={token}"}

    def catalogued() -> list[str]:
        page = api.get("/", headers=author)
        assert page.status_code == 200
        lessons = api.get("/api/lessons", headers={"Authorization": f"Bearer {token}"}).json()
        packs = sorted({x["pack"] for x in lessons if x["pack"].startswith("listed-once")})
        assert [p for p in packs if f'href="/lessons/{p}--example-layers"' not in page.text] == []
        assert page.text.count('href="/lessons/listed-once--v') == len(packs)
        return packs

    assert catalogued() == []  # still being checked
    assert finished_report(api, first["report_url"], token)["status"] == "ready"
    assert catalogued() == ["listed-once--v1"]
    failing = upload(api, example_zip("listed-once", break_compare=True), token=token).json()
    assert catalogued() == ["listed-once--v1"]  # v2 is being checked
    assert finished_report(api, failing["report_url"], token)["status"] == "failed"
    assert catalogued() == ["listed-once--v1"]  # and failed
    third = upload(api, example_zip("listed-once", release="3.0.0"), token=token).json()
    assert catalogued() == ["listed-once--v1"]
    assert finished_report(api, third["report_url"], token)["status"] == "ready"
    assert catalogued() == ["listed-once--v3"]
    # its author still previews every version, ready or not
    assert api.get("/api/lessons/listed-once--v2--example-layers",
                   headers={"Authorization": f"Bearer {token}"}).status_code == 200


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def test_the_author_token_is_shown_once_and_signs_in_another_browser(
        api: httpx.Client) -> None:
    with httpx.Client(base_url=api.base_url) as first, \
            httpx.Client(base_url=api.base_url) as second:
        made = first.post("/packs", data={"csrf_token": csrf_of(first.get("/packs"))},
                          files={"file": ("p.zip", example_zip("token-once"), "application/zip")})
        assert made.status_code == 201, made.text
        token = first.cookies["sbs_author"]
        assert f'value="{token}"' in made.text and 'data-action="copy"' in made.text
        assert made.headers["cache-control"] == "no-store"
        # never again: not on /packs, not on the version's page, not after a new version
        for url in ("/packs", "/packs/token-once/1", "/"):
            seen = first.get(url)
            assert seen.status_code == 200 and token not in seen.text, url
        later = first.post("/packs", data={"csrf_token": csrf_of(first.get("/packs"))},
                           files={"file": ("p.zip", example_zip("token-once", release="2.0.0"),
                                           "application/zip")})
        assert later.status_code == 303 and token not in first.get(later.headers["location"]).text
        # the second browser: refused until it sends the token, and a wrong one changes nothing
        assert "token-once" not in second.get("/packs").text
        csrf = csrf_of(second.get("/packs"))
        assert second.post("/packs/sign-in", data={"token": token}).status_code == 403  # CSRF
        for wrong, status in ((token[:-1] + ("A" if token[-1] != "A" else "B"), 403),
                              ("é" * 30, 403), ("short", 422), ("x" * 201, 422), ("", 422)):
            refused = second.post("/packs/sign-in", data={"csrf_token": csrf, "token": wrong})
            assert refused.status_code == status, (wrong, refused.text)
            assert 'class="error-note"' in refused.text and "sbs_author" not in second.cookies
            assert ("No pack here has that author token" in refused.text) == (status == 403)
        signed = second.post("/packs/sign-in", data={"csrf_token": csrf, "token": f" {token}\n"})
        assert signed.status_code == 303 and signed.headers["location"] == "/packs"
        assert second.cookies["sbs_author"] == token
        listed = second.get("/packs")
        assert "token-once" in listed.text and token not in listed.text
        # the token now works there: a new version from the second browser
        third = second.post("/packs", data={"csrf_token": csrf},
                            files={"file": ("p.zip", example_zip("token-once", release="3.0.0"),
                                            "application/zip")})
        assert third.status_code == 303 and third.headers["location"] == "/packs/token-once/3"

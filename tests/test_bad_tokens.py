"""A token the server can't read is refused with a 4xx, never a 500: the admin's, an
author's, a learner's and the form's security token, sent as bytes that are not ASCII."""

from __future__ import annotations

import httpx
import pytest

ODD = ["Bearer caf\xe9".encode("latin-1"), b"Bearer \xff\xfe\x80", b"Bearer " + b"\xe2\x82\xac" * 40]


@pytest.mark.parametrize("header", ODD)
def test_odd_bearer_tokens_get_a_4xx_everywhere(api: httpx.Client, header: bytes) -> None:
    headers = {"Authorization": header}
    answers = {
        "publish": api.put("/api/packs/example/published?published=true", headers=headers),
        "own pack": api.get("/api/packs/not-a-pack", headers=headers),
        "delete": api.delete("/api/packs/not-a-pack/1", headers=headers),
        "run": api.post("/api/runs", json={"framework": "pytorch", "code": "x = 1"},
                        headers=headers),
        "lesson": api.get("/lessons/tensors", headers=headers),
    }
    for what, answer in answers.items():
        assert 400 <= answer.status_code < 500, (what, answer.status_code, answer.text)


def test_an_odd_form_security_token_is_a_403(api: httpx.Client) -> None:
    answer = api.post("/lessons/tensors/steps/creating-tensors/run/pytorch",
                      data={"pytorch": "x = 1"},
                      headers={"HX-Request": "true", "X-CSRF-Token": b"\xe9\xe9\xe9"})
    assert answer.status_code == 403, answer.text

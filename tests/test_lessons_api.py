from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from app.settings import ROOT, Settings

EXAMPLE = ROOT / "lessons" / "example"


pytestmark = pytest.mark.anyio


def client_for(packs_dir: Path, data_dir: Path) -> httpx.AsyncClient:
    # ASGITransport does not run the lifespan: no sandbox is started, and
    # these routes need none.
    app = create_app(Settings(packs_dir=packs_dir, data_dir=data_dir))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(EXAMPLE, tmp_path) as client:
        yield client


async def test_the_list_summarises_every_lesson(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/lessons")
    assert response.status_code == 200
    assert response.json() == [{
        "id": "example-layers",
        "title": "Reductions, dense layers and shapes",
        "pack": "example",
        "summary": "Sum along an axis, port a Dense layer's weights to nn.Linear, and reshape a "
                   "vector into a column.",
        "level": "beginner",
        "minutes": 10,
        "steps": 3,
    }]


async def test_a_lesson_comes_with_rendered_prose_snippets_and_checks(client: httpx.AsyncClient) -> None:
    lesson = (await client.get("/api/lessons/example-layers")).json()
    assert lesson["pack"] == "example" and lesson["prerequisites"] == []
    assert lesson["intro_html"].startswith("<p>This lesson is the example")
    reduce, dense, reshape = lesson["steps"]
    assert reduce["id"] == "sum-along-an-axis" and reduce["title"] == "Sum along an axis"
    assert "<code>axis=</code>" in reduce["prose_html"]
    assert reduce["tensorflow"].startswith("import tensorflow as tf\n")
    assert reduce["pytorch"].startswith("import torch\n")
    assert "<code>torch.mean</code>" in reduce["pitfall_html"]
    assert reduce["exercise"] is None and reduce["graph"] is None
    assert dense["compare"] == {"names": ["y", "kernel"], "rtol": 1e-5, "atol": 1e-6,
                                "tensorflow": {"kernel": "dense.kernel"},
                                "pytorch": {"kernel": "linear.weight.T"}}
    assert dense["graph"] == {"tensorflow": None, "pytorch": "y"}
    assert dense["pitfall_html"] is None
    assert reshape["exercise"] == {
        "side": "pytorch",
        "compare": ["col"],
        "hints": ["A column has one entry per row.",
                  "`x.reshape(-1, 1)` lets PyTorch work out the number of rows."],
        "starter": "import torch\n\nx = torch.arange(6.0)\ncol = x  # make this a (6, 1) column\n",
    }


async def test_exercise_solutions_never_reach_the_browser(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/lessons/example-layers")
    assert "solution" not in response.text


async def test_an_unknown_lesson_is_a_404_that_says_so(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/lessons/no-such-lesson")
    assert response.status_code == 404
    assert response.json() == {"detail": "no lesson with id 'no-such-lesson'"}


LESSON = """\
---
id: {id}
title: Hostile
summary: Prose from outside.
level: advanced
minutes: 1
---

<script>alert(1)</script>

## Step

Hi <img src=x onerror="alert(2)"> <a href="javascript:alert(3)">there</a>.

```python tensorflow
a = 1
```

```python {pytorch}
a = 1
```
"""


async def test_pack_prose_is_sanitized_and_a_broken_lesson_is_left_out(tmp_path: Path) -> None:
    pack = tmp_path / "packs" / "hostile"
    pack.mkdir(parents=True)
    (pack / "pack.yaml").write_text("id: hostile\ntitle: H\nversion: '1'\ndescription: H.\n"
                                    "lessons: [good.md, broken.md]\n")
    (pack / "good.md").write_text(LESSON.format(id="good", pytorch="pytorch"))
    (pack / "broken.md").write_text(LESSON.format(id="broken", pytorch="pytorh"))
    async with client_for(tmp_path / "packs", tmp_path) as client:
        assert [x["id"] for x in (await client.get("/api/lessons")).json()] == ["good"]
        response = await client.get("/api/lessons/good")
        for bad in ("<script", "alert(1)", "onerror", "javascript:", "<img"):
            assert bad not in response.text
        assert "there</a>" in response.json()["steps"][0]["prose_html"]
        assert (await client.get("/api/lessons/broken")).status_code == 404

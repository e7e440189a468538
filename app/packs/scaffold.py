"""`sidebyside new DIR`: a pack skeleton that passes `sidebyside check` as it stands.

One lesson with one step of each kind an author needs first: a pair with
a compare, and an exercise. Everything else is in lessons/FORMAT.md.
"""

from __future__ import annotations

import re
from pathlib import Path

MANIFEST = """\
id: {pack}
title: {title}
version: 0.1.0
authors: []
description: >
  What a learner takes away from this pack, in a sentence or two.
targets:
  tensorflow: "2.21"
  pytorch: "2.13"
lessons:
  - 01-first-steps.md
"""

LESSON = '''\
---
id: {pack}-first-steps
title: First steps
summary: One pair with a compare, and an exercise; replace them with your own.
level: beginner
prerequisites: []
minutes: 5
---

Text before the first `##` heading introduces the lesson. Each `##`
heading is one step: a TensorFlow block, a PyTorch block, and a compare
that checks both computed the same values. See lessons/FORMAT.md.

## Add two tensors

Both frameworks add element by element and broadcast the same way.

```python tensorflow
import tensorflow as tf

a = tf.constant([1.0, 2.0, 3.0])
total = a + 10.0
```

```python pytorch
import torch

a = torch.tensor([1.0, 2.0, 3.0])
total = a + 10.0
```

```yaml compare
names: [total]
```

## Your turn: scale a tensor

Make `scaled` twice `a` in PyTorch.

```python tensorflow
import tensorflow as tf

a = tf.constant([1.0, 2.0, 3.0])
scaled = a * 2.0
```

```python pytorch
import torch

a = torch.tensor([1.0, 2.0, 3.0])
scaled = a * 2.0
```

```yaml compare
names: [scaled]
```

```yaml exercise
side: pytorch
compare: [scaled]
hints:
  - Multiplying a tensor by a number scales every element.
```

```python starter
import torch

a = torch.tensor([1.0, 2.0, 3.0])
scaled = a  # make this twice a
```

```python solution
import torch

a = torch.tensor([1.0, 2.0, 3.0])
scaled = a * 2.0
```
'''


class ScaffoldError(Exception):
    pass


def pack_id_for(folder: Path) -> str:
    """A valid pack id from a folder's name: lower case, words joined by hyphens."""
    words = re.findall(r"[a-z0-9]+", folder.resolve().name.lower())
    return "-".join(words)[:48].strip("-") or "my-pack"


def write_pack(folder: Path) -> list[Path]:
    """Write the skeleton into `folder` (new or empty); the files written."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ScaffoldError(f"{folder} exists and is not an empty folder")
    pack = pack_id_for(folder)
    title = pack.replace("-", " ").capitalize()
    folder.mkdir(parents=True, exist_ok=True)
    files = {folder / "pack.yaml": MANIFEST.format(pack=pack, title=title),
             folder / "01-first-steps.md": LESSON.format(pack=pack)}
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    return list(files)

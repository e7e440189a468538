"""What a run printed, made fit to show: server paths shortened, warnings told apart.

A run's view of the filesystem is the server's own paths (bound read-only),
so a library's warning or a traceback prints where the server keeps its
virtual environment and checkout. Those prefixes are cut to the package's
own path (`keras/src/…`). Library warnings on a run that worked are not
failures: they are shown apart from the rest of stderr, folded.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import site
import sys
import sysconfig

from app.resources import PACKAGE

# A Python warning: "path:line: SomethingWarning: message" (the source line follows,
# indented); glog/absl lines from C++ ("W1206 12:00:00.1 123 file.cc:45] …",
# "[W1206 …]", "[W socket.cpp:…]"); and torch's "UserWarning" lines without a path.
_PY_WARNING = re.compile(r"^\S.*:\d+: \w*Warning: ")
_NATIVE_WARNING = re.compile(r"^\[?W\d{4} |^\[W |^\[?W \d")
_SOURCE_LINE = re.compile(r"^\s+\S")


@functools.cache
def _prefixes() -> tuple[tuple[str, str], ...]:
    """Longest first: a venv's site-packages sits under the checkout."""
    found: dict[str, str] = {}
    for path in (*site.getsitepackages(), sysconfig.get_paths()["purelib"],
                 sysconfig.get_paths()["platlib"]):
        found[path.rstrip("/") + "/"] = ""
    found[sysconfig.get_paths()["stdlib"].rstrip("/") + "/"] = ""
    found[str(PACKAGE.parent).rstrip("/") + "/"] = ""  # the checkout: sandbox/, app/
    found[sys.prefix.rstrip("/") + "/"] = ""
    return tuple(sorted(found.items(), key=lambda item: -len(item[0])))


def tidy_paths(text: str) -> str:
    """The server's own folders cut from paths: `keras/src/…`, `sandbox/…`."""
    for prefix, replacement in _prefixes():
        text = text.replace(prefix, replacement)
    return text


@dataclasses.dataclass(frozen=True)
class Stderr:
    warnings: list[str]  # each warning with its source line, tidied
    rest: str  # everything else, tidied


def split_stderr(text: str) -> Stderr:
    warnings: list[str] = []
    rest: list[str] = []
    lines = tidy_paths(text).splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if _PY_WARNING.match(line):
            block = [line]
            while i + 1 < len(lines) and _SOURCE_LINE.match(lines[i + 1]):
                i += 1
                block.append(lines[i])
            warnings.append("\n".join(block))
        elif _NATIVE_WARNING.match(line):
            warnings.append(line)
        else:
            rest.append(line)
        i += 1
    return Stderr(warnings, "\n".join(rest).strip("\n"))

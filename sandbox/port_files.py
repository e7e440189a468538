"""A port's archive, as the run wrote it, checked member by member before any file lands.

Runs on the trusted side. The archive is an attacker's input: a zip the run
wrote to a file the pool opened for it. Nothing in it is trusted:
- members: only the fixed names of `job.ARCHIVE_MEMBERS`, each once, each
  read with a cap on the bytes actually read (a zip's sizes are claims);
- `port_report.json`: parsed as a `PortReport` (every field capped there);
- `model.py`: UTF-8, parses as Python (never run here), and is the report's
  `module_source`, byte for byte;
- `weights.safetensors`: its header parsed and checked against the file:
  known dtypes, shapes, offsets that tile the data exactly, identifier keys.
The weights are copied into `out_dir` as they are read (a web process never
holds them in memory); the rest is written once all is checked, `check.py`
from the pool's own fixed text and `port.zip` from the checked files. Any
refusal leaves `out_dir` empty.
"""

from __future__ import annotations

import ast
import json
import math
import shutil
import struct
import zipfile
from pathlib import Path

from sandbox.protocol import MAX_MODULE_SOURCE_CHARS, PortReport

REPORT_BYTES = 16 * 1024 * 1024
HEADER_BYTES = 64 * 1024 * 1024  # safetensors' own limit is 100 MB; ours is tighter
MAX_TENSORS = 100_000
KEY_CHARS = 512
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
               "I8": 1, "U8": 1, "BOOL": 1}
WEIGHTS = "weights.safetensors"
CHECK_PY = Path(__file__).with_name("porter") / "check_template.py"


class ArchiveRefused(ValueError):
    """The run's archive broke a rule; the message says which (for the report and the log)."""


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    if info.file_size > cap:
        raise ArchiveRefused(f"{info.filename} claims {info.file_size} bytes, over {cap}")
    with archive.open(info) as member:
        data = member.read(cap + 1)
    if len(data) > cap:
        raise ArchiveRefused(f"{info.filename} is larger than {cap} bytes")
    return data


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, cap: int) -> None:
    """A member too large to hold in memory, copied to `dest` within its cap."""
    if info.file_size > cap:
        raise ArchiveRefused(f"{info.filename} claims {info.file_size} bytes, over {cap}")
    written = 0
    with archive.open(info) as member, dest.open("xb") as out:
        while chunk := member.read(1 << 20):
            written += len(chunk)
            if written > cap:
                raise ArchiveRefused(f"{info.filename} is larger than {cap} bytes")
            out.write(chunk)


def read_archive(path: Path, out_dir: Path, weights_cap: int) -> dict[str, bytes]:
    """The small members by name, each within its cap; the weights go straight to
    `out_dir` (a web process holds a few MB of a port, never its weights). Raises
    ArchiveRefused."""
    from sandbox.porter.job import ARCHIVE_MEMBERS

    caps = {"port_report.json": REPORT_BYTES, "model.py": MAX_MODULE_SOURCE_CHARS}
    seen: set[str] = set()
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if len(infos) > len(ARCHIVE_MEMBERS):
                raise ArchiveRefused(f"{len(infos)} members, at most {len(ARCHIVE_MEMBERS)}")
            members: dict[str, bytes] = {}
            for info in infos:
                if info.filename not in ARCHIVE_MEMBERS or info.filename in seen:
                    raise ArchiveRefused(f"unexpected member {info.filename[:100]!r}")
                seen.add(info.filename)
                if info.filename == WEIGHTS:
                    _extract(archive, info, out_dir / WEIGHTS, weights_cap)
                else:
                    members[info.filename] = _read(archive, info, caps[info.filename])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError,
            NotImplementedError, RuntimeError) as exc:  # not a zip, a bad member
        raise ArchiveRefused(f"not a readable archive: {type(exc).__name__}: {exc}") from exc
    if "port_report.json" not in members:
        raise ArchiveRefused("no port_report.json")
    return members


def parse_report(data: bytes) -> PortReport:
    try:
        return PortReport.model_validate_json(data)
    except ValueError as exc:
        raise ArchiveRefused(f"port_report.json is not a PortReport: {str(exc)[:500]}") from exc


def check_source(data: bytes, report: PortReport) -> None:
    try:
        source = data.decode("utf-8")
        ast.parse(source, "model.py")
    except (UnicodeDecodeError, SyntaxError, ValueError) as exc:
        raise ArchiveRefused(f"model.py is not Python source: {exc}") from exc
    if source != report.module_source:
        raise ArchiveRefused("model.py is not the source its report holds")
    if report.class_name and not report.class_name.isidentifier():
        raise ArchiveRefused("the report's class name is not an identifier")


def check_safetensors(path: Path) -> list[str]:
    """The tensors' keys, once the header is found to describe the data exactly."""
    length = path.stat().st_size
    with path.open("rb") as f:
        first = f.read(8)
        if len(first) < 8:
            raise ArchiveRefused("weights.safetensors is shorter than its header's length")
        (size,) = struct.unpack("<Q", first)
        if size > min(HEADER_BYTES, length - 8):
            raise ArchiveRefused("weights.safetensors: its header's length is past the file")
        raw = f.read(size)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArchiveRefused(f"weights.safetensors: its header is not JSON: {exc}") from exc
    if not isinstance(header, dict) or len(header) > MAX_TENSORS + 1:
        raise ArchiveRefused("weights.safetensors: its header is not a map of tensors")
    header.pop("__metadata__", None)
    spans = []
    for key, entry in header.items():
        if len(key) > KEY_CHARS or not all(p.isidentifier() or p.isdigit()
                                           for p in key.split(".")):
            raise ArchiveRefused(f"weights.safetensors: key {key[:100]!r} is not a "
                                 "state_dict key")
        if not isinstance(entry, dict) or entry.get("dtype") not in DTYPE_BYTES:
            raise ArchiveRefused(f"weights.safetensors: {key!r} has no known dtype")
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if (not isinstance(shape, list) or len(shape) > 32
                or not all(isinstance(d, int) and 0 <= d < 2**40 for d in shape)):
            raise ArchiveRefused(f"weights.safetensors: {key!r} has no valid shape")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) for o in offsets)):
            raise ArchiveRefused(f"weights.safetensors: {key!r} has no valid offsets")
        begin, end = offsets
        if end - begin != math.prod(shape) * DTYPE_BYTES[entry["dtype"]] or begin < 0:
            raise ArchiveRefused(f"weights.safetensors: {key!r}'s offsets don't fit its shape")
        spans.append((begin, end))
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise ArchiveRefused("weights.safetensors: tensors overlap or leave gaps")
        position = end
    if 8 + size + position != length:
        raise ArchiveRefused("weights.safetensors: its data is not what the header says")
    return list(header)


def write_port_files(members: dict[str, bytes], report: PortReport, out_dir: Path) -> None:
    """The checked files into `out_dir` (the weights are there already), with check.py
    and port.zip (ours, not the run's)."""
    files = {"model.py": members["model.py"],
             "port_report.json": report.model_dump_json(indent=1).encode(),
             "check.py": CHECK_PY.read_bytes()}
    for name, data in files.items():
        (out_dir / name).write_bytes(data)
    with zipfile.ZipFile(out_dir / "port.zip", "w") as bundle:
        for name in ("model.py", WEIGHTS, "port_report.json", "check.py"):
            # Weights hardly compress (≈ 7 %), and deflating ResNet50's took 8 s.
            kind = zipfile.ZIP_STORED if name == WEIGHTS else zipfile.ZIP_DEFLATED
            bundle.write(out_dir / name, name, compress_type=kind)


def accept_archive(path: Path, out_dir: Path, weights_cap: int) -> PortReport:
    """Check the run's archive at `path` and, with a module, write the files.

    Raises ArchiveRefused; `out_dir` is then emptied (the archive with it).
    """
    try:
        members = read_archive(path, out_dir, weights_cap)
        report = parse_report(members["port_report.json"])
        has_weights = (out_dir / WEIGHTS).exists()
        has_module = "model.py" in members or has_weights
        if has_module:
            if "model.py" not in members or not has_weights:
                raise ArchiveRefused("model.py and weights.safetensors come together")
            check_source(members["model.py"], report)
            check_safetensors(out_dir / WEIGHTS)
        elif report.error is None:
            raise ArchiveRefused("a report with neither a module nor an error")
        path.unlink()
        if has_module:
            write_port_files(members, report, out_dir)
        return report
    except BaseException:
        empty(out_dir)
        raise


def empty(out_dir: Path) -> None:
    for entry in out_dir.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)

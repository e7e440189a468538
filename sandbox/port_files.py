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
Then the trusted side writes the files itself, `check.py` from its own fixed
text and `port.zip` from the checked files. Any refusal leaves `out_dir` empty.
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


def read_archive(path: Path, weights_cap: int) -> dict[str, bytes]:
    """The members, by name, each within its cap (raises ArchiveRefused)."""
    from sandbox.porter.job import ARCHIVE_MEMBERS

    caps = {"port_report.json": REPORT_BYTES, "model.py": MAX_MODULE_SOURCE_CHARS,
            "weights.safetensors": weights_cap}
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if len(infos) > len(ARCHIVE_MEMBERS):
                raise ArchiveRefused(f"{len(infos)} members, at most {len(ARCHIVE_MEMBERS)}")
            members: dict[str, bytes] = {}
            for info in infos:
                if info.filename not in ARCHIVE_MEMBERS or info.filename in members:
                    raise ArchiveRefused(f"unexpected member {info.filename[:100]!r}")
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


def check_safetensors(data: bytes) -> list[str]:
    """The tensors' keys, once the header is found to describe the data exactly."""
    if len(data) < 8:
        raise ArchiveRefused("weights.safetensors is shorter than its header's length")
    (size,) = struct.unpack("<Q", data[:8])
    if size > min(HEADER_BYTES, len(data) - 8):
        raise ArchiveRefused("weights.safetensors: its header's length is past the file")
    try:
        header = json.loads(data[8:8 + size])
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
    if 8 + size + position != len(data):
        raise ArchiveRefused("weights.safetensors: its data is not what the header says")
    return list(header)


def write_port_files(members: dict[str, bytes], report: PortReport, out_dir: Path) -> None:
    """The checked files into `out_dir`, with check.py and port.zip (ours, not the run's)."""
    report_json = report.model_dump_json(indent=1).encode()
    files = {"model.py": members["model.py"],
             "weights.safetensors": members["weights.safetensors"],
             "port_report.json": report_json, "check.py": CHECK_PY.read_bytes()}
    for name, data in files.items():
        (out_dir / name).write_bytes(data)
    with zipfile.ZipFile(out_dir / "port.zip", "w") as bundle:
        for name, data in files.items():
            # Weights hardly compress (≈ 7 %), and deflating ResNet50's took 8 s.
            kind = zipfile.ZIP_STORED if name.endswith(".safetensors") else zipfile.ZIP_DEFLATED
            bundle.writestr(name, data, compress_type=kind)


def accept_archive(path: Path, out_dir: Path, weights_cap: int) -> PortReport:
    """Check the run's archive at `path` and, with a module, write the files.

    Raises ArchiveRefused; `out_dir` is then emptied (the archive with it).
    """
    try:
        members = read_archive(path, weights_cap)
        report = parse_report(members["port_report.json"])
        has_module = "model.py" in members or "weights.safetensors" in members
        if has_module:
            if set(members) != {"model.py", "weights.safetensors", "port_report.json"}:
                raise ArchiveRefused("model.py and weights.safetensors come together")
            check_source(members["model.py"], report)
            check_safetensors(members["weights.safetensors"])
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

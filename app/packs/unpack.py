"""Unpacking an uploaded pack: a zip from outside, refused whole at its first bad entry.

Checked before a byte is written: sizes (each file, all files, entry count),
compression ratio (zip bombs), names (no absolute path, no `..`, nothing but
plain folders and text files of the kinds a pack holds: no symlink, device
or other special file). The files go to a temporary folder beside the
destination and are moved into place in one rename, so a refused or failed
upload leaves nothing behind. YAML and Markdown are parsed later, as for
any pack (safe-loaded, sanitised).
"""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

SUFFIXES = {".md", ".yaml", ".yml", ".txt"}


@dataclasses.dataclass(frozen=True)
class UnpackLimits:
    zip_bytes: int = 4 * 1024 * 1024
    total_bytes: int = 16 * 1024 * 1024
    file_bytes: int = 1024 * 1024
    files: int = 200
    ratio: int = 100  # uncompressed / compressed, per entry


class UnpackError(ValueError):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}" if name else reason)
        self.name, self.reason = name, reason


def _check_entry(info: zipfile.ZipInfo, limits: UnpackLimits) -> PurePosixPath | None:
    """The entry's path inside the pack (None for a folder); raises if it is refused."""
    name = info.filename
    mode = info.external_attr >> 16
    if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        kind = "a symbolic link" if stat.S_ISLNK(mode) else "a special file"
        raise UnpackError(name, f"is {kind}; a pack holds plain files only")
    if "\\" in name or "\x00" in name or name.startswith("/") or ":" in name.split("/")[0]:
        raise UnpackError(name, "is an absolute or malformed path")
    path = PurePosixPath(name)
    if any(part in ("..", "") for part in path.parts) or not path.parts:
        raise UnpackError(name, "leaves the pack's folder (`..`)")
    if info.is_dir():
        return None
    if path.suffix.lower() not in SUFFIXES:
        raise UnpackError(name, f"is not one of the file kinds a pack holds "
                                f"({', '.join(sorted(SUFFIXES))})")
    if info.file_size > limits.file_bytes:
        raise UnpackError(name, f"is larger than {limits.file_bytes // 1024} KiB")
    if info.file_size > limits.ratio * max(info.compress_size, 1):
        raise UnpackError(name, f"compresses more than {limits.ratio}:1 (a zip bomb?)")
    return path


def _top_folder(paths: list[PurePosixPath]) -> PurePosixPath | None:
    """A pack zipped with its folder: the one folder every file is in, if pack.yaml is there."""
    tops = {p.parts[0] for p in paths if len(p.parts) > 1}
    if "pack.yaml" in {str(p) for p in paths} or len(tops) != 1:
        return None
    top = PurePosixPath(tops.pop())
    return top if all(p.parts[0] == top.name for p in paths) else None


def unpack(data: bytes, destination: Path, limits: UnpackLimits | None = None) -> Path:
    """Unpack a zipped pack to `destination` (which must not exist yet); returns it."""
    limits = limits or UnpackLimits()
    if len(data) > limits.zip_bytes:
        raise UnpackError("", f"the zip is larger than {limits.zip_bytes // (1024 * 1024)} MiB")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise UnpackError("", f"not a zip file ({exc})") from None
    with archive:
        entries = archive.infolist()
        if len(entries) > limits.files:
            raise UnpackError("", f"more than {limits.files} entries")
        files = [(info, path) for info in entries
                 if (path := _check_entry(info, limits)) is not None]
        if sum(info.file_size for info, _ in files) > limits.total_bytes:
            raise UnpackError("", f"more than {limits.total_bytes // (1024 * 1024)} MiB "
                                  "once unpacked")
        top = _top_folder([path for _, path in files])
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=destination.parent, prefix=".unpack-"))
        try:
            for info, path in files:
                inside = path.relative_to(top) if top else path
                target = staging.joinpath(*inside.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                _copy(archive, info, target, limits)
            if not (staging / "pack.yaml").is_file():
                raise UnpackError("pack.yaml", "is missing at the top of the zip")
            os.rename(staging, destination)  # atomic: all of it or none
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return destination


def _copy(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path,
          limits: UnpackLimits) -> None:
    # zipfile stops at the declared size and checks the CRC: a header that
    # lies about its size yields an error, not more bytes.
    try:
        with archive.open(info) as source, open(target, "xb") as out:
            shutil.copyfileobj(source, out, limits.file_bytes)
    except FileExistsError:
        raise UnpackError(info.filename, "appears twice in the zip") from None
    except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError) as exc:
        raise UnpackError(info.filename, f"cannot be read ({exc})") from None

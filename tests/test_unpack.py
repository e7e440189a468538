"""Uploaded packs are unpacked whole or not at all: each refusal names the file and why."""

from __future__ import annotations

import io
import random
import stat
import zipfile
from pathlib import Path

import pytest

from app.packs import load_pack
from app.packs.unpack import UnpackError, UnpackLimits, unpack
from app.settings import ROOT

EXAMPLE = ROOT / "lessons" / "example"


def zipped(entries: dict[str, bytes], *, folder: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(folder + name, data)
    return buffer.getvalue()


def example_entries() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in EXAMPLE.iterdir() if p.is_file()}


def refused(tmp_path: Path, data: bytes, limits: UnpackLimits | None = None) -> UnpackError:
    with pytest.raises(UnpackError) as caught:
        unpack(data, tmp_path / "packs" / "new", limits)
    # nothing was written: no pack, no staging folder left behind
    assert not (tmp_path / "packs").exists() or not list((tmp_path / "packs").iterdir())
    return caught.value


def test_the_example_pack_zipped_with_its_folder_unpacks_and_loads(tmp_path: Path) -> None:
    where = unpack(zipped(example_entries(), folder="example/"), tmp_path / "v1")
    assert sorted(p.name for p in where.iterdir()) == sorted(example_entries())
    assert load_pack(where).id == "example"


def test_a_path_out_of_the_pack_is_refused(tmp_path: Path) -> None:
    error = refused(tmp_path, zipped({**example_entries(), "../evil.md": b"x"}))
    assert error.name == "../evil.md" and "leaves" in error.reason


def test_an_absolute_path_is_refused(tmp_path: Path) -> None:
    error = refused(tmp_path, zipped({**example_entries(), "/etc/cron.d/x.md": b"x"}))
    assert "absolute" in error.reason


def test_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in example_entries().items():
            archive.writestr(name, data)
        link = zipfile.ZipInfo("secrets.md")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/shadow")
    error = refused(tmp_path, buffer.getvalue())
    assert error.name == "secrets.md" and "symbolic link" in error.reason


def test_a_zip_bomb_is_refused_by_its_ratio(tmp_path: Path) -> None:
    data = zipped({**example_entries(), "notes.txt": b"\0" * (4 * 1024 * 1024)})
    error = refused(tmp_path, data, UnpackLimits(file_bytes=8 * 1024 * 1024))
    assert error.name == "notes.txt" and "zip bomb" in error.reason


def test_sizes_and_counts_are_capped(tmp_path: Path) -> None:
    big = random.Random(0).randbytes(2 * 1024 * 1024)  # does not compress
    assert "larger than" in refused(tmp_path, zipped({"pack.yaml": b"x", "a.md": big})).reason
    many = {f"{i}.md": b"x" for i in range(300)}
    assert "entries" in refused(tmp_path, zipped({"pack.yaml": b"x", **many})).reason
    total = {f"{i}.md": big[:900_000] for i in range(3)}
    assert "once unpacked" in refused(tmp_path, zipped({"pack.yaml": b"x", **total}),
                                      UnpackLimits(total_bytes=2 * 1024 * 1024)).reason


def test_only_the_file_kinds_a_pack_holds_are_taken(tmp_path: Path) -> None:
    error = refused(tmp_path, zipped({**example_entries(), "helper.py": b"import os"}))
    assert error.name == "helper.py" and ".md" in error.reason


def test_not_a_zip_and_a_zip_without_a_manifest_are_refused(tmp_path: Path) -> None:
    assert "not a zip" in refused(tmp_path, b"PK\x03\x04 but not really").reason
    error = refused(tmp_path, zipped({"01-layers.md": b"---\n"}))
    assert error.name == "pack.yaml" and "missing" in error.reason


def test_the_same_name_twice_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in example_entries().items():
            archive.writestr(name, data)
        with pytest.warns(UserWarning):  # zipfile warns, and writes it anyway
            archive.writestr("pack.yaml", b"id: other")
    assert "twice" in refused(tmp_path, buffer.getvalue()).reason

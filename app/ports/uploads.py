"""An uploaded model file, checked for what the web process may check: its size and type.

Nothing here parses the model: a `.keras` file must look like a whole zip
(its first local header and its end-of-central-directory record, so a
truncated download is refused here), an `.h5` file must carry the HDF5
signature. Loading it is the sandbox's job. The same holds for the user's
inputs: a `.npy` must start with numpy's magic, a `.npz` be a whole zip;
their arrays are read in the port's run only.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import BinaryIO

from sandbox.protocol import INPUTS_SUFFIXES, MODEL_SUFFIXES

ZIP_LOCAL_HEADER = b"PK\x03\x04"
ZIP_END_OF_DIRECTORY = b"PK\x05\x06"
ZIP_END_MAX_BYTES = 22 + 0xFFFF  # the record, then a comment of at most 64 KiB
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"
# HDF5 puts its superblock at 0, or after a user block of 512, 1024, 2048... bytes.
HDF5_OFFSETS = (0, *(512 << n for n in range(12)))
CHUNK_BYTES = 1024 * 1024


class UploadRefused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def suffix_of(filename: str) -> str:
    """The model format the file's name says: `.keras` or `.h5`; refused otherwise."""
    suffix = Path(filename).suffix.lower()
    if not filename or suffix not in MODEL_SUFFIXES:
        raise UploadRefused(415, "A model file ends in .keras (Keras 3) or .h5 (Keras 2 / "
                                 f"tf.keras); got {filename[:80]!r}.")
    return suffix


def size_of(file: BinaryIO) -> int:
    file.seek(0, os.SEEK_END)
    size = file.tell()
    file.seek(0)
    return size


def _sized(file: BinaryIO, what: str, max_bytes: int, setting: str) -> int:
    """The file's size in bytes; refused when empty or over `max_bytes`."""
    size = size_of(file)
    if size == 0:
        raise UploadRefused(422, f"The {what} file is empty.")
    if size > max_bytes:
        raise UploadRefused(413, f"The {what} file is larger than {max_bytes // 2**20} MiB "
                                 f"(setting {setting}).")
    return size


def check_model_file(file: BinaryIO, suffix: str, max_bytes: int) -> int:
    """Refuse an empty, oversize or mistyped file; its size in bytes otherwise."""
    size = _sized(file, "model", max_bytes, "port_upload_mb")
    if suffix == ".keras" and not _whole_zip(file, size):
        raise UploadRefused(422, "This is not a whole .keras file: a .keras file is a zip, "
                                 "and this one is not a zip or was cut short.")
    if suffix == ".h5" and not _hdf5(file, size):
        raise UploadRefused(422, "This is not an .h5 file: it has no HDF5 signature.")
    file.seek(0)
    return size


def inputs_suffix_of(filename: str) -> str:
    """The inputs format the file's name says: `.npy` or `.npz`; refused otherwise."""
    suffix = Path(filename).suffix.lower()
    if suffix not in INPUTS_SUFFIXES:
        raise UploadRefused(415, "Inputs are a .npy file (a model with one input) or a .npz "
                                 f"file (one array per input); got {filename[:80]!r}.")
    return suffix


def check_inputs_file(file: BinaryIO, suffix: str, max_bytes: int) -> int:
    """Refuse an empty, oversize or mistyped inputs file; its size in bytes otherwise."""
    size = _sized(file, "inputs", max_bytes, "port_inputs_mb")
    if suffix == ".npy" and file.read(len(NPY_MAGIC)) != NPY_MAGIC:
        raise UploadRefused(422, "This is not a .npy file: it doesn't start with numpy's "
                                 "magic (save it with numpy.save).")
    if suffix == ".npz" and not _whole_zip(file, size):
        raise UploadRefused(422, "This is not a whole .npz file: a .npz file is a zip "
                                 "(numpy.savez), and this one is not a zip or was cut short.")
    file.seek(0)
    return size


def _whole_zip(file: BinaryIO, size: int) -> bool:
    file.seek(0)
    if file.read(4) != ZIP_LOCAL_HEADER:
        return False
    tail = min(size, ZIP_END_MAX_BYTES)
    file.seek(size - tail)
    return ZIP_END_OF_DIRECTORY in file.read(tail)


def _hdf5(file: BinaryIO, size: int) -> bool:
    for offset in HDF5_OFFSETS:
        if offset + len(HDF5_SIGNATURE) > size:
            return False
        file.seek(offset)
        if file.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
            return True
    return False


def keep(file: BinaryIO, target: Path) -> None:
    """Copy the checked upload to its port's folder (blocking: call it in a thread)."""
    file.seek(0)
    with target.open("xb") as out:
        shutil.copyfileobj(file, out, CHUNK_BYTES)

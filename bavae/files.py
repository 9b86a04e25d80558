"""File helpers: output-path checks, atomic writes, content hashes and the files of a saved model folder (the bottom
layer, beside :mod:`bavae.errors`; the standard library only, so `bavae --help` can import it).

Output paths are checked here, once for every command and API that writes: :func:`check_output_file` and
:func:`check_output_folder` try what the write will do (create a file in the target folder) before any work starts,
and name the path the user gave, never a temporary file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .errors import BAVAEError, WeightsError

# A saved model folder has the Hub layout: what `save_pretrained` writes, `bavae train` fills and the Hub serves.
CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, SAMPLES_NAME = "config.json", "model.safetensors", "README.md", "samples.png"
_HEX64, _HEX40 = re.compile(r"[0-9a-f]{64}"), re.compile(r"[0-9a-f]{40}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class OutputError(BAVAEError, OSError):
    """An output path that cannot be written; the message names it and why, in one line."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "cannot write"


def _new_file(folder: str | os.PathLike, prefix: str) -> str:
    """A new, empty, closed file in ``folder`` (``tempfile.mkstemp``: a random name, O_EXCL, mode 0600); its path."""
    import tempfile  # a few milliseconds: `bavae --help` imports this module and writes nothing

    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".tmp")
    os.close(fd)
    return tmp


def _probe(folder: Path, target: str | os.PathLike) -> None:
    """Create and delete a temporary file in ``folder``, as an atomic write into it would (os.access says yes to
    root everywhere, and knows nothing of read-only mounts or /proc)."""
    try:
        os.unlink(_new_file(folder, ".bavae-probe-"))
    except OSError as e:
        raise OutputError(
            f"cannot write {os.fspath(target)}: cannot create files in {folder} ({e.strerror or e})"
        ) from None


def check_output_file(path: str | os.PathLike, what: str = "") -> Path:
    """Check that ``path`` can be written as a file (its folder exists and takes new files; it is not a folder).
    ``what`` prefixes the message (e.g. "-o"). Returns the path, ``~`` expanded."""
    shown = f"{what} {os.fspath(path)}".strip() if what else os.fspath(path)
    if os.fspath(path) == "":
        raise OutputError(f"{what or 'the output path'} is empty: give a file name")
    p = Path(path).expanduser()
    if p.is_dir():
        raise OutputError(f"cannot write {shown}: it is a folder")
    parent = p.parent
    if not parent.is_dir():
        raise OutputError(
            f"cannot write {shown}: {parent} {'is not a folder' if parent.exists() else 'does not exist'}"
        )
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputError(f"cannot write {shown}: permission denied")
    _probe(parent, shown)
    return p


def check_output_folder(path: str | os.PathLike, what: str = "") -> Path:
    """Check that ``path`` is, or can be created as, a folder that takes new files: an existing folder, or a new one
    under an existing folder (missing parents are created too). Nothing is created. Returns the path, ``~`` expanded."""
    shown = f"{what} {os.fspath(path)}".strip() if what else os.fspath(path)
    if os.fspath(path) == "":
        raise OutputError(f"{what or 'the output folder'} is empty: give a folder name")
    p = Path(path).expanduser()
    existing = p
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        why = "it is a file" if existing == p else f"{existing} is a file, not a folder"
        raise OutputError(f"cannot use {shown} as a folder: {why}")
    _probe(existing, shown)
    return p


def model_files(folder: Path) -> tuple[Path, Path]:
    """``config.json`` and ``model.safetensors`` of a model folder; a WeightsError names the one missing."""
    files = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for f in files:
        if not f.is_file():
            raise WeightsError(
                f"{folder} is not a saved BAVAE: {f.name} is missing (expected {CONFIG_NAME} and {WEIGHTS_NAME})"
            )
    return files


def atomic_write(path: str | os.PathLike, write: Any) -> None:
    """Call ``write(tmp_path)`` then fsync and rename over ``path``: readers see the old file or the new, never half."""
    path = Path(path)
    try:
        tmp = _new_file(path.parent, f".{path.name}.")
    except OSError as e:  # name the file asked for, not the temporary one
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode open() would have
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def hash_problem(path: Path, expected_sha256: str | None) -> str | None:
    """None if the file (its symlink followed) hashes to ``expected_sha256``, or, with none expected, to the name
    the Hugging Face cache gave its blob (the Hub's ETag: the sha256 of an LFS file, the git blob id of any other);
    else one line saying what did not match."""
    blob = Path(os.path.realpath(path))
    data_sha256 = sha256_file(blob)
    if expected_sha256 is not None:
        if data_sha256 == expected_sha256:
            return None
        return f"sha256 mismatch for {path.name} ({blob}): expected {expected_sha256}, got {data_sha256}"
    published = blob.name  # the cache names blobs after the Hub's ETag
    if _HEX64.fullmatch(published) and published != data_sha256:
        return (
            f"sha256 mismatch for {path.name} ({blob}): expected {published} (published by the Hub), got {data_sha256}"
        )
    if _HEX40.fullmatch(published):
        git_id = _digest(blob, "sha1", b"blob %d\0" % blob.stat().st_size)  # git's blob id: the Hub's ETag
        if git_id != published:
            return (
                f"git blob hash mismatch for {path.name} ({blob}): expected {published} (published by the Hub), "
                f"got {git_id}"
            )
    return None


def _digest(path: str | os.PathLike, algorithm: str, header: bytes = b"") -> str:
    """The hex digest of ``header`` followed by the file's bytes, read a MiB at a time."""
    import hashlib  # a few milliseconds (OpenSSL): `bavae --help` imports this module and hashes nothing

    h = hashlib.new(algorithm, header)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    return _digest(path, "sha256")


__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "CARD_NAME",
    "SAMPLES_NAME",
    "model_files",
    "OutputError",
    "check_output_file",
    "check_output_folder",
    "atomic_write",
    "sha256_file",
    "hash_problem",
]

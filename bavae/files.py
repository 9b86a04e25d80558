"""File helpers that know nothing of bavae: atomic writes and content hashes (the bottom layer: imports no bavae)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

_HEX64, _HEX40 = re.compile(r"[0-9a-f]{64}"), re.compile(r"[0-9a-f]{40}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Any) -> None:
    """Call ``write(tmp_path)`` then fsync and rename over ``path``: readers see the old file or the new, never half."""
    import tempfile  # here, not at the top: `bavae --help` imports this module and writes nothing

    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
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
        h = _digest(blob, hashlib.sha1(b"blob %d\0" % blob.stat().st_size))  # git's blob id: the Hub's ETag
        if h.hexdigest() != published:
            return (
                f"git blob hash mismatch for {path.name} ({blob}): expected {published} (published by the Hub), "
                f"got {h.hexdigest()}"
            )
    return None


def _digest(path: str | os.PathLike, h: Any) -> Any:
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h


def sha256_file(path: str | os.PathLike) -> str:
    return _digest(path, hashlib.sha256()).hexdigest()


__all__ = ["atomic_write", "sha256_file", "hash_problem"]

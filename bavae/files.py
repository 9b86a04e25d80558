"""File helpers: output-path checks, atomic writes, content hashes and the files of a saved model folder (the bottom
layer, beside :mod:`bavae.errors`; the standard library only, so `bavae --help` can import it).

Output paths are checked here, once for every command and API that writes: :func:`check_output_file` and
:func:`check_output_folder` try what the write will do (create a file in the target folder) before any work starts,
and name the path the user gave, never a temporary file. Input files are checked here too (:func:`file_problem`):
a file that is there but cannot be read says so (permission denied, a folder, not a regular file), never "missing".
``-`` is no file: bavae neither reads standard input nor writes standard output (a half-written stream could not
be taken back), and says so in one line.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from pathlib import Path
from typing import Any, Iterator

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


STDIO = "-"  # what many tools read as standard input or output; bavae refuses it (see the module's docstring)
_KINDS = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a named pipe",
    stat.S_IFSOCK: "a socket",
}


def file_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be read as a file, as the end of a sentence that starts with the path ("does not exist",
    "is a folder", "is not a regular file (a character device)", "cannot be read: permission denied"), or None.
    It stats the path (a named pipe is never opened: that would wait for a writer) and opens a regular file."""
    if os.fspath(path) == STDIO:
        return "is standard input (stdin), which bavae does not read: give a file name"
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except FileNotFoundError:
        return "is a broken symbolic link" if p.is_symlink() else "does not exist"
    except PermissionError:
        return f"cannot be read: permission denied (on the way to it: {_unsearchable(p)} cannot be searched)"
    except OSError as e:
        return f"cannot be read: {e.strerror or e}"
    if stat.S_ISDIR(st.st_mode):
        return "is a folder, not a file"
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a file")
        target = f" -> {os.path.realpath(p)}" if p.is_symlink() else ""
        return f"is not a regular file ({kind}{target})"
    try:
        with open(p, "rb"):
            pass
    except PermissionError:
        return "cannot be read: permission denied"
    except OSError as e:
        return f"cannot be read: {e.strerror or e}"
    return None


def _unsearchable(p: Path) -> Path:
    """The first folder on the way to ``p`` that cannot be entered (where a stat failed with EACCES)."""
    for parent in reversed(p.parents):
        if parent.is_dir() and not os.access(parent, os.X_OK):
            return parent
    return p.parent


def check_output_file(path: str | os.PathLike, what: str = "") -> Path:
    """Check that ``path`` can be written as a file (its folder exists and takes new files; it is not a folder).
    ``what`` prefixes the message (e.g. "-o"). Returns the path, ``~`` expanded."""
    shown = f"{what} {os.fspath(path)}".strip() if what else os.fspath(path)
    if os.fspath(path) == "":
        raise OutputError(f"{what or 'the output path'} is empty: give a file name")
    if os.fspath(path) == STDIO:
        raise OutputError(
            f"cannot write {shown!r}: bavae writes files, not standard output (stdout); give a file name "
            "(a PNG or npz is written to a temporary file and renamed, so a failed command leaves nothing)"
        )
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


def check_free_space(path: str | os.PathLike, nbytes: int, what: str) -> None:
    """Refuse to start writing ``what`` (about ``nbytes``) to ``path`` when its folder's file system has less free
    space than that: a write that would fill the disk fails before any work, not after minutes of it."""
    folder = Path(path).expanduser().parent
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs (Windows) or a folder that cannot say: the write will tell
        return
    free = st.f_bavail * st.f_frsize
    if nbytes > free:
        raise OutputError(
            f"cannot write {os.fspath(path)}: {what} take about {_size(nbytes)}, more than the {_size(free)} free "
            f"in {folder}; free some space, write elsewhere, or write fewer"
        )


def _size(nbytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if nbytes < 1000:
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:,.1f} TB"


def model_files(folder: Path) -> tuple[Path, Path]:
    """``config.json`` and ``model.safetensors`` of a model folder; a WeightsError names the one missing, or what
    else is wrong with it (permission denied, a folder, not a regular file)."""
    files = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for f in files:
        problem = file_problem(f)
        if problem == "does not exist":
            raise WeightsError(
                f"{folder} is not a saved BAVAE: {f.name} is missing (expected {CONFIG_NAME} and {WEIGHTS_NAME})"
            )
        if problem:
            raise WeightsError(f"{f} {problem}")
    return files


class _Signalled(BaseException):
    """A SIGTERM or SIGHUP that arrived while a file was being written (see :func:`_cleanup_on_signal`)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _cleanup_on_signal() -> Iterator[None]:
    """While a temporary file exists: SIGTERM and SIGHUP, whose default is to end the process on the spot, raise
    instead, so that the ``except`` below removes the file; then the signal is delivered again, with its old
    disposition, and ends the process as it would have. SIGINT already raises (KeyboardInterrupt). A handler of
    the program's own is left alone, and so is every signal outside the main thread (Python handles them there)."""
    import signal
    import threading

    installed: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():

        def handler(signum: int, frame: Any) -> None:
            raise _Signalled(signum)

        for name in ("SIGTERM", "SIGHUP"):
            signum = getattr(signal, name, None)
            if signum is not None and signal.getsignal(signum) == signal.SIG_DFL:
                installed[signum] = signal.signal(signum, handler)
    try:
        yield
    except _Signalled as e:
        for signum, previous in installed.items():
            signal.signal(signum, previous)
        installed.clear()
        os.kill(os.getpid(), e.signum)  # its default action: the process ends here, as it would have
        raise SystemExit(128 + e.signum) from None  # (only if it did not)
    finally:
        for signum, previous in installed.items():
            signal.signal(signum, previous)


def atomic_write(path: str | os.PathLike, write: Any) -> None:
    """Call ``write(tmp_path)`` then fsync and rename over ``path``: readers see the old file or the new, never half.
    The temporary file goes whatever stops the write: an error, Ctrl-C (SIGINT), SIGTERM or SIGHUP."""
    path = Path(path)
    with _cleanup_on_signal():
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
    "STDIO",
    "file_problem",
    "check_output_file",
    "check_output_folder",
    "check_free_space",
    "atomic_write",
    "sha256_file",
    "hash_problem",
]

"""A warm interpreter for the tests' ``python -m bavae ...`` and ``python script.py`` children: torch imported
once, then one fork per command.

Every CLI test runs the real entry point in its own process, and most of such a process's time went to importing
torch (and torch._dynamo, which torch.optim imports on first use, and torchvision): 4-7 s of a 5-8 s child on the
2-core CI machine, a few hundred CPU-seconds over the suite. This server imports those libraries and nothing that
reads the environment at import time (not huggingface_hub, not bavae), then, for each request, forks a child that
takes the request's environment, working folder, argv and standard streams and runs the module or script as
``python -m`` or ``python script.py`` would (``runpy``, ``__main__``, atexit handlers, the exit status). The child is a real process: its own pid, session,
files and exit code, so what the tests assert about exit codes, stderr and files written is what a user's shell sees.
Tests about signals and about the console script itself start a fresh interpreter (subprocess.Popen), as before.

Protocol: one JSON request per line on stdin ({"module" or "script", "args", "env", "cwd", "stdout", "stderr", "timeout"}), one
JSON answer per line on stdout ({"returncode", "timed_out"}). ``TESTS_COLD_PYTHON=1`` in the shell turns it off
(helpers.run).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import runpy
import select
import signal
import sys
import threading
import time
import traceback
from typing import Callable, NoReturn


def preload() -> None:
    # Libraries whose import is slow and reads no setting a test changes. OMP_NUM_THREADS is read when the OpenMP
    # runtime loads, so the server starts with the tests' value (1) and a child asking for another sets it itself.
    import numpy  # noqa: F401
    import PIL.Image  # noqa: F401
    import safetensors.torch  # noqa: F401
    import torch
    import torch._dynamo  # noqa: F401  (torch.optim imports it on an optimizer's first param group: ~2 s)
    import torchvision  # noqa: F401

    assert torch.get_num_threads() >= 1


def child(req: dict) -> NoReturn:
    """In the forked process: become ``python -m MODULE ARGS`` (or ``python SCRIPT ARGS``) in the request's folder
    and environment, and never return into the server's loop, whatever fails."""
    code = 1
    try:
        code = become(req)
    finally:
        os._exit(code & 0xFF)


def become(req: dict) -> int:
    os.setsid()  # its own process group, so that a timeout kills what it started too
    os.dup2(os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
    os.dup2(os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    unbuffered = bool(req["env"].get("PYTHONUNBUFFERED"))
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
        encoding="utf-8",
        line_buffering=True,
        write_through=unbuffered,
    )
    sys.stderr = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
        write_through=True,
    )
    try:
        os.chdir(req["cwd"])
    except OSError as e:  # as subprocess would have refused to start it: say so where the caller reads
        print(f"warm_python: cannot enter {req['cwd']}: {e}", file=sys.stderr)
        sys.stderr.flush()
        return 1
    os.environ.clear()
    os.environ.update(req["env"])
    import torch

    threads = req["env"].get("OMP_NUM_THREADS")
    if threads and threads.isdigit() and int(threads) != torch.get_num_threads():
        torch.set_num_threads(int(threads))
    script = req.get("script")
    if script:
        script = os.path.abspath(script)
    # `python -m` puts the working folder first on the path, `python script.py` the script's folder
    sys.path[0] = os.path.dirname(script) if script else os.getcwd()
    sys.argv = [script or req["module"], *req["args"]]
    code, interrupted = 0, False
    try:
        if script:
            runpy.run_path(script, run_name="__main__")
        else:
            runpy.run_module(req["module"], run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = exit_status(e)
    except KeyboardInterrupt:
        traceback.print_exc()
        code, interrupted = 1, True
    except BaseException:  # noqa: BLE001 - as the interpreter does: the traceback on stderr, status 1
        traceback.print_exc()
        code = 1
    # the interpreter's own exit: wait for non-daemon threads, then atexit handlers, then flush
    with contextlib.suppress(BaseException):
        threading._shutdown()
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    with contextlib.suppress(BaseException):
        sys.stdout.flush()
        sys.stderr.flush()
    if interrupted:  # an uncaught KeyboardInterrupt ends python by SIGINT itself (status -2), as here
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return code


def exit_status(e: SystemExit) -> int:
    """The status the interpreter exits with for an uncaught SystemExit (a message goes to stderr, status 1)."""
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code
    print(e.code, file=sys.stderr)
    return 1


def wait(pid: int, timeout: float) -> tuple[int, bool]:
    """The child's exit status, and whether it ran out of time. If the test process goes away meanwhile (its end
    of our stdin closes), the child and its group are killed and the server ends."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), False
        orphaned = select.select([sys.stdin], [], [], 0)[0]  # only EOF can arrive while a request is open
        if orphaned or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            if orphaned:
                os._exit(0)
            return os.waitstatus_to_exitcode(status), True
        time.sleep(0.01)


def serve_requests(child: Callable[[dict], NoReturn], answer: Callable[[int, bool], dict]) -> None:
    """The fork loop (this server's and the bad-input table's): one JSON request per stdin line, one forked
    ``child(request)`` for each, then ``answer(exit status, timed out)`` as one JSON line on stdout."""
    answers = sys.stdout
    for line in sys.stdin:
        req = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            child(req)
        answers.write(json.dumps(answer(*wait(pid, req["timeout"]))) + "\n")
        answers.flush()


def serve() -> None:
    preload()
    sys.stdout.write(json.dumps({"ready": True}) + "\n")
    sys.stdout.flush()
    serve_requests(child, lambda returncode, timed_out: {"returncode": returncode, "timed_out": timed_out})


if __name__ == "__main__":
    serve()

"""Cold start-up of `bavae demo` next to `import gradio` and `import torch`, measured in the same run.

    python benchmarks/demo_startup.py --repeat 3 --out benchmarks/results/demo_startup.json

Start-up is from launching the process to the line `bavae demo: serving http://...`, which it prints once the
server answers (offline: HF_HUB_OFFLINE=1, the bundled default model). Each measurement is a new process; the best
of --repeat runs is reported (on a shared machine the best measures the code, not the neighbours), all runs too.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def demo_startup(env: dict[str, str]) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bavae", "demo", "--port", str(port)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()
        seconds = time.perf_counter() - start
        if not line.startswith("bavae demo: serving"):
            raise SystemExit(f"bavae demo did not start: {line!r}")
        return seconds
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    runs: dict[str, list[float]] = {"import torch": [], "import gradio": [], "bavae demo": []}
    for _ in range(args.repeat):  # interleaved, so machine noise hits all three alike
        runs["import torch"].append(timed([sys.executable, "-c", "import torch"], env))
        runs["import gradio"].append(timed([sys.executable, "-c", "import gradio"], env))
        runs["bavae demo"].append(demo_startup(env))
    best = {k: round(min(v), 2) for k, v in runs.items()}
    for k, v in runs.items():
        print(f"{k:<14} best {min(v):.2f} s   runs {', '.join(f'{x:.2f}' for x in v)}")
    print(f"bavae demo - import gradio: {best['bavae demo'] - best['import gradio']:.2f} s")
    if args.out:
        report = {"best_s": best, "runs_s": {k: [round(x, 2) for x in v] for k, v in runs.items()}}
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

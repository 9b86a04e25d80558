"""Cold starts of two checkouts of bavae, interleaved: `bavae --help` and `bavae sample -n 64` in new processes.

    python benchmarks/cold_start.py BEFORE_DIR AFTER_DIR N pyc|nopyc

Each checkout is put first on PYTHONPATH for the installed `bavae` script of this venv; `pyc` lets Python write and
use bytecode caches (an installed package has them), `nopyc` compiles every module on each start. Prints, per
checkout and command, the wall and CPU (user + system) seconds: their minimum, their median, and every run.
"""

import os
import resource
import statistics
import subprocess
import sys
import time

before, after, N, pyc = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "pyc"
trees = {"before": before, "after": after}
work = "/tmp/bavae-cold-start"
os.makedirs(work, exist_ok=True)
env0 = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "BAVAE_", "PYTHON"))}
env0.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_HOME=os.path.join(work, "hf"))
env0["BAVAE_WEIGHTS_DIR"] = os.path.join(after, "weights")  # the same bundled weights for both
if not pyc:
    env0["PYTHONDONTWRITEBYTECODE"] = "1"
bavae = os.path.join(os.path.dirname(sys.executable), "bavae")
res = {(t, c): [] for t in trees for c in ("help", "sample")}


def run(tree, args):
    env = {**env0, "PYTHONPATH": trees[tree]}
    t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([bavae, *args], env=env, cwd=work, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - t0, r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime


for t in trees:  # warm-up (writes the .pyc files when allowed)
    run(t, ["--help"])
    run(t, ["sample", "-n", "64", "-o", f"{work}/w_{t}.png"])
for i in range(N):
    for t in trees if i % 2 == 0 else list(trees)[::-1]:
        res[(t, "help")].append(run(t, ["--help"]))
        res[(t, "sample")].append(run(t, ["sample", "-n", "64", "-o", f"{work}/s_{t}.png", "--seed", "0"]))
for (t, c), v in res.items():
    wall, cpu = [w for w, _ in v], [u for _, u in v]
    print(
        f"{'pyc' if pyc else 'nopyc'} {t:6} {c:6} wall min {min(wall):.3f} median {statistics.median(wall):.3f} | cpu min {min(cpu):.3f} median {statistics.median(cpu):.3f} | wall {' '.join(f'{x:.2f}' for x in wall)}"
    )

"""Train the bundled models, one after another, single-threaded on the CPU; resumable.

    OMP_NUM_THREADS=1 python benchmarks/train_zoo.py --out runs/zoo [--models bavae-emoji64,...]

Each model's exact `bavae train` command is its zoo record's (`bavae info NAME`). A finished run is skipped,
a cut one resumed (`bavae train --resume`, bit-identical), so the script can be stopped and started across
sessions. Each run's CPU time is added up in OUT/<name>/cpu.json. Then `benchmarks/bundle_weights.py` turns a
run into weights/<name>/.

The emoji64 run needs its image folder first: `python benchmarks/make_emoji_folder.py --packs DIR --out data/emoji`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
from pathlib import Path

from bavae import zoo

# Every bundled model that `bavae train` made from scratch (the paper model's command also fits a sampler after).
MODELS = [n for n in zoo.list_models() if zoo.model_info(n).bundled and n != "bavae-fashionmnist32-paper"]


def command(name: str, out: Path) -> list[str]:
    """The model's zoo record's exact `bavae train` command (`bavae info NAME`), writing to OUT/NAME: the records
    are the source of truth, so the script trains what ships (with the options each was made with, not today's
    defaults where they have moved since)."""
    cmd = shlex.split(zoo.model_info(name).train_command.split(" && ")[0])
    where = cmd.index("--out") + 1
    return [*cmd[:where], str(out / name), *cmd[where + 1 :]]


def cpu_seconds_of_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/zoo")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--print", action="store_true", help="print the commands and exit")
    args = p.parse_args()
    out = Path(args.out)
    bavae = str(Path(sys.executable).with_name("bavae"))
    for name in args.models.split(","):
        cmd = command(name, out)
        if args.print:
            print(shlex.join(cmd))
            continue
        run = out / name
        if (run / "done.json").exists():
            continue
        if (run / "training_state.safetensors").exists():
            cmd = ["bavae", "train", "--resume", str(run)]
        print("$", shlex.join(cmd), flush=True)
        before = cpu_seconds_of_children()
        subprocess.run([bavae, *cmd[1:]], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        spent = cpu_seconds_of_children() - before
        cpu = json.loads((run / "cpu.json").read_text())["cpu_s"] if (run / "cpu.json").exists() else 0.0
        (run / "cpu.json").write_text(json.dumps({"cpu_s": cpu + spent}))
        (run / "done.json").write_text(json.dumps({"command": shlex.join(command(name, out))}))


if __name__ == "__main__":
    main()

"""Train the bundled models, one after another, single-threaded on the CPU; resumable.

    OMP_NUM_THREADS=1 python benchmarks/train_zoo.py --out runs/zoo [--models bavae-emoji64,...]

Each model's exact `bavae train` command is in ``COMMANDS`` (the zoo records quote them). A finished run is skipped,
a cut one resumed (`bavae train --resume`, bit-identical), so the script can be stopped and started across
sessions. Each run's CPU time is added up in OUT/<name>/cpu.json. Then `benchmarks/bundle_weights.py` turns a
run into weights/<name>/.

The emoji64 run needs its image folder first: `python benchmarks/make_emoji_folder.py --out data/emoji`.
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

# The shipped recipe: one critic trunk with two heads, bf16 autocast (this CPU has avx512_bf16), batch 64.
RECIPE = "--shared-critic-trunk --precision bf16 --checkpoint-every 1000 --sample-every 2000 --sampler-components 50"
# bavae-fashionmnist32 and -paper were trained by the first release's recipe: `bavae info NAME` gives their commands.
COMMANDS = {
    "bavae-fashionmnist28-mlp": "--dataset fashion-mnist --arch mlp --steps 20000",
    "bavae-fashionmnist32-resnet": "--dataset fashion-mnist --arch resnet --width 16 --steps 5000",
    "bavae-dsprites64": "--dataset dsprites --arch dcgan --width 16 --latent-dim 10 --posterior-noise-dim 10 --steps 15000",
    "bavae-emoji64": (
        "--dataset folder --data-dir data/emoji --arch dcgan --image-size 64 --channels 3 --width 32 "
        "--latent-dim 64 --posterior-noise-dim 64 --steps 10000"
    ),
}


def command(name: str, out: Path) -> list[str]:
    return ["bavae", "train", *shlex.split(COMMANDS[name]), *shlex.split(RECIPE), "--out", str(out / name)]


def cpu_seconds_of_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/zoo")
    p.add_argument("--models", default=",".join(COMMANDS))
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

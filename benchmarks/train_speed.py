"""Training speed of BAVAE against a plain Gaussian VAE with the same encoder/decoder trunks, in one run.

    python benchmarks/train_speed.py --arch dcgan --image-size 32 --batch-size 64 --device cpu

Every setup takes turns (ABCD... rounds of --steps steps each) so machine noise hits all alike; the report is
images/s of each and the ratios against the VAE in fp32 and in bf16. BAVAE steps are `bavae.train.game_step`,
the training loop's own step. Random inputs: data loading is not what is measured.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import platform
import time

import torch
from torch import nn
from torch.nn import functional as F

from bavae import BAVAE, BAVAEConfig, nets
from bavae.nets.common import hidden_dim
from bavae.train import game_step, optimizers

# name -> (config overrides, precision, critic_every). "first release": the recipe before the sample-quality work;
# "before issue 21": the shipped recipe until the critics became half as wide and stepped on one step in two.
# A critic_width of "half" is half of --width, as `bavae train` makes it.
SHIPPED = "bavae shipped (shared trunk, half-width critics every 2nd step, bf16)"
SETUPS = {
    "bavae first release (2 critic trunks, fp32)": (dict(shared_critic_trunk=False), "fp32", 1),
    "bavae shared critic trunk, fp32": (dict(shared_critic_trunk=True), "fp32", 1),
    "bavae before issue 21 (shared critic trunk, bf16)": (dict(shared_critic_trunk=True), "bf16", 1),
    SHIPPED: (
        dict(shared_critic_trunk=True, critic_width="half"),
        "bf16",
        2,
    ),
}
# --extras: the shipped setup with one more change each; also critic_width=N (the critics' base width),
# critic_every=K (`bavae train --critic-every K`: the critics step on one step in K) and compile=MODE (torch.compile's
# mode, e.g. reduce-overhead: CUDA graphs of the compiled networks on a GPU, a new graph step marked per game step)
EXTRAS = ("channels_last", "compile", "prior_fakes", "sample")


class GaussianVAE(nn.Module):
    """The baseline: the BAVAE encoder trunk -> (mu, log sigma^2), the same decoder, Bernoulli-free L2 + analytic KL."""

    def __init__(self, config: BAVAEConfig):
        super().__init__()
        spec = config.net_spec()
        encoder = nets.build(config.arch, "encoder", spec)
        self.trunk = encoder.trunk  # same image trunk as BAVAE's implicit encoder
        self.to_stats = nn.Linear(hidden_dim(spec), 2 * config.latent_dim)
        self.decoder = nets.build(config.arch, "decoder", spec)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.to_stats(self.trunk(x)).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = F.mse_loss(self.decoder(z), x, reduction="none").flatten(1).sum(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
        return (recon + kl).mean()


def vae_step(model: GaussianVAE, opt, x):
    loss = model.loss(x)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="dcgan")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--critic-width", type=int, default=None, help="the critics' width where a setup sets none")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", action="store_true")
    p.add_argument("--extras", default="", help=f"comma-separated, from {EXTRAS}: the shipped setup plus one change")
    args = p.parse_args()

    device = torch.device(args.device)
    base = BAVAEConfig(
        arch=args.arch,
        image_size=args.image_size,
        channels=args.channels,
        width=args.width,
        critic_width=args.critic_width,
    )
    x = torch.rand(args.batch_size, args.channels, args.image_size, args.image_size, device=device)

    def autocast(precision: str):
        return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()

    runs = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        vae = GaussianVAE(base).to(device).train()
        opt = torch.optim.Adam(vae.parameters(), 2e-4)

        def run_vae(vae=vae, opt=opt, precision=precision):
            with autocast(precision):
                vae_step(vae, opt, x)

        runs[f"gaussian vae {precision}"] = run_vae
    setups, changes_of = dict(SETUPS), {}  # name -> its --extras changes, {key: value}
    for extra in filter(None, args.extras.split(",")):  # one setup each; `a+b` combines changes in one setup
        name, overrides = f"bavae shipped + {extra}", {**SETUPS[SHIPPED][0], "objective_weights": {}}
        changes_of[name] = {"critic_every": str(SETUPS[SHIPPED][2])}
        changes_of[name].update(change.partition("=")[::2] for change in extra.split("+"))
        for key, value in changes_of[name].items():
            change = f"{key}={value}" if value else key
            if key not in (*EXTRAS, "critic_width", "critic_every"):
                p.error(
                    f"unknown extra {change!r}: expected one of {EXTRAS}, critic_width=N, critic_every=K, "
                    "compile=MODE, or several joined by +"
                )
            weights = {"prior_fakes": {"prior_fakes": 0.5}, "sample": {"prior_fakes": 0.5, "sample": 1.0}}
            overrides["objective_weights"].update(weights.get(change, {}))
            if key == "critic_width":
                overrides["critic_width"] = int(value)
        setups[name] = (overrides, "bf16", int(changes_of[name]["critic_every"]))
    for name, (overrides, precision, every) in setups.items():
        torch.manual_seed(0)
        if overrides.get("critic_width") == "half":
            overrides = {**overrides, "critic_width": max(1, args.width // 2)}
        model = BAVAE(dataclasses.replace(base, **overrides)).to(device).train()
        xs, changes = x, changes_of.get(name, {})
        if "channels_last" in changes:
            model, xs = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        mode = changes.get("compile")  # "" for the default mode
        if mode is not None:  # as `bavae train --compile` does: the heavy sub-networks, in place
            for net in (model.encoder.trunk, model.decoder.body, model.inference_critic.image_trunk):
                net.compile(mode=mode or None)
        # CUDA graphs (reduce-overhead) reuse their output memory from one step to the next: each game step is a step
        mark_step = torch.compiler.cudagraph_mark_step_begin if mode and "reduce-overhead" in mode else lambda: None
        opt_c, opt_ae = optimizers(model, 2e-4, 2e-4, (0.5, 0.999), device)
        count = itertools.count()  # the training loop's schedule: step % k == 0

        def run_bavae(m=model, c=opt_c, a=opt_ae, pr=precision, xs=xs, k=every, n=count, mark_step=mark_step):
            mark_step()
            game_step(m, [xs], c, a, autocast=autocast(pr), update_critics=next(n) % k == 0)

        runs[name] = run_bavae

    def timed(fn) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(args.steps):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    for fn in runs.values():  # warm-up
        fn()
        fn()
    seconds = {name: 0.0 for name in runs}
    for _ in range(args.rounds):
        for name, fn in runs.items():
            seconds[name] += timed(fn)
    n = args.steps * args.rounds
    result = {name: {"steps_per_s": n / s, "images_per_s": n * args.batch_size / s} for name, s in seconds.items()}
    for name in runs:
        for precision in ("fp32", "bf16"):
            vae = result[f"gaussian vae {precision}"]["images_per_s"]
            result[name][f"over_vae_{precision}"] = result[name]["images_per_s"] / vae
    setup = {
        **vars(args),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }
    if args.json:
        print(json.dumps({"results": result, "setup": setup}, indent=2))
    else:
        print("| setup | images/s | / VAE fp32 | / VAE bf16 |\n|---|---|---|---|")
        for name, r in result.items():
            print(f"| {name} | {r['images_per_s']:.1f} | {r['over_vae_fp32']:.2f}x | {r['over_vae_bf16']:.2f}x |")


if __name__ == "__main__":
    main()

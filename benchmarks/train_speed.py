"""Training speed of BAVAE against a plain Gaussian VAE with the same encoder/decoder trunks, in one run.

    python benchmarks/train_speed.py --arch dcgan --image-size 32 --batch-size 64 --device cpu

Both models take turns (ABAB... rounds of --steps steps each) so machine noise hits both alike; the report
is images/s of each and their ratio. Random inputs: data loading is not what is measured.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from torch import nn
from torch.nn import functional as F

from bavae import BAVAE, BAVAEConfig, nets
from bavae.nets.common import hidden_dim


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


def bavae_step(model: BAVAE, opt_c, opt_ae, x):
    """One step of bavae.train's loop with critic_steps=1, fp32, one process: keep the two in step."""
    z = model.encoder(x)  # one encoder/decoder pass with autograd serves both players
    x_fake = model.decoder(z)
    critic = model.critic_losses(x, z, x_fake)
    opt_c.zero_grad(set_to_none=True)
    (critic.inference_critic + critic.generative_critic).backward()
    opt_c.step()
    model.inference_critic.requires_grad_(False)
    model.generative_critic.requires_grad_(False)
    ae = model.autoencoder_losses(x, z, x_fake)
    opt_ae.zero_grad(set_to_none=True)
    (ae.encoder + ae.decoder).backward()
    opt_ae.step()
    model.inference_critic.requires_grad_(True)
    model.generative_critic.requires_grad_(True)


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
    p.add_argument("--critic-width", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    device = torch.device(args.device)
    config = BAVAEConfig(arch=args.arch, image_size=args.image_size, channels=args.channels, width=args.width,
                         critic_width=args.critic_width)
    torch.manual_seed(0)
    bavae_model, vae = BAVAE(config).to(device).train(), GaussianVAE(config).to(device).train()
    opt_c = torch.optim.Adam(bavae_model.critic_parameters(), 2e-4, betas=(0.5, 0.999))
    opt_ae = torch.optim.Adam(bavae_model.autoencoder_parameters(), 2e-4, betas=(0.5, 0.999))
    opt_vae = torch.optim.Adam(vae.parameters(), 2e-4)
    x = torch.rand(args.batch_size, args.channels, args.image_size, args.image_size, device=device)
    runs = {"bavae": lambda: bavae_step(bavae_model, opt_c, opt_ae, x), "vae": lambda: vae_step(vae, opt_vae, x)}

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
    seconds = {name: 0.0 for name in runs}
    for _ in range(args.rounds):
        for name, fn in runs.items():
            seconds[name] += timed(fn)
    n = args.steps * args.rounds
    result = {name: {"steps_per_s": n / s, "images_per_s": n * args.batch_size / s} for name, s in seconds.items()}
    result["ratio_bavae_over_vae"] = result["bavae"]["images_per_s"] / result["vae"]["images_per_s"]
    result["setup"] = {**vars(args), "torch": torch.__version__, "threads": torch.get_num_threads(),
                       "machine": platform.processor() or platform.machine(),
                       "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name in runs:
            print(f"{name:>6}: {result[name]['steps_per_s']:7.2f} steps/s  {result[name]['images_per_s']:8.1f} images/s")
        print(f"BAVAE / VAE images/s: {result['ratio_bavae_over_vae']:.2f}x")


if __name__ == "__main__":
    main()

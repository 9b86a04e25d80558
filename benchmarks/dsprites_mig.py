"""dSprites disentanglement: a BAVAE against pythae's Gaussian VAE on the same trunks and budget, in one run.

    python benchmarks/dsprites_mig.py --ours runs/dsprites64 --minutes 5 --device cuda --out runs/dsprites-vae
    # or train the VAE first (beside the BAVAE run), then score both:
    python benchmarks/dsprites_mig.py --width 16 --latent-dim 10 --minutes 5 --out runs/dsprites-vae
    python benchmarks/dsprites_mig.py --ours runs/dsprites64 --vae-weights runs/dsprites-vae/vae.safetensors

The VAE gets the BAVAE run's encoder/decoder trunks (`bavae.nets.dcgan`, its width, latent size and image size),
batch 64 and the same training time (``--minutes``, wall clock on the same device) or ``--steps``; the losses
and the optimiser step are pythae's own (Bernoulli likelihood, analytic KL, Adam at lr 1e-3). Both models are then
scored by `bavae.eval.evaluate` on the same dSprites test images: MIG of the posterior means against the five
factors, and reconstruction MSE. Writes OUT/results.json and each model's latent-traversal picture.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

import bavae
from bavae.data import build_dataset, make_loader
from bavae.eval import EvalSettings, ModelAdapter, _test_images, evaluate, latent_traversal
from bavae.images import save_grid
from bavae.nets import NetSpec


def train_vae(spec: NetSpec, device: torch.device, minutes: float | None, steps: int | None, seed: int = 0):
    from peers import Decoder, GaussianEncoder  # benchmarks/peers.py: our trunks with pythae's interfaces
    from pythae.models import VAE, VAEConfig
    from pythae.trainers import BaseTrainer

    torch.manual_seed(seed)
    config = VAEConfig(
        input_dim=(spec.channels, spec.image_size, spec.image_size),
        latent_dim=spec.latent_dim,
        reconstruction_loss="bce",
    )
    model = VAE(config, encoder=GaussianEncoder(spec), decoder=Decoder(spec)).to(device).train()
    opts = type("Optimizers", (), {})()
    opts.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    data = build_dataset("dsprites", image_size=spec.image_size, channels=spec.channels, split="train")
    loader = make_loader(data, 64, shuffle=True, seed=seed)
    it, t0, step = iter(loader), time.perf_counter(), 0
    while (steps is None or step < steps) and (minutes is None or time.perf_counter() - t0 < 60 * minutes):
        try:
            x = next(it)
        except StopIteration:
            it = iter(loader)
            x = next(it)
        output = model({"data": x.to(device)}, epoch=0, dataset_size=len(data), uses_ddp=False)
        BaseTrainer._optimizers_step(opts, output)
        with torch.no_grad():
            torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - 0.999)
            for e, b in zip(ema.buffers(), model.buffers()):
                e.copy_(b)
        step += 1
    return ema, {"steps": step, "train_minutes": (time.perf_counter() - t0) / 60}


def vae_adapter(model, spec: NetSpec, device: torch.device) -> ModelAdapter:
    @torch.no_grad()
    def reconstruct(x):
        return model.decoder(model.encoder(x).embedding).reconstruction

    @torch.no_grad()
    def sample(n):
        return model.decoder(torch.randn(n, spec.latent_dim, device=device)).reconstruction

    @torch.no_grad()
    def encode_mean(x):
        return model.encoder(x).embedding

    return ModelAdapter(reconstruct, sample, spec.image_size, spec.channels, encode_mean=encode_mean, device=device)


class _Traversable:
    """What latent_traversal needs (encode with n_samples, decode) for the VAE: its posterior mean."""

    def __init__(self, model):
        self.model = model

    @torch.no_grad()
    def encode(self, x, n_samples=1, generator=None):
        return self.model.encoder(x).embedding[:, None, :].expand(-1, n_samples, -1)

    @torch.no_grad()
    def decode(self, z, generator=None):
        return self.model.decoder(z).reconstruction


def traversal_png(model, x: torch.Tensor, path: Path) -> None:
    images, _ = latent_traversal(model, x, generator=None)
    save_grid(images.flatten(0, 1), path, images.shape[1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ours", default=None, help="a bavae dSprites model (folder or zoo name) to score beside the VAE")
    p.add_argument("--minutes", type=float, default=None, help="the VAE's training time")
    p.add_argument("--steps", type=int, default=None, help="or its number of steps")
    p.add_argument("--vae-weights", default=None, help="load the VAE from here instead of training it")
    p.add_argument("--width", type=int, default=None, help="trunk width (default: --ours's)")
    p.add_argument("--latent-dim", type=int, default=None, help="latent size (default: --ours's)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--n-test", type=int, default=10000)
    p.add_argument("--out", default="runs/dsprites-vae")
    args = p.parse_args()
    if args.vae_weights is None and args.minutes is None and args.steps is None:
        raise SystemExit("give --minutes or --steps (the BAVAE run's budget), or --vae-weights")
    device, out = torch.device(args.device), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ours = bavae.load(args.ours, device=device) if args.ours else None
    width = args.width or (ours.config.width if ours else None)
    latent = args.latent_dim or (ours.config.latent_dim if ours else None)
    if width is None or latent is None:
        raise SystemExit("give --ours, or --width and --latent-dim")
    spec = NetSpec(64, 1, latent, latent, 0, width, False)
    if args.vae_weights:
        from peers import Decoder, GaussianEncoder
        from pythae.models import VAE, VAEConfig
        from safetensors.torch import load_file

        vae = VAE(
            VAEConfig(input_dim=(1, 64, 64), latent_dim=latent, reconstruction_loss="bce"),
            encoder=GaussianEncoder(spec),
            decoder=Decoder(spec),
        )
        vae.load_state_dict(load_file(args.vae_weights))
        vae = vae.to(device).eval()
        meta = json.loads(Path(args.vae_weights).with_suffix(".json").read_text())
    else:
        from safetensors.torch import save_file

        vae, meta = train_vae(spec, device, args.minutes, args.steps)
        save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, str(out / "vae.safetensors"))
        (out / "vae.json").write_text(json.dumps(meta))
    if ours is None:
        print(f"trained the VAE: {meta}; saved {out / 'vae.safetensors'}")
        return
    settings = EvalSettings(n_samples=min(2000, args.n_test), n_test=args.n_test)
    results = {
        "bavae": evaluate(ours, "dsprites", settings=settings),
        "pythae_vae": {**evaluate(vae_adapter(vae, spec, device), "dsprites", settings=settings), **meta},
    }
    x = _test_images("dsprites", 64, 1, 16)[0][3:4].to(device)
    traversal_png(ours, x, out / "bavae-traversal.png")
    traversal_png(_Traversable(vae), x, out / "vae-traversal.png")
    keep = (
        "mig",
        "mig_shape",
        "mig_scale",
        "mig_orientation",
        "mig_posX",
        "mig_posY",
        "recon_mse",
        "steps",
        "train_minutes",
    )
    results = {name: {k: v for k, v in r.items() if k in keep} for name, r in results.items()}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

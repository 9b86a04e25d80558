"""Side by side: the bundled default model against pythae's VAE, VAEGAN and Adversarial_AE.

    pip install pythae
    OMP_NUM_THREADS=1 python benchmarks/peers.py --steps 10000 --out /work/runs/peers [--models vae,vaegan,aae]

Every peer gets what our default got: Fashion-MNIST 32x32 (28x28 zero-padded), latent 16, batch 64, the same number
of steps, our DCGAN trunks (``bavae.nets.dcgan``: the encoder's conv stack + a Gaussian head, the decoder's
transposed-conv stack + sigmoid; VAEGAN's discriminator is the critic's conv stack with a sigmoid head) and an EMA of
the weights (decay 0.999) for scoring, as our training does. The losses and the optimiser steps are pythae's own
(``model(inputs)`` and its trainers' ``_optimizers_step``); only the loop is ours, so that the budget is counted in
steps rather than epochs. Optimisers: Adam at pythae's usual settings for each kind (lr 1e-3 for the VAE and the
AAE, GAN settings lr 2e-4 / betas (0.5, 0.999) for VAEGAN's three optimisers).

All models, ours included, are scored in the same process with :func:`bavae.eval.evaluate` (same metrics, same
test images, same seed). Each trained peer is saved as safetensors in --out, and a run that is interrupted starts
that peer again; finished peers are not retrained. Results go to --out/results.json and are printed as a Markdown
table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

import bavae
from bavae.data import FashionMNIST, make_loader
from bavae.eval import EvalSettings, ModelAdapter, evaluate
from bavae.files import atomic_write
from bavae.images import save_grid
from bavae.nets import NetSpec
from bavae.nets.common import conv_stages, hidden_dim
from bavae.nets.dcgan import dcgan_decoder, image_trunk

try:
    from pythae.models import VAE, VAEGAN, Adversarial_AE, Adversarial_AE_Config, VAEConfig, VAEGANConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseDiscriminator, BaseEncoder
    from pythae.trainers import AdversarialTrainer, BaseTrainer, CoupledOptimizerAdversarialTrainer
except ImportError as e:  # pragma: no cover - the benchmark's only extra dependency
    raise SystemExit(f"benchmarks/peers.py needs pythae: pip install pythae ({e})") from None

SPEC = NetSpec(image_size=32, channels=1, latent_dim=16, width=32, posterior_noise_dim=16, decoder_noise_dim=0,
               spectral_norm=False)


class GaussianEncoder(BaseEncoder):
    """Our DCGAN encoder trunk with a Gaussian head (mean, log-variance) instead of the implicit noisy head."""

    def __init__(self, spec: NetSpec = SPEC):
        super().__init__()
        self.trunk = image_trunk(spec, normalise=True)
        self.mean, self.log_var = nn.Linear(hidden_dim(spec), spec.latent_dim), nn.Linear(hidden_dim(spec), spec.latent_dim)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        h = self.trunk(x)
        return ModelOutput(embedding=self.mean(h), log_covariance=self.log_var(h))


class Decoder(BaseDecoder):
    """Our DCGAN decoder (transposed convolutions, sigmoid output)."""

    def __init__(self, spec: NetSpec = SPEC):
        super().__init__()
        self.net = dcgan_decoder(spec)

    def forward(self, z: torch.Tensor) -> ModelOutput:
        return ModelOutput(reconstruction=self.net(z))


class Discriminator(BaseDiscriminator):
    """VAEGAN's discriminator: our critic's conv stack, layer by layer so pythae can read a feature map."""

    def __init__(self, spec: NetSpec = SPEC):
        super().__init__()
        trunk = list(image_trunk(spec, normalise=False))
        stages = conv_stages(spec.image_size)
        convs = [nn.Sequential(*trunk[2 * i:2 * i + 2]) for i in range(stages)]  # conv + LeakyReLU
        self.layers = nn.ModuleList([*convs, nn.Sequential(*trunk[2 * stages:]),
                                     nn.Sequential(nn.Linear(hidden_dim(spec), 1), nn.Sigmoid())])
        self.depth = len(self.layers)

    def forward(self, x: torch.Tensor, output_layer_levels: list[int] | None = None) -> ModelOutput:
        out, levels = ModelOutput(), output_layer_levels or []
        last = self.depth if not levels or -1 in levels else max(levels)
        h = x
        for i in range(last):
            h = self.layers[i](h)
            if i + 1 in levels:
                out[f"embedding_layer_{i + 1}"] = h
            if i + 1 == self.depth:
                out["embedding"] = h
        return out


def build_peer(kind: str) -> tuple[nn.Module, SimpleNamespace, callable]:
    """A pythae model, its optimisers (named as its trainer names them) and the trainer's optimiser step."""
    common = dict(input_dim=(1, 32, 32), latent_dim=16, reconstruction_loss="bce")
    enc, dec = GaussianEncoder(), Decoder()
    if kind == "vae":
        model = VAE(VAEConfig(**common), encoder=enc, decoder=dec)
        opts = SimpleNamespace(optimizer=torch.optim.Adam(model.parameters(), lr=1e-3))
        return model, opts, BaseTrainer._optimizers_step
    if kind == "aae":
        model = Adversarial_AE(Adversarial_AE_Config(**common), encoder=enc, decoder=dec)
        ae = [*model.encoder.parameters(), *model.decoder.parameters()]
        opts = SimpleNamespace(autoencoder_optimizer=torch.optim.Adam(ae, lr=1e-3),
                               discriminator_optimizer=torch.optim.Adam(model.discriminator.parameters(), lr=1e-3))
        return model, opts, AdversarialTrainer._optimizers_step
    if kind == "vaegan":
        disc = Discriminator()
        model = VAEGAN(VAEGANConfig(**common, reconstruction_layer=conv_stages(32)), encoder=enc, decoder=dec,
                       discriminator=disc)
        adam = dict(lr=2e-4, betas=(0.5, 0.999))
        opts = SimpleNamespace(encoder_optimizer=torch.optim.Adam(model.encoder.parameters(), **adam),
                               decoder_optimizer=torch.optim.Adam(model.decoder.parameters(), **adam),
                               discriminator_optimizer=torch.optim.Adam(model.discriminator.parameters(), **adam))
        return model, opts, CoupledOptimizerAdversarialTrainer._optimizers_step
    raise ValueError(f"unknown peer {kind!r}; expected vae, vaegan or aae")


def train_peer(kind: str, steps: int, out: Path, seed: int = 0, max_cpu_minutes: float | None = None
               ) -> tuple[nn.Module, dict]:
    """Train one peer for ``steps`` batches of 64, or until this process has used ``max_cpu_minutes`` of CPU time
    (our default's budget was 10,000 steps in 72 minutes of one core); or load it from a previous run."""
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    model, opts, optimizers_step = build_peer(kind)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    weights, meta_file = out / f"{kind}.safetensors", out / f"{kind}.json"
    if weights.is_file() and meta_file.is_file() and json.loads(meta_file.read_text())["budget_steps"] == steps:
        ema.load_state_dict(load_file(str(weights)))
        return ema, json.loads(meta_file.read_text())
    data = FashionMNIST(split="train", image_size=32)
    loader = make_loader(data, 64, shuffle=True, seed=seed)
    it, t0, cpu0 = iter(loader), time.perf_counter(), time.process_time()
    model.train()
    done = 0
    for step in tqdm(range(steps), desc=f"pythae {kind}"):
        if max_cpu_minutes is not None and time.process_time() - cpu0 > 60 * max_cpu_minutes:
            break
        try:
            x = next(it)
        except StopIteration:
            it = iter(loader)
            x = next(it)
        output = model({"data": x}, epoch=step // len(loader), dataset_size=len(data), uses_ddp=False)
        optimizers_step(opts, output)
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters()):
                e.lerp_(p, 1 - 0.999)
            for e, b in zip(ema.buffers(), model.buffers()):
                e.copy_(b)
        done = step + 1
    minutes, cpu_minutes = (time.perf_counter() - t0) / 60, (time.process_time() - cpu0) / 60
    state = {k: v.contiguous() for k, v in ema.state_dict().items()}
    atomic_write(weights, lambda t: save_file(state, t))
    meta = {"steps": done, "budget_steps": steps, "train_minutes": round(minutes, 1),
            "train_cpu_minutes": round(cpu_minutes, 1), "batch_size": 64}
    atomic_write(meta_file, lambda t: Path(t).write_text(json.dumps(meta)))
    return ema, meta


def adapter(kind: str, model: nn.Module) -> ModelAdapter:
    @torch.no_grad()
    def reconstruct(x: torch.Tensor) -> torch.Tensor:  # the posterior mean, these models' usual reconstruction
        return model.decoder(model.encoder(x).embedding).reconstruction

    @torch.no_grad()
    def sample(n: int) -> torch.Tensor:
        return model.decoder(torch.randn(n, 16)).reconstruction

    @torch.no_grad()
    def encode_mean(x: torch.Tensor) -> torch.Tensor:
        return model.encoder(x).embedding

    return ModelAdapter(reconstruct, sample, 32, 1, encode_mean=encode_mean)


def markdown(results: dict[str, dict]) -> str:
    cols = [("fid", "FID (classifier) ↓", "{:.2f}"), ("recon_mse", "recon MSE ↓", "{:.4f}"),
            ("recon_ssim", "SSIM ↑", "{:.3f}"), ("class_agreement", "class agreement ↑", "{:.1%}"),
            ("samples_per_s", "samples/s", "{:,.0f}"), ("train_minutes", "train min", "{}"), ("steps", "steps", "{}")]
    lines = ["| model | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(fmt.format(r[k]) if k in r else "–" for k, _, fmt in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--models", default="vae,vaegan,aae")
    p.add_argument("--ours", default="bavae-fashionmnist32", help="zoo name or folder of the model to compare")
    p.add_argument("--out", default="runs/peers")
    p.add_argument("--max-cpu-minutes", type=float, default=None,
                   help="stop a peer's training after this much CPU time (our default: 72 min on one core)")
    p.add_argument("--train-only", action="store_true", help="train (or find) the peers, evaluate nothing")
    p.add_argument("--n-samples", type=int, default=10000)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = EvalSettings(n_samples=args.n_samples)
    if args.train_only:
        for kind in args.models.split(","):
            print(kind, train_peer(kind, args.steps, out, max_cpu_minutes=args.max_cpu_minutes)[1])
        return
    results: dict[str, dict] = {}
    # The floor: 10,000 real training images scored as if they were samples (FID only).
    train = FashionMNIST(split="train", image_size=32)
    real = torch.nn.functional.pad(train.data[:args.n_samples].float().div(255).unsqueeze(1), (2, 2, 2, 2))
    cursor = {"i": 0}

    def real_images(n: int) -> torch.Tensor:
        out = real[cursor["i"]:cursor["i"] + n]
        cursor["i"] += n
        return out

    reference = evaluate(ModelAdapter(lambda x: x, real_images, 32, 1), settings=settings)
    results["Fashion-MNIST train images (reference)"] = {"fid": reference["fid"]}
    ours = bavae.load(args.ours, device="cpu")
    info = bavae.model_info(args.ours).metrics if args.ours in bavae.list_models() else {}
    results[f"bavae ({args.ours})"] = {**evaluate(ours, settings=settings), "steps": 10000,
                                       "train_minutes": info.get("train_minutes", 72)}
    for kind in args.models.split(","):
        model, meta = train_peer(kind, args.steps, out, max_cpu_minutes=args.max_cpu_minutes)
        results[f"pythae {kind}"] = {**evaluate(adapter(kind, model), settings=settings), **meta}
        save_grid(adapter(kind, model).sample(64).clamp(0, 1), out / f"{kind}-samples.png", 8)
        atomic_write(out / "results.json", lambda t: Path(t).write_text(json.dumps(results, indent=2)))
    hardware = f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
    print(f"\n{hardware}\n\n{markdown(results)}")
    atomic_write(out / "results.json", lambda t: Path(t).write_text(json.dumps({**results, "_hardware": hardware},
                                                                                indent=2)))


if __name__ == "__main__":
    main()

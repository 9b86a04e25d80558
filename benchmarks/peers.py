"""Equal compute: the default BAVAE recipe against pythae's VAE, VAEGAN, Adversarial_AE, WAE (MMD) and RAE (L2).

    pip install 'bavae[train,bench]'
    OMP_NUM_THREADS=1 python benchmarks/peers.py --cpu-minutes 24 --checkpoints 1.5,3,6,12,24 --out runs/peers

Every model trains alone, one after another, single-threaded, until it has used ``--cpu-minutes`` of process CPU
time (time.process_time: data, forward, backward, optimiser and EMA; saving a checkpoint is not counted). Its
EMA weights (decay 0.999) are saved at each ``--checkpoints`` CPU-minute mark and scored afterwards. Keep the
machine otherwise idle: a second busy process inflates CPU time too.

All models share the data (Fashion-MNIST 32x32, 28x28 zero-padded), latent size 16, batch 64 and our DCGAN trunks
(``bavae.nets.dcgan``: the encoder's conv stack + a Gaussian head, the decoder's transposed-conv stack + sigmoid;
VAEGAN's discriminator is the critic's conv stack with a sigmoid head). Ours is the training loop's own step
(``bavae.train.game_step``) with the recipes in ``RECIPES`` (the fast one, the one that made the bundled default,
and the ResNet family). The peers' losses and optimiser steps are
pythae's own (``model(inputs)`` and its trainers' ``_optimizers_step``), at pythae's usual settings: Adam lr 1e-3
(VAE, AAE, WAE, RAE; RAE's decoder with weight decay = its reg_weight, as pythae's examples do), GAN settings lr 2e-4
/ betas (0.5, 0.999) for VAEGAN's three optimisers; fp32 (pythae's losses are not autocast-safe).

Scoring (:func:`bavae.eval.evaluate`, one process, same test images and seed): FID on the shipped classifier's
features of 10,000 samples against the 10,000 test images, for two samplers each: the prior N(0, I), and a
Gaussian mixture (full covariance, ``--components``) fitted on the codes of 60,000 training images
(``bavae.samplers.GaussianMixtureSampler``, pythae's GaussianMixtureSampler idea); reconstruction MSE and class
agreement. Results: OUT/results.json (every checkpoint), a Markdown table at equal CPU time, and
OUT/fid_vs_cpu.png. Runs resume: finished checkpoints are kept, a model cut mid-way trains again.
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

from bavae import BAVAE, BAVAEConfig
from bavae.data import FashionMNIST, make_loader
from bavae.eval import EvalSettings, ModelAdapter, evaluate
from bavae.files import atomic_write
from bavae.images import save_grid
from bavae.nets import NetSpec, get_architecture
from bavae.nets.common import conv_stages, hidden_dim
from bavae.nets.dcgan import image_trunk
from bavae.samplers import GaussianMixtureSampler
from bavae.train import game_step, optimizers

try:
    from pythae.models import (
        RAE_L2,
        VAE,
        VAEGAN,
        WAE_MMD,
        Adversarial_AE,
        Adversarial_AE_Config,
        RAE_L2_Config,
        VAEConfig,
        VAEGANConfig,
        WAE_MMD_Config,
    )
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseDiscriminator, BaseEncoder
    from pythae.trainers import (
        AdversarialTrainer,
        BaseTrainer,
        CoupledOptimizerAdversarialTrainer,
        CoupledOptimizerTrainer,
    )
except ImportError as e:  # pragma: no cover - the benchmark's only extra dependency
    raise SystemExit(f"benchmarks/peers.py needs pythae: pip install pythae ({e})") from None

# BAVAE recipes as the training loop runs them (Adam lr 2e-4, betas (0.5, 0.999)): the config and the precision.
RECIPES = {
    # the fast recipe: one critic trunk with two heads, bf16 autocast on the CPU
    "bavae": (BAVAEConfig(shared_critic_trunk=True), "bf16"),
    # the first release's recipe, which made the bundled bavae-fashionmnist32: two critic trunks, fp32
    "bavae-fp32": (BAVAEConfig(), "fp32"),
    # the zoo's other 32px family (bavae-fashionmnist32-resnet's networks, train_zoo.py's recipe), at equal CPU time
    "bavae-resnet": (BAVAEConfig(arch="resnet", width=16, shared_critic_trunk=True), "bf16"),
}
LR, BETAS = 2e-4, (0.5, 0.999)
MODELS = ("bavae", "bavae-fp32", "vae", "vaegan", "aae", "wae", "rae", "bavae-resnet")

SPEC = NetSpec(
    image_size=32, channels=1, latent_dim=16, width=32, posterior_noise_dim=16, decoder_noise_dim=0, spectral_norm=False
)


class GaussianEncoder(BaseEncoder):
    """Our DCGAN encoder trunk with a Gaussian head (mean, log-variance) instead of the implicit noisy head."""

    def __init__(self, spec: NetSpec = SPEC):
        super().__init__()
        self.trunk = image_trunk(spec, normalise=True)
        self.mean, self.log_var = (
            nn.Linear(hidden_dim(spec), spec.latent_dim),
            nn.Linear(hidden_dim(spec), spec.latent_dim),
        )

    def forward(self, x: torch.Tensor) -> ModelOutput:
        h = self.trunk(x)
        return ModelOutput(embedding=self.mean(h), log_covariance=self.log_var(h))


class Decoder(BaseDecoder):
    """Our DCGAN decoder (transposed convolutions, sigmoid output)."""

    def __init__(self, spec: NetSpec = SPEC):
        super().__init__()
        self.net = get_architecture("dcgan").build("decoder", spec)

    def forward(self, z: torch.Tensor) -> ModelOutput:
        return ModelOutput(reconstruction=self.net(z))


class Discriminator(BaseDiscriminator):
    """VAEGAN's discriminator: our critic's conv stack, layer by layer so pythae can read a feature map."""

    def __init__(self, spec: NetSpec = SPEC):
        super().__init__()
        trunk = list(image_trunk(spec, normalise=False))
        stages = conv_stages(spec.image_size)
        convs = [nn.Sequential(*trunk[2 * i : 2 * i + 2]) for i in range(stages)]  # conv + LeakyReLU
        self.layers = nn.ModuleList(
            [*convs, nn.Sequential(*trunk[2 * stages :]), nn.Sequential(nn.Linear(hidden_dim(spec), 1), nn.Sigmoid())]
        )
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


def build(kind: str) -> tuple[nn.Module, callable, callable]:
    """(model, step(x), encode(x) -> codes for the mixture) for one kind; its optimisers live in the step."""
    if kind in RECIPES:
        config, precision = RECIPES[kind]
        model = BAVAE(config)
        opt_c, opt_ae = optimizers(model, LR, LR, BETAS, "cpu")
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else None
        return model, lambda x: game_step(model, [x], opt_c, opt_ae, autocast=autocast), model.encoder
    common = dict(input_dim=(1, 32, 32), latent_dim=16)
    enc, dec = GaussianEncoder(), Decoder()
    if kind == "vae":
        model = VAE(VAEConfig(**common, reconstruction_loss="bce"), encoder=enc, decoder=dec)
        opts = SimpleNamespace(optimizer=torch.optim.Adam(model.parameters(), lr=1e-3))
        optimizers_step = BaseTrainer._optimizers_step
    elif kind == "wae":
        model = WAE_MMD(WAE_MMD_Config(**common, kernel_choice="imq", reg_weight=3e-2), encoder=enc, decoder=dec)
        opts = SimpleNamespace(optimizer=torch.optim.Adam(model.parameters(), lr=1e-3))
        optimizers_step = BaseTrainer._optimizers_step
    elif kind == "rae":
        model = RAE_L2(RAE_L2_Config(**common), encoder=enc, decoder=dec)
        opts = SimpleNamespace(
            encoder_optimizer=torch.optim.Adam(model.encoder.parameters(), lr=1e-3),
            decoder_optimizer=torch.optim.Adam(
                model.decoder.parameters(), lr=1e-3, weight_decay=model.model_config.reg_weight
            ),
        )
        optimizers_step = CoupledOptimizerTrainer._optimizers_step
    elif kind == "aae":
        model = Adversarial_AE(Adversarial_AE_Config(**common, reconstruction_loss="bce"), encoder=enc, decoder=dec)
        ae = [*model.encoder.parameters(), *model.decoder.parameters()]
        opts = SimpleNamespace(
            autoencoder_optimizer=torch.optim.Adam(ae, lr=1e-3),
            discriminator_optimizer=torch.optim.Adam(model.discriminator.parameters(), lr=1e-3),
        )
        optimizers_step = AdversarialTrainer._optimizers_step
    elif kind == "vaegan":
        model = VAEGAN(
            VAEGANConfig(**common, reconstruction_loss="bce", reconstruction_layer=conv_stages(32)),
            encoder=enc,
            decoder=dec,
            discriminator=Discriminator(),
        )
        adam = dict(lr=2e-4, betas=(0.5, 0.999))
        opts = SimpleNamespace(
            encoder_optimizer=torch.optim.Adam(model.encoder.parameters(), **adam),
            decoder_optimizer=torch.optim.Adam(model.decoder.parameters(), **adam),
            discriminator_optimizer=torch.optim.Adam(model.discriminator.parameters(), **adam),
        )
        optimizers_step = CoupledOptimizerAdversarialTrainer._optimizers_step
    else:
        raise ValueError(f"unknown model {kind!r}; expected one of {MODELS}")
    size = 60000

    def step(x: torch.Tensor) -> None:
        optimizers_step(opts, model({"data": x}, epoch=0, dataset_size=size, uses_ddp=False))

    return model, step, lambda x: model.encoder(x).embedding


def train(kind: str, cpu_minutes: float, checkpoints: list[float], out: Path, seed: int = 0) -> dict:
    """Train ``kind`` until it has used ``cpu_minutes`` of process CPU time, saving its EMA at each checkpoint
    (CPU minutes) as OUT/<kind>/cpu<minutes>.safetensors. Returns {checkpoint: {"steps": .., "cpu_min": ..}}."""
    folder = out / kind
    folder.mkdir(parents=True, exist_ok=True)
    meta_file = folder / "meta.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    if all(f"{c:g}" in meta for c in checkpoints):
        return meta
    torch.manual_seed(seed)
    model, step, _ = build(kind)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    data = FashionMNIST(split="train", image_size=32)
    loader = make_loader(data, 64, shuffle=True, seed=seed)
    it, todo, meta, steps = iter(loader), sorted(checkpoints), {}, 0
    model.train()
    bar = tqdm(total=round(60 * cpu_minutes), desc=f"{kind} (CPU s)", unit="s")
    cpu0, excluded = time.process_time(), 0.0
    while todo:
        try:
            x = next(it)
        except StopIteration:
            it = iter(loader)
            x = next(it)
        step(x)
        with torch.no_grad():  # EMA of every parameter (ours: the critics too, harmlessly; only E and G are used)
            decay = min(0.999, (1 + steps) / (10 + steps))
            torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)
            for e, b in zip(ema.buffers(), model.buffers()):
                e.copy_(b)
        steps += 1
        used = (time.process_time() - cpu0 - excluded) / 60
        bar.n = round(60 * used)
        bar.refresh()
        if used >= todo[0]:
            t = time.process_time()
            state = {k: v.contiguous() for k, v in ema.state_dict().items()}
            atomic_write(folder / f"cpu{todo[0]:g}.safetensors", lambda p, state=state: save_file(state, p))
            meta[f"{todo[0]:g}"] = {"steps": steps, "cpu_min": round(used, 3)}
            atomic_write(meta_file, lambda p: Path(p).write_text(json.dumps(meta, indent=2)))
            todo.pop(0)
            excluded += time.process_time() - t
    bar.close()
    return meta


def load(kind: str, out: Path, checkpoint: float) -> tuple[nn.Module, callable]:
    model, _, encode = build(kind)
    model.load_state_dict(load_file(str(out / kind / f"cpu{checkpoint:g}.safetensors")))
    return model.eval(), encode


@torch.no_grad()
def adapter(kind: str, model: nn.Module, encode: callable, mixture: GaussianMixtureSampler) -> ModelAdapter:
    """Reconstruction (the posterior mean for the peers; one posterior draw for BAVAE, as bavae does) and the two
    samplers: the prior and the mixture fitted on training codes."""
    if kind.startswith("bavae"):
        decode = model.decoder
    else:
        decode = lambda z: model.decoder(z).reconstruction  # noqa: E731
    samplers = {"prior": lambda n: decode(torch.randn(n, 16)), "gmm": lambda n: decode(mixture.sample(n))}
    return ModelAdapter(
        lambda x: decode(encode(x)), samplers["prior"], 32, 1, samplers=samplers, default_sampler="prior"
    )  # "prior" is the default path here, so its FID is computed once


@torch.no_grad()
def fit_mixture(encode: callable, components: int, n: int = 60000) -> GaussianMixtureSampler:
    data = FashionMNIST(split="train", image_size=32, limit=n)
    x = data.data.float().div(255).unsqueeze(1)
    codes = torch.cat([encode(torch.nn.functional.pad(b, (2, 2, 2, 2))) for b in x.split(1000)])
    return GaussianMixtureSampler.fit(codes, components, seed=0)


def score(kind: str, out: Path, checkpoint: float, components: int, n: int) -> dict:
    model, encode = load(kind, out, checkpoint)
    mixture = fit_mixture(encode, components)
    m = adapter(kind, model, encode, mixture)
    report = evaluate(m, settings=EvalSettings(n_samples=n, n_test=n))
    if checkpoint:
        save_grid(m.samplers["gmm"](64).clamp(0, 1), out / kind / f"cpu{checkpoint:g}-gmm.png", 8)
        save_grid(m.samplers["prior"](64).clamp(0, 1), out / kind / f"cpu{checkpoint:g}-prior.png", 8)
    return {k: report[k] for k in ("fid_prior", "fid_gmm", "recon_mse", "recon_ssim", "class_agreement")}


NAMES = {
    "bavae": "bavae, shared critic trunk, bf16",
    "bavae-fp32": "bavae, two critic trunks, fp32 (bavae-fashionmnist32's recipe)",
    "bavae-resnet": "bavae, ResNet family (width 16)",
    "vae": "pythae VAE",
    "vaegan": "pythae VAEGAN",
    "aae": "pythae AAE",
    "wae": "pythae WAE (MMD)",
    "rae": "pythae RAE (L2)",
}


def markdown(results: dict, at: str) -> str:
    lines = [
        "| model | steps | FID, prior ↓ | FID, GMM ↓ | recon MSE ↓ | SSIM ↑ | class agreement ↑ |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, r in results.items():
        if at in r.get("checkpoints", {}):
            c = r["checkpoints"][at]
            lines.append(
                f"| {NAMES[kind]} | {c['steps']:,} | {c['fid_prior']:.1f} | {c['fid_gmm']:.1f} | "
                f"{c['recon_mse']:.4f} | {c['recon_ssim']:.3f} | {c['class_agreement']:.1%} |"
            )
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.6))
    for i, (kind, r) in enumerate(results.items()):
        pts = sorted((c["cpu_min"], c["fid_prior"], c["fid_gmm"]) for c in r["checkpoints"].values())
        color = f"C{i}"
        lw = 2.5 if kind == "bavae" else 1.3
        ax.plot([p[0] for p in pts], [p[2] for p in pts], "-o", color=color, lw=lw, ms=4, label=f"{NAMES[kind]}, GMM")
        ax.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            "--",
            color=color,
            lw=lw * 0.7,
            alpha=0.7,
            label=f"{NAMES[kind]}, prior",
        )
    ax.set(
        xlabel="single-thread CPU minutes of training",
        ylabel="sample FID (classifier features) ↓",
        xscale="log",
        yscale="log",
        title="Fashion-MNIST 32x32, latent 16, same trunks, equal CPU time",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the curves, not over them
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--cpu-minutes", type=float, default=24.0)
    p.add_argument("--checkpoints", default="1.5,3,6,12,24", help="CPU minutes at which to save and score")
    p.add_argument("--components", type=int, default=50, help="Gaussian-mixture components for every model")
    p.add_argument("--n-eval", type=int, default=10000)
    p.add_argument("--out", default="runs/peers")
    p.add_argument("--train-only", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = [float(c) for c in args.checkpoints.split(",")]
    assert max(checkpoints) <= args.cpu_minutes, "checkpoints must lie within --cpu-minutes"
    kinds = args.models.split(",")
    for kind in kinds:  # one after another, never side by side
        train(kind, args.cpu_minutes, checkpoints, out)
    if args.train_only:
        return
    results_file = out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    for kind in kinds:
        meta = json.loads((out / kind / "meta.json").read_text())
        entry = results.setdefault(kind, {"checkpoints": {}})
        for c in checkpoints:
            if f"{c:g}" not in entry["checkpoints"]:
                entry["checkpoints"][f"{c:g}"] = {**meta[f"{c:g}"], **score(kind, out, c, args.components, args.n_eval)}
                atomic_write(results_file, lambda t: Path(t).write_text(json.dumps(results, indent=2)))
    results = {k: results[k] for k in kinds}
    hardware = f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread"
    plot(results, out / "fid_vs_cpu.png")
    print(f"\n{hardware}; at {checkpoints[-1]:g} CPU minutes each:\n\n{markdown(results, f'{checkpoints[-1]:g}')}")


if __name__ == "__main__":
    main()

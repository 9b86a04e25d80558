"""Equal compute: BAVAE recipes against pythae's VAE, VAEGAN, Adversarial_AE, WAE (MMD) and RAE (L2).

    pip install 'bavae[train,bench]'
    OMP_NUM_THREADS=1 python benchmarks/peers.py --cpu-minutes 24 --checkpoints 1.5,3,6,12,24 --out runs/peers
    OMP_NUM_THREADS=1 python benchmarks/peers.py --data emoji --data-dir data/emoji --models bavae,vae,aae,wae,rae \
        --cpu-minutes 60 --checkpoints 7.5,15,30,60 --out runs/peers-emoji          # colour, 3x64x64
    OMP_NUM_THREADS=1 python benchmarks/peers.py --data emoji --models bavae,bavae-w48 --seeds 0,1 \
        --cpu-minutes 10 --checkpoints 5,10 --out runs/ab-emoji                       # a recipe A/B (RECIPES)
    OMP_NUM_THREADS=1 python benchmarks/peers.py --models bavae,bavae-marginal300,bavae-sliced10,bavae-code1,\
        bavae-code1-nommd,aae --seeds 0,1 --cpu-minutes 12 --checkpoints 6,12 --out runs/ab-prior  # the prior path

``--data emoji`` is the colour set of benchmarks/make_emoji_folder.py (64x64 RGB, latent 64, width-32 trunks),
scored on the colour evaluator (weights/emoji-classifier) against the folder's held-out emoji.

Every model trains alone, one after another, single-threaded, until it has used ``--cpu-minutes`` of process CPU
time (time.process_time: data, forward, backward, optimiser and EMA; saving a checkpoint is not counted). Its
EMA weights (decay 0.999) are saved at each ``--checkpoints`` CPU-minute mark and scored afterwards. Keep the
machine otherwise idle: a second busy process inflates CPU time too.

All models share the data (Fashion-MNIST 32x32, 28x28 zero-padded; or the emoji), latent size (16; 64 for the
emoji), batch 64 and our DCGAN trunks
(``bavae.nets.dcgan``: the encoder's conv stack + a Gaussian head, the decoder's transposed-conv stack + sigmoid;
VAEGAN's discriminator is the critic's conv stack with a sigmoid head). Ours is the training loop's own step
(``bavae.train.game_step``) with the recipes in ``RECIPES`` (the fast one, the one that made the bundled default,
and the ResNet family). The peers' losses and optimiser steps are
pythae's own (``model(inputs)`` and its trainers' ``_optimizers_step``), at pythae's usual settings: Adam lr 1e-3
(VAE, AAE, WAE, RAE; RAE's decoder with weight decay = its reg_weight, as pythae's examples do), GAN settings lr 2e-4
/ betas (0.5, 0.999) for VAEGAN's three optimisers; fp32 (pythae's losses are not autocast-safe).

Scoring (:func:`bavae.eval.evaluate`, one process, same test images and seed): FID on the shipped classifier's
features of 10,000 samples against the 10,000 test images, for three samplers each: the prior N(0, I), a
Gaussian mixture (full covariance, ``--components``) fitted on the codes of 60,000 training images
(``bavae.samplers.GaussianMixtureSampler``, pythae's GaussianMixtureSampler idea), and the nearest-neighbour
sampler on the same codes (``bavae.samplers.NeighbourSampler``, 3 neighbours); reconstruction MSE and class
agreement. Results: OUT/results.json (every checkpoint), a Markdown table at equal CPU time, and
OUT/fid_vs_cpu.png. Runs resume: finished checkpoints are kept, and a model cut mid-way goes on from its last
saved state (every ``--save-every`` CPU minutes and at each checkpoint; the batch order depends only on the seed).
A finished model keeps its state too, so the same call with a larger ``--cpu-minutes`` and a later checkpoint
extends it (runs finished before 2026-12-07 deleted theirs and start over).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.emoji_set

from bavae import BAVAE, BAVAEConfig
from bavae.data import FashionMNIST
from bavae.eval import EvalSettings, ModelAdapter, evaluate
from bavae.files import atomic_write
from bavae.images import save_grid
from bavae.nets import NetSpec, get_architecture
from bavae.nets.common import conv_stages, hidden_dim
from bavae.nets.dcgan import image_trunk
from bavae.samplers import GaussianMixtureSampler, NeighbourSampler, supported_components
from bavae.serialization import load_optimizer, optimizer_tensors
from bavae.train import cpu_has_fast_bf16, game_step, optimizers

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


# BAVAE recipes as the training loop runs them (Adam, betas (0.5, 0.999)): config, precision and learning rates.
@dataclass(frozen=True)
class Recipe:
    config: dict  # BAVAEConfig fields over the data's defaults
    precision: str = "auto"  # bf16 autocast where the CPU runs bf16 natively, else fp32 (emulated bf16 is ~18x slower)
    lr: float = 2e-4
    critic_lr: float = 2e-4
    flip: bool = False  # bavae train --augment flip
    critic_every: int = 1  # bavae train --critic-every: the critics step on one step in k
    critic_start: int = 0  # bavae train --critic-start: steps of an autoencoder before the critics start


LATENT_SIZES = (8, 10, 12)  # the prior-path A/B's latent sizes for the shipped recipe (16 is its own)
RECIPES = {
    "fashion-mnist": {
        # the fast recipe: one critic trunk with two heads, bf16 autocast where the CPU has native bf16
        "bavae": Recipe({"shared_critic_trunk": True}),
        # the first release's recipe, which made the bundled bavae-fashionmnist32: two critic trunks, fp32
        "bavae-fp32": Recipe({}, "fp32"),
        # the zoo's other 32px family (bavae-fashionmnist32-resnet's networks, train_zoo.py's recipe)
        "bavae-resnet": Recipe({"arch": "resnet", "width": 16, "shared_critic_trunk": True}),
        # issue 21, the prior path: each changes how the aggregate posterior is matched to N(0, I), one thing each
        "bavae-marginal300": Recipe({"shared_critic_trunk": True, "objective_weights": {"marginal": 300.0}}),
        "bavae-sliced10": Recipe({"shared_critic_trunk": True, "objective_weights": {"sliced": 10.0}}),
        "bavae-code1": Recipe({"shared_critic_trunk": True, "objective_weights": {"code": 1.0}}),
        "bavae-code1-nommd": Recipe(
            {"shared_critic_trunk": True, "objective_weights": {"code": 1.0, "marginal": 0.0}}
        ),  # the code critic instead of the MMD
        # issue 21, the step's cost: a cheaper critic (a quarter of the conv FLOPs) or one critic step in two
        "bavae-critic16": Recipe({"shared_critic_trunk": True, "critic_width": 16}),
        "bavae-every2": Recipe({"shared_critic_trunk": True}, critic_every=2),
        "bavae-every2-clr4e-4": Recipe({"shared_critic_trunk": True}, critic_lr=4e-4, critic_every=2),
        "bavae-critic16-every2": Recipe({"shared_critic_trunk": True, "critic_width": 16}, critic_every=2),
        # the prior path again, on the shipped recipe since issue 21 (critic width 16, critics every 2nd step)
        **{
            f"bavae-c16e2-{name}": Recipe(
                {"shared_critic_trunk": True, "critic_width": 16, "objective_weights": weights}, critic_every=2
            )
            for name, weights in (
                ("marginal300", {"marginal": 300.0}),
                ("sliced10", {"sliced": 10.0}),
                ("code1", {"code": 1.0}),
            )
        },
        # critics that start late (--critic-start), which won at 64 px: the shipped recipe after 500 autoencoder steps
        "bavae-c16e2-start500": Recipe(
            {"shared_critic_trunk": True, "critic_width": 16}, critic_every=2, critic_start=500
        ),
        # the prior path, on what the codes showed (method.md section 6): the shipped recipe's codes fill a set of
        # about 9 dimensions of the 16, so prior draws fall between them; a latent the codes can fill
        **{
            f"bavae-c16e2-latent{n}": Recipe(
                {"shared_critic_trunk": True, "critic_width": 16, "latent_dim": n, "posterior_noise_dim": n},
                critic_every=2,
            )
            for n in LATENT_SIZES
        },
        # latent 10's prior path with its reconstructions pulled back toward latent 16's: a 3x pixel anchor
        "bavae-c16e2-latent10-pixel3": Recipe(
            {
                "shared_critic_trunk": True,
                "critic_width": 16,
                "latent_dim": 10,
                "posterior_noise_dim": 10,
                "objective_weights": {"pixel": 3.0},
            },
            critic_every=2,
        ),
    },
    "emoji": {
        # bavae-emoji64's (and bavae-celeba64's) recipe before the A/B; each variant below changes one thing
        "bavae": Recipe({"shared_critic_trunk": True}),
        "bavae-w48": Recipe({"shared_critic_trunk": True, "width": 48}),
        "bavae-latent128": Recipe({"shared_critic_trunk": True, "latent_dim": 128, "posterior_noise_dim": 128}),
        "bavae-resnet": Recipe({"shared_critic_trunk": True, "arch": "resnet", "width": 16}),
        "bavae-critic64": Recipe({"shared_critic_trunk": True, "critic_width": 64}),
        "bavae-pixel4": Recipe({"shared_critic_trunk": True, "objective_weights": {"pixel": 4.0}}),
        "bavae-feature4": Recipe({"shared_critic_trunk": True, "objective_weights": {"feature": 4.0}}),
        "bavae-lr5e-4": Recipe({"shared_critic_trunk": True}, lr=5e-4, critic_lr=5e-4),
        # the winners of the 10-minute A/B together, and with mirrored pictures (the gap to held-out emoji grows later)
        "bavae-lr5e-4-latent128": Recipe(
            {"shared_critic_trunk": True, "latent_dim": 128, "posterior_noise_dim": 128}, lr=5e-4, critic_lr=5e-4
        ),
        "bavae-lr5e-4-flip": Recipe({"shared_critic_trunk": True}, lr=5e-4, critic_lr=5e-4, flip=True),
        # issue 21's cheaper critics at 64 px: bavae-emoji64's recipe with critic width 16, critics every 2nd step
        "bavae-lr5e-4-flip-critic16-every2": Recipe(
            {"shared_critic_trunk": True, "critic_width": 16}, lr=5e-4, critic_lr=5e-4, flip=True, critic_every=2
        ),
        # against the WAE's lead at 60 CPU-minutes (its reconstructions): the one lever that paid, further (pythae's
        # peers train at 1e-3), and a stronger pixel anchor on the shipped colour recipe
        "bavae-flip-critic16-every2": Recipe(  # the shipped colour recipe at bavae train's default rates (2e-4)
            {"shared_critic_trunk": True, "critic_width": 16}, flip=True, critic_every=2
        ),
        "bavae-lr1e-3-flip-critic16-every2": Recipe(
            {"shared_critic_trunk": True, "critic_width": 16}, lr=1e-3, critic_lr=1e-3, flip=True, critic_every=2
        ),
        # the WAE's reconstructions learn faster per CPU-second than ours (the 60-minute table): the shipped colour
        # recipe with 1,000 steps of an autoencoder (pixel anchor + MMD) before the critics start (VQGAN's disc_start)
        **{  # the start's length (1,000 was one guess): half and twice as long
            f"bavae-lr5e-4-flip-c16e2-start{n}": Recipe(
                {"shared_critic_trunk": True, "critic_width": 16},
                lr=5e-4,
                critic_lr=5e-4,
                flip=True,
                critic_every=2,
                critic_start=n,
            )
            for n in (500, 1000, 2000)
        },
        "bavae-lr5e-4-flip-c16e2-pixel10": Recipe(
            {"shared_critic_trunk": True, "critic_width": 16, "objective_weights": {"pixel": 10.0}},
            lr=5e-4,
            critic_lr=5e-4,
            flip=True,
            critic_every=2,
        ),
    },
}
BETAS = (0.5, 0.999)
PEERS = ("vae", "vaegan", "aae", "wae", "rae")  # each also as e.g. aae-latent10: the same peer with a latent of 10
MODELS = ("bavae", "bavae-fp32", "vae", "vaegan", "aae", "wae", "rae", "bavae-resnet")


@dataclass(frozen=True)
class Data:
    """The images every model of a run trains on, and how they are scored."""

    name: str  # fashion-mnist | emoji
    spec: NetSpec
    data_dir: str | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.spec.channels, self.spec.image_size, self.spec.image_size)

    def train_images(self) -> torch.Tensor:
        """(N, C, H, W) uint8, held in memory: no model pays for decoding pictures."""
        if self.name == "fashion-mnist":
            data = FashionMNIST(split="train", image_size=32)
            return torch.nn.functional.pad(data.data.unsqueeze(1), (2, 2, 2, 2))
        from benchmarks.emoji_set import load as load_emoji

        return load_emoji(self.data_dir, "train").images

    def eval_args(self) -> dict:
        if self.name == "fashion-mnist":
            return {"dataset": "fashion-mnist"}
        return {"dataset": "folder", "data_dir": self.data_dir}


def peer_data(kind: str, data: Data) -> tuple[str, Data]:
    """A peer's name without its -latentN suffix, and the data spec with that latent size (the run's by default)."""
    base, _, latent = kind.partition("-latent")
    if not latent:
        return kind, data
    return base, replace(data, spec=replace(data.spec, latent_dim=int(latent), posterior_noise_dim=int(latent)))


def data_setup(name: str, data_dir: str | None) -> Data:
    if name == "fashion-mnist":
        spec = NetSpec(image_size=32, channels=1, latent_dim=16, posterior_noise_dim=16, decoder_noise_dim=0, width=32,
                       spectral_norm=False)  # fmt: skip
        return Data(name, spec)
    spec = NetSpec(image_size=64, channels=3, latent_dim=64, posterior_noise_dim=64, decoder_noise_dim=0, width=32,
                   spectral_norm=False)  # fmt: skip
    return Data(name, spec, data_dir or "data/emoji")


class GaussianEncoder(BaseEncoder):
    """Our DCGAN encoder trunk with a Gaussian head (mean, log-variance) instead of the implicit noisy head."""

    def __init__(self, spec: NetSpec):
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

    def __init__(self, spec: NetSpec):
        super().__init__()
        self.net = get_architecture("dcgan").build("decoder", spec)

    def forward(self, z: torch.Tensor) -> ModelOutput:
        return ModelOutput(reconstruction=self.net(z))


class Discriminator(BaseDiscriminator):
    """VAEGAN's discriminator: our critic's conv stack, layer by layer so pythae can read a feature map."""

    def __init__(self, spec: NetSpec):
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


def build(kind: str, data: Data) -> tuple[nn.Module, callable, callable, dict]:
    """(model, step(x, index), encode(x) -> codes for the mixture, optimisers by name) for one kind."""
    if kind.startswith("bavae"):
        recipe = RECIPES[data.name][kind]
        spec = data.spec
        defaults = dict(
            image_size=spec.image_size,
            channels=spec.channels,
            latent_dim=spec.latent_dim,
            posterior_noise_dim=spec.posterior_noise_dim,
            width=spec.width,
        )
        model = BAVAE(BAVAEConfig(**{**defaults, **recipe.config}))
        opt_c, opt_ae = optimizers(model, recipe.lr, recipe.critic_lr, BETAS, "cpu")
        bf16 = recipe.precision == "bf16" or (recipe.precision == "auto" and cpu_has_fast_bf16())
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else None
        step = lambda x, i: game_step(  # noqa: E731
            model,
            [x],
            opt_c,
            opt_ae,
            autocast=autocast,
            update_critics=i % recipe.critic_every == 0,
            warmup=i < recipe.critic_start,
        )
        return model, step, model.encoder, {"critic": opt_c, "autoencoder": opt_ae}
    kind, data = peer_data(kind, data)
    common = dict(input_dim=data.shape, latent_dim=data.spec.latent_dim)
    enc, dec = GaussianEncoder(data.spec), Decoder(data.spec)
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
            VAEGANConfig(**common, reconstruction_loss="bce", reconstruction_layer=conv_stages(data.spec.image_size)),
            encoder=enc,
            decoder=dec,
            discriminator=Discriminator(data.spec),
        )
        adam = dict(lr=2e-4, betas=(0.5, 0.999))
        opts = SimpleNamespace(
            encoder_optimizer=torch.optim.Adam(model.encoder.parameters(), **adam),
            decoder_optimizer=torch.optim.Adam(model.decoder.parameters(), **adam),
            discriminator_optimizer=torch.optim.Adam(model.discriminator.parameters(), **adam),
        )
        optimizers_step = CoupledOptimizerAdversarialTrainer._optimizers_step
    else:
        raise ValueError(f"unknown model {kind!r}; expected one of {(*RECIPES[data.name], *PEERS)}")
    size = 60000

    def step(x: torch.Tensor, index: int) -> None:
        optimizers_step(opts, model({"data": x}, epoch=0, dataset_size=size, uses_ddp=False))

    return model, step, lambda x: model.encoder(x).embedding, vars(opts)


def run_name(kind: str, seed: int) -> str:
    return kind if seed == 0 else f"{kind}-seed{seed}"


def save_state(folder: Path, model, ema, opts: dict, steps: int, used: float, meta: dict) -> None:
    """Everything a cut run needs to go on: weights, EMA, optimisers, RNG, steps and CPU time used (one file)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    opt_meta = {}
    for name, opt in opts.items():
        t, m = optimizer_tensors(f"opt.{name}", opt)
        tensors.update(t)
        opt_meta[name] = m
    tensors["rng.cpu"] = torch.get_rng_state()
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    state = json.dumps({"steps": steps, "cpu_min": used, "opts": opt_meta, "checkpoints": meta})
    atomic_write(folder / "state.safetensors", lambda p: save_file(tensors, p, metadata={"peers_state": state}))


def load_state(folder: Path, model, ema, opts: dict) -> tuple[int, float, dict]:
    from safetensors import safe_open

    path = folder / "state.safetensors"
    with safe_open(str(path), framework="pt") as f:
        state = json.loads(f.metadata()["peers_state"])
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    for name, opt in opts.items():
        load_optimizer(f"opt.{name}", opt, tensors, state["opts"][name])
    torch.set_rng_state(tensors["rng.cpu"])
    return state["steps"], state["cpu_min"], state["checkpoints"]


def train(
    kind: str,
    data: Data,
    images: torch.Tensor,
    cpu_minutes: float,
    checkpoints: list[float],
    out: Path,
    seed: int = 0,
    save_every: float = 5.0,
) -> dict:
    """Train ``kind`` until it has used ``cpu_minutes`` of process CPU time, saving its EMA at each checkpoint
    (CPU minutes) as OUT/<run>/cpu<minutes>.safetensors. Returns {checkpoint: {"steps": .., "cpu_min": ..}}."""
    folder = out / run_name(kind, seed)
    folder.mkdir(parents=True, exist_ok=True)
    meta_file = folder / "meta.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    if all(f"{c:g}" in meta for c in checkpoints):
        return meta
    torch.manual_seed(seed)
    model, step, _, opts = build(kind, data)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    steps, used_before, meta = 0, 0.0, {}
    if (folder / "state.safetensors").is_file():
        steps, used_before, meta = load_state(folder, model, ema, opts)
    batch, per_epoch = 64, len(images) // 64
    flip = kind.startswith("bavae") and RECIPES[data.name][kind].flip

    def batches(start: int):
        """Seeded per epoch, so a resumed run sees the batches it would have seen."""
        epoch, offset = divmod(start, per_epoch)
        while True:
            order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
            for i in range(offset, per_epoch):
                x = images[order[i * batch : (i + 1) * batch]].float().div(255)
                if flip:  # as bavae train --augment flip: a generator per batch, so a resumed run replays it
                    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch * per_epoch + i)
                    x = torch.where((torch.rand(len(x), generator=g) < 0.5)[:, None, None, None], x.flip(-1), x)
                yield x
            epoch, offset = epoch + 1, 0

    todo = sorted(c for c in checkpoints if f"{c:g}" not in meta)
    if todo and todo[0] < used_before:  # a finished run goes on to later checkpoints, not back to earlier ones
        raise SystemExit(
            f"{folder} has trained {used_before:.1f} CPU minutes: it cannot save a checkpoint at {todo[0]:g}"
        )
    model.train()
    bar = tqdm(total=round(60 * cpu_minutes), initial=round(60 * used_before), desc=f"{folder.name} (CPU s)",
               unit="s", mininterval=10)  # fmt: skip
    cpu0, excluded, last_save = time.process_time(), 0.0, used_before
    it = batches(steps)
    while todo:
        step(next(it), steps)
        with torch.no_grad():  # EMA of every parameter (ours: the critics too, harmlessly; only E and G are used)
            decay = min(0.999, (1 + steps) / (10 + steps))
            torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)
            for e, b in zip(ema.buffers(), model.buffers()):
                e.copy_(b)
        steps += 1
        used = used_before + (time.process_time() - cpu0 - excluded) / 60
        bar.update(round(60 * used) - bar.n)
        if used >= todo[0] or used - last_save >= save_every:
            t = time.process_time()
            if used >= todo[0]:
                state = {k: v.contiguous() for k, v in ema.state_dict().items()}
                atomic_write(folder / f"cpu{todo[0]:g}.safetensors", lambda p, state=state: save_file(state, p))
                meta[f"{todo[0]:g}"] = {"steps": steps, "cpu_min": round(used, 3)}
                atomic_write(meta_file, lambda p: Path(p).write_text(json.dumps(meta, indent=2)))
                todo.pop(0)
            save_state(folder, model, ema, opts, steps, used, meta)  # kept at the end: a larger --cpu-minutes goes on
            last_save = used
            excluded += time.process_time() - t
    bar.close()
    return meta


def load(kind: str, data: Data, out: Path, run: str, checkpoint: float) -> tuple[nn.Module, callable]:
    model, _, encode, _ = build(kind, data)
    model.load_state_dict(load_file(str(out / run / f"cpu{checkpoint:g}.safetensors")))
    return model.eval(), encode


@torch.no_grad()
def adapter(kind: str, data: Data, model: nn.Module, encode: callable, fitted: dict) -> ModelAdapter:
    """Reconstruction (the posterior mean for the peers; one posterior draw for BAVAE, as bavae does) and the
    samplers: the prior and those fitted on training codes (the mixture, the nearest-neighbour sampler)."""
    if kind.startswith("bavae"):
        decode = model.decoder
        latent = model.config.latent_dim
    else:
        decode = lambda z: model.decoder(z).reconstruction  # noqa: E731
        latent = peer_data(kind, data)[1].spec.latent_dim
    samplers = {"prior": lambda n: decode(torch.randn(n, latent))}
    samplers.update({name: (lambda n, s=s: decode(s.sample(n))) for name, s in fitted.items()})
    return ModelAdapter(
        lambda x: decode(encode(x)),
        samplers["prior"],
        data.spec.image_size,
        data.spec.channels,
        samplers=samplers,
        default_sampler="prior",
    )  # "prior" is the default path here, so its FID is computed once


@torch.no_grad()
def fit_samplers(encode: callable, images: torch.Tensor, components: int, n: int = 60000) -> dict:
    """The latent samplers bavae fits, on the same training codes for every model: a Gaussian mixture and the
    nearest-neighbour sampler (bavae.samplers)."""
    codes = torch.cat([encode(b.float().div(255)) for b in images[:n].split(500)])
    mixture = GaussianMixtureSampler.fit(codes, min(components, supported_components(*codes.shape)), seed=0)
    return {"gmm": mixture, "neighbours": NeighbourSampler.fit(codes, k=3)}


def score(kind: str, data: Data, images, out: Path, run: str, checkpoint: float, components: int, n: int) -> dict:
    model, encode = load(kind, data, out, run, checkpoint)
    m = adapter(kind, data, model, encode, fit_samplers(encode, images, components))
    report = evaluate(m, **data.eval_args(), settings=EvalSettings(n_samples=n, n_test=n))
    for name in m.samplers:
        save_grid(m.samplers[name](64).clamp(0, 1), out / run / f"cpu{checkpoint:g}-{name}.png", 8)
    keys = ("fid_prior", "fid_gmm", "fid_neighbours", "recon_mse", "recon_ssim", "recon_fid", "class_agreement")
    return {k: report[k] for k in keys if k in report}


NAMES = {
    "bavae": "bavae, shared critic trunk",
    "bavae-fp32": "bavae, two critic trunks, fp32 (bavae-fashionmnist32's recipe)",
    "bavae-resnet": "bavae, ResNet family (width 16)",
    "bavae-w48": "bavae, width 48",
    "bavae-latent128": "bavae, latent 128",
    "bavae-critic64": "bavae, critic width 64",
    "bavae-pixel4": "bavae, pixel weight 4",
    "bavae-feature4": "bavae, feature weight 4",
    "bavae-lr5e-4": "bavae, learning rates 5e-4",
    "bavae-lr5e-4-latent128": "bavae, learning rates 5e-4, latent 128",
    "bavae-lr5e-4-flip": "bavae, learning rates 5e-4, mirrored pictures",
    "bavae-lr5e-4-flip-critic16-every2": "bavae, learning rates 5e-4, mirrored, critic width 16, critics every 2nd step",
    "bavae-critic16-every2": "bavae, critic width 16, critics every 2nd step (shipped since issue 21)",
    "bavae-flip-critic16-every2": "bavae, learning rates 2e-4, mirrored, critic width 16, critics every 2nd step",
    "bavae-lr1e-3-flip-critic16-every2": "bavae, learning rates 1e-3, mirrored, critic width 16, critics every 2nd step",
    "bavae-lr5e-4-flip-c16e2-pixel10": "bavae, learning rates 5e-4, mirrored, cheaper critics, pixel weight 10",
    **{
        f"bavae-lr5e-4-flip-c16e2-start{n}": "bavae, learning rates 5e-4, mirrored, cheaper critics, "
        f"critics from step {n:,}"
        for n in (500, 1000, 2000)
    },
    "bavae-c16e2-marginal300": "bavae shipped, marginal MMD weight 300",
    "bavae-c16e2-sliced10": "bavae shipped, sliced Wasserstein weight 10",
    "bavae-c16e2-code1": "bavae shipped, code critic weight 1",
    "bavae-c16e2-start500": "bavae shipped, critics from step 500",
    **{f"bavae-c16e2-latent{n}": f"bavae shipped, latent {n}" for n in LATENT_SIZES},
    "bavae-c16e2-latent10-pixel3": "bavae shipped, latent 10, pixel weight 3",
    "vae": "pythae VAE",
    "vaegan": "pythae VAEGAN",
    "aae": "pythae AAE",
    "wae": "pythae WAE (MMD)",
    "rae": "pythae RAE (L2)",
}


def label(run: str) -> str:
    kind, _, seed = run.partition("-seed")
    base, _, latent = kind.partition("-latent")
    name = NAMES.get(kind) or (f"{NAMES[base]}, latent {latent}" if base in PEERS and latent else kind)
    return name + (f", seed {seed}" if seed else "")


def markdown(results: dict, at: str) -> str:
    lines = [
        "| model | steps | FID, prior ↓ | FID, GMM ↓ | FID, neighbours ↓ | recon MSE ↓ | SSIM ↑ | recon FID ↓ "
        "| class agreement ↑ |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run, r in results.items():
        if at in r.get("checkpoints", {}):
            c = r["checkpoints"][at]
            recon_fid = f"{c['recon_fid']:.1f}" if "recon_fid" in c else "–"
            neighbours = f"{c['fid_neighbours']:.1f}" if "fid_neighbours" in c else "–"  # scored since 2026-12-07
            lines.append(
                f"| {label(run)} | {c['steps']:,} | {c['fid_prior']:.1f} | {c['fid_gmm']:.1f} | {neighbours} | "
                f"{c['recon_mse']:.4f} | {c['recon_ssim']:.3f} | {recon_fid} | {c['class_agreement']:.1%} |"
            )
    return "\n".join(lines)


def plot(results: dict, path: Path, title: str) -> None:
    """FID against CPU minutes: solid the mixture, dotted the nearest-neighbour sampler, dashed the prior."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.6))
    for i, (run, r) in enumerate(results.items()):
        pts = sorted(
            (c["cpu_min"], c["fid_prior"], c["fid_gmm"], c.get("fid_neighbours")) for c in r["checkpoints"].values()
        )
        color = f"C{i}"
        lw = 2.5 if run == "bavae" else 1.3
        ax.plot([p[0] for p in pts], [p[2] for p in pts], "-o", color=color, lw=lw, ms=4, label=f"{label(run)}, GMM")
        if all(p[3] is not None for p in pts):  # the nearest-neighbour sampler, scored since 2026-12-07
            ax.plot(
                [p[0] for p in pts],
                [p[3] for p in pts],
                ":s",
                color=color,
                lw=lw,
                ms=4,
                label=f"{label(run)}, neighbours",
            )
        ax.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            "--",
            color=color,
            lw=lw * 0.7,
            alpha=0.7,
            label=f"{label(run)}, prior",
        )
    ax.set(
        xlabel="single-thread CPU minutes of training",
        ylabel="sample FID (classifier features) ↓",
        xscale="log",
        yscale="log",
        title=title,
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the curves, not over them
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=tuple(RECIPES), default="fashion-mnist")
    p.add_argument("--data-dir", default=None, help="emoji: the folder of make_emoji_folder.py (default data/emoji)")
    p.add_argument("--models", default=None, help=f"default: {','.join(MODELS)} (fashion-mnist), bavae + peers (emoji)")
    p.add_argument("--seeds", default="0", help="comma-separated; seed s > 0 trains into OUT/<model>-seed<s>")
    p.add_argument("--cpu-minutes", type=float, default=24.0)
    p.add_argument("--checkpoints", default="1.5,3,6,12,24", help="CPU minutes at which to save and score")
    p.add_argument("--save-every", type=float, default=5.0, help="CPU minutes between resumable states")
    p.add_argument("--components", type=int, default=50, help="Gaussian-mixture components for every model")
    p.add_argument("--n-eval", type=int, default=10000)
    p.add_argument("--out", default="runs/peers")
    p.add_argument("--train-only", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    data = data_setup(args.data, args.data_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = [float(c) for c in args.checkpoints.split(",")]
    assert max(checkpoints) <= args.cpu_minutes, "checkpoints must lie within --cpu-minutes"
    default = MODELS if args.data == "fashion-mnist" else ("bavae", "vae", "aae", "wae", "rae")
    kinds = args.models.split(",") if args.models else list(default)
    seeds = [int(s) for s in args.seeds.split(",")]
    images = data.train_images()
    runs = [(kind, seed) for seed in seeds for kind in kinds]
    for kind, seed in runs:  # one after another, never side by side
        train(kind, data, images, args.cpu_minutes, checkpoints, out, seed, args.save_every)
    if args.train_only:
        return
    results_file = out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    for kind, seed in runs:
        run = run_name(kind, seed)
        meta = json.loads((out / run / "meta.json").read_text())
        entry = results.setdefault(run, {"checkpoints": {}})
        for c in checkpoints:
            if f"{c:g}" not in entry["checkpoints"]:
                entry["checkpoints"][f"{c:g}"] = {
                    **meta[f"{c:g}"],
                    **score(kind, data, images, out, run, c, args.components, args.n_eval),
                }
                atomic_write(results_file, lambda t: Path(t).write_text(json.dumps(results, indent=2)))
    results = {run_name(k, s): results[run_name(k, s)] for k, s in runs}
    hardware = (
        f"{cpu_name()} ({torch.backends.cpu.get_cpu_capability()}, "
        f"{'native' if cpu_has_fast_bf16() else 'no native'} bf16), torch {torch.__version__}, 1 thread"
    )
    shape = "x".join(map(str, data.shape))
    title = f"{args.data} {shape}, latent {data.spec.latent_dim}, same trunks, equal CPU time"
    plot(results, out / "fid_vs_cpu.png", title)
    print(f"\n{hardware}; at {checkpoints[-1]:g} CPU minutes each:\n\n{markdown(results, f'{checkpoints[-1]:g}')}")


if __name__ == "__main__":
    main()

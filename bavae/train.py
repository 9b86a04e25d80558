"""Train a BAVAE: ``bavae train``, ``python -m bavae.train`` or ``torchrun --nproc_per_node=N -m bavae.train``.

Read top to bottom: options -> setup (device, DDP, seed) -> data -> model -> optimisers -> resume/init ->
the loop (critics step, then encoder/decoder step, EMA, log, sample, checkpoint) -> final save.

Everything written to ``--out`` is safetensors or JSON/CSV/PNG, written atomically:
    config.json, model.safetensors    the EMA model (load it with bavae.load(OUT))
    training_state.safetensors        raw weights, EMA, optimisers, RNG, step (its JSON rides in the metadata)
    metrics.csv, events.*             per-step scalars (CSV and TensorBoard)
    samples/step_XXXXXXX.png          sample grids from fixed prior codes
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import os
import re
import shlex
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

STATE_NAME = "training_state.safetensors"


@dataclass
class TrainConfig:
    # data
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    limit: int | None = None  # use only the first N images (quick runs, tests)
    # model (ignored with --init / --resume: the model's own config.json wins)
    arch: str = "dcgan"
    image_size: int | None = None  # None: the dataset's natural size for the architecture
    channels: int | None = None
    latent_dim: int = 16
    posterior_noise_dim: int = 16
    decoder_noise_dim: int = 0
    width: int = 32
    critic_width: int | None = None
    shared_critic_trunk: bool = True  # one critic trunk, two heads: faster, level at equal CPU (docs/benchmarks.md)
    objective: str = "informative"
    objective_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    # optimisation
    steps: int = 10_000
    epochs: float | None = None  # if set, overrides steps
    max_minutes: float | None = None  # stop (and save) after this much training time in one invocation
    batch_size: int = 64  # per process: under torchrun a step takes world_size x batch_size images
    lr: float = 2e-4  # encoder + decoder
    critic_lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    critic_steps: int = 1  # critic updates per encoder/decoder update
    ema_decay: float = 0.999
    seed: int = 0
    # hardware
    device: str = "auto"
    precision: str = "fp32"
    compile: bool = False
    num_workers: int = 0
    # outputs
    out: str = "runs/bavae"
    init: str | None = None  # start from a pretrained model (zoo name, Hub repo or folder): fine-tuning
    sample_every: int = 500
    checkpoint_every: int = 1000
    sampler_components: int = 50  # of the Gaussian mixture fitted on the codes at the end (0: none); 50 beat 10
    log_every: int = 25
    # divergence guard
    max_critic_value: float = 1e4  # |critic output| past this counts as divergence
    max_recoveries: int = 3


PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")
# The options that shape the model: with --init or --resume the model's own config decides them.
MODEL_OPTIONS = (
    "arch",
    "image_size",
    "channels",
    "latent_dim",
    "posterior_noise_dim",
    "decoder_noise_dim",
    "width",
    "critic_width",
    "shared_critic_trunk",
    "objective",
)


class TrainingError(RuntimeError):
    """A run that cannot go on; the message says why and what to do."""


class Diverged(Exception):
    pass


# ------------------------------------------------------------------------------------------------ helpers
def natural_image_size(dataset: str, arch: str) -> int:
    if dataset == "fashion-mnist":
        return 28 if arch == "mlp" else 32
    return 64


def natural_channels(dataset: str) -> int:
    return 1 if dataset in ("fashion-mnist", "dsprites") else 3


def resolve_device(name: str):
    from .zoo import resolve_device as resolve

    try:
        return resolve(name)
    except ValueError as e:
        raise TrainingError(f"--device {name}: {e}") from None


def rng_state_tensors(device) -> dict[str, Any]:
    import torch

    states = {"rng.cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["rng.cuda"] = torch.cuda.get_rng_state(device)
    return states


def optimizer_to_tensors(prefix: str, opt) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split an optimiser's state dict into tensors (for safetensors) and JSON (hyper-parameters)."""
    sd = opt.state_dict()
    tensors, meta = {}, {"param_groups": sd["param_groups"], "scalars": {}}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if hasattr(v, "shape") and v.dim() > 0:
                tensors[f"{prefix}.{idx}.{k}"] = v.contiguous()
            else:
                meta["scalars"][f"{idx}.{k}"] = float(v)
    return tensors, meta


def optimizer_from_tensors(prefix: str, opt, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    import torch

    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith(prefix + "."):
            idx, name = key[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(idx), {})[name] = v
    for key, v in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = torch.tensor(v)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_training_state(
    path: Path, *, model, ema, opt_critic, opt_ae, step: int, cfg: TrainConfig, extra: dict[str, Any], device
) -> None:
    """One safetensors file holds every tensor; the JSON state rides in its metadata: one atomic rename."""
    from safetensors.torch import save_file

    from .files import atomic_write

    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    t_c, m_c = optimizer_to_tensors("opt_critic", opt_critic)
    t_a, m_a = optimizer_to_tensors("opt_autoencoder", opt_ae)
    tensors.update(t_c)
    tensors.update(t_a)
    tensors.update(rng_state_tensors(device))
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {
        "step": step,
        "train_config": dataclasses.asdict(cfg),
        "model_config": model.config.to_dict(),
        "opt_critic": m_c,
        "opt_autoencoder": m_a,
        **extra,
    }
    atomic_write(path, lambda p: save_file(tensors, p, metadata={"bavae_training_state": json.dumps(meta)}))


def load_training_state(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["bavae_training_state"])
        return load_file(str(path)), meta
    except Exception as e:
        raise TrainingError(f"cannot read the training state {path}: {e}") from None


def grid_png(images, path: Path, nrow: int) -> None:
    from torchvision.utils import save_image

    from .files import atomic_write

    atomic_write(path, lambda p: save_image(images, p, nrow=nrow, format="png"))


class MetricsLog:
    """metrics.csv (truncated back to the resumed step, so a resumed run has no duplicate rows) + TensorBoard."""

    def __init__(self, out: Path, resume_step: int, enabled: bool):
        self.path, self.enabled, self.fields = out / "metrics.csv", enabled, None
        self.tb = None
        if not enabled:
            return
        self.restart(resume_step)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out), purge_step=resume_step + 1 if resume_step else None)
        except ImportError:
            print("tensorboard is not installed: writing metrics.csv only (pip install tensorboard)", file=sys.stderr)

    def restart(self, step: int) -> None:
        """Drop the CSV rows after ``step`` (a resumed or restored run logs them again)."""
        if not self.enabled or not self.path.exists():
            return
        with open(self.path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
        self.fields = list(rows[0]) if rows else None
        with open(self.path, "w", newline="") as f:
            if rows:
                w = csv.DictWriter(f, self.fields)
                w.writeheader()
                w.writerows(rows)

    def write(self, step: int, scalars: dict[str, float], csv_row: bool = True) -> None:
        if not self.enabled:
            return
        if csv_row:
            row = {"step": step, **{k: f"{v:.6g}" for k, v in scalars.items()}}
            new = self.fields is None or not self.path.exists() or self.path.stat().st_size == 0
            if self.fields is None:
                self.fields = list(row)
            with open(self.path, "a", newline="") as f:
                w = csv.DictWriter(f, self.fields, extrasaction="ignore")
                if new:
                    w.writeheader()
                w.writerow(row)
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


# ------------------------------------------------------------------------------------------------ one step
def optimizers(model, lr: float, critic_lr: float, betas: tuple[float, float], device) -> tuple:
    """Adam for each side of the game: (critics, encoder + decoder). Fused kernels on the CPU and CUDA: one step
    of both is 1.8 ms instead of 10 on one CPU core (the per-parameter loop runs ~10 small ops per tensor)."""
    import torch

    fused = {"fused": True} if torch.device(device).type in ("cpu", "cuda") else {}
    return (
        torch.optim.Adam(model.critic_parameters(), lr=critic_lr, betas=betas, **fused),
        torch.optim.Adam(model.autoencoder_parameters(), lr=lr, betas=betas, **fused),
    )


def game_step(model, batches: list, opt_critic, opt_autoencoder, *, autocast=None, scalers=None, sync=None):
    """One step of the game (eq. 19): a critic update per batch, then one encoder/decoder update on the last batch.

    ``autocast``: a torch.autocast context (or None); ``scalers``: (critic, autoencoder) GradScalers for fp16;
    ``sync``: called with a list of parameters after each backward (DDP's gradient average). Returns the critic
    and autoencoder :class:`~bavae.objectives.Losses` and the two summed losses.
    """
    import contextlib

    import torch

    autocast = autocast or contextlib.nullcontext()
    scaler_critic, scaler_ae = scalers or (None, None)
    sync = sync or (lambda params: None)

    def update(loss, opt, params, scaler) -> None:
        opt.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler else loss).backward()
        sync(params)
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()

    for i, x in enumerate(batches):  # 1) both critics ascend their value functions (eq. 6 and 14)
        with autocast:
            # The last batch is encoded and decoded with autograd on and step 2 reuses that pass: the critics see
            # detached copies and their update leaves the encoder/decoder graph valid.
            with torch.set_grad_enabled(i == len(batches) - 1):
                z = model.encoder(x)
                z_fake, x_fake = model.fake_pairs(z)  # reconstructions, then decoded prior codes
            critic = model.critic_losses(x, z, z_fake, x_fake)
            critic_loss = critic.inference_critic + critic.generative_critic
        update(critic_loss, opt_critic, model.critic_parameters(), scaler_critic)

    model.inference_critic.requires_grad_(False)  # 2) encoder and decoder descend eq. 19 (+ extra terms)
    model.generative_critic.requires_grad_(False)
    try:
        with autocast:  # a separate block: autocast's cache of cast weights would hold pre-step critic weights
            # same batch, codes and real-image critic features (one critic step old) as the last critic step
            ae = model.autoencoder_losses(x, z, z_fake, x_fake, real_features=critic.real_features)
            ae_loss = ae.encoder + ae.decoder
        update(ae_loss, opt_autoencoder, model.autoencoder_parameters(), scaler_ae)
    finally:
        model.inference_critic.requires_grad_(True)
        model.generative_critic.requires_grad_(True)
    return critic, ae, critic_loss, ae_loss


# ------------------------------------------------------------------------------------------------ samplers
def fit_latent_sampler(
    model,
    dataset,
    components: int = 50,
    max_codes: int = 60_000,
    batch_size: int = 500,
    seed: int = 0,
    progress: bool = True,
):
    """Fit a Gaussian mixture on the codes of up to ``max_codes`` training images (one posterior draw each, spread
    over the whole set) and attach it to ``model``; :meth:`BAVAE.sample` then draws from it. Returns the sampler."""
    import torch
    from tqdm.auto import tqdm

    from .samplers import GaussianMixtureSampler, supported_components

    n = min(max_codes, len(dataset))
    index = torch.linspace(0, len(dataset) - 1, n).round().long().tolist()
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, index), batch_size=batch_size)
    generator = torch.Generator(model.device).manual_seed(seed)
    codes = [
        model.encode(x.to(model.device), generator=generator).float().cpu()
        for x in tqdm(loader, desc="encoding for the sampler", disable=not progress, leave=False)
    ]
    codes = torch.cat(codes)
    supported = supported_components(len(codes), codes.shape[1])
    if components > supported:
        print(
            f"fitting {supported} mixture component(s), not {components}: {len(codes)} codes of dimension "
            f"{codes.shape[1]} support no more",
            file=sys.stderr,
        )
    sampler = GaussianMixtureSampler.fit(codes, min(components, supported), seed=seed)
    model.set_latent_sampler(sampler)
    return sampler


# ------------------------------------------------------------------------------------------------ training
def train(cfg: TrainConfig) -> Path:
    """Run (or resume) training as ``cfg`` says; returns the output folder."""
    import torch
    import torch.distributed as dist

    from . import data
    from .model import BAVAE, BAVAEConfig

    # ---- setup: DDP from torchrun's environment, device, precision, seed ----
    ddp = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    rank, world = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) if ddp else (0, 1)
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = resolve_device(cfg.device)
    if ddp and device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if ddp:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    master = rank == 0
    if cfg.precision not in PRECISIONS:
        raise TrainingError(f"--precision must be one of {PRECISIONS}, got {cfg.precision!r}")
    if cfg.precision == "fp16" and device.type != "cuda":
        raise TrainingError(f"--precision fp16 needs CUDA (this run is on {device.type}); on the CPU use bf16")
    amp = cfg.precision != "fp32"  # bf16 autocast runs on the CPU too (oneDNN; fast where the CPU has avx512_bf16)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
    # fp16 needs loss scaling; one scaler per optimiser, since each steps on its own schedule (critic_steps)
    scalers = (torch.amp.GradScaler("cuda"), torch.amp.GradScaler("cuda")) if cfg.precision == "fp16" else None
    out = Path(cfg.out)
    state_path = out / STATE_NAME
    resuming = state_path.exists()
    torch.manual_seed(cfg.seed + rank)  # each rank draws its own noise; weights come from rank 0 below

    # ---- model config: from a checkpoint (resume), a pretrained model (fine-tune), or scratch ----
    if resuming:
        tensors, meta = load_training_state(state_path)
        model_config = BAVAEConfig.from_dict(meta["model_config"])
    elif cfg.init:
        from .zoo import load

        init_model = load(cfg.init, device="cpu")
        # the pretrained latent sampler describes the old data's codes: refitted at the end, not carried over
        model_config = init_model.config.with_sampler(None)
        if cfg.objective_weights:  # fine-tuning may re-weight the objective; the nets stay the pretrained ones
            model_config = dataclasses.replace(
                model_config, objective_weights={**model_config.objective_weights, **cfg.objective_weights}
            )
    else:
        model_config = fresh_model_config(cfg)
    # ---- data: each rank reads its own strided share of one seeded permutation per epoch ----
    if ddp and not master:  # rank 0 builds first (dsprites writes its cache once), the others wait
        dist.barrier()
    dataset = data.build_dataset(
        cfg.dataset,
        data_dir=cfg.data_dir,
        image_size=model_config.image_size,
        channels=model_config.channels,
        split="train",
        limit=cfg.limit,
    )
    if ddp and master:
        dist.barrier()
    if len(dataset):
        dataset[0]  # one picture decoded: a folder whose pictures all fail to decode stops here, in one line
    # the model after the data: a folder that holds no pictures fails before a model is built (no torch RNG is
    # drawn by the datasets, so the weights are initialised as before)
    model = BAVAE(model_config)
    if cfg.init and not resuming:
        model.load_state_dict({k: v for k, v in init_model.state_dict().items() if not k.startswith("latent_sampler.")})
        del init_model
    model.to(device).train()
    # --batch-size is per process (as in nanoGPT-style loops): a step of N processes takes N x --batch-size images
    global_batch = cfg.batch_size * world
    if cfg.batch_size < 2:  # the information and marginal terms compare the images of a batch with each other
        raise TrainingError(f"--batch-size {cfg.batch_size} is per process and must be at least 2")
    batches_per_epoch = len(dataset) // global_batch
    if batches_per_epoch < 1:
        raise TrainingError(
            f"the dataset has {len(dataset)} images, fewer than one step's batch of {global_batch} "
            f"(--batch-size {cfg.batch_size} per process x {world} processes): "
            + (f"try --batch-size {_batch_hint(len(dataset), world)}" if len(dataset) >= 2 * world else "add images")
        )
    # a step takes critic_steps batches (the encoder/decoder reuse the last one)
    total_steps = math.ceil(cfg.epochs * batches_per_epoch / cfg.critic_steps) if cfg.epochs else cfg.steps
    if master and cfg.init and not resuming and model_config.channels == 1 and cfg.dataset == "folder":
        from .images import looks_colour

        if looks_colour(getattr(dataset, "files", [])):
            print(
                f"bavae train: --init {cfg.init} is a grayscale model: the pictures of {cfg.data_dir} will be "
                "converted to grayscale (to keep their colour, start from a colour model: --init bavae-emoji64)",
                file=sys.stderr,
            )
    if master and not resuming:  # what is about to happen, in one line (a run of the default 10,000 steps is long)
        epochs = total_steps * cfg.critic_steps / batches_per_epoch
        print(
            f"bavae train: {total_steps:,} steps of batch {cfg.batch_size}{f' x {world} processes' if world > 1 else ''} "
            f"({epochs:.3g} epochs of "
            f"{len(dataset):,} images) into {out}; --steps, --epochs or --max-minutes change that",
            file=sys.stderr,
        )

    def batches(start_step: int):
        """Yield (index, batch) from the first batch of start_step on; the order depends only on (seed, epoch),
        so resuming replays it."""
        index = start_step * cfg.critic_steps
        while True:
            epoch, offset = divmod(index, batches_per_epoch)
            order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
            order = order[: batches_per_epoch * global_batch].view(batches_per_epoch, global_batch)
            index_batches = [b[rank::world].tolist() for b in order[offset:]]  # cfg.batch_size images per rank
            loader = torch.utils.data.DataLoader(
                dataset,
                batch_sampler=index_batches,
                num_workers=cfg.num_workers,
                pin_memory=device.type == "cuda",
                generator=torch.Generator(),
            )  # keep the global RNG untouched

            for x in loader:
                yield index, x
                index += 1

    # ---- optimisers: one per side of the game ----
    opt_critic, opt_ae = optimizers(model, cfg.lr, cfg.critic_lr, (cfg.beta1, cfg.beta2), device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)  # the EMA copy is what gets saved as the model
    step, lr_scale, recoveries = 0, 1.0, 0
    cpu_before = 0.0  # CPU seconds this run spent before the checkpoint it resumed from (rank 0's process)
    cpu_start = time.process_time()

    def cpu_seconds() -> float:
        return cpu_before + time.process_time() - cpu_start

    def restore(tensors, meta) -> None:
        nonlocal step, lr_scale, recoveries
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        optimizer_from_tensors("opt_critic", opt_critic, tensors, meta["opt_critic"])
        optimizer_from_tensors("opt_autoencoder", opt_ae, tensors, meta["opt_autoencoder"])
        torch.set_rng_state(tensors["rng.cpu"])
        if device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"], device)
        step, lr_scale, recoveries = meta["step"], meta.get("lr_scale", 1.0), meta.get("recoveries", 0)

    if resuming:
        restore(tensors, meta)
        cpu_before, cpu_start = meta.get("cpu_seconds", 0.0), time.process_time()
        del tensors
        if rank:  # only rank 0's RNG state is saved; the others draw their own noise again
            torch.manual_seed(cfg.seed + 1_000_003 * rank + step)
    if ddp:  # every rank starts from rank 0's weights
        for p in [*model.parameters(), *model.buffers()]:
            dist.broadcast(p.data, src=0)
        if not resuming:
            ema.load_state_dict(model.state_dict())

    def checkpoint() -> None:
        if master:
            out.mkdir(parents=True, exist_ok=True)
            save_training_state(
                state_path,
                model=model,
                ema=ema,
                opt_critic=opt_critic,
                opt_ae=opt_ae,
                step=step,
                cfg=cfg,
                extra={"lr_scale": lr_scale, "recoveries": recoveries, "cpu_seconds": cpu_seconds()},
                device=device,
            )
            ema.inference_critic.load_state_dict(model.inference_critic.state_dict())  # critics are not averaged
            ema.generative_critic.load_state_dict(model.generative_critic.state_dict())
            ema.save_pretrained(out)
        if ddp:
            dist.barrier()

    if cfg.compile:  # compile the heavy sub-networks in place; state-dict keys stay the same
        trunks = {id(m): m for m in (model.inference_critic.image_trunk, model.generative_critic.image_trunk)}
        for net in (model.encoder.trunk, model.decoder.body, *trunks.values()):
            net.compile()

    def sync_gradients(params) -> None:
        """Average gradients over ranks. The game has four players, two optimisers and calls to methods other than
        forward(), which DistributedDataParallel's hooks do not see; one flat all-reduce per step does the job."""
        if not ddp:
            return
        grads = [p.grad for p in params if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def set_lr() -> None:
        for opt, lr in ((opt_critic, cfg.critic_lr), (opt_ae, cfg.lr)):
            for group in opt.param_groups:
                group["lr"] = lr * lr_scale

    fixed_codes = model.prior_sample(64, generator=torch.Generator(device).manual_seed(1234), device=device)
    log = MetricsLog(out, step, enabled=master)
    fit_sampler = master and cfg.sampler_components > 0
    if master:
        out.mkdir(parents=True, exist_ok=True)
        for stale in [*out.glob(".*.tmp"), *out.glob("samples/.*.tmp")]:  # left by a run killed mid-write
            stale.unlink(missing_ok=True)
        (out / "train_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    if not resuming:
        checkpoint()  # step 0: the divergence guard always has a good state to go back to
    set_lr()

    # ---- the loop ----
    from tqdm.auto import tqdm

    progress = tqdm(total=total_steps, initial=step, disable=not master, dynamic_ncols=True, desc="bavae train")
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp else torch.autocast("cpu", enabled=False)
    data_iter = batches(step)
    t0, images_seen = time.perf_counter(), 0
    while step < total_steps:
        try:
            xs = [next(data_iter)[1].to(device, non_blocking=True) for _ in range(cfg.critic_steps)]
            critic, ae, critic_loss, ae_loss = game_step(
                model, xs, opt_critic, opt_ae, autocast=autocast, scalers=scalers, sync=sync_gradients
            )
            scalars = {**critic.logs, **ae.logs}
            worst = max(abs(scalars["t_posterior"]), abs(scalars["d_real"]), abs(scalars["d_fake"]))
            finite = math.isfinite(critic_loss.item()) and math.isfinite(ae_loss.item())
            out_of_time = cfg.max_minutes is not None and time.perf_counter() - t0 > 60 * cfg.max_minutes
            flags = torch.tensor([float(not finite or worst > cfg.max_critic_value), float(out_of_time)], device=device)
            if ddp:  # every rank must take the same branches
                dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            bad, out_of_time = flags.tolist()
            if bad:
                raise Diverged(
                    f"step {step}: critic loss {critic_loss.item():.3g}, autoencoder loss "
                    f"{ae_loss.item():.3g}, largest critic output {worst:.3g}"
                )
        except Diverged as why:  # divergence guard: back to the last good checkpoint at half the learning rate
            count, scale_before = recoveries + 1, lr_scale
            if count > cfg.max_recoveries:
                progress.close()
                raise TrainingError(
                    f"training diverged {count} times ({why}); giving up. Try a lower --lr / "
                    f"--critic-lr or a smaller --batch-size"
                ) from None
            restore(*load_training_state(state_path))
            recoveries, lr_scale = count, min(lr_scale, scale_before) * 0.5
            set_lr()
            data_iter = batches(step)
            if master:
                progress.write(
                    f"diverged ({why}); restored step {step}, learning rates x{lr_scale:g} "
                    f"(recovery {recoveries} of at most {cfg.max_recoveries})",
                    file=sys.stderr,
                )
            log.restart(step)
            log.write(step, {"recovery": recoveries, "lr_scale": lr_scale}, csv_row=False)
            continue

        with torch.no_grad():  # 3) EMA of the encoder and decoder (warm-up so early steps are not frozen in)
            decay = min(cfg.ema_decay, (1 + step) / (10 + step))
            ema_params = [*ema.encoder.parameters(), *ema.decoder.parameters()]
            torch._foreach_lerp_(ema_params, model.autoencoder_parameters(), 1 - decay)
        step += 1
        images_seen += global_batch * cfg.critic_steps  # all processes: images_per_s is the run's throughput
        progress.update(1)
        if out_of_time:  # this step is the last: sample, checkpoint and save as at the planned end
            total_steps = step
            if master:
                progress.write(
                    f"--max-minutes {cfg.max_minutes:g} reached at step {step}; continue with "
                    f"`bavae train --resume {out}`",
                    file=sys.stderr,
                )

        if step % cfg.log_every == 0 or step == total_steps:
            scalars["images_per_s"] = images_seen / (time.perf_counter() - t0)
            scalars["lr_scale"], scalars["recoveries"] = lr_scale, recoveries
            scalars["cpu_minutes"] = cpu_seconds() / 60  # of training so far, across resumptions
            progress.set_postfix(
                kl=f"{scalars['kl_estimate']:.2f}",
                V_G=f"{scalars['generative_value']:.2f}",
                enc=f"{scalars['encoder']:.2f}",
                dec=f"{scalars['decoder']:.2f}",
                mse=f"{scalars['recon_mse']:.4f}",
            )
            log.write(step, scalars)
        if master and cfg.sample_every and (step % cfg.sample_every == 0 or step == total_steps):
            images = ema.decode(fixed_codes)
            (out / "samples").mkdir(parents=True, exist_ok=True)
            grid_png(images, out / "samples" / f"step_{step:07d}.png", nrow=8)
        if step % cfg.checkpoint_every == 0 or step == total_steps:
            checkpoint()

    progress.close()
    log.close()
    if fit_sampler:  # the sampler belongs to the saved (EMA) model, fitted once at the end
        fit_latent_sampler(ema, dataset, cfg.sampler_components, seed=cfg.seed)
        ema.save_pretrained(out)
    if ddp:
        dist.destroy_process_group()
    return out


# ------------------------------------------------------------------------------------------------ command line
def _read_config_file(path: str) -> dict[str, Any]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise TrainingError(f"--config {path} {'is a folder' if p.is_dir() else 'does not exist'}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TrainingError(f"--config {path} cannot be read: {e}") from None
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise TrainingError("reading a YAML config needs PyYAML (pip install pyyaml), or use JSON") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise TrainingError(f"--config {path} is not valid YAML: {' '.join(str(e).split())}") from None
    else:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise TrainingError(f"--config {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise TrainingError(f"{path} must hold a mapping of option names to values")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    data = {k.replace("-", "_"): v for k, v in data.items()}
    unknown = set(data) - known
    if unknown:
        raise TrainingError(f"{path}: unknown option(s) {sorted(unknown)}")
    return data


def _flag(name: str) -> str:
    return "--objective-weight" if name == "objective_weights" else "--" + name.replace("_", "-")


def _batch_hint(n: int, world: int = 1) -> int:
    """The largest power-of-two --batch-size (per process, at least 2) whose step of ``world`` processes fits in
    ``n`` images."""
    b = 2
    while b * 2 * world <= n:
        b *= 2
    return b


def _check_options(cfg: TrainConfig) -> None:
    """Every option's type and range, each failure one line naming the option, the value and what it takes."""
    from .zoo import SEED_MAX

    def fail(name: str, expected: str) -> None:
        raise TrainingError(f"{_flag(name)} must be {expected}, got {getattr(cfg, name)!r}")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def is_num(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    ints = {  # name: (least, most)
        "steps": (1, None),
        "batch_size": (2, None),  # the information terms compare the images of a batch with each other
        "critic_steps": (1, None),
        "checkpoint_every": (1, None),
        "log_every": (1, None),
        "sample_every": (0, None),  # 0: no sample grids
        "num_workers": (0, None),
        "sampler_components": (0, 1024),  # 0: no sampler
        "max_recoveries": (0, None),
        "seed": (0, SEED_MAX),
    }
    for name, (least, most) in ints.items():
        v = getattr(cfg, name)
        if not is_int(v) or v < least or (most is not None and v > most):
            fail(name, f"an integer from {least}" + (f" to {most}" if most is not None else " up"))
    if cfg.limit is not None and (not is_int(cfg.limit) or cfg.limit < 1):
        fail("limit", "a positive integer (the number of images to use)")
    for name in ("epochs", "max_minutes"):
        v = getattr(cfg, name)
        if v is not None and (not is_num(v) or v <= 0):
            fail(name, "a finite number > 0")
    for name in ("lr", "critic_lr", "max_critic_value"):
        v = getattr(cfg, name)
        if not is_num(v) or v <= 0:
            fail(name, "a finite number > 0")
    for name in ("beta1", "beta2", "ema_decay"):
        v = getattr(cfg, name)
        if not is_num(v) or not 0 <= v < 1:
            fail(name, "a number in [0, 1)")
    for name in ("compile",):
        if not isinstance(getattr(cfg, name), bool):
            fail(name, "true or false")
    for name in ("out", "dataset", "device", "precision"):
        if not isinstance(getattr(cfg, name), str):
            fail(name, "a string")
    for name in ("data_dir", "init"):
        if getattr(cfg, name) is not None and not isinstance(getattr(cfg, name), str):
            fail(name, "a string")
    if not isinstance(cfg.objective_weights, dict):
        fail("objective_weights", "a mapping of weight names to numbers")
    if cfg.precision not in PRECISIONS:
        fail("precision", f"one of {', '.join(PRECISIONS)}")
    if cfg.device not in DEVICES:
        fail("device", f"one of {', '.join(DEVICES)}")


def _init_config(init: str) -> dict[str, Any] | None:
    """The config of the --init model when it can be had without loading it (a zoo record, a folder's config.json)."""
    from .zoo import model_info, model_source

    kind, name = model_source(init)  # a missing folder, a mistyped zoo name: refused here, with no Hub call
    if kind == "zoo":
        return model_info(name).config
    config_file = Path(name).expanduser() / "config.json"
    if kind == "folder" and config_file.is_file():
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return config if isinstance(config, dict) else None
    return None


def _validate(cfg: TrainConfig, given: frozenset[str] = frozenset()) -> None:
    """All of `bavae train`'s checks, before any data is scanned, model built or folder written: each option's type
    and range, the combinations (model options with --init or --resume), the data, the device, --init, --out.
    ``given``: the options the user set (command line or --config file), to refuse the ones --init would ignore."""
    from .data import DATASETS, DataError, check_data_dir, check_dataset_fits
    from .files import OutputError, check_output_folder
    from .zoo import resolve_device

    _check_options(cfg)
    for name in MODEL_OPTIONS:  # (with --resume they are refused before the run's state is read)
        if name in given and cfg.init:
            raise TrainingError(
                f"{_flag(name)} cannot be combined with --init: --init {cfg.init} keeps that model's own config; "
                f"drop {_flag(name)}"
            )
    if cfg.dataset not in DATASETS:
        raise TrainingError(f"--dataset must be one of {list(DATASETS)}, got {cfg.dataset!r}")
    try:
        check_data_dir(cfg.dataset, cfg.data_dir)
    except DataError as e:
        raise TrainingError(str(e)) from None
    if cfg.init:
        config = _init_config(cfg.init)
        size, channels = (config.get("image_size"), config.get("channels")) if config else (None, None)
    else:
        try:  # the model this run would build: every model option's type and range (BAVAEConfig's own checks)
            fresh_model_config(cfg)
        except ValueError as e:
            raise TrainingError(re.sub(r"config\.(\w+)", lambda m: _flag(m.group(1)), str(e))) from None
        size, channels = (
            cfg.image_size or natural_image_size(cfg.dataset, cfg.arch),
            cfg.channels or natural_channels(cfg.dataset),
        )
    if isinstance(size, int) and isinstance(channels, int):
        try:
            check_dataset_fits(cfg.dataset, size, channels)
        except DataError as e:
            raise TrainingError(f"--dataset {cfg.dataset}: {e}") from None
    world = int(os.environ.get("WORLD_SIZE", 1))  # --batch-size is per process: a step takes world x batch_size
    if cfg.limit is not None and cfg.limit < cfg.batch_size * world:
        per = f" ({cfg.batch_size} per process x {world} processes)" if world > 1 else ""
        raise TrainingError(
            f"--limit {cfg.limit} is fewer images than one batch of {cfg.batch_size * world}{per}: "
            + (f"try --batch-size {_batch_hint(cfg.limit, world)}" if cfg.limit >= 2 * world else "raise --limit")
        )
    if not cfg.out:
        raise TrainingError("--out is empty: give the folder to write the run to, e.g. --out runs/mine")
    try:
        check_output_folder(cfg.out, "--out")
    except OutputError as e:
        raise TrainingError(str(e)) from None
    try:
        device = resolve_device(cfg.device)
    except ValueError as e:
        raise TrainingError(f"--device {cfg.device}: {e}") from None
    if cfg.precision == "fp16" and device.type != "cuda":
        raise TrainingError(f"--precision fp16 needs CUDA (this run is on {device.type}); on the CPU use bf16")


def fresh_model_config(cfg: TrainConfig):
    """The BAVAEConfig a fresh run (no --init, no --resume) builds from its options."""
    from .model import BAVAEConfig

    return BAVAEConfig(
        arch=cfg.arch,
        image_size=cfg.image_size or natural_image_size(cfg.dataset, cfg.arch),
        channels=cfg.channels or natural_channels(cfg.dataset),
        latent_dim=cfg.latent_dim,
        posterior_noise_dim=cfg.posterior_noise_dim,
        decoder_noise_dim=cfg.decoder_noise_dim,
        width=cfg.width,
        critic_width=cfg.critic_width,
        shared_critic_trunk=cfg.shared_critic_trunk,
        objective=cfg.objective,
        objective_weights=cfg.objective_weights,
    )


@click.command("train", context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="JSON or YAML file of options; the command line wins.",
)
@click.option(
    "--dataset", type=click.Choice(["fashion-mnist", "dsprites", "celeba", "folder"]), default="fashion-mnist"
)
@click.option(
    "--data-dir", default=None, help="Dataset folder (default: the Debian package location for fashion-mnist)."
)
@click.option("--limit", type=int, default=None, help="Use only the first N images.")
@click.option("--arch", default="dcgan", help="Architecture family: mlp, dcgan, resnet.")
@click.option("--image-size", type=int, default=None, help="Default: 28 (mlp) / 32 on fashion-mnist, 64 otherwise.")
@click.option("--channels", type=int, default=None, help="Default: 1 for fashion-mnist and dsprites, 3 otherwise.")
@click.option("--latent-dim", type=int, default=16)
@click.option("--posterior-noise-dim", type=int, default=16)
@click.option("--decoder-noise-dim", type=int, default=0)
@click.option("--width", type=int, default=32)
@click.option("--critic-width", type=int, default=None)
@click.option(
    "--shared-critic-trunk/--separate-critic-trunks",
    default=True,
    help="One image trunk with two heads for the two critics (1.12x faster per step, level at equal CPU time), "
    "or one trunk each.",
)
@click.option("--objective", default="informative", help="paper (eq. 19 as published) or informative.")
@click.option(
    "--objective-weight",
    "objective_weights",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override one weight of the objective, e.g. --objective-weight pixel=0.5 (repeatable).",
)
@click.option("--steps", type=int, default=10_000)
@click.option("--epochs", type=float, default=None, help="Train for this many epochs instead of --steps.")
@click.option(
    "--max-minutes",
    type=float,
    default=None,
    help="Stop after this many minutes of training (saving as at the end); --resume goes on.",
)
@click.option(
    "--batch-size",
    type=int,
    default=64,
    help="Images per step in each process: under torchrun a step takes processes x this many.",
)
@click.option("--lr", type=float, default=2e-4, help="Encoder and decoder learning rate.")
@click.option("--critic-lr", type=float, default=2e-4)
@click.option("--critic-steps", type=int, default=1)
@click.option("--ema-decay", type=float, default=0.999)
@click.option("--seed", type=int, default=0)
@click.option("--device", type=click.Choice(DEVICES), default="auto")
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default="fp32",
    help="bf16: autocast on CUDA or the CPU; fp16: autocast with loss scaling, CUDA only.",
)
@click.option("--compile/--no-compile", default=False, help="torch.compile the sub-networks.")
@click.option("--num-workers", type=int, default=0)
@click.option("--out", default="runs/bavae", help="Output folder.")
@click.option("--resume", default=None, help="Continue the run in this folder (its options are reused).")
@click.option("--init", default=None, help="Start from a pretrained model (zoo name, Hub repo or folder).")
@click.option("--sample-every", type=int, default=500)
@click.option("--checkpoint-every", type=int, default=1000)
@click.option(
    "--sampler-components",
    type=int,
    default=50,
    show_default=True,
    help="Components of the Gaussian mixture fitted on the training codes at the end (0: none).",
)
@click.option("--log-every", type=int, default=25)
@click.pass_context
def train_command(
    ctx: click.Context, config_file: str | None, resume: str | None, objective_weights: tuple[str, ...], **options: Any
) -> None:
    """Train (or resume, or fine-tune) a Biadversarial VAE."""
    try:
        cfg = _command_config(ctx, config_file, resume, objective_weights, options)
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning  # one line each, above the progress bar, not Python's two
            out = _run(cfg)
    except (TrainingError, ValueError, OSError) as e:
        if os.environ.get("BAVAE_DEBUG"):
            raise
        click.echo(f"bavae train: error: {' '.join(str(e).split()) or type(e).__name__}", err=True)
        ctx.exit(2)
    click.echo(f"saved the model to {out} (load it with bavae.load({str(out)!r}))")


def _command_config(
    ctx: click.Context, config_file: str | None, resume: str | None, objective_weights: tuple[str, ...], options: dict
) -> TrainConfig:
    """The run's TrainConfig from the command line, the --config file and the resumed run, checked (_validate)."""
    values: dict[str, Any] = {}
    explicit = {
        k: v
        for k, v in options.items()
        if ctx.get_parameter_source(k) not in (click.core.ParameterSource.DEFAULT, None)
    }
    given = set(explicit) | ({"objective_weights"} if objective_weights else set())
    if config_file:
        from_file = _read_config_file(config_file)
        given |= set(from_file)
    if resume:
        for name in MODEL_OPTIONS:  # before the state is read: the refusal does not depend on it
            if name in given:
                raise TrainingError(
                    f"{_flag(name)} cannot be combined with --resume: --resume {resume} continues with the run's "
                    f"own model; drop {_flag(name)}"
                )
        folder = Path(resume).expanduser()
        if not folder.is_dir():
            raise TrainingError(f"--resume {resume} {'is a file' if folder.exists() else 'does not exist'}")
        state = folder / STATE_NAME
        if not state.is_file():
            raise TrainingError(f"--resume {resume}: no {STATE_NAME} there (is it a bavae train --out folder?)")
        values.update(load_training_state(state)[1]["train_config"])
        values["out"] = resume
    if config_file:
        values.update(from_file)
    if resume is None:  # defaults fill in what neither the file nor the command line said
        values = {**options, **values}
    values.update(explicit)
    if objective_weights:
        weights = dict(values.get("objective_weights") or {})
        for item in objective_weights:
            name, _, value = item.partition("=")
            try:
                weights[name.strip()] = float(value)
            except ValueError:
                raise TrainingError(f"--objective-weight expects NAME=NUMBER, got {item!r}") from None
            if not name.strip():
                raise TrainingError(f"--objective-weight expects NAME=NUMBER, got {item!r}")
        values["objective_weights"] = weights
    cfg = TrainConfig(**values)
    _validate(cfg, frozenset(given))
    if cfg.init:  # the model's own config decides these: record none of them (train_config.json, the card's command)
        for name in MODEL_OPTIONS:
            setattr(cfg, name, None)
    if resume is None and (Path(cfg.out) / STATE_NAME).exists():  # never continue or clobber silently
        raise TrainingError(
            f"--out {cfg.out} already holds a training run: continue it with `bavae train --resume {cfg.out}`, "
            "or choose another --out"
        )
    return cfg


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings during `bavae train` as one line each, written above the progress bar (tqdm.write)."""
    from tqdm.auto import tqdm

    what = "" if issubclass(category, UserWarning) and category is UserWarning else f"{category.__name__}: "
    tqdm.write(f"bavae train: {what}{' '.join(str(message).split())}", file=sys.stderr)


def _saved_step(state_path: Path) -> int | None:
    """The step of a run's training state (from its metadata alone), or None when there is none to read."""
    try:
        from safetensors import safe_open

        with safe_open(str(state_path), framework="pt") as f:
            return int(json.loads(f.metadata()["bavae_training_state"])["step"])
    except Exception:
        return None


def _run(cfg: TrainConfig) -> Path:
    """train(cfg); if it fails, leave no run folder behind unless it saved a checkpoint worth resuming (past step 0),
    and say which: what this invocation created is removed, nothing that was there before is touched."""
    import shutil

    out = Path(cfg.out)
    existed = out.exists()
    before = set(out.iterdir()) if out.is_dir() else set()
    state_before = _saved_step(out / STATE_NAME)
    try:
        return train(cfg)
    except BaseException as e:
        if int(os.environ.get("RANK", 0)) != 0:  # rank 0 owns the folder
            raise
        step = _saved_step(out / STATE_NAME)
        if step and (state_before is None or step > state_before):
            hint = f"the run is saved at step {step}: continue it with `bavae train --resume {out}`"
        elif state_before:
            hint = f"the run is still saved at step {state_before}: continue it with `bavae train --resume {out}`"
        else:
            hint = None
            if not existed:
                shutil.rmtree(out, ignore_errors=True)
            elif out.is_dir():
                for p in set(out.iterdir()) - before:
                    if p.is_dir() and not p.is_symlink():
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        p.unlink(missing_ok=True)
        if hint is None:
            raise
        if isinstance(e, (TrainingError, ValueError, OSError)):
            raise TrainingError(f"{' '.join(str(e).split()) or type(e).__name__}; {hint}") from e
        print(f"bavae train: {hint}", file=sys.stderr)  # Ctrl-C and the like: say where the run is, then stop
        raise


def train_command_line(train_config: dict[str, Any]) -> str:
    """Rebuild the `bavae train` command line from a run's train_config.json, through the command's own options."""
    parts = ["bavae", "train"]
    for p in train_command.params:
        value = train_config.get(p.name)
        if not isinstance(p, click.Option) or p.name in ("config_file", "resume") or value in (None, {}):
            continue
        flag = max(p.opts, key=len)
        if p.is_flag:
            parts.append(flag if value else max(p.secondary_opts, key=len, default=""))
        elif isinstance(value, dict):  # --objective-weight NAME=VALUE, repeated
            parts += [x for k, v in value.items() for x in (flag, f"{k}={v}")]
        else:
            parts += [flag, str(value)]
    return shlex.join(p for p in parts if p)


def main() -> None:
    """``python -m bavae.train``: click's usage errors become one line too (exit 2, no usage dump)."""
    try:
        code = train_command.main(prog_name="bavae train", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)  # click returns ctx.exit()'s code when not standalone
    except click.ClickException as e:
        click.echo(f"bavae train: error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except click.Abort:
        sys.exit(130)


if __name__ == "__main__":
    main()

"""Train a BAVAE: ``bavae train``, ``python -m bavae.train`` or ``torchrun --nproc_per_node=N -m bavae.train``.

:func:`train` reads top to bottom: setup (DDP, device, precision, seed) -> model config -> data -> model ->
optimisers and the :class:`TrainState` (resumed, or started from ``--init`` or scratch) -> the loop (critics step,
then encoder/decoder step, EMA, log, sample, checkpoint) -> the latent sampler. The command line (options, config
files, checks) is :mod:`bavae.train_cli`.

Everything written to ``--out`` is safetensors or JSON/CSV/PNG, written atomically:
    config.json, model.safetensors    the EMA model (load it with bavae.load(OUT))
    training_state.safetensors        raw weights, EMA, optimisers, RNG, step (its JSON rides in the metadata)
    metrics.csv, events.*             per-step scalars (CSV and TensorBoard)
    samples/step_XXXXXXX.png          sample grids from fixed prior codes
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from . import data, objectives, serialization, zoo
from .configs import BAVAEConfig, TrainConfig, stored_codes_note
from .devices import resolve_device
from .errors import BAVAEError
from .files import CONFIG_NAME, WEIGHTS_NAME
from .images import looks_colour, save_grid
from .model import BAVAE
from .samplers import fit_latent_sampler
from .serialization import read_training_state

STATE_NAME = "training_state.safetensors"


class TrainingError(BAVAEError, RuntimeError):
    """A run that cannot go on; the message says why and what to do."""


# ------------------------------------------------------------------------------------------------ resuming
def check_run_files(out: Path, meta: dict[str, Any], label: str) -> None:
    """Refuse to resume a run folder whose model files are not its training state's model (a zoo model copied in,
    an edited config.json): resuming writes the run's own model over them. ``label`` starts the message."""
    problem = serialization.run_files_problem(out, meta, out / STATE_NAME)
    if problem:
        raise TrainingError(
            f"{label}: its {CONFIG_NAME} and {WEIGHTS_NAME} are not the model of its training state ({problem}); "
            f"resuming would overwrite them, so nothing was changed: move them out of {out} (or put this run's own "
            "back), then resume"
        )


def check_unfinished(out: Path, step: int, total_steps: int, cfg: TrainConfig, label: str) -> None:
    """Refuse to resume a run that has taken all its steps, unless its latent sampler is still to be fitted (a run
    stopped while fitting it): there is nothing left to do, and nothing is written."""
    if step < total_steps:
        return
    weights = out / WEIGHTS_NAME
    if cfg.sampler_components > 0 and weights.is_file():
        if serialization.header_sampler(serialization.read_header(weights)) is None:
            return  # resuming fits the sampler, as the end of the run would have
    planned = f"--steps {cfg.steps}" if cfg.epochs is None else f"--epochs {cfg.epochs:g} ({total_steps} steps)"
    raise TrainingError(
        f"{label}: the run is finished: it was saved at step {step}, the last of {planned}; to train it further, "
        f"give it more steps, e.g. `bavae train --resume {out} --steps {2 * max(step, 1)}`"
    )


# ------------------------------------------------------------------------------------------------ one step
def optimizers(model: BAVAE, lr: float, critic_lr: float, betas: tuple[float, float], device) -> tuple:
    """Adam for each side of the game: (critics, encoder + decoder). Fused kernels on the CPU and CUDA: the
    per-parameter loop would run about ten small ops per tensor."""
    fused = {"fused": True} if torch.device(device).type in ("cpu", "cuda") else {}
    return (
        torch.optim.Adam(model.critic_parameters(), lr=critic_lr, betas=betas, **fused),
        torch.optim.Adam(model.autoencoder_parameters(), lr=lr, betas=betas, **fused),
    )


def game_step(
    model,
    batches: list,
    opt_critic,
    opt_autoencoder,
    *,
    autocast=None,
    scalers=None,
    sync=None,
    update_critics=True,
    warmup=False,
):
    """One step of the game (eq. 19): a critic update per batch, then one encoder/decoder update on the last batch.

    ``autocast``: a torch.autocast context (or None); ``scalers``: (critic, autoencoder) GradScalers for fp16;
    ``sync``: called with a list of parameters after each backward (DDP's gradient average); ``update_critics``
    False: the encoder/decoder update alone, against the critics as they are (``--critic-every``); ``warmup``:
    before the critics start (``--critic-start``), the encoder/decoder update alone on the terms that need no
    critic (:func:`~bavae.objectives.warmup_weights`). Returns the critic and autoencoder
    :class:`~bavae.objectives.Losses` and the two summed losses; without a critic update the critic's are None.
    """
    update_critics = update_critics and not warmup
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

    critic = critic_loss = None
    if not update_critics:  # the encoder/decoder pass and the real images' critic features, computed below
        x, z, z_fake, x_fake = batches[-1], None, None, None
    for i, x in enumerate(batches if update_critics else []):  # 1) both critics ascend eq. 6 and 14
        with autocast:
            # The last batch is encoded and decoded with autograd on and step 2 reuses that pass: the critics see
            # detached copies and their update leaves the encoder/decoder graph valid.
            with torch.set_grad_enabled(i == len(batches) - 1):
                z = model.encoder(x)
                z_fake, x_fake = model.fake_pairs(z)  # reconstructions, then decoded prior codes
            critic = model.critic_losses(x, z, z_fake, x_fake)
            critic_loss = critic.inference_critic + critic.generative_critic
        update(critic_loss, opt_critic, model.critic_parameters(), scaler_critic)

    critics = model.critics()
    for critic_net in critics:  # 2) encoder and decoder descend eq. 19 (+ extra terms)
        critic_net.requires_grad_(False)
    try:
        with autocast:  # a separate block: autocast's cache of cast weights would hold pre-step critic weights
            # same batch, codes and real-image critic features (one critic step old) as the last critic step
            real_features = critic.real_features if critic else None
            weights = objectives.warmup_weights(model.config.weights) if warmup else None
            ae = model.autoencoder_losses(x, z, z_fake, x_fake, real_features=real_features, weights=weights)
            ae_loss = ae.encoder + ae.decoder
        update(ae_loss, opt_autoencoder, model.autoencoder_parameters(), scaler_ae)
    finally:
        for critic_net in critics:
            critic_net.requires_grad_(True)
    return critic, ae, critic_loss, ae_loss


def sync_gradients(params: list, world: int) -> None:
    """Average gradients over the ranks. The game has four players, two optimisers and calls to methods other than
    forward(), which DistributedDataParallel's hooks do not see; one flat all-reduce per update does the job."""
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


# ------------------------------------------------------------------------------------------------ the state
MIN_LR_FACTOR = 0.1


def lr_factor(decay: str, step: int, planned_steps: int) -> float:
    """``--lr-decay``'s factor on the learning rates at ``step`` of ``planned_steps``: 1 for none; for cosine, from 1
    at step 0 along a half cosine to MIN_LR_FACTOR at the last step (nanoGPT's min_lr = lr / 10)."""
    if decay == "none" or planned_steps <= 1:
        return 1.0
    progress = min(step / (planned_steps - 1), 1.0)
    return MIN_LR_FACTOR + (1 - MIN_LR_FACTOR) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass
class TrainState:
    """What a checkpoint holds and a divergence goes back to: the model, its EMA (what gets saved as the model),
    both optimisers, the step, the learning-rate scale and the recoveries so far, and the CPU time spent."""

    model: BAVAE
    ema: BAVAE
    opt_critic: torch.optim.Optimizer
    opt_autoencoder: torch.optim.Optimizer
    step: int = 0
    lr_scale: float = 1.0
    recoveries: int = 0
    cpu_before: float = 0.0  # CPU seconds of this run before this invocation (rank 0's process)
    cpu_start: float = dataclasses.field(default_factory=time.process_time)

    def cpu_seconds(self) -> float:
        return self.cpu_before + time.process_time() - self.cpu_start

    def set_lr(self, cfg: TrainConfig, planned_steps: int) -> None:
        """Both learning rates at this step: the configured ones, times the divergence guard's scale and
        ``--lr-decay``'s factor (a function of the step alone, so a resumed run replays it)."""
        scale = self.lr_scale * lr_factor(cfg.lr_decay, self.step, planned_steps)
        for opt, lr in ((self.opt_critic, cfg.critic_lr), (self.opt_autoencoder, cfg.lr)):
            for group in opt.param_groups:
                group["lr"] = lr * scale

    def save(self, path: Path, cfg: TrainConfig, device: torch.device) -> None:
        """One safetensors file holds every tensor (and the RNG); the JSON state rides in its metadata, so one
        atomic rename replaces the checkpoint."""
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        t_c, m_c = serialization.optimizer_tensors("opt_critic", self.opt_critic)
        t_a, m_a = serialization.optimizer_tensors("opt_autoencoder", self.opt_autoencoder)
        tensors.update({**t_c, **t_a, "rng.cpu": torch.get_rng_state()})
        if device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        meta = {
            "step": self.step,
            "train_config": cfg.to_dict(),
            "model_config": self.model.config.to_dict(),
            "opt_critic": m_c,
            "opt_autoencoder": m_a,
            "lr_scale": self.lr_scale,
            "recoveries": self.recoveries,
            "cpu_seconds": self.cpu_seconds(),
        }
        serialization.save_training_state(path, tensors, meta)

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], device: torch.device) -> None:
        """Back to a checkpoint: weights, EMA, optimisers, RNG, step, learning-rate scale and recoveries."""
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        self.ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        serialization.load_optimizer("opt_critic", self.opt_critic, tensors, meta["opt_critic"])
        serialization.load_optimizer("opt_autoencoder", self.opt_autoencoder, tensors, meta["opt_autoencoder"])
        torch.set_rng_state(tensors["rng.cpu"])
        if device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"], device)
        self.step, self.lr_scale, self.recoveries = meta["step"], meta.get("lr_scale", 1.0), meta.get("recoveries", 0)


def checkpoint(state: TrainState, out: Path, cfg: TrainConfig, device: torch.device, master: bool, ddp: bool) -> None:
    """Save the training state and the EMA model (rank 0), then wait for every rank."""
    if master:
        out.mkdir(parents=True, exist_ok=True)
        state.save(out / STATE_NAME, cfg, device)
        ema, model = state.ema, state.model
        for averaged, critic_net in zip(ema.critics(), model.critics()):  # critics are not averaged
            averaged.load_state_dict(critic_net.state_dict())
        ema.save_pretrained(out)
    if ddp:
        dist.barrier()


def recover(state: TrainState, out: Path, cfg: TrainConfig, device: torch.device, why: str) -> TrainState:
    """The divergence guard: back to the last checkpoint at half the learning rate (the loop sets it, from
    ``lr_scale``, before the next step), or give up after ``max_recoveries``."""
    count, scale_before = state.recoveries + 1, state.lr_scale
    if count > cfg.max_recoveries:
        raise TrainingError(
            f"training diverged {count} times ({why}); giving up. Try a lower --lr / --critic-lr or a smaller "
            "--batch-size"
        )
    state.restore(*read_training_state(out / STATE_NAME), device)
    state.recoveries, state.lr_scale = count, min(state.lr_scale, scale_before) * 0.5
    return state


# ------------------------------------------------------------------------------------------------ data, logs
def batches(dataset, cfg: TrainConfig, start_step: int, rank: int, world: int, device) -> Iterator[torch.Tensor]:
    """The batches of this rank from the first batch of ``start_step`` on. The order depends only on (seed, epoch),
    so a resumed run replays it; each rank reads its strided share of one seeded permutation per epoch."""
    global_batch = cfg.batch_size * world
    batches_per_epoch = len(dataset) // global_batch
    index = start_step * cfg.critic_steps
    while True:
        epoch, offset = divmod(index, batches_per_epoch)
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        order = order[: batches_per_epoch * global_batch].view(batches_per_epoch, global_batch)
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=[b[rank::world].tolist() for b in order[offset:]],  # cfg.batch_size images per rank
            num_workers=cfg.num_workers,
            pin_memory=device.type == "cuda",
            generator=torch.Generator(),  # its own: the global RNG stays untouched
            worker_init_fn=_ignore_interrupts if cfg.num_workers else None,  # Ctrl-C is the main process's
        )
        for x in loader:
            if cfg.augment != "none":  # its own generator per batch: a resumed run replays the same pictures
                x = augment(x, cfg.augment, torch.Generator().manual_seed(cfg.seed * 1_000_003 + index))
            yield x.to(device, non_blocking=True)
            index += 1


def augment(x: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """``--augment``: flip mirrors each picture with probability 1/2; flip+shift then moves it by up to 1/16 of its
    side (edges repeated), against the overfitting of small sets. On the emoji shifts lowered held-out pixel error
    and doubled the FIDs (docs/method.md, section 10), so the zoo's recipes flip only."""
    x = torch.where((torch.rand(len(x), generator=generator) < 0.5)[:, None, None, None], x.flip(-1), x)
    if kind == "flip+shift":
        n, _, h, w = x.shape
        s = max(1, h // 16)
        padded = torch.nn.functional.pad(x, (s, s, s, s), mode="replicate")
        dy, dx = torch.randint(0, 2 * s + 1, (2, n, 1), generator=generator)
        rows, cols = dy + torch.arange(h), dx + torch.arange(w)  # (n, h), (n, w)
        x = padded.permute(0, 2, 3, 1)[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
        x = x.permute(0, 3, 1, 2).contiguous()
    return x


def _ignore_interrupts(_worker_id: int) -> None:
    """A data worker ignores the terminal's Ctrl-C, so that the main process can save the run and stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class StopRequest:
    """While active, the first Ctrl-C (SIGINT) or SIGTERM asks the loop to stop after this step and save it, as
    --max-minutes does; the handler it replaced comes back at once, so a second one stops at once. Only the main
    thread can take signals: elsewhere (train() in a thread) this does nothing. A signal the process was started
    ignoring stays ignored (a job a script put in the background is not the terminal's Ctrl-C to stop)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum, self.previous = None, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            ignored = [s for s in self.SIGNALS if signal.getsignal(s) == signal.SIG_IGN]
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS if s not in ignored}
        return self

    def _handle(self, signum, _frame) -> None:
        self.signum = signum
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def __exit__(self, *exc) -> None:
        if self.signum is None:
            for s, handler in self.previous.items():
                signal.signal(s, handler)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""


class MetricsLog:
    """metrics.csv (truncated back to the resumed step, so a resumed run has no duplicate rows) + TensorBoard."""

    def __init__(self, out: Path, resume_step: int, enabled: bool):
        self.path, self.enabled, self.fields = out / "metrics.csv", enabled, None
        self.tb = None
        if not enabled:
            return
        self.restart(resume_step)
        try:
            from torch.utils.tensorboard import SummaryWriter  # an extra (bavae[train]): the CSV does without it

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
            elif not new and set(row) - set(self.fields):  # a column appears (the critics' after a skip step)
                self.fields += [k for k in row if k not in self.fields]
                with open(self.path, newline="") as f:
                    rows = list(csv.DictReader(f))
                with open(self.path, "w", newline="") as f:
                    w = csv.DictWriter(f, self.fields)
                    w.writeheader()
                    w.writerows(rows)
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


# ------------------------------------------------------------------------------------------------ training
def train(cfg: TrainConfig) -> Path:
    """Run (or resume) training as ``cfg`` says; returns the output folder."""
    # ---- setup: DDP from torchrun's environment, device, precision, seed ----
    ddp, rank, world, device = distributed(cfg)
    master, out = rank == 0, Path(cfg.out)
    autocast, scalers = precision(cfg, device)
    resuming = (out / STATE_NAME).exists()
    torch.manual_seed(cfg.seed + rank)  # each rank draws its own noise; weights come from rank 0 below

    # ---- model config: from a checkpoint (resume), a pretrained model (fine-tune), or scratch ----
    if resuming:
        tensors, meta = read_training_state(out / STATE_NAME)
        check_run_files(out, meta, str(out))  # (bavae train has checked; the API has not)
        config = BAVAEConfig.from_dict(meta["model_config"])
    elif cfg.init:
        pretrained = zoo.load(cfg.init, device="cpu")
        config = finetune_config(pretrained.config, cfg)
    else:
        config = cfg.model_config()
    if cfg.sampler_kind is None:  # before the run's config is saved: a resumed run fits what it recorded
        init_kind = (pretrained.config.sampler or {}).get("kind") if cfg.init and not resuming else None
        cfg = dataclasses.replace(cfg, sampler_kind=init_kind or "gmm")
    # ---- data: a folder that holds no pictures fails here, before a model is built ----
    if ddp and not master:  # rank 0 builds first (dsprites writes its cache once), the others wait
        dist.barrier()
    size, channels = config.image_size, config.channels
    dataset = data.build_dataset(
        cfg.dataset, data_dir=cfg.data_dir, image_size=size, channels=channels, split="train", limit=cfg.limit
    )
    if ddp and master:
        dist.barrier()
    if len(dataset):
        dataset[0]  # one picture decoded: a folder whose pictures all fail to decode stops here, in one line
    batches_per_epoch = len(dataset) // (cfg.batch_size * world)
    if batches_per_epoch < 1:
        raise TrainingError(not_one_batch(len(dataset), cfg.batch_size, world, "add images"))
    # a step takes critic_steps batches (the encoder/decoder reuse the last one)
    total_steps = math.ceil(cfg.epochs * batches_per_epoch / cfg.critic_steps) if cfg.epochs else cfg.steps
    planned_steps = total_steps  # total_steps falls to the step a --max-minutes stop saves; --lr-decay keeps this
    if resuming:  # (bavae train has checked a run of --steps; one of --epochs needed the data)
        check_unfinished(out, meta["step"], total_steps, cfg, str(out))

    # ---- model, EMA, optimisers: resumed, started from --init, or from scratch ----
    model = BAVAE(config)  # after the data, which draws no torch RNG: the weights are initialised as before
    if cfg.init and not resuming:  # the pretrained networks; their sampler is fitted again at the end
        weights = {
            k: v for k, v in pretrained.state_dict().items() if not k.startswith(("latent_sampler.", "code_critic."))
        }
        if model.code_critic is not None:  # the objective's code term: the pretrained critic C(z), or a fresh one
            source = pretrained if pretrained.code_critic is not None else model
            weights.update({f"code_critic.{k}": v for k, v in source.code_critic.state_dict().items()})
        model.load_state_dict(weights)
        del pretrained
    model.to(device).train()
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    state = TrainState(model, ema, *optimizers(model, cfg.lr, cfg.critic_lr, (cfg.beta1, cfg.beta2), device))
    if resuming:
        state.restore(tensors, meta, device)
        state.cpu_before, state.cpu_start = meta.get("cpu_seconds", 0.0), time.process_time()
        del tensors
        if rank:  # only rank 0's RNG state is saved; the others draw their own noise again
            torch.manual_seed(cfg.seed + 1_000_003 * rank + state.step)
    if ddp:  # every rank starts from rank 0's weights
        for p in [*model.parameters(), *model.buffers()]:
            dist.broadcast(p.data, src=0)
        if not resuming:
            ema.load_state_dict(model.state_dict())
    if cfg.compile:
        compile_networks(model)
    if master:
        announce(cfg, dataset, config, total_steps, batches_per_epoch, world, resuming)
        prepare_out(out, cfg)
    fit_sampler = master and cfg.sampler_components > 0
    fixed_codes = model.prior_sample(64, generator=torch.Generator(device).manual_seed(1234), device=device)
    log = MetricsLog(out, state.step, enabled=master)
    if not resuming:
        checkpoint(state, out, cfg, device, master, ddp)  # step 0: the divergence guard has a state to go back to

    # ---- the loop ----
    sync = partial(sync_gradients, world=world) if ddp else None
    data_iter = batches(dataset, cfg, state.step, rank, world, device)
    t0, images_seen = time.perf_counter(), 0
    critic_logs, last_critic_loss = {}, None  # the last critic step's (none yet after a --critic-every resume)
    # the bar is closed when the run stops with an error too: the message then gets a line of its own
    progress = tqdm(total=total_steps, initial=state.step, disable=not master, dynamic_ncols=True, desc="bavae train")
    with progress, StopRequest() as stop:
        while state.step < total_steps:
            xs = [next(data_iter) for _ in range(cfg.critic_steps)]
            warmup = state.step < cfg.critic_start
            state.set_lr(cfg, planned_steps)  # the one place the rates are set: decay, and a recovery's halving
            update_critics = state.step % cfg.critic_every == 0
            critic, ae, critic_loss, ae_loss = game_step(
                model,
                xs,
                state.opt_critic,
                state.opt_autoencoder,
                autocast=autocast,
                scalers=scalers,
                sync=sync,
                update_critics=update_critics,
                warmup=warmup,
            )
            if critic is not None:  # with --critic-every k, the logs and the guard keep the last critic step's
                critic_logs, last_critic_loss = critic.logs, critic_loss
            scalars = {**critic_logs, **ae.logs}
            bad, out_of_time = step_flags(cfg, last_critic_loss, ae_loss, scalars, t0, device, ddp, stop)
            if bad:  # every rank takes this branch together (step_flags agrees them)
                why = diverged(state.step, last_critic_loss, ae_loss, scalars)
                state = recover(state, out, cfg, device, why)
                data_iter = batches(dataset, cfg, state.step, rank, world, device)
                if master:
                    progress.write(
                        f"diverged ({why}); restored step {state.step}, learning rates x{state.lr_scale:g} "
                        f"(recovery {state.recoveries} of at most {cfg.max_recoveries})",
                        file=sys.stderr,
                    )
                log.restart(state.step)
                log.write(state.step, {"recovery": state.recoveries, "lr_scale": state.lr_scale}, csv_row=False)
                continue

            with torch.no_grad():  # 3) EMA of the encoder and decoder (warm-up so early steps are not frozen in)
                decay = min(cfg.ema_decay, (1 + state.step) / (10 + state.step))
                ema_params = [*ema.encoder.parameters(), *ema.decoder.parameters()]
                torch._foreach_lerp_(ema_params, model.autoencoder_parameters(), 1 - decay)
            state.step += 1
            step = state.step
            images_seen += cfg.batch_size * world * cfg.critic_steps  # all processes: the run's throughput
            progress.update(1)
            if out_of_time:  # this step is the last: sample, checkpoint and save as at the planned end
                total_steps = step
                if master:
                    if stop.signum:  # (bavae train then says where the run is saved)
                        why = f"{stop.name}: saving step {step}, then stopping (once more stops at once)"
                    else:
                        why = f"--max-minutes {cfg.max_minutes:g} reached at step {step}; continue with "
                        why += f"`bavae train --resume {out}`"
                    progress.write(why, file=sys.stderr)
            if step % cfg.log_every == 0 or step == total_steps:
                scalars["images_per_s"] = images_seen / (time.perf_counter() - t0)
                scalars["lr_scale"], scalars["recoveries"] = state.lr_scale, state.recoveries
                # (a constant rate is train_config.json's; old runs' CSVs keep their columns)
                if cfg.lr_decay != "none":
                    scalars["lr"] = state.opt_autoencoder.param_groups[0]["lr"]
                scalars["cpu_minutes"] = state.cpu_seconds() / 60  # of training so far, across resumptions
                progress.set_postfix(
                    {k: f"{scalars[name]:{fmt}}" for k, (name, fmt) in POSTFIX.items() if name in scalars}
                )
                log.write(step, scalars)
            if master and cfg.sample_every and (step % cfg.sample_every == 0 or step == total_steps):
                (out / "samples").mkdir(parents=True, exist_ok=True)
                save_grid(ema.decode(fixed_codes), out / "samples" / f"step_{step:07d}.png", nrow=8)
            if step % cfg.checkpoint_every == 0 or step == total_steps:
                checkpoint(state, out, cfg, device, master, ddp)

    log.close()
    if fit_sampler:  # the sampler belongs to the saved (EMA) model, fitted once at the end
        sampler = fit_latent_sampler(ema, dataset, cfg.sampler_components, seed=cfg.seed, kind=cfg.sampler_kind)
        ema.save_pretrained(out)
        if note := stored_codes_note(sampler.config, str(out)):
            print(note, file=sys.stderr)
    if stop.signum:  # saved as at the end; the caller still learns that the run was stopped
        raise KeyboardInterrupt(stop.name)
    if ddp:
        dist.destroy_process_group()
    return out


# ------------------------------------------------------------------------------------------------ its helpers
POSTFIX = {  # the progress bar's numbers: (scalar, format)
    "kl": ("kl_estimate", ".2f"),
    "V_G": ("generative_value", ".2f"),
    "enc": ("encoder", ".2f"),
    "dec": ("decoder", ".2f"),
    "mse": ("recon_mse", ".4f"),
}


def distributed(cfg: TrainConfig) -> tuple[bool, int, int, torch.device]:
    """(DDP or not, rank, world size, device) from torchrun's environment and ``cfg.device``; the process group is
    started here. A DDP rank on CUDA takes the GPU of its LOCAL_RANK."""
    ddp = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    rank, world = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) if ddp else (0, 1)
    device = resolve_device(cfg.device)
    if ddp and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if cfg.precision == "fp16" and device.type != "cuda":
        raise TrainingError(f"--precision fp16 needs CUDA (this run is on {device.type}); on the CPU use bf16")
    if ddp:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return ddp, rank, world, device


def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX-512 BF16 or AMX); elsewhere bf16 autocast is emulated."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def precision(cfg: TrainConfig, device: torch.device) -> tuple[Any, tuple | None]:
    """The autocast context and the fp16 GradScalers (critics, encoder/decoder) of ``cfg.precision``. bf16 autocast
    runs on the CPU too (oneDNN); fp16 needs loss scaling, one scaler per optimiser, since each steps on its own
    schedule (critic_steps)."""
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
    if cfg.precision == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16():
        # Without AVX-512 (BF16) or AMX, oneDNN emulates bf16: a step took 18x as long as in fp32 on an AVX2 EPYC.
        print(
            f"bavae train: warning: this CPU ({torch.backends.cpu.get_cpu_capability()}) has no native bf16, and "
            "bf16 autocast runs many times slower than fp32 on it: use --precision fp32",
            file=sys.stderr,
        )
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else torch.autocast("cpu", enabled=False)
    scalers = (torch.amp.GradScaler("cuda"), torch.amp.GradScaler("cuda")) if cfg.precision == "fp16" else None
    return autocast, scalers


def finetune_config(pretrained: BAVAEConfig, cfg: TrainConfig) -> BAVAEConfig:
    """A pretrained model's config for fine-tuning: without its latent sampler (it described the old data's codes:
    it is fitted again at the end), its objective re-weighted by ``--objective-weight``; the networks stay."""
    weights = {**pretrained.objective_weights, **(cfg.model.get("objective_weights") or {})}
    return dataclasses.replace(pretrained.with_sampler(None), objective_weights=weights)


def compile_networks(model: BAVAE) -> None:
    """torch.compile the heavy sub-networks in place (a shared critic trunk once); state-dict keys stay the same."""
    trunks = {id(m): m for m in (model.inference_critic.image_trunk, model.generative_critic.image_trunk)}
    for net in (model.encoder.trunk, model.decoder.body, *trunks.values()):
        net.compile()


def prepare_out(out: Path, cfg: TrainConfig) -> None:
    """The run folder, rid of the temporary files of a run killed mid-write, with the run's train_config.json."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob(".*.tmp"), *out.glob("samples/.*.tmp")]:
        stale.unlink(missing_ok=True)
    (out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")


def step_flags(
    cfg: TrainConfig, critic_loss, ae_loss, scalars: dict, t0: float, device, ddp: bool, stop: StopRequest | None = None
) -> list[float]:
    """(diverged, out of time or stopped by a signal) for this step, the same on every rank (each must take the
    same branches: a signal to one rank stops them all)."""
    worst = largest_critic_output(scalars)
    finite = math.isfinite(ae_loss.item()) and (critic_loss is None or math.isfinite(critic_loss.item()))
    out_of_time = cfg.max_minutes is not None and time.perf_counter() - t0 > 60 * cfg.max_minutes
    out_of_time = out_of_time or (stop is not None and stop.signum is not None)
    flags = torch.tensor([float(not finite or worst > cfg.max_critic_value), float(out_of_time)], device=device)
    if ddp:
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return flags.tolist()


def largest_critic_output(scalars: dict) -> float:
    """The largest |mean critic output| of the last critic step (0 before the first one of a resumed run)."""
    return max((abs(scalars[k]) for k in ("t_posterior", "d_real", "d_fake") if k in scalars), default=0.0)


def diverged(step: int, critic_loss, ae_loss, scalars: dict) -> str:
    critic = f"critic loss {critic_loss.item():.3g}, " if critic_loss is not None else ""
    return (
        f"step {step}: {critic}autoencoder loss {ae_loss.item():.3g}, "
        f"largest critic output {largest_critic_output(scalars):.3g}"
    )


def not_one_batch(n: int, batch_size: int, world: int, otherwise: str) -> str:
    """Why ``n`` images make no step of ``batch_size`` per process x ``world`` processes, and what to try."""
    per = f" (--batch-size {batch_size} per process x {world} processes)" if world > 1 else ""
    hint = f"try --batch-size {batch_hint(n, world)}" if n >= 2 * world else otherwise
    return f"the dataset has {n} images, fewer than one step's batch of {batch_size * world}{per}: {hint}"


def batch_hint(n: int, world: int = 1) -> int:
    """The largest power-of-two --batch-size (per process, at least 2) whose step of ``world`` processes fits in
    ``n`` images."""
    b = 2
    while b * 2 * world <= n:
        b *= 2
    return b


def announce(
    cfg: TrainConfig, dataset, config: BAVAEConfig, total_steps: int, per_epoch: int, world: int, resuming: bool
) -> None:
    """What is about to happen, in a line or two on stderr (a run of the default 10,000 steps is long)."""
    if resuming:
        return
    if cfg.init and config.channels == 1 and cfg.dataset == "folder":
        if looks_colour(getattr(dataset, "files", [])):
            print(
                f"bavae train: --init {cfg.init} is a grayscale model: the pictures of {cfg.data_dir} will be "
                "converted to grayscale (to keep their colour, start from a colour model: --init bavae-emoji64)",
                file=sys.stderr,
            )
    epochs = total_steps * cfg.critic_steps / per_epoch
    processes = f" x {world} processes" if world > 1 else ""
    print(
        f"bavae train: {total_steps:,} steps of batch {cfg.batch_size}{processes} ({epochs:.3g} epochs of "
        f"{len(dataset):,} images) into {cfg.out}; --steps, --epochs or --max-minutes change that",
        file=sys.stderr,
    )


__all__ = ["TrainConfig", "TrainState", "TrainingError", "train", "game_step", "optimizers", "fit_latent_sampler"]

if __name__ == "__main__":  # `python -m bavae.train`, `torchrun -m bavae.train`: the `bavae train` command
    from .train_cli import main

    main()

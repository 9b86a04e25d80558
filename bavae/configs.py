"""The two configs, each the one source of its options: :class:`BAVAEConfig` (a model) and :class:`TrainConfig` (a
run of ``bavae train``).

Each field says its default, and its help in ``metadata``; each config checks itself when it is made
(``__post_init__``), raising a ConfigError that names the field. ``bavae train``'s options are generated from these
fields (:mod:`bavae.train_cli`): a new model option is a new field of BAVAEConfig, nothing else. Names that a
registry holds (architectures, objectives, datasets) are checked by that registry.

Importing this module imports no torch (``bavae --help`` and ``bavae info`` read the fields); the registries are
torch modules, loaded when a config is first checked.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Callable

from .errors import ConfigError, InvalidType, InvalidValue, is_int, is_number

# Bounds on a model config: wider than any model the families are meant for, narrow enough that a config.json from
# an untrusted repo cannot ask for tens of GB (a width-1024 DCGAN is about 12 GB of weights already).
MAX_WIDTH = 1024
MAX_DIM = 4096  # latent_dim, posterior_noise_dim, decoder_noise_dim
PRIORS = ("normal", "uniform")
SAMPLER_KINDS = ("gmm", "neighbours")
MAX_COMPONENTS = 1024  # a config asking for more is not one we wrote
MAX_SAMPLER_CODES = 1_000_000  # the neighbour sampler's stored codes
MAX_NEIGHBOURS = 64
PRECISIONS = ("fp32", "bf16", "fp16")
AUGMENTATIONS = ("none", "flip", "flip+shift")
LR_DECAYS = ("none", "cosine")
SEED_MAX = 2**32 - 1  # seeds reach numpy and scikit-learn too, which take 0 <= seed < 2**32
DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps"
# The bounds of the counts the commands and the API take alike, in one table: `bavae interpolate --steps` and
# `model.interpolate(steps=)` refuse the same values (bavae.cli builds its options from it, bavae.model's check_count
# reads it). Each is (least, most); the most is what bounds the work and memory of one call.
COUNT_BOUNDS: dict[str, tuple[int, int]] = {
    "steps": (2, 256),  # interpolate: decoded points from A to B (the codes of N pairs x steps are decoded at once)
    # encode, kl_estimate: posterior draws per image (a Monte Carlo estimate may want 10^4 or more); the memory of
    # N images x n_samples draws is checked against the device's as well
    "n_samples": (1, 100_000),
    "grid_images": (1, 4096),  # images in one PNG grid (sample -n, --nrow)
    "npz_images": (1, 1_000_000),  # images in one npz of `bavae sample` (streamed; its size checked against free disk)
}
_DEVICE = re.compile(r"(auto|cpu|cuda|mps)(:(\d+))?")


def option(default: Any = None, help: str = "", **meta: Any) -> Any:
    """A config field: its default (a dict default is copied for each config) and what ``bavae train`` needs to
    know about it (:func:`bavae.options.field_options` reads it): ``help``; ``cli=False`` (no option: config files
    only); ``flag``/``off_flag`` (the option's names); ``choices``/``check`` (callables giving a registry's names
    and checking one with the registry's message); ``device=True``; ``train_default`` (what `bavae train` uses when
    it differs from the API's default); ``least`` (the config's minimum) and ``cli_least`` (the command line's);
    ``finetune=True`` (a model option that ``--init`` takes too)."""
    meta = {"help": help, **meta}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def check_device(device: Any) -> None:
    """The form of a device, without torch: None, "auto", "cpu", "cuda", "cuda:N", "mps", N (cuda:N) or a
    torch.device. InvalidValue (InvalidType for a non-string) naming the value and what was expected."""
    if device is None or type(device).__name__ == "device":  # a torch.device: torch has checked its form
        return
    if is_int(device) and device >= 0:  # torch's shorthand for cuda:N
        return
    if not isinstance(device, str):
        raise InvalidType(f"device must be one of {DEVICE_HELP} (a str) or a torch.device, got {device!r}")
    m = _DEVICE.fullmatch(device)
    if not m:
        raise InvalidValue(f"device {device!r} is not one of {DEVICE_HELP}")
    kind, index = m.group(1), m.group(3)
    if index is not None and kind == "auto":
        raise InvalidValue(f"device {device!r}: 'auto' takes no index")
    if index is not None and kind in ("cpu", "mps") and int(index) != 0:
        raise InvalidValue(f"device {device!r}: there is one {kind} device; use {kind!r}")


def check_sampler_config(sampler: Any, latent_dim: int) -> None:
    """A config's ``sampler`` entry: None (no fitted sampler), ``{"kind": "gmm", "components": K}`` or
    ``{"kind": "neighbours", "codes": N, "k": K}``."""
    if sampler is None:
        return
    fields = {"gmm": {"components": MAX_COMPONENTS}, "neighbours": {"codes": MAX_SAMPLER_CODES, "k": MAX_NEIGHBOURS}}
    expected = (
        f'null, {{"kind": "gmm", "components": K}} with 1 <= K <= {MAX_COMPONENTS}, or {{"kind": "neighbours", '
        f'"codes": N, "k": K}} with 2 <= N <= {MAX_SAMPLER_CODES} and 1 <= K < N, K <= {MAX_NEIGHBOURS}'
    )
    bounds = fields.get(sampler.get("kind")) if isinstance(sampler, dict) else None
    if (
        bounds is None
        or set(sampler) != {"kind", *bounds}
        or not all(is_int(sampler[name]) and 1 <= sampler[name] <= most for name, most in bounds.items())
        or (sampler["kind"] == "neighbours" and sampler["k"] >= sampler["codes"])
    ):
        raise ConfigError("sampler", f"must be {expected}, got {sampler!r}")


def _registries() -> tuple[Any, Any]:
    """The architecture and objective registries, which build torch modules: loaded when a config is first checked,
    so that importing this module stays light."""
    from . import nets, objectives

    return nets, objectives


def _check(config: Any, name: str, ok: Callable[[Any], bool], expected: str, prefix: str) -> None:
    value = getattr(config, name)
    if not ok(value):
        raise ConfigError(name, f"must be {expected}, got {value!r}", prefix)


def _count(least: int, most: int | None = None) -> tuple[Callable[[Any], bool], str]:
    """A check that a value is an integer in [least, most], and its wording."""
    ok = lambda v: is_int(v) and v >= least and (most is None or v <= most)  # noqa: E731
    return ok, f"an integer from {least}" + (f" to {most}" if most is not None else " up")


# ------------------------------------------------------------------------------------------------ the model
@dataclass(frozen=True)
class BAVAEConfig:
    """Everything needed to rebuild a model; serialises to ``config.json``."""

    arch: str = option(
        "dcgan",
        "Architecture family.",
        choices=lambda: _registries()[0].list_architectures(),
        check=lambda name: _registries()[0].get_architecture(name),
    )
    image_size: int = option(
        32,
        "Default: the dataset's size for the architecture (28 for mlp or 32 on fashion-mnist, 64 otherwise).",
        train_default=None,
    )
    channels: int = option(
        1, "Default: the dataset's (1 for fashion-mnist and dsprites, 3 otherwise).", train_default=None
    )
    latent_dim: int = option(16)
    posterior_noise_dim: int = option(16, "Size of eps in the implicit encoder E(x, eps).")
    decoder_noise_dim: int = option(0, "Size of eta in G(z, eta); 0: a deterministic decoder.")
    width: int = option(32, "Base width of the encoder/decoder family.")
    # bavae train's critics are half the family's width: at equal CPU time they train faster and score better
    # (docs/benchmarks.md, "The step's cost"); a config without one (every model before that) means --width.
    critic_width: int | None = option(None, "Base width of both critics (default: half of --width).")
    spectral_norm: bool = option(
        True, "On the critics: the exp terms of the value functions blow up without it.", cli=False
    )
    shared_critic_trunk: bool = option(
        False,
        "One image trunk with two heads for the two critics (faster per step, level at equal CPU time), or one "
        "trunk each.",
        off_flag="--separate-critic-trunks",
        train_default=True,
    )
    prior: str = option("normal", 'p(z): "normal" N(0, I) or "uniform" U(-1, 1); only sampled.', cli=False)
    objective: str = option(
        "informative",
        "paper (eq. 19 as published) or informative.",
        choices=lambda: sorted(_registries()[1].OBJECTIVES),
        check=lambda name: _registries()[1].resolve_objective(name),
    )
    objective_weights: dict[str, float] = option(
        {},
        "Override one weight of the objective, e.g. --objective-weight pixel=0.5 (repeatable).",
        flag="--objective-weight",
        finetune=True,  # fine-tuning may re-weight the objective of the pretrained networks
    )
    sampler: dict[str, Any] | None = option(
        None, 'A fitted latent sampler, e.g. {"kind": "gmm", "components": 10}.', cli=False
    )
    # what sample() draws from unless told: "auto" = the fitted sampler if any, else the prior; or "prior"/"gmm"
    default_sampler: str = option("auto", cli=False)

    def __post_init__(self) -> None:
        p = "config."
        for name in ("image_size", "channels", "latent_dim", "posterior_noise_dim", "width"):
            _check(self, name, lambda v: is_int(v) and v >= 1, "a positive integer", p)
        _check(self, "decoder_noise_dim", lambda v: is_int(v) and v >= 0, "an integer >= 0", p)
        _check(self, "critic_width", lambda v: v is None or (is_int(v) and v >= 1), "a positive integer or None", p)
        bounds = {"width": MAX_WIDTH, "critic_width": MAX_WIDTH}
        bounds.update(dict.fromkeys(("latent_dim", "posterior_noise_dim", "decoder_noise_dim"), MAX_DIM))
        for name, most in bounds.items():
            _check(self, name, lambda v, most=most: v is None or v <= most, f"at most {most}", p)
        for name in ("spectral_norm", "shared_critic_trunk"):  # "false" in a config.json would otherwise read as True
            _check(self, name, lambda v: isinstance(v, bool), "true or false", p)
        _check(self, "prior", lambda v: v in PRIORS, f"one of {list(PRIORS)}", p)
        nets, objectives = _registries()
        _check(self, "arch", lambda v: isinstance(v, str), f"one of {nets.list_architectures()}", p)
        nets.get_architecture(self.arch).check(self.image_size, self.channels)
        objectives.resolve_objective(self.objective)  # names the objective when it is unknown
        _check(
            self,
            "objective_weights",
            lambda v: isinstance(v, dict) and all(is_number(w) for w in v.values()),
            "a mapping of weight names to finite numbers",
            p,
        )
        try:
            objectives.resolve_objective(self.objective, self.objective_weights)
        except ValueError as e:
            raise ConfigError("objective_weights", f": {e}", p) from None
        check_sampler_config(self.sampler, self.latent_dim)
        kinds = ("auto", "prior", *SAMPLER_KINDS)
        _check(self, "default_sampler", lambda v: v in kinds, f"'auto', 'prior' or one of {list(SAMPLER_KINDS)}", p)
        if self.default_sampler in SAMPLER_KINDS and (self.sampler or {}).get("kind") != self.default_sampler:
            raise ConfigError("default_sampler", f"is {self.default_sampler!r} but config.sampler is {self.sampler!r}")

    @property
    def weights(self) -> Any:
        """The objective's weights (:class:`bavae.objectives.ObjectiveWeights`), overrides applied."""
        return _registries()[1].resolve_objective(self.objective, self.objective_weights)

    def net_spec(self, critic: bool = False) -> Any:
        """What the networks are built from (:class:`bavae.nets.NetSpec`); the critics take ``critic_width``."""
        width = (self.critic_width or self.width) if critic else self.width
        return _registries()[0].NetSpec(
            self.image_size,
            self.channels,
            self.latent_dim,
            self.posterior_noise_dim,
            self.decoder_noise_dim,
            width,
            self.spectral_norm,
        )

    def with_sampler(self, sampler: dict[str, Any] | None) -> BAVAEConfig:
        """This config describing ``sampler`` (None: no fitted sampler). A default of "prior" (chosen because it
        measured better) is kept; any other default becomes "auto", which follows the sampler there is."""
        default = "prior" if self.default_sampler == "prior" else "auto"
        return dataclasses.replace(self, sampler=sampler, default_sampler=default)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every field's default, as ``to_dict()`` would give it (without making, and so checking, a config)."""
        return {
            f.name: f.default_factory() if callable(f.default_factory) else f.default for f in dataclasses.fields(cls)
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BAVAEConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(None, f"unknown config field(s) {sorted(unknown)}; expected some of {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> BAVAEConfig:
        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ConfigError(None, f"{path} is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(None, f"{path} must hold a JSON object of config fields")
        try:
            return cls.from_dict(data)
        except (ValueError, TypeError) as e:  # name the file: it may come from a repo the user did not write
            raise ConfigError(None, f"{path}: {e}") from None


# ------------------------------------------------------------------------------------------------ a training run
def _datasets() -> Any:
    from . import data  # the dataset registry builds torch datasets: loaded when a run's config is checked

    return data


@dataclass
class TrainConfig:
    """A run of ``bavae train``: the data, the model of a fresh run (``model``: BAVAEConfig fields; with ``init`` or
    a resumed run the model's own config decides), the optimisation, the hardware and the outputs."""

    # data
    dataset: str = option(
        "fashion-mnist",
        choices=lambda: _datasets().list_datasets(),
        check=lambda name: _datasets().get_dataset(name),
    )
    data_dir: str | None = option(None, "Dataset folder (default: the Debian package location for fashion-mnist).")
    limit: int | None = option(None, "Use only the first N images.")
    augment: str = option(
        "none",
        "flip: each training picture mirrored left-right with probability 1/2 (a small set seen twice as large); "
        "flip+shift: also moved by up to 1/16 of its side in each direction, edges repeated.",
        choices=lambda: AUGMENTATIONS,
    )
    # the model of a fresh run: BAVAEConfig fields, each a `bavae train` option (see BAVAEConfig's metadata)
    model: dict[str, Any] = option({}, cli=False)
    # optimisation
    steps: int = option(10_000, least=0, cli_least=1)  # 0: save the starting model (the API's, not the CLI's)
    epochs: float | None = option(None, "Train for this many epochs instead of --steps.")
    max_minutes: float | None = option(
        None, "Stop after this many minutes of training (saving as at the end); --resume goes on."
    )
    batch_size: int = option(
        64, "Images per step in each process: under torchrun a step takes processes x this many.", least=2
    )  # at least 2: the information and marginal terms compare the images of a batch with each other
    lr: float = option(2e-4, "Encoder and decoder learning rate.")
    critic_lr: float = option(2e-4)
    # nanoGPT's decay, without its warm-up (Adam's bias correction and the EMA's warm-up already ease the start): a
    # GAN's iterates keep circling at a fixed rate, and a falling one lets them settle (docs/method.md, section 6).
    lr_decay: str = option(
        "none",
        "cosine: both learning rates fall along a half cosine to a tenth of theirs at the last planned step "
        "(--steps or --epochs; a --max-minutes stop keeps the plan); none: constant.",
        choices=lambda: LR_DECAYS,
    )
    beta1: float = option(0.5, cli=False)
    beta2: float = option(0.999, cli=False)
    critic_steps: int = option(1, "Critic updates per encoder/decoder update.", least=1)
    # The other way round: the critics step on one step in k and the encoder/decoder on every step, against the
    # critics' features of the real batch (no critic backward on the skipped steps: the step's largest cost).
    # None: 2, or 1 with critic_steps above 1 (resolved when the config is made, so train_config.json holds it).
    critic_every: int | None = option(
        None,
        "Update the critics on every k-th step only (1: every step, eq. 19's alternation). Default: 2, or 1 with "
        "--critic-steps above 1.",
        least=1,
    )
    # VQGAN's discriminator start, for both critics: an autoencoder may learn pixels faster per CPU-second than the
    # critics teach them, and its steps are cheaper (0.6x the colour recipe's; docs/method.md, section 10).
    critic_start: int = option(
        0,
        "Steps before the critics start: until then the encoder and decoder minimise the pixel anchor and the "
        "marginal terms alone, as an autoencoder (0: the game from the first step).",
        least=0,
    )
    ema_decay: float = option(0.999)
    seed: int = option(0)
    # hardware
    device: str = option("auto", DEVICE_HELP + ".", device=True)
    precision: str = option(
        "fp32",
        "bf16: autocast on CUDA or the CPU; fp16: autocast with loss scaling, CUDA only.",
        choices=lambda: PRECISIONS,
    )
    compile: bool = option(False, "torch.compile the sub-networks.")
    num_workers: int = option(0, least=0)
    # outputs
    out: str = option("runs/bavae", "Output folder.")
    init: str | None = option(None, "Start from a pretrained model (zoo name, Hub repo or folder).")
    sample_every: int = option(500, "Steps between sample grids (0: none).", least=0)
    checkpoint_every: int = option(1000, least=1)
    # None: the --init model's kind (a fine-tune keeps the sampler its model was published with), else gmm
    sampler_kind: str | None = option(
        None,
        "The latent sampler fitted on the training codes at the end: gmm (a Gaussian mixture of "
        "--sampler-components) or neighbours (the codes and 3 nearest neighbours of each, drawn between them). "
        "Default: the --init model's kind, else gmm.",
        flag="--sampler",
        choices=lambda: SAMPLER_KINDS,
    )
    sampler_components: int = option(
        50, "Components of the Gaussian mixture fitted on the training codes at the end (0: no sampler).", least=0
    )
    log_every: int = option(25, least=1)
    # divergence guard
    max_critic_value: float = option(1e4, "|critic output| past this counts as divergence.", cli=False)
    max_recoveries: int = option(3, "Restores to the last checkpoint before a diverging run gives up.", cli=False)

    def __post_init__(self) -> None:
        p = ""
        if self.critic_every is None:
            self.critic_every = 2 if self.critic_steps == 1 else 1
        for name in (
            "steps",
            "batch_size",
            "critic_steps",
            "critic_every",
            "critic_start",
            "checkpoint_every",
            "log_every",
            "sample_every",
        ):
            _check(self, name, *_count(_meta(self, name).get("least", 1)), p)
        if self.critic_steps > 1 and self.critic_every > 1:
            raise ConfigError(
                "critic_every",
                f"{self.critic_every} asks for fewer critic updates and critic_steps {self.critic_steps} for "
                "more: set one of them to 1",
                p,
            )
        _check(self, "num_workers", *_count(0), p)
        _check(self, "sampler_components", *_count(0, MAX_COMPONENTS), p)
        _check(self, "sampler_kind", lambda v: v is None or v in SAMPLER_KINDS, f"one of {list(SAMPLER_KINDS)}", p)
        _check(self, "max_recoveries", *_count(0), p)
        _check(self, "seed", *_count(0, SEED_MAX), p)
        _check(
            self,
            "limit",
            lambda v: v is None or (is_int(v) and v >= 1),
            "a positive integer (the number of images to use)",
            p,
        )
        for name in ("epochs", "max_minutes"):
            _check(self, name, lambda v: v is None or (is_number(v) and v > 0), "a finite number > 0", p)
        for name in ("lr", "critic_lr", "max_critic_value"):
            _check(self, name, lambda v: is_number(v) and v > 0, "a finite number > 0", p)
        for name in ("beta1", "beta2", "ema_decay"):
            _check(self, name, lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)", p)
        _check(self, "compile", lambda v: isinstance(v, bool), "true or false", p)
        for name in ("out", "dataset", "device", "precision"):
            _check(self, name, lambda v: isinstance(v, str), "a string", p)
        for name in ("data_dir", "init"):
            _check(self, name, lambda v: v is None or isinstance(v, str), "a string", p)
        _check(self, "model", lambda v: isinstance(v, dict), "a mapping of model options", p)
        weights = self.model.get("objective_weights") or {}
        if not isinstance(weights, dict):
            raise ConfigError("objective_weights", f"must be a mapping of weight names to numbers, got {weights!r}", p)
        _check(self, "precision", lambda v: v in PRECISIONS, f"one of {', '.join(PRECISIONS)}", p)
        _check(self, "augment", lambda v: v in AUGMENTATIONS, f"one of {', '.join(AUGMENTATIONS)}", p)
        _check(self, "lr_decay", lambda v: v in LR_DECAYS, f"one of {', '.join(LR_DECAYS)}", p)
        try:
            check_device(self.device)
        except InvalidValue:
            raise ConfigError("device", f"must be one of {DEVICE_HELP}, got {self.device!r}", p) from None
        _datasets().get_dataset(self.dataset)

    def model_config(self) -> BAVAEConfig:
        """The model a fresh run builds: ``model`` over `bavae train`'s defaults (BAVAEConfig's, or a field's
        ``train_default``), at the dataset's size for the architecture and the dataset's channels."""
        options = {f.name: f.metadata["train_default"] for f in model_options() if "train_default" in f.metadata}
        options = {**BAVAEConfig.defaults(), **options, **{k: v for k, v in self.model.items() if v is not None}}
        dataset = _datasets().get_dataset(self.dataset)
        if options["image_size"] is None:
            sizes = _registries()[0].get_architecture(options["arch"]).image_sizes
            options["image_size"] = dataset.natural_image_size(sizes)
        if options["channels"] is None:
            options["channels"] = dataset.channels
        if options["critic_width"] is None and is_int(options["width"]):
            options["critic_width"] = max(1, options["width"] // 2)
        return BAVAEConfig(**options)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """A TrainConfig from ``train_config.json`` or a ``--config`` file, whose model options may also be written
        at the top level (``latent_dim: 16``), as every run folder before the ``model`` field has them."""
        known, model_fields = {f.name for f in dataclasses.fields(cls)}, {f.name for f in model_options()}
        data = {k.replace("-", "_"): v for k, v in data.items()}
        flat = {k: data.pop(k) for k in list(data) if k in model_fields and k not in known}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(None, f"unknown option(s) {sorted(unknown)}")
        model = {**{k: v for k, v in flat.items() if v is not None}, **dict(data.pop("model", None) or {})}
        return cls(**data, model=model)


# Options whose default has changed since runs were saved: a saved run's train_config.json without one (written
# before the option existed) ran with this value, and --resume goes on with it.
SAVED_RUN_DEFAULTS: dict[str, Any] = {"critic_every": 1, "sampler_kind": "gmm"}


def model_options() -> list[dataclasses.Field]:
    """The fields of BAVAEConfig that `bavae train` takes as options (all but those marked ``cli=False``)."""
    return [f for f in dataclasses.fields(BAVAEConfig) if f.metadata.get("cli", True)]


def _meta(config: Any, name: str) -> dict[str, Any]:
    return dict(config.__dataclass_fields__[name].metadata)


def stored_codes_note(sampler: dict[str, Any] | None, folder: str = "MODEL_DIR") -> str | None:
    """One line for a sampler that keeps its training codes (the neighbour sampler): decoded, they give the training
    pictures back, roughly, so whoever gets the weights gets those too. None for a sampler that keeps only a summary."""
    if not sampler or sampler.get("kind") != "neighbours":
        return None
    return (
        f"note: the neighbour sampler keeps the codes of {sampler['codes']:,} training pictures in model.safetensors, "
        "and decoded they give those pictures back, roughly; before sharing a model trained on private pictures, "
        f"replace it with a mixture: `bavae fit-sampler {folder} --kind gmm`"
    )


__all__ = [
    "BAVAEConfig",
    "TrainConfig",
    "option",
    "model_options",
    "check_device",
    "check_sampler_config",
    "PRECISIONS",
    "PRIORS",
    "SAMPLER_KINDS",
    "SEED_MAX",
    "DEVICE_HELP",
    "COUNT_BOUNDS",
    "MAX_WIDTH",
    "MAX_DIM",
    "stored_codes_note",
]

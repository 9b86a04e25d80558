"""The Biadversarial VAE: config, the four players, and the user-facing API.

    model = BAVAE(BAVAEConfig(arch="dcgan", image_size=32, channels=1))
    z = model.encode(x)            # samples of the implicit posterior q(z|x)
    x_hat = model.reconstruct(x)   # G(E(x))
    images = model.sample(64)      # G(z), z ~ p(z)

A saved model is a folder with ``config.json`` and ``model.safetensors`` (the Hub layout); nothing is pickled.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import ModelHubMixin, hf_hub_download
from safetensors.torch import load_file, save_file
from torch import nn

from . import nets, objectives, samplers
from .files import atomic_write, hash_problem, sha256_file  # atomic_write, sha256_file: re-exported here

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PRIORS = ("normal", "uniform")
# Bounds on the config: wider than any model the families are meant for, narrow enough that a config.json from an
# untrusted repo cannot ask for tens of GB (a width-1024 DCGAN is about 12 GB of weights already).
MAX_WIDTH = 1024
MAX_DIM = 4096  # latent_dim, posterior_noise_dim, decoder_noise_dim
MAX_CODE = 1e3  # |z| past this is not a code of the prior N(0, I) or U(-1, 1): decoding it is a mistake


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """An integer argument (n, steps, n_samples) of at least ``minimum``: one ValueError naming it otherwise."""
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_generator(generator: Any, device: Any) -> Any:
    """None, or a torch.Generator on the device type of the tensors it will draw."""
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)) or None, "
            f"got {type(generator).__name__} {generator!r}"
        )
    device = torch.device(device)
    if generator.device.type != device.type:
        raise ValueError(
            f"generator is on {generator.device.type} but the model is on {device}: "
            f"use torch.Generator({device.type!r}).manual_seed(...)"
        )
    return generator


def check_codes(z: Any, latent_dim: int | None = None, name: str = "z") -> Any:
    """The one check of latent codes, for the API (tensors) and ``bavae decode`` (numpy arrays, before any model
    loads): a float array (N, latent_dim) with N >= 1, finite, within +-MAX_CODE. Returns ``z`` unchanged."""
    import numpy as np

    d = "latent_dim" if latent_dim is None else latent_dim
    expected = f"float codes of shape (N, {d})"
    if isinstance(z, torch.Tensor):
        floating, shape, dtype = z.is_floating_point(), tuple(z.shape), str(z.dtype)
    elif isinstance(z, np.ndarray):
        floating, shape, dtype = z.dtype.kind == "f", z.shape, str(z.dtype)
    else:
        raise ValueError(f"{name}: expected {expected}, got {type(z).__name__}")
    if not floating:
        raise ValueError(f"{name}: expected {expected}, got dtype {dtype} (convert integer codes with .float())")
    if len(shape) != 2 or (latent_dim is not None and shape[1] != latent_dim):
        raise ValueError(f"{name}: expected {expected}, got shape {shape}")
    if shape[0] == 0:
        raise ValueError(f"{name}: expected {expected}, got no codes (shape {shape})")
    a = torch.as_tensor(z) if isinstance(z, np.ndarray) else z.detach()
    if not torch.isfinite(a).all():
        raise ValueError(f"{name}: expected {expected} of finite values, got NaN or inf")
    biggest = a.abs().max().item()
    if biggest > MAX_CODE:
        raise ValueError(
            f"{name}: codes of the prior lie within a few units of 0; got |z| up to {biggest:.3g}, past the "
            f"{MAX_CODE:g} that bavae decodes (too far from any code the decoder saw)"
        )
    return z


@dataclass(frozen=True)
class BAVAEConfig:
    """Everything needed to rebuild a model; serialises to ``config.json``."""

    arch: str = "dcgan"  # a family from bavae.nets.list_architectures()
    image_size: int = 32
    channels: int = 1
    latent_dim: int = 16
    posterior_noise_dim: int = 16  # size of eps in the implicit encoder E(x, eps)
    decoder_noise_dim: int = 0  # size of eta in G(z, eta); 0 = deterministic decoder
    width: int = 32  # base width of the encoder/decoder family
    critic_width: int | None = None  # base width of both critics; None = width
    spectral_norm: bool = True  # on the critics (the exp terms blow up without it)
    shared_critic_trunk: bool = False  # one image trunk, two heads (T and D): one trunk pass serves both critics
    prior: str = "normal"  # p(z): "normal" N(0, I) or "uniform" U(-1, 1); only sampled, never evaluated
    objective: str = "informative"  # a name from bavae.objectives.OBJECTIVES
    objective_weights: dict[str, float] = field(default_factory=dict)  # overrides of the named objective's weights
    sampler: dict[str, Any] | None = None  # a fitted latent sampler, e.g. {"kind": "gmm", "components": 10}
    # what sample() draws from unless told: "auto" = the fitted sampler if any, else the prior; or "prior"/"gmm"
    default_sampler: str = "auto"

    def __post_init__(self) -> None:
        for name in ("image_size", "channels", "latent_dim", "posterior_noise_dim", "width"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"config.{name} must be a positive integer, got {value!r}")
        if not _is_int(self.decoder_noise_dim) or self.decoder_noise_dim < 0:
            raise ValueError(f"config.decoder_noise_dim must be an integer >= 0, got {self.decoder_noise_dim!r}")
        if self.critic_width is not None and (not _is_int(self.critic_width) or self.critic_width < 1):
            raise ValueError(f"config.critic_width must be a positive integer or None, got {self.critic_width!r}")
        bounds = {"width": MAX_WIDTH, "critic_width": MAX_WIDTH}
        bounds.update(dict.fromkeys(("latent_dim", "posterior_noise_dim", "decoder_noise_dim"), MAX_DIM))
        for name, most in bounds.items():
            value = getattr(self, name)
            if value is not None and value > most:
                raise ValueError(f"config.{name} must be at most {most}, got {value!r}")
        for name in ("spectral_norm", "shared_critic_trunk"):  # "false" in a config.json would otherwise read as True
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"config.{name} must be true or false, got {getattr(self, name)!r}")
        if self.prior not in PRIORS:
            raise ValueError(f"config.prior must be one of {list(PRIORS)}, got {self.prior!r}")
        if not isinstance(self.arch, str):
            raise ValueError(f"config.arch must be one of {nets.list_architectures()}, got {self.arch!r}")
        nets.get_architecture(self.arch).check(self.image_size, self.channels)
        objectives.resolve_objective(self.objective)  # names the objective when it is unknown
        weights = self.objective_weights
        if not isinstance(weights, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in weights.values()
        ):
            raise ValueError(f"config.objective_weights must map weight names to finite numbers, got {weights!r}")
        try:
            objectives.resolve_objective(self.objective, weights)
        except ValueError as e:
            raise ValueError(f"config.objective_weights: {e}") from None
        samplers.check_sampler_config(self.sampler, self.latent_dim)
        if self.default_sampler not in ("auto", "prior", *samplers.SAMPLER_KINDS):
            raise ValueError(
                f"config.default_sampler must be 'auto', 'prior' or one of {list(samplers.SAMPLER_KINDS)}, "
                f"got {self.default_sampler!r}"
            )
        if self.default_sampler in samplers.SAMPLER_KINDS and (self.sampler or {}).get("kind") != self.default_sampler:
            raise ValueError(
                f"config.default_sampler is {self.default_sampler!r} but config.sampler is {self.sampler!r}"
            )

    @property
    def weights(self) -> objectives.ObjectiveWeights:
        return objectives.resolve_objective(self.objective, self.objective_weights)

    def net_spec(self, critic: bool = False) -> nets.NetSpec:
        width = (self.critic_width or self.width) if critic else self.width
        return nets.NetSpec(
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
    def from_dict(cls, data: dict[str, Any]) -> BAVAEConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config field(s) {sorted(unknown)}; expected some of {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> BAVAEConfig:
        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a JSON object of config fields")
        try:
            return cls.from_dict(data)
        except (ValueError, TypeError) as e:  # name the file: it may come from a repo the user did not write
            raise ValueError(f"{path}: {e}") from None


class WeightsError(ValueError):
    """A weight file is missing, corrupt, or does not match the model."""


class BAVAE(
    nn.Module,
    ModelHubMixin,
    library_name="bavae",
    tags=["bavae", "vae", "gan", "generative"],
    repo_url="https://github.com/bavae/bavae",
    license="mit",
):
    """A VAE with an implicit posterior and an implicit likelihood, each term estimated by a critic."""

    def __init__(self, config: BAVAEConfig):
        super().__init__()
        if not isinstance(config, BAVAEConfig):
            raise TypeError(f"BAVAE expects a BAVAEConfig, got {type(config).__name__}")
        self.config = config
        spec, critic_spec = config.net_spec(), config.net_spec(critic=True)
        self.encoder = nets.build(config.arch, "encoder", spec)
        self.decoder = nets.build(config.arch, "decoder", spec)
        self.inference_critic = nets.build(config.arch, "inference_critic", critic_spec)  # T(x, z)
        self.generative_critic = nets.build(config.arch, "generative_critic", critic_spec)  # D(x, z)
        if config.shared_critic_trunk:
            self.generative_critic.borrow_trunk(self.inference_critic)
        if config.weights.sample:
            self.generative_critic.add_sample_head()
        self.latent_sampler = samplers.build_sampler(config.sampler, config.latent_dim)  # fitted after training

    # ---- parameters by player (the training loop steps them separately) ----
    def autoencoder_parameters(self) -> list[nn.Parameter]:
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def critic_parameters(self) -> list[nn.Parameter]:
        return [*self.inference_critic.parameters(), *self.generative_critic.parameters()]

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ---- the prior ----
    def prior_sample(
        self,
        n: int,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        device, dtype = device or self.device, dtype or torch.float32
        shape = (n, self.config.latent_dim)
        if self.config.prior == "uniform":
            return torch.rand(shape, device=device, dtype=dtype, generator=generator) * 2 - 1
        return torch.randn(shape, device=device, dtype=dtype, generator=generator)

    # ---- user API ----
    def check_images(self, x: Any, name: str = "x") -> torch.Tensor:
        """Validate a batch of images: a float tensor (N, C, H, W) in [0, 1] matching the config."""
        c, s = self.config.channels, self.config.image_size
        expected = f"a float tensor of shape (N, {c}, {s}, {s}) with values in [0, 1]"
        if not isinstance(x, torch.Tensor):
            hint = " (convert it with torch.from_numpy)" if type(x).__name__ == "ndarray" else ""
            raise ValueError(f"{name}: expected {expected}, got {type(x).__name__}{hint}")
        if not x.is_floating_point():
            raise ValueError(f"{name}: expected {expected}, got dtype {x.dtype} (convert uint8 images with x / 255)")
        if x.dim() != 4:
            raise ValueError(f"{name}: expected {expected}, got rank {x.dim()} with shape {tuple(x.shape)}")
        if tuple(x.shape[1:]) != (c, s, s):
            raise ValueError(f"{name}: expected {expected}, got shape {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError(f"{name}: expected {expected}, got an empty batch (0 images)")
        if x.numel() and (not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1):
            lo, hi = x.min().item(), x.max().item()
            raise ValueError(f"{name}: expected {expected}, got values in [{lo:.3g}, {hi:.3g}]")
        return x.to(device=self.device, dtype=next(self.parameters()).dtype)

    def check_codes(self, z: Any) -> torch.Tensor:
        """Validate codes (:func:`check_codes`, with this model's latent_dim) and move them to the model."""
        check_codes(z, self.config.latent_dim)
        if not isinstance(z, torch.Tensor):
            raise ValueError(
                f"z: expected a float tensor of shape (N, {self.config.latent_dim}), got {type(z).__name__}"
            )
        return z.to(device=self.device, dtype=next(self.parameters()).dtype)

    def check_sample_size(self, n: int) -> None:
        """Refuse an ``n`` whose images alone could not fit in the memory of the model's device."""
        c, s = self.config.channels, self.config.image_size
        need = n * c * s * s * 4
        device = self.device
        if device.type == "cuda":
            have = torch.cuda.get_device_properties(device).total_memory
        else:
            try:
                have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
            except (ValueError, OSError, AttributeError):  # not every platform says
                return
        if need > have:
            raise ValueError(
                f"n={n} samples of {c}x{s}x{s} need {need / 2**30:,.1f} GiB for the images alone, more than the "
                f"{have / 2**30:,.1f} GiB of {device.type} memory: draw them in batches "
                "(`bavae sample --format npz` streams any number to a file)"
            )

    @torch.no_grad()
    def encode(self, x: torch.Tensor, n_samples: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """Samples of q(z|x): shape (N, latent_dim), or (N, n_samples, latent_dim) when n_samples > 1."""
        check_count("n_samples", n_samples)
        x = self.check_images(x)
        return self.encoder(x, n_samples=n_samples, generator=check_generator(generator, self.device))

    @torch.no_grad()
    def decode(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images G(z) in [0, 1], shape (N, C, H, W)."""
        z = self.check_codes(z)
        return self.decoder(z, generator=check_generator(generator, self.device))

    # ---- latent samplers ----
    @property
    def default_sampler(self) -> str:
        """The sampler :meth:`sample` uses unless told: ``config.default_sampler``, where "auto" means the fitted
        one when there is one, else the prior."""
        if self.config.default_sampler != "auto":
            return self.config.default_sampler
        return "prior" if self.latent_sampler is None else self.config.sampler["kind"]

    def sample_codes(self, n: int, sampler: str = "auto", generator: torch.Generator | None = None) -> torch.Tensor:
        """n codes to decode: from the prior p(z) (``"prior"``), the fitted mixture (``"gmm"``), or ``"auto"``
        (:attr:`default_sampler`)."""
        if not _is_int(n) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        generator = check_generator(generator, self.device)
        kind = self.default_sampler if sampler == "auto" else sampler
        if kind == "prior":
            codes = self.prior_sample(n, generator=generator)
        elif kind not in samplers.SAMPLER_KINDS:
            raise ValueError(
                f"sampler must be 'auto', 'prior' or one of {list(samplers.SAMPLER_KINDS)}, got {sampler!r}"
            )
        elif self.latent_sampler is None:
            raise ValueError(
                f"this model has no fitted {kind!r} sampler: fit one with `bavae fit-sampler MODEL "
                "--dataset ...`, or use sampler='prior'"
            )
        else:
            codes = self.latent_sampler.sample(n, generator=generator)
        return codes.to(next(self.parameters()).dtype)  # a bf16/fp16 model decodes codes of its own dtype

    def set_latent_sampler(self, sampler: samplers.GaussianMixtureSampler | None) -> None:
        """Attach a fitted sampler (or remove it with None); the config records it (:meth:`BAVAEConfig.with_sampler`),
        so it is saved and loaded."""
        if sampler is not None and sampler.means.shape[1] != self.config.latent_dim:
            raise ValueError(
                f"the sampler draws codes of size {sampler.means.shape[1]}, the model's latent size is "
                f"{self.config.latent_dim}"
            )
        self.latent_sampler = None if sampler is None else sampler.to(self.device)
        self.config = self.config.with_sampler(None if sampler is None else sampler.config)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, sampler: str = "auto") -> torch.Tensor:
        """n images decoded from codes drawn by ``sampler`` (see :meth:`sample_codes`; by default the fitted
        mixture when the model has one, else the prior). Pass a seeded ``torch.Generator`` for reproducible samples."""
        if _is_int(n) and n >= 1:
            self.check_sample_size(n)
        z = self.sample_codes(n, sampler, generator=generator)
        return self.decoder(z, generator=generator)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """G(E(x)): one posterior sample per image, decoded."""
        x, generator = self.check_images(x), check_generator(generator, self.device)
        return self.decoder(self.encoder(x, generator=generator), generator=generator)

    @torch.no_grad()
    def interpolate(
        self, x1: torch.Tensor, x2: torch.Tensor, steps: int = 8, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Decodings along the straight line between the codes of x1 and x2: shape (N, steps, C, H, W)."""
        check_count("steps", steps, 2)
        generator = check_generator(generator, self.device)
        x1, x2 = self.check_images(x1, "x1"), self.check_images(x2, "x2")
        if x1.shape[0] != x2.shape[0]:
            raise ValueError(f"x1 and x2 must hold as many images; got {x1.shape[0]} and {x2.shape[0]}")
        z1, z2 = self.encoder(x1, generator=generator), self.encoder(x2, generator=generator)
        t = torch.linspace(0, 1, steps, device=z1.device, dtype=z1.dtype)[None, :, None]
        z = (1 - t) * z1[:, None] + t * z2[:, None]  # (N, steps, latent)
        images = self.decoder(z.flatten(0, 1), generator=generator)
        return images.unflatten(0, (x1.shape[0], steps))

    @torch.no_grad()
    def kl_estimate(
        self, x: torch.Tensor, n_samples: int = 64, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Per-image KL(q(z|x) || p(z)) in nats from the trained inference critic (eq. 6 at its optimum = eq. 9).

        A lower bound: it is exact only for an optimal critic, and a spectrally normalised critic
        cannot represent very sharp posteriors.
        """
        check_count("n_samples", n_samples)
        generator = check_generator(generator, self.device)
        x = self.check_images(x)
        features = self.inference_critic.image_features(x)
        n = x.shape[0]
        feats = features.repeat_interleave(n_samples, dim=0)
        z_post = self.encoder(x, n_samples=n_samples, generator=generator).reshape(n * n_samples, -1)
        z_prior = self.prior_sample(n * n_samples, generator=generator)
        t_post = self.inference_critic.score(feats, z_post).view(n, n_samples)
        t_prior = self.inference_critic.score(feats, z_prior).view(n, n_samples)
        return objectives.inference_critic_value(t_post, t_prior, dim=1)

    # ---- losses (the training loop calls these) ----
    def fake_pairs(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return objectives.fake_pairs(self, z, self.config.weights)

    def critic_losses(
        self,
        x: torch.Tensor,
        z: torch.Tensor | None = None,
        z_fake: torch.Tensor | None = None,
        x_fake: torch.Tensor | None = None,
    ) -> objectives.Losses:
        return objectives.critic_losses(self, x, self.config.weights, z, z_fake, x_fake)

    def autoencoder_losses(
        self,
        x: torch.Tensor,
        z: torch.Tensor | None = None,
        z_fake: torch.Tensor | None = None,
        x_fake: torch.Tensor | None = None,
        real_features: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> objectives.Losses:
        return objectives.autoencoder_losses(
            self, x, self.config.weights, z=z, z_fake=z_fake, x_fake=x_fake, real_features=real_features
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reconstruct(x)

    def export(
        self,
        directory: str | os.PathLike,
        format: str = "onnx",
        *,
        parts: list[str] | None = None,
        opset: int | None = None,
        source: str | None = None,
    ) -> Path:
        """Write the decoder (codes -> images), the encoder (images + noise -> codes) and the fitted sampler's draw as
        ONNX files (``format="onnx"``) or torch.export programs (``"torch-export"``) with a dynamic batch size, and
        ``export.json`` beside them (opset, versions, inputs and outputs). See :mod:`bavae.export`."""
        from .export import export_model

        return export_model(self, directory, format, parts=parts, opset=opset, source=source)

    # ---- saving and loading (the Hub layout: config.json + model.safetensors) ----
    def _save_pretrained(self, save_directory: Path) -> None:
        save_directory = Path(save_directory)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        atomic_write(save_directory / WEIGHTS_NAME, lambda p: save_file(state, p, metadata={"format": "pt"}))
        text = json.dumps(self.config.to_dict(), indent=2, sort_keys=True) + "\n"
        atomic_write(save_directory / CONFIG_NAME, lambda p: Path(p).write_text(text, encoding="utf-8"))

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *,
        config: Any = None,
        push_to_hub: bool = False,
        repo_id: str | None = None,
        model_card_kwargs: dict[str, Any] | None = None,
        **push_to_hub_kwargs: Any,
    ) -> str | None:  # type: ignore[override]
        """Write ``model.safetensors``, ``config.json`` and, if missing, a model card ``README.md``.

        Each file is replaced atomically, so a process killed while saving leaves the previous model loadable
        (``ModelHubMixin.save_pretrained`` deletes ``config.json`` first, hence this override). ``config`` is
        ignored: the model's own config is what loads (``push_to_hub`` passes one).
        """
        save_directory = Path(save_directory)
        save_directory.mkdir(parents=True, exist_ok=True)
        self._save_pretrained(save_directory)
        card = save_directory / "README.md"
        if not card.exists():
            model_card = self.generate_model_card(**(model_card_kwargs or {}))
            atomic_write(card, lambda p: model_card.save(p))
        if push_to_hub:
            return self.push_to_hub(
                repo_id or save_directory.name, model_card_kwargs=model_card_kwargs, **push_to_hub_kwargs
            )
        return None

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        config: Any = None,
        map_location: str | torch.device = "cpu",
        expected_sha256: str | None = None,
        **kwargs: Any,
    ) -> BAVAE:
        if os.path.isdir(model_id):
            config_file, weights_file = Path(model_id) / CONFIG_NAME, Path(model_id) / WEIGHTS_NAME
            for f in (config_file, weights_file):
                if not f.is_file():
                    raise WeightsError(
                        f"{model_id} is not a saved BAVAE: {f.name} is missing "
                        f"(expected {CONFIG_NAME} and {WEIGHTS_NAME})"
                    )
        else:
            dl = dict(
                repo_id=model_id,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                local_files_only=local_files_only,
                token=token,
            )
            config_file = Path(hf_hub_download(filename=CONFIG_NAME, **dl))
            weights_file = Path(hf_hub_download(filename=WEIGHTS_NAME, **dl))
            problem = hash_problem(weights_file, expected_sha256)  # or the Hub's sha256 (the cache's blob name)
            if problem:
                raise WeightsError(f"{problem}; not loaded (bavae.load evicts and downloads it again)")
            expected_sha256 = None  # checked: from_files need not hash the file again
        model_config = BAVAEConfig.from_json_file(config_file)
        return cls.from_files(model_config, weights_file, map_location=map_location, expected_sha256=expected_sha256)

    @classmethod
    def from_files(
        cls,
        config: BAVAEConfig,
        weights_file: str | os.PathLike,
        *,
        map_location: Any = "cpu",
        expected_sha256: str | None = None,
    ) -> BAVAE:
        """Build from a config and a safetensors file, checking its sha256 first when one is expected."""
        if expected_sha256 is not None:
            actual = sha256_file(weights_file)
            if actual != expected_sha256:
                raise WeightsError(
                    f"sha256 mismatch for {weights_file}: expected {expected_sha256}, got {actual}; "
                    "the file is corrupt or not the published one and was not loaded"
                )
        header = read_weights_header(weights_file)
        # saving writes the weights, then config.json (each atomically): a process killed between the two leaves a new
        # sampler beside an old config. The weights are the sha256-checked file, so their sampler is the one that loads
        means = header.get("latent_sampler.means")
        held = {"kind": "gmm", "components": means[0]} if means is not None and len(means) == 2 else None
        if held is not None and held != config.sampler:
            config = config.with_sampler(held)
        check_weights_header(config, weights_file, header)  # names and shapes, before a byte of the model is allocated
        model = cls(config)
        try:
            state = load_file(str(weights_file), device=str(map_location))
        except Exception as e:  # safetensors raises its own error types on a damaged file
            raise WeightsError(f"{weights_file} is not a readable safetensors file: {_one_line(e)}") from None
        try:
            model.load_state_dict(state)
        except RuntimeError as e:  # what the header check cannot see (spectral norm's vectors): still one line
            raise WeightsError(f"{weights_file} does not match its config: {_one_line(e)}") from None
        return model.to(map_location).eval()


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


_SN = re.compile(r"^(.*)\.parametrizations\.(\w+)\.(original|0\._u|0\._v)$")  # torch's spectral-norm names


def read_weights_header(weights_file: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """A safetensors file's tensor names and shapes, from its header alone (no tensor is read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights_file), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types on a damaged header
        raise WeightsError(f"{weights_file} is not a readable safetensors file: {_one_line(e)}") from None


def check_weights_header(
    config: BAVAEConfig, weights_file: str | os.PathLike, header: dict[str, tuple[int, ...]] | None = None
) -> None:
    """Compare a safetensors file's header (tensor names and shapes; no tensor is read) with the model ``config``
    would build, before a byte of that model is allocated: a WeightsError names the first tensor that differs.

    The expected names and shapes come from the model built on the meta device without spectral norm (building
    spectral norm on the meta device costs seconds of torch's Python decompositions); spectral norm only renames a
    layer's ``weight`` to ``parametrizations.weight.original`` and adds two small vectors, so the header is read
    with that renaming undone. ``header`` is :func:`read_weights_header`'s, when the caller has read it."""
    header = read_weights_header(weights_file) if header is None else header
    plain, normed = {}, False
    for k, shape in header.items():
        m = _SN.match(k)
        if m is None:
            plain[k] = shape
        elif m.group(3) == "original":
            plain[f"{m.group(1)}.{m.group(2)}"] = shape
            normed = True
    with torch.device("meta"):
        skeleton = BAVAE(dataclasses.replace(config, spectral_norm=False))
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    differ = [k for k in expected if plain.get(k) != expected[k]] + [k for k in plain if k not in expected]
    where = (
        f"{weights_file} does not match its config ({config.arch}, {config.image_size}px, {config.channels} "
        f"channel(s), width {config.width}, latent {config.latent_dim})"
    )
    if differ:
        k = differ[0]
        if k not in plain:
            first = f"{k} {list(expected[k])} is not in the file"
        elif k not in expected:
            first = f"the file has {k} {list(plain[k])}, which the config's model does not"
        else:
            first = f"{k} is {list(plain[k])} in the file but {list(expected[k])} for the config"
        raise WeightsError(
            f"{where}: {first}"
            + (f" ({len(differ)} tensors differ)" if len(differ) > 1 else "")
            + "; the config and the weights come from different models"
        )
    if normed != config.spectral_norm:
        raise WeightsError(
            f"{where}: the config says spectral_norm {str(config.spectral_norm).lower()}, but the file's critics "
            f"were saved {'with' if normed else 'without'} it"
        )

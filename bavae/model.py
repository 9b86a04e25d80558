"""The Biadversarial VAE: the four players and the user-facing API (its config, :class:`~bavae.configs.BAVAEConfig`,
is re-exported here).

    model = BAVAE(BAVAEConfig(arch="dcgan", image_size=32, channels=1))
    z = model.encode(x)            # samples of the implicit posterior q(z|x)
    x_hat = model.reconstruct(x)   # G(E(x))
    images = model.sample(64)      # G(z), z ~ p(z)

A saved model is a folder with ``config.json`` and ``model.safetensors`` (the Hub layout, :mod:`bavae.serialization`);
nothing is pickled.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import hub, nets, objectives, samplers, serialization
from .configs import COUNT_BOUNDS, BAVAEConfig
from .errors import InvalidType, InvalidValue, WeightsError, is_int, one_line
from .files import CARD_NAME, atomic_write, model_files
from .images import MAX_CODE, check_codes, not_real_numbers


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """An integer argument (n, steps, n_samples): within its bounds in :data:`bavae.configs.COUNT_BOUNDS` (the
    command line's too) when the table has it, else of at least ``minimum``; one InvalidValue (a ValueError) naming
    it otherwise."""
    least, most = COUNT_BOUNDS.get(name, (minimum, None))
    if not is_int(value) or value < least or (most is not None and value > most):
        bounds = f"an integer from {least} to {most}" if most is not None else f"an integer >= {least}"
        raise InvalidValue(f"{name} must be {bounds}, got {value!r}")
    return value


def check_generator(generator: Any, device: Any) -> Any:
    """None, or a torch.Generator on the device of the tensors it will draw (its type, and its index where both
    have one: cuda:1's generator cannot draw on cuda:0)."""
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise InvalidType(
            f"generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)) or None, "
            f"got {type(generator).__name__} {generator!r}"
        )
    device, on = torch.device(device), generator.device
    if on.type != device.type or (on.index is not None and device.index is not None and on.index != device.index):
        raise InvalidValue(
            f"generator is on {on} but the model is on {device}: use torch.Generator({str(device)!r}).manual_seed(...)"
        )
    return generator


def check_memory(what: str, nbytes: int, device: torch.device) -> None:
    """Refuse work whose tensors alone (``nbytes``) could not fit in the memory of ``device``: one line, not an
    allocator's error (or the kernel's OOM killer) minutes later."""
    if device.type == "cuda":
        have = torch.cuda.get_device_properties(device).total_memory
    else:
        try:
            have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):  # not every platform says
            return
    if nbytes > have:
        raise InvalidValue(
            f"{what} need {nbytes / 2**30:,.1f} GiB, more than the {have / 2**30:,.1f} GiB of {device.type} memory: "
            "draw them in batches"
        )


class BAVAE(
    nn.Module,
    hub.ModelHubMixin,
    library_name="bavae",
    tags=["bavae", "vae", "gan", "generative"],
    repo_url="https://github.com/bavae/bavae",
    license="mit",
):
    """A VAE with an implicit posterior and an implicit likelihood, each term estimated by a critic."""

    def __init__(self, config: BAVAEConfig):
        super().__init__()
        if not isinstance(config, BAVAEConfig):
            raise InvalidType(f"BAVAE expects a BAVAEConfig, got {type(config).__name__}")
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
        # C(z), only for the objective's `code` term: models without it keep their tensors' names and shapes
        self.code_critic = (
            nets.CodeCritic(config.latent_dim, nets.hidden_dim(critic_spec), config.spectral_norm)
            if config.weights.code
            else None
        )
        self.latent_sampler = samplers.build_sampler(config.sampler, config.latent_dim)  # fitted after training

    # ---- parameters by player (the training loop steps them separately) ----
    def autoencoder_parameters(self) -> list[nn.Parameter]:
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def critics(self) -> list[nn.Module]:
        """The players that estimate: T(x, z), D(x, z), and C(z) when the objective has a code term."""
        return [m for m in (self.inference_critic, self.generative_critic, self.code_critic) if m is not None]

    def critic_parameters(self) -> list[nn.Parameter]:
        return [p for critic in self.critics() for p in critic.parameters()]

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
            raise InvalidValue(f"{name}: expected {expected}, got {type(x).__name__}{hint}")
        problem = not_real_numbers(x, "images")  # the meta device, bool, complex, integers
        if problem:
            raise InvalidValue(f"{name}: expected {expected}, got {problem}")
        if x.dim() != 4:
            raise InvalidValue(f"{name}: expected {expected}, got rank {x.dim()} with shape {tuple(x.shape)}")
        if tuple(x.shape[1:]) != (c, s, s):
            raise InvalidValue(f"{name}: expected {expected}, got shape {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise InvalidValue(f"{name}: expected {expected}, got an empty batch (0 images)")
        if x.numel() and (not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1):
            lo, hi = x.min().item(), x.max().item()
            raise InvalidValue(f"{name}: expected {expected}, got values in [{lo:.3g}, {hi:.3g}]")
        return x.to(device=self.device, dtype=next(self.parameters()).dtype)

    def check_codes(self, z: Any) -> torch.Tensor:
        """Validate codes (:func:`check_codes`, with this model's latent_dim) and move them to the model."""
        check_codes(z, self.config.latent_dim)
        if not isinstance(z, torch.Tensor):
            raise InvalidValue(
                f"z: expected a float tensor of shape (N, {self.config.latent_dim}), got {type(z).__name__}"
            )
        return z.to(device=self.device, dtype=next(self.parameters()).dtype)

    def check_sample_size(self, n: int) -> None:
        """Refuse an ``n`` whose images alone could not fit in the memory of the model's device."""
        c, s = self.config.channels, self.config.image_size
        check_memory(
            f"n={n} samples of {c}x{s}x{s} (the images alone; `bavae sample --format npz` streams them to a file)",
            n * c * s * s * 4,
            self.device,
        )

    @torch.no_grad()
    def encode(self, x: torch.Tensor, n_samples: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """Samples of q(z|x): shape (N, latent_dim), or (N, n_samples, latent_dim) when n_samples > 1 (at most
        ``COUNT_BOUNDS["n_samples"]``, 100,000, and as many as the device's memory holds)."""
        check_count("n_samples", n_samples)
        x = self.check_images(x)
        c = self.config
        draws = f"{x.shape[0]} images x n_samples={n_samples} posterior draws"
        check_memory(draws, x.shape[0] * n_samples * (c.latent_dim + c.posterior_noise_dim) * 4, self.device)
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
        """n codes to decode: from the prior p(z) (``"prior"``), the fitted sampler (its kind: ``"gmm"`` for a
        Gaussian mixture, ``"neighbours"`` for the nearest-neighbour one), or ``"auto"`` (:attr:`default_sampler`)."""
        if not is_int(n) or n < 1:
            raise InvalidValue(f"n must be a positive integer, got {n!r}")
        check_memory(f"n={n} codes of size {self.config.latent_dim}", n * self.config.latent_dim * 4, self.device)
        generator = check_generator(generator, self.device)
        kind = self.default_sampler if sampler == "auto" else sampler
        if kind == "prior":
            codes = self.prior_sample(n, generator=generator)
        elif kind not in samplers.SAMPLER_KINDS:
            raise InvalidValue(
                f"sampler must be 'auto', 'prior' or one of {list(samplers.SAMPLER_KINDS)}, got {sampler!r}"
            )
        elif self.latent_sampler is None:
            raise InvalidValue(
                f"this model has no fitted {kind!r} sampler: fit one with `bavae fit-sampler MODEL "
                "--dataset ...`, or use sampler='prior'"
            )
        elif kind != self.config.sampler["kind"]:
            raise InvalidValue(
                f"this model's fitted sampler is {self.config.sampler['kind']!r}, not {kind!r}: use sampler="
                f"{self.config.sampler['kind']!r} or 'prior', or refit with `bavae fit-sampler MODEL --kind {kind}`"
            )
        else:
            codes = self.latent_sampler.sample(n, generator=generator)
        return codes.to(next(self.parameters()).dtype)  # a bf16/fp16 model decodes codes of its own dtype

    def set_latent_sampler(self, sampler: samplers.LatentSampler | None) -> None:
        """Attach a fitted sampler (or remove it with None); the config records it (:meth:`BAVAEConfig.with_sampler`),
        so it is saved and loaded."""
        if sampler is not None and sampler.latent_dim != self.config.latent_dim:
            raise InvalidValue(
                f"the sampler draws codes of size {sampler.latent_dim}, the model's latent size is "
                f"{self.config.latent_dim}"
            )
        problem = None if sampler is None else samplers.sampler_problem(sampler.state_dict(), prefix="")
        if problem is not None:
            raise InvalidValue(f"the sampler is not a valid one: {problem}")
        self.latent_sampler = None if sampler is None else sampler.to(self.device)
        self.config = self.config.with_sampler(None if sampler is None else sampler.config)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, sampler: str = "auto") -> torch.Tensor:
        """n images decoded from codes drawn by ``sampler`` (see :meth:`sample_codes`; by default the fitted
        mixture when the model has one, else the prior). Pass a seeded ``torch.Generator`` for reproducible samples."""
        if is_int(n) and n >= 1:
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
        """Decodings along the straight line between the codes of x1 and x2: shape (N, steps, C, H, W); ``steps``
        from 2 to 256, as ``bavae interpolate --steps`` (``COUNT_BOUNDS["steps"]``)."""
        check_count("steps", steps, 2)
        generator = check_generator(generator, self.device)
        x1, x2 = self.check_images(x1, "x1"), self.check_images(x2, "x2")
        if x1.shape[0] != x2.shape[0]:
            raise InvalidValue(f"x1 and x2 must hold as many images; got {x1.shape[0]} and {x2.shape[0]}")
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
        cannot represent very sharp posteriors. ``n_samples``: posterior and prior draws per image, at most
        100,000 (``COUNT_BOUNDS["n_samples"]``) and as many as the device's memory holds.
        """
        check_count("n_samples", n_samples)
        generator = check_generator(generator, self.device)
        x = self.check_images(x)
        features = self.inference_critic.image_features(x)
        n, c = x.shape[0], self.config
        per_draw = features[0].numel() + 2 * c.latent_dim + c.posterior_noise_dim  # features, both codes, noise
        check_memory(f"{n} images x n_samples={n_samples} draws", n * n_samples * per_draw * 4, self.device)
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
        weights: objectives.ObjectiveWeights | None = None,
    ) -> objectives.Losses:
        """``weights``: other weights than the config's (the training loop's warm-up, objectives.warmup_weights)."""
        return objectives.autoencoder_losses(
            self, x, weights or self.config.weights, z=z, z_fake=z_fake, x_fake=x_fake, real_features=real_features
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

    # ---- saving and loading (the Hub layout: config.json + model.safetensors; bavae.serialization) ----
    def _save_pretrained(self, save_directory: Path) -> None:
        serialization.save_model_files(Path(save_directory), self.state_dict(), self.config.to_dict())

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
        card = save_directory / CARD_NAME
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
        """A folder as it is, or a Hub repo through :func:`bavae.hub.fetch_model_files` (its hash checks and its
        eviction of a bad file), like :func:`bavae.load`."""
        if os.path.isdir(model_id):
            config_file, weights_file = model_files(Path(model_id))
        else:
            config_file, weights_file = hub.fetch_model_files(
                model_id,
                revision,
                None,
                expected_sha256,
                cache_first=False,
                token=token,
                cache_dir=cache_dir,
                force_download=force_download,
                local_files_only=local_files_only,
            )
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
        """Build from a config and a safetensors file, checking its sha256 first when one is expected, and its
        header (names and shapes) before a byte of the model is allocated."""
        if expected_sha256 is not None:
            serialization.check_sha256(weights_file, expected_sha256)
        header = serialization.read_header(weights_file)
        held = serialization.header_sampler(header)
        if held is not None and held != config.sampler:
            config = config.with_sampler(held)
        serialization.check_header(config, weights_file, header, cls.tensor_shapes(config))
        state = serialization.load_state(weights_file, map_location)
        serialization.check_values(weights_file, state)  # finite, and (below) a mixture that is one: before building
        problem = samplers.sampler_problem(state)
        if problem is not None:
            raise WeightsError(f"{weights_file}: the fitted latent sampler is not a valid one: {problem}")
        # Building runs hundreds of tiny ops (spectral norm's power iterations on every critic layer) whose results
        # the weights then overwrite: intra-op threads would only add barriers there. Build single-threaded.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            model = cls(config)
        finally:
            torch.set_num_threads(threads)
        try:
            model.load_state_dict(state)
        except RuntimeError as e:  # what the header check cannot see (spectral norm's vectors): still one line
            raise WeightsError(f"{weights_file} does not match its config: {one_line(e)}") from None
        return model.to(map_location).eval()

    @classmethod
    def tensor_shapes(cls, config: BAVAEConfig) -> dict[str, tuple[int, ...]]:
        """The names and shapes of the tensors a model of ``config`` holds, with spectral norm left out: from a
        skeleton on the meta device, where spectral norm's power iterations would run through torch's slow Python
        decompositions (:func:`bavae.serialization.check_header` undoes its renaming in the file)."""
        with torch.device("meta"):
            skeleton = cls(dataclasses.replace(config, spectral_norm=False))
        return {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}


__all__ = [
    "BAVAE",
    "BAVAEConfig",
    "WeightsError",
    "MAX_CODE",
    "check_codes",
    "check_count",
    "check_generator",
    "check_memory",
]

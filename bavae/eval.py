"""Evaluation: the numbers in the zoo table, measured the same way for every model (ours and the peers').

    from bavae.eval import evaluate
    report = evaluate(bavae.load("bavae-fashionmnist32"), dataset="fashion-mnist")   # dict of metrics

or ``bavae eval bavae-fashionmnist32 --dataset fashion-mnist [--json]``.

What is measured, and why each number:

* ``fid`` -- Frechet distance between Gaussians fitted to classifier features of model samples and of the test
  split. The features come from a small CNN that ships with the package (:data:`EVALUATORS`): for Fashion-MNIST
  ``weights/fashionmnist-classifier``, for 3x64x64 colour models (image folders, CelebA) ``weights/emoji-classifier``,
  trained on the categories of four artists' emoji. So FID runs offline on a CPU. Its values are *not* comparable
  to Inception FIDs in papers; they are comparable between models scored here on the same test images.
  ``fid_<sampler>`` is the FID of each latent sampler (the prior, the fitted mixture); ``recon_fid`` that of the
  test images' reconstructions. ``fid_inception`` (opt-in) uses torchvision's
  Inception-v3 when its ImageNet weights are in the torch cache (torchvision's port, so also not exactly the
  TF-Inception numbers of papers).
* ``recon_mse`` / ``recon_ssim`` -- G(E(x)) against x on the test split (SSIM: Gaussian window 11, sigma 1.5,
  Wang et al. 2004).
* ``class_agreement`` -- how often the classifier gives the reconstruction the class it gives the input: does the
  reconstruction keep what the image *is*, not only its pixels.
* ``kl_nats`` -- the inference critic's estimate of KL(q(z|x) || p(z)) (eq. 6 at its optimum; a lower bound).
* ``infonce_nats`` -- an InfoNCE lower bound on I(x; z) under the encoder, with the inference critic as the
  score function; it cannot exceed log(batch), reported as ``infonce_cap_nats``.
* ``samples_per_s`` -- decoded samples per second on the model's device, batch 256.
* ``mig`` (dSprites) -- the mutual information gap of Chen et al. (2018) between posterior means and the factors.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn
from tqdm.auto import tqdm

from .data import (
    DSPRITES_FACTOR_NAMES,
    EMOJI_CATEGORIES,
    build_dataset,
    check_dataset_fits,
    dsprites_factors,
    dsprites_split_indices,
    render_dsprites,
)
from .devices import resolve_device
from .errors import InvalidValue, WeightsError, WeightsUnavailableError, one_line
from .files import CONFIG_NAME, WEIGHTS_NAME, hash_problem
from .objectives import info_nce

CLASSIFIER_NAME = "fashionmnist-classifier"
# The record is the source of truth for the bundled file (as for the zoo's models): checked before loading.
CLASSIFIER_SHA256 = "2cc492ca23b0f95f0e3793bc34850a4781b2c52c87293e7ba9e3ad303589612d"
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
EMOJI_CLASSIFIER_NAME = "emoji-classifier"
EMOJI_CLASSIFIER_SHA256 = "98c730f399b11eb981c0e42208361063b3a896c1922419b5356ca72378f643ca"


@dataclass(frozen=True)
class Evaluator:
    """A bundled feature classifier and the images it scores: FID, reconstruction FID and class agreement of a model
    use the evaluator of its image shape, on the datasets it was made for."""

    name: str  # its folder in bavae/weights
    sha256: str
    channels: int
    image_sizes: tuple[int, ...]
    datasets: tuple[str, ...]
    classes: tuple[str, ...]


EVALUATORS = (
    Evaluator(CLASSIFIER_NAME, CLASSIFIER_SHA256, 1, (28, 32), ("fashion-mnist",), FASHION_MNIST_CLASSES),
    # the colour evaluator: trained on four artists' emoji; also what a CelebA or a user's folder is scored with
    Evaluator(
        EMOJI_CLASSIFIER_NAME, EMOJI_CLASSIFIER_SHA256, 3, (64,), ("emoji", "folder", "celeba"), EMOJI_CATEGORIES
    ),
)


def evaluator_for(dataset: str, channels: int, image_size: int) -> Evaluator | None:
    """The evaluator that scores ``channels`` x ``image_size`` images of ``dataset``; None where none does."""
    for e in EVALUATORS:
        if dataset in e.datasets and channels == e.channels and image_size in e.image_sizes:
            return e
    return None


# ------------------------------------------------------------------------------------------------ the classifier
class ImageClassifier(nn.Module):
    """A small CNN whose hidden layer gives the features for FID: conv/BN/ReLU/max-pool stages of width, 2 width, ...
    down to 4x4 (three stages at 32 px, four at 64 px), then a ``feature_dim``-wide layer and the class head.

    Small on purpose: a test split runs through it in seconds on one CPU core. Grayscale 28x28 inputs are zero-padded
    to 32x32, as the Fashion-MNIST loader does.
    """

    def __init__(
        self, width: int = 32, feature_dim: int = 128, num_classes: int = 10, channels: int = 1, image_size: int = 32
    ):
        super().__init__()
        stages = int(math.log2(image_size)) - 2
        chans, layers, c_in = [width * 2**i for i in range(stages)], [], channels
        for c in chans:
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.trunk = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_in * 16, feature_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(feature_dim, num_classes))
        self.config = {
            "width": width,
            "feature_dim": feature_dim,
            "num_classes": num_classes,
            "channels": channels,
            "image_size": image_size,
        }

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        c, size = self.config["channels"], self.config["image_size"]
        sizes = (28, 32) if (c, size) == (1, 32) else (size,)
        if x.dim() != 4 or x.shape[1] != c or x.shape[-1] not in sizes or x.shape[-2] != x.shape[-1]:
            shown = "|".join(map(str, sizes))
            raise InvalidValue(
                f"the {self.config.get('name', 'classifier')} expects images of shape (N, {c}, {shown}, {shown}) "
                f"in [0, 1], got {tuple(x.shape)}"
            )
        return F.pad(x, (2, 2, 2, 2)) if x.shape[-1] == 28 else x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def classifier_dir(name: str = CLASSIFIER_NAME) -> Path:
    """Part of the package itself (not a zoo model, so ``BAVAE_WEIGHTS_DIR`` does not move it)."""
    return Path(str(files("bavae.weights"))) / name


def load_classifier(device: Any = None, path: str | Path | None = None, name: str = CLASSIFIER_NAME) -> ImageClassifier:
    """A bundled classifier (``name``: the Fashion-MNIST one by default, :data:`EMOJI_CLASSIFIER_NAME` for colour) in
    eval mode, its weights checked against its evaluator's sha256 first; ``path``: a folder of one's own, unchecked."""
    evaluator = next((e for e in EVALUATORS if e.name == name), None)
    if evaluator is None:
        raise InvalidValue(f"unknown classifier {name!r}; known: {', '.join(e.name for e in EVALUATORS)}")
    folder = Path(path) if path is not None else classifier_dir(name)
    weights, config = folder / WEIGHTS_NAME, folder / CONFIG_NAME
    if not weights.is_file() or not config.is_file():
        raise WeightsError(
            f"the {name} is missing from {folder} (expected {CONFIG_NAME} and "
            f"{WEIGHTS_NAME}); reinstall bavae or run benchmarks/train_classifier.py"
        )
    if path is None:
        problem = hash_problem(weights, evaluator.sha256)
        if problem:
            raise WeightsError(f"{problem}; not loaded")
    cfg = json.loads(config.read_text())
    model = ImageClassifier(
        **{k: cfg[k] for k in ("width", "feature_dim", "num_classes")},
        channels=cfg.get("channels", 1),
        image_size=cfg.get("image_size", 32),
    )
    model.config["name"] = name
    model.load_state_dict(load_file(str(weights)))
    return model.to(resolve_device(device)).eval()


# ------------------------------------------------------------------------------------------------ metrics
def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    f = features.double()
    return f.mean(0), torch.cov(f.T)


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    """||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)), in float64.

    tr (C1 C2)^(1/2) = tr (C1^(1/2) C2 C1^(1/2))^(1/2): the inner matrix is symmetric PSD, so its square root's
    trace is the sum of the square roots of its eigenvalues -- exact, no scipy.linalg.sqrtm and its complex residue.
    """
    mu1, mu2, cov1, cov2 = (t.double() for t in (mu1, mu2, cov1, cov2))
    vals, vecs = torch.linalg.eigh(cov1)
    root1 = (vecs * vals.clamp_min(0).sqrt()) @ vecs.T
    inner = root1 @ cov2 @ root1
    tr_sqrt = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).pow(2).sum() + cov1.trace() + cov2.trace() - 2 * tr_sqrt)


def fid_from_features(a: torch.Tensor, b: torch.Tensor) -> float:
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004): Gaussian window 11 / sigma 1.5, K1 0.01, K2 0.03, 'valid' windows,
    averaged over channels and positions. Shape (N,)."""
    if x.shape != y.shape or x.dim() != 4:
        raise InvalidValue(
            f"ssim: expected two (N, C, H, W) tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    x, y, c = x.double(), y.double(), x.shape[1]  # E[x^2] - E[x]^2 cancels badly in float32
    g = _gaussian_window().to(x)
    wx, wy = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1), g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, wx, groups=c), wy, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def infonce_bound(scores: torch.Tensor) -> float:
    """InfoNCE (Oord et al. 2018) for an (N, N) matrix of scores f(x_i, z_j), true pairs on the diagonal: each code
    picks out its own image among the N, so I(x; z) >= log N + mean_j [f(x_j, z_j) - logsumexp_i f(x_i, z_j)]."""
    return float(info_nce(scores.double()))


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def mutual_information_gap(
    codes: np.ndarray, factors: np.ndarray, bins: int = 20, discrete: Iterable[bool] | None = None
) -> dict[str, Any]:
    """MIG (Chen et al. 2018), with the codes discretised into ``bins`` equal-width bins as in disentanglement_lib.

    For each factor k: (I(z_a; v_k) - I(z_b; v_k)) / H(v_k) for the two code dimensions a, b most informative about
    v_k; MIG is the mean over factors. Returns the score and the per-factor gaps (None for a factor that is constant
    in the data given, which is left out of the mean).
    """
    codes, factors = np.asarray(codes, dtype=np.float64), np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or codes.shape[0] != factors.shape[0]:
        raise InvalidValue(
            f"MIG: expected codes (N, D) and factors (N, K) with the same N, got {codes.shape} and {factors.shape}"
        )
    if codes.shape[1] < 2:
        raise InvalidValue("MIG needs at least two code dimensions")
    binned = np.empty(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, j], bins=bins)
        binned[:, j] = np.digitize(codes[:, j], edges[1:-1])
    gaps = []
    for k in range(factors.shape[1]):
        _, v = np.unique(factors[:, k], return_inverse=True)
        h = _entropy(np.bincount(v))
        if h == 0:
            gaps.append(None)
            continue
        mi = []
        for j in range(codes.shape[1]):
            joint = np.zeros((bins, v.max() + 1))
            np.add.at(joint, (binned[:, j], v), 1)
            mi.append(_entropy(joint.sum(1)) + h - _entropy(joint.ravel()))
        top = np.sort(mi)[::-1]
        gaps.append((top[0] - top[1]) / h)
    known = [g for g in gaps if g is not None]
    if not known:
        raise InvalidValue("MIG: every factor is constant in the data given")
    return {"mig": float(np.mean(known)), "per_factor": [None if g is None else float(g) for g in gaps]}


# ------------------------------------------------------------------------------------------------ evaluation
@dataclass
class EvalSettings:
    """How much to measure. The defaults take about a minute for a 32x32 DCGAN model on one CPU core."""

    n_samples: int = 10000  # generated images for FID (the test split has 10,000)
    n_test: int = 10000  # test images for MSE / SSIM / agreement / FID's reference
    n_kl: int = 500  # test images for the KL estimate (64 posterior and prior draws each)
    infonce_batch: int = 500  # the InfoNCE bound's N: it cannot exceed log N nats
    batch_size: int = 250
    seed: int = 0
    inception: bool = False


class ModelAdapter:
    """What evaluation needs from a model; a BAVAE provides all of it, a peer (pythae) wraps itself in this."""

    def __init__(
        self,
        reconstruct: Callable[[torch.Tensor], torch.Tensor],
        sample: Callable[[int], torch.Tensor],
        image_size: int,
        channels: int,
        encode_mean: Callable | None = None,
        kl: Callable | None = None,
        infonce: Callable | None = None,
        device: Any = "cpu",
        samplers: dict[str, Callable[[int], torch.Tensor]] | None = None,
        default_sampler: str | None = None,
    ):
        # ``sample`` is the model's default path; ``samplers`` are the named paths scored beside it (fid_<name>)
        self.reconstruct, self.sample, self.encode_mean = reconstruct, sample, encode_mean
        self.samplers, self.default_sampler = dict(samplers or {}), default_sampler
        self.image_size, self.channels, self.kl, self.infonce = image_size, channels, kl, infonce
        self.device = torch.device(device)

    @classmethod
    def from_bavae(cls, model: Any, generator: torch.Generator | None = None) -> ModelAdapter:
        cfg = model.config

        def kl(x: torch.Tensor) -> torch.Tensor:
            return model.kl_estimate(x, n_samples=64, generator=generator)

        @torch.no_grad()
        def infonce(x: torch.Tensor) -> float:
            critic = model.inference_critic
            x = model.check_images(x)
            z = model.encoder(x, generator=generator)
            # At its optimum T(x, z) = log p(z) - log q(z|x) (eq. 9), so f = -T is the log density ratio.
            return infonce_bound(-critic.pairwise_scores(critic.image_features(x), z))

        names = ["prior"] + ([model.config.sampler["kind"]] if model.latent_sampler is not None else [])
        return cls(
            lambda x: model.reconstruct(x, generator=generator),
            lambda n: model.sample(n, generator=generator),
            cfg.image_size,
            cfg.channels,
            encode_mean=lambda x: model.encode(x, n_samples=16, generator=generator).mean(1),
            kl=kl,
            infonce=infonce,
            device=model.device,
            samplers={k: (lambda n, k=k: model.sample(n, generator=generator, sampler=k)) for k in names},
            default_sampler=model.default_sampler,
        )


def _batches(x: torch.Tensor, size: int) -> Iterable[torch.Tensor]:
    return x.split(size)


@torch.no_grad()
def _features(net: Callable[[torch.Tensor], torch.Tensor], images: Iterable[torch.Tensor], device: Any) -> torch.Tensor:
    return torch.cat([net(b.to(device)).float().cpu() for b in images])


def _test_images(
    dataset: str, image_size: int, channels: int, n: int, data_dir: Any = None
) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
    # A folder without a test/ subfolder is scored on all of it (as `bavae train` trains on all of it).
    split = (
        "train" if dataset == "folder" and data_dir is not None and not (Path(data_dir) / "test").is_dir() else "test"
    )
    if dataset == "dsprites":
        return _dsprites_test_images(n, channels)
    ds = build_dataset(dataset, data_dir=data_dir, image_size=image_size, channels=channels, split=split, limit=n)
    n = min(n, len(ds))
    if dataset == "fashion-mnist":
        x = ds.data[:n].float().div(255).unsqueeze(1)
        if image_size == 32:
            x = F.pad(x, (2, 2, 2, 2))
        return x, ds.labels[:n], ds
    labels = getattr(ds, "labels", None)  # the emoji set's categories
    return torch.stack([ds[i] for i in range(n)]), None if labels is None else labels[:n], ds


def _dsprites_test_images(n: int, channels: int) -> tuple[torch.Tensor, None, Any]:
    """n dSprites test images spread evenly over the test split, rendered directly (no cache needed), with their
    factors. dSprites is stored in factor order (shape slowest): the first n would all be squares."""
    test = dsprites_split_indices("test")
    idx = test[np.linspace(0, len(test) - 1, min(n, len(test))).round().astype(np.int64)]
    x = torch.from_numpy(render_dsprites(idx).astype(np.float32)).unsqueeze(1)
    return x.expand(-1, channels, -1, -1).contiguous(), None, SimpleNamespace(factors=dsprites_factors(idx))


@torch.no_grad()
def evaluate(
    model: Any,
    dataset: str = "fashion-mnist",
    *,
    data_dir: Any = None,
    settings: EvalSettings | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Score a BAVAE (or a :class:`ModelAdapter`) on a dataset's test split. Returns a flat dict of metrics."""
    s = settings or EvalSettings()
    torch.manual_seed(s.seed)
    g = torch.Generator(device=getattr(model, "device", "cpu")).manual_seed(s.seed)
    m = model if isinstance(model, ModelAdapter) else ModelAdapter.from_bavae(model, g)
    check_dataset_fits(dataset, m.image_size, m.channels)  # before the test images are read or rendered
    inception = inception_features(m.device) if s.inception else None  # fail before the long work, not after
    x, labels, ds = _test_images(dataset, m.image_size, m.channels, s.n_test, data_dir)
    steps = ["reconstructions", "samples", "critic"]
    bar = tqdm(total=len(steps), desc="bavae eval", disable=not progress, leave=False)
    try:
        return _evaluate(m, dataset, s, x, labels, ds, inception, bar)
    finally:
        bar.close()  # an error is then printed on a line of its own, not glued to the bar


def _evaluate(m: Any, dataset: str, s: Any, x: Any, labels: Any, ds: Any, inception: Any, bar: Any) -> dict[str, Any]:
    report: dict[str, Any] = {"dataset": dataset, "n_test": len(x), "n_samples": s.n_samples}

    # Reconstructions: MSE, SSIM (and, with the classifier, agreement).
    recons = torch.cat([m.reconstruct(b.to(m.device)).float().cpu() for b in _batches(x, s.batch_size)])
    report["recon_mse"] = (recons - x).pow(2).flatten(1).mean(1).mean().item()
    report["recon_ssim"] = torch.cat([ssim(a, b) for a, b in zip(recons.split(1000), x.split(1000))]).mean().item()
    bar.update()

    # Samples: speed, then FID against the test split.
    warm = m.sample(min(s.batch_size, 8))
    if m.device.type == "cuda":
        torch.cuda.synchronize()
    t0, samples = time.perf_counter(), []
    for i in range(0, s.n_samples, s.batch_size):
        samples.append(m.sample(min(s.batch_size, s.n_samples - i)).float())
    if m.device.type == "cuda":
        torch.cuda.synchronize()
    report["samples_per_s"] = s.n_samples / (time.perf_counter() - t0)
    samples = torch.cat(samples).cpu()
    del warm
    evaluator = evaluator_for(dataset, m.channels, m.image_size)
    if evaluator is not None:
        clf = load_classifier(m.device, name=evaluator.name)
        real_f = _features(clf.features, _batches(x, 1000), m.device)
        report["fid"] = fid_from_features(_features(clf.features, _batches(samples, 1000), m.device), real_f)
        for name, draw in m.samplers.items():  # each sampler's FID
            if name == m.default_sampler:
                report[f"fid_{name}"] = report["fid"]
                continue
            images = torch.cat(
                [draw(min(s.batch_size, s.n_samples - i)).float().cpu() for i in range(0, s.n_samples, s.batch_size)]
            )
            report[f"fid_{name}"] = fid_from_features(_features(clf.features, _batches(images, 1000), m.device), real_f)
        recon_f = _features(clf.features, _batches(recons, 1000), m.device)
        report["recon_fid"] = fid_from_features(recon_f, real_f)  # do reconstructions look like the test images?
        pred_x = clf.head(real_f.to(m.device)).argmax(1).cpu()  # the features once, for FID and the classes
        pred_r = clf.head(recon_f.to(m.device)).argmax(1).cpu()
        report["class_agreement"] = (pred_x == pred_r).float().mean().item()
        if labels is not None:
            report["classifier_accuracy_on_recon"] = (pred_r == labels).float().mean().item()
    if inception is not None:
        report["fid_inception"] = fid_from_features(
            _features(inception, _batches(samples, 100), m.device), _features(inception, _batches(x, 100), m.device)
        )
    bar.update()

    # The inference critic: KL estimate and the InfoNCE bound (BAVAE only; peers have no critic).
    if m.kl is not None:
        report["kl_nats"] = torch.cat([m.kl(b.to(m.device)).cpu() for b in _batches(x[: s.n_kl], 100)]).mean().item()
    if m.infonce is not None:
        n = min(s.infonce_batch, len(x))
        bounds = [m.infonce(b.to(m.device)) for b in _batches(x[: (len(x) // n) * n][: 4 * n], n)]
        report["infonce_nats"] = float(np.mean(bounds))
        report["infonce_cap_nats"] = math.log(n)
    if dataset == "dsprites" and m.encode_mean is not None:
        report.update(dsprites_mig(m, x, ds.factors[: len(x)], batch_size=s.batch_size))
    bar.update()
    return report


@torch.no_grad()
def dsprites_mig(m: ModelAdapter, x: torch.Tensor, factors: np.ndarray, batch_size: int = 250) -> dict[str, Any]:
    """MIG of the posterior means (16 draws each) against the five dSprites factors of the images ``x``."""
    codes = torch.cat([m.encode_mean(b.to(m.device)).float().cpu() for b in _batches(x, batch_size)])
    result = mutual_information_gap(codes.numpy(), factors)
    return {
        "mig": result["mig"],
        **{f"mig_{k}": v for k, v in zip(DSPRITES_FACTOR_NAMES, result["per_factor"]) if v is not None},
    }


@torch.no_grad()
def latent_traversal(
    model: Any,
    x: torch.Tensor,
    values: torch.Tensor | None = None,
    sort: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, list[int]]:
    """Decodings of one image's code with one dimension swept over ``values`` (default -2.5..2.5, 8 steps).

    Returns images (latent_dim, len(values), C, H, W) and the dimension of each row; with ``sort`` the rows are
    ordered by how much the sweep changes the image (mean pixel variance along the row), most first.
    """
    values = torch.linspace(-2.5, 2.5, 8) if values is None else values
    z0 = model.encode(x[:1], n_samples=16, generator=generator).mean(1)  # the posterior mean of one image
    d, v = z0.shape[1], len(values)
    z = z0.repeat(d * v, 1).view(d, v, d)
    for j in range(d):
        z[j, :, j] = values.to(z)
    images = model.decode(z.flatten(0, 1), generator=generator).unflatten(0, (d, v)).cpu()
    order = list(range(d))
    if sort:
        change = images.var(dim=1).flatten(1).mean(1)
        order = change.argsort(descending=True).tolist()
    return images[order], order


def inception_features(device: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """torchvision's Inception-v3 pool features (2048-d) of images in [0, 1]. Needs its ImageNet weights in the torch
    cache: torchvision checks their hash and loads them with ``weights_only``; offline, the error says where they go."""
    from torchvision.models import Inception_V3_Weights, inception_v3  # torchvision only for this opt-in metric

    try:
        # torch's downloader prints its own lines (on stdout, where `bavae eval --json` writes): keep them out
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            net = inception_v3(weights=Inception_V3_Weights.IMAGENET1K_V1, aux_logits=True, progress=False)
    except Exception as e:  # noqa: BLE001 - offline, or a partial download
        raise WeightsUnavailableError(
            f"Inception FID needs torchvision's Inception-v3 ImageNet weights in the torch cache "
            f"({torch.hub.get_dir()}/checkpoints): {one_line(e)}"
        ) from None
    net.fc = nn.Identity()
    net = net.to(device).eval()
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)

    @torch.no_grad()
    def features(x: torch.Tensor) -> torch.Tensor:
        x = x.to(device).expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return net((x - mean) / std)

    return features


def format_report(name: str, report: dict[str, Any]) -> str:
    """The table ``bavae eval`` prints."""
    rows = [(k, f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in report.items()]
    w = max(len(k) for k, _ in rows)
    return "\n".join([f"{name}", *(f"  {k:<{w}}  {v}" for k, v in rows)])

"""The two critic value functions of the paper and the named training objectives.

Equation numbers refer to arXiv 1902.03517. Everything here is a pure function of tensors or of a
model's forward passes; the training loop decides who steps on which loss.

Both critics are f-GAN duals of a KL divergence (Nowozin et al. 2016):

* inference critic T(x, z), eq. 6:  V_I(T) = E_q[1 - T(x, z)] - E_p[exp(-T(x, z))]
  optimum T* = log p(z) - log q(z|x) (eq. 8), where V_I = E_x KL(q(z|x) || p(z)) (eq. 9);
* generative critic D(x, z), eq. 14:  V_G(D) = E_real[D(x, z)] - E_fake[exp(D(x', z) - 1)]
  optimum D* = 1 + log r(x|z) - log p_theta(x|z) (eq. 16), where V_G = E_z KL(r(x|z) || p_theta(x|z)) (eq. 17).

The paper's game (eq. 19) is  min_{encoder, decoder} [max_D V_G + max_T V_I].  At optimal critics it equals
-ELBO - H(p_data) + I(x; z): it *penalises* the information the codes carry (docs/method.md). The
``informative`` objective adds it back (an InfoNCE bound from the inference critic), matches the codes of a
batch to the prior (an MMD: the part of the KL term that should remain), and anchors reconstructions in the
generative critic's feature space and in pixels.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import torch
from torch import nn
from torch.nn import functional as F

from .errors import InvalidValue


def inference_critic_value(t_posterior: torch.Tensor, t_prior: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Eq. 6: E_{z~q(z|x)}[1 - T(x, z)] - E_{z~p(z)}[exp(-T(x, z))]. The critic maximises it; its maximum is the KL."""
    if dim is None:
        return (1 - t_posterior).mean() - torch.exp(-t_prior).mean()
    return (1 - t_posterior).mean(dim) - torch.exp(-t_prior).mean(dim)


def generative_critic_value(d_real: torch.Tensor, d_fake: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Eq. 14: E_{x, z~q(z|x)}[D(x, z)] - E_{z~q(z|x), x'~p(x|z)}[exp(D(x', z) - 1)]. The critic maximises it."""
    if dim is None:
        return d_real.mean() - torch.exp(d_fake - 1).mean()
    return d_real.mean(dim) - torch.exp(d_fake - 1).mean(dim)


def info_nce(scores: torch.Tensor) -> torch.Tensor:
    """InfoNCE lower bound on I(x; z) (van den Oord et al. 2018), nats.

    ``scores[i, j] = f(x_i, z_j)`` with the true pairs on the diagonal; each code z_j must pick out its own
    image among the N. The bound is at most log N.
    """
    n = scores.shape[0]
    return math.log(n) + (scores.diagonal() - scores.logsumexp(dim=0)).mean()


def mmd_imq(
    a: torch.Tensor, b: torch.Tensor, scales: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
) -> torch.Tensor:
    """Unbiased MMD^2 between two samples (N, d) with inverse multiquadric kernels C / (C + |x - y|^2),
    C = 2 d s for each scale s (as in Wasserstein auto-encoders, Tolstikhin et al. 2018). Zero in expectation
    when both come from one distribution; the heavy tails of the IMQ kernel keep gradients alive for far codes."""
    n, m, d = a.shape[0], b.shape[0], a.shape[1]
    aa, bb, ab = torch.cdist(a, a).pow(2), torch.cdist(b, b).pow(2), torch.cdist(a, b).pow(2)
    total = a.new_zeros(())
    for s in scales:
        c = 2 * d * s
        k_aa, k_bb = c / (c + aa), c / (c + bb)
        total = (
            total
            + (k_aa.sum() - k_aa.diagonal().sum()) / (n * (n - 1))
            + (k_bb.sum() - k_bb.diagonal().sum()) / (m * (m - 1))
            - 2 * (c / (c + ab)).mean()
        )
    return total


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, projections: int = 128) -> torch.Tensor:
    """Squared sliced Wasserstein-2 distance between two samples (N, d) of equal size (Bonneel et al. 2015): the
    mean over random unit directions of the squared distance between the sorted projections. Unlike a kernel
    MMD it compares the whole 1-d marginal along each direction, tails and modes included, so codes bunched into
    clusters pay even when their mean and spread are the prior's."""
    directions = F.normalize(torch.randn(a.shape[1], projections, device=a.device, dtype=a.dtype), dim=0)
    pa, pb = (a @ directions).sort(0).values, (b @ directions).sort(0).values
    return (pa - pb).pow(2).mean()


@dataclass(frozen=True)
class ObjectiveWeights:
    """Weights of the terms the encoder and decoder minimise. ``paper`` is eq. 19: kl = generative = 1, the rest 0."""

    kl: float = 1.0  # the inference game, E_q[-T(x, z)]  (eq. 19, V_I term)
    generative: float = 1.0  # the generative game, V_G through the encoder and the decoder  (eq. 19, V_G term)
    info: float = 0.0  # minus InfoNCE(x; z) with f = -T: gives back the information eq. 19 penalises
    feature: float = 0.0  # ||phi_D(x) - phi_D(G(E(x)))||^2 in the generative critic's image features, summed per image
    pixel: float = 0.0  # |x - G(E(x))|_1 summed per image: a Laplace likelihood of scale 1/pixel (the paper's foil)
    cycle: float = 0.0  # ||E(G(z)) - z||^2 summed per code, prior codes z: decoded samples must encode back
    marginal: float = 0.0  # MMD^2(aggregate posterior, prior) on the batch's codes: keeps prior samples on the data
    sliced: float = 0.0  # sliced Wasserstein-2^2(aggregate posterior, prior) on the batch's codes: the prior's shape
    # KL(aggregate posterior || prior) estimated by a critic on codes alone, C(z) (eq. 6 without x; the model builds
    # it only when this is > 0): an adversarial autoencoder's adversary, as an f-GAN KL.
    code: float = 0.0
    # Not a weight: the fraction of the generative critic's fake pairs that are (G(z), z) with z ~ p(z) rather than
    # the paper's (G(z), z) with z ~ q(z|x). 0 is eq. 14; above 0 the critic matches the joints r(x, z) and
    # p(z) p(x|z), as BiGAN/ALI do, and decodings of prior codes (the samples) are asked to look real.
    prior_fakes: float = 0.0
    # An image-only head s(x) on the generative critic's features, real images against the decoded prior codes:
    # V_S(s) = E_data[s(x)] - E_{z~p}[exp(s(G(z)) - 1)], at its optimum KL(p_data(x) || p_theta(x)), the divergence
    # maximum likelihood minimises (VAE-GAN's sample discriminator, as an f-GAN KL). Needs prior_fakes > 0.
    sample: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.prior_fakes < 1.0:
            raise InvalidValue(f"prior_fakes is a fraction of the fakes in [0, 1), got {self.prior_fakes!r}")
        if self.sample and not self.prior_fakes:
            raise InvalidValue("the sample term scores decoded prior codes: it needs prior_fakes > 0")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


OBJECTIVES: dict[str, ObjectiveWeights] = {
    "paper": ObjectiveWeights(),
    "informative": ObjectiveWeights(info=1.0, feature=1.0, pixel=1.0, marginal=100.0),
}


def resolve_objective(name: str, overrides: dict[str, float] | None = None) -> ObjectiveWeights:
    if name not in OBJECTIVES:
        raise InvalidValue(f"unknown objective {name!r}; known: {sorted(OBJECTIVES)}")
    overrides = dict(overrides or {})
    known = {f.name for f in fields(ObjectiveWeights)}
    unknown = set(overrides) - known
    if unknown:
        raise InvalidValue(f"unknown objective weight(s) {sorted(unknown)}; known: {sorted(known)}")
    return replace(OBJECTIVES[name], **{k: float(v) for k, v in overrides.items()})


# The terms that need a critic: with these at 0 the encoder/decoder step runs no critic pass at all.
CRITIC_TERMS = ("kl", "generative", "info", "feature", "code", "sample")


def warmup_weights(weights: ObjectiveWeights) -> ObjectiveWeights:
    """The weights of the steps before the critics start (``bavae train --critic-start``): every term that needs a
    critic at 0, the pixel anchor (at least 1, so that there is a reconstruction term) and the marginal terms as
    they are. That is a Wasserstein auto-encoder's objective (a pixel likelihood and a marginal MMD), at the cost
    of an encoder and a decoder pass: the reconstructions learn what a pixel is before the critics teach sharpness."""
    return replace(weights, **dict.fromkeys(CRITIC_TERMS, 0.0), pixel=max(weights.pixel, 1.0), prior_fakes=0.0)


def _floats(logs: dict[str, torch.Tensor]) -> dict[str, float]:
    """Scalars to Python floats in one device sync, not one per .item()."""
    values = torch.stack([v.detach().float() for v in logs.values()]).tolist()
    return dict(zip(logs, values))


@dataclass
class Losses:
    """Per-player losses (each player *minimises* its own) and the scalars to log."""

    inference_critic: torch.Tensor | None = None
    generative_critic: torch.Tensor | None = None
    encoder: torch.Tensor | None = None  # terms only the encoder moves: KL game, information
    decoder: torch.Tensor | None = (
        None  # terms the decoder moves (and the encoder through z): generative game, reconstruction
    )
    logs: dict[str, float] | None = None
    # The critics' image features of the real batch, (inference, generative), detached: the encoder/decoder step
    # reuses them (one critic step old) instead of running both trunks over the real images again.
    real_features: tuple[torch.Tensor, torch.Tensor] | None = None


def prior_fake_count(batch_size: int, weights: ObjectiveWeights) -> int:
    """How many of a batch's fakes are decoded from prior codes; the rest are reconstructions."""
    return min(batch_size - 1, round(batch_size * weights.prior_fakes))


def fake_pairs(model: nn.Module, z: torch.Tensor, weights: ObjectiveWeights) -> tuple[torch.Tensor, torch.Tensor]:
    """The generative critic's fake pairs (G(z'), z'): z' is the batch's posterior codes, their last
    ``prior_fake_count`` replaced by prior codes. Returns (z', G(z')); its first rows are reconstructions."""
    n_prior = prior_fake_count(z.shape[0], weights)
    if n_prior:
        z = torch.cat([z[: z.shape[0] - n_prior], model.prior_sample(n_prior, device=z.device, dtype=z.dtype)])
    return z, model.decoder(z)


def _real_and_fake_features(
    inference: nn.Module, generative: nn.Module, x: torch.Tensor, x_fake: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Image features (inference critic on x, generative critic on x, generative critic on x_fake), with one
    trunk pass over [x, x_fake] when the two critics share their trunk."""
    if generative.shares_trunk_with(inference):
        h_x, h_fake = generative.image_features(torch.cat([x, x_fake])).split([x.shape[0], x_fake.shape[0]])
        return h_x, h_x, h_fake
    h_x, h_fake = generative.image_features(torch.cat([x, x_fake])).split([x.shape[0], x_fake.shape[0]])
    return inference.image_features(x), h_x, h_fake


def critic_losses(
    model: nn.Module,
    x: torch.Tensor,
    weights: ObjectiveWeights,
    z: torch.Tensor | None = None,
    z_fake: torch.Tensor | None = None,
    x_fake: torch.Tensor | None = None,
) -> Losses:
    """Both critics' losses, -V_I and -V_G, on codes z ~ q(z|x) and fake pairs (x_fake, z_fake) from
    :func:`fake_pairs`, with no gradient to the encoder/decoder. Pass z, z_fake and x_fake to reuse an
    encoder/decoder pass (they are detached here); else they are drawn fresh.

    ``model`` supplies ``encoder``, ``decoder``, ``inference_critic``, ``generative_critic`` and ``prior_sample``
    (and ``code_critic`` when ``weights.code`` is on).
    """
    with torch.no_grad():
        if z is None:
            z = model.encoder(x)
        if x_fake is None:
            z_fake, x_fake = fake_pairs(model, z, weights)
        z_prior = model.prior_sample(x.shape[0], device=x.device, dtype=z.dtype)
    z, z_fake, x_fake = z.detach(), z_fake.detach(), x_fake.detach()  # a caller's graph must survive

    inference, generative = model.inference_critic, model.generative_critic
    h_x_inference, h_x_generative, h_fake = _real_and_fake_features(inference, generative, x, x_fake.to(x.dtype))
    t_posterior, t_prior = inference.score(h_x_inference, z), inference.score(h_x_inference, z_prior)
    v_inference = inference_critic_value(t_posterior, t_prior)  # eq. 6
    d_real, d_fake = generative.score(h_x_generative, z), generative.score(h_fake, z_fake)
    v_generative = generative_critic_value(d_real, d_fake)  # eq. 14 (with prior fakes: the joints' KL)
    logs = {
        "kl_estimate": v_inference,  # eq. 9: at the critic's optimum, E_x KL(q(z|x) || p(z))
        "generative_value": v_generative,  # eq. 17: E_z KL(r(x|z) || p_theta(x|z))
        "t_posterior": t_posterior.mean(),
        "d_real": d_real.mean(),
        "d_fake": d_fake.mean(),
    }
    inference_loss = -v_inference
    if weights.code:  # eq. 6 on codes alone: the batch's codes against prior draws; at the optimum KL(q(z) || p(z))
        v_code = inference_critic_value(model.code_critic(z), model.code_critic(z_prior))
        inference_loss = inference_loss - v_code
        logs["code_kl_estimate"] = v_code
    generative_loss = -v_generative
    if weights.sample:
        n_recon = x.shape[0] - prior_fake_count(x.shape[0], weights)
        v_sample = generative_critic_value(
            generative.sample_score(h_x_generative), generative.sample_score(h_fake[n_recon:])
        )
        generative_loss = generative_loss - v_sample
        logs["sample_value"] = v_sample  # at the optimum KL(p_data(x) || p_theta(x))
    return Losses(
        inference_critic=inference_loss,
        generative_critic=generative_loss,
        logs=_floats(logs),
        real_features=(h_x_inference.detach(), h_x_generative.detach()),
    )


def autoencoder_losses(
    model: nn.Module,
    x: torch.Tensor,
    weights: ObjectiveWeights,
    info_batch: int = 64,
    z: torch.Tensor | None = None,
    z_fake: torch.Tensor | None = None,
    x_fake: torch.Tensor | None = None,
    real_features: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Losses:
    """Encoder and decoder losses of eq. 19 plus the weighted extra terms. Critic weights get no update from these.

    Pass z = E(x) and (z_fake, x_fake) = :func:`fake_pairs`, computed with autograd on, to reuse a pass (the
    training loop's critic step), and that step's ``real_features``; else they are computed here.
    """
    inference, generative = model.inference_critic, model.generative_critic
    if z is None:
        z = model.encoder(x)
    if x_fake is None:
        z_fake, x_fake = fake_pairs(model, z, weights)
    n_recon = x.shape[0] - prior_fake_count(x.shape[0], weights)  # x_fake[:n_recon] = G(E(x[:n_recon]))
    if not any(getattr(weights, name) for name in CRITIC_TERMS):
        h_x_inference = h_x_generative = None  # no term needs a critic (warmup_weights): no critic pass
    elif real_features is None:
        with torch.no_grad():  # the critics' image features of real data carry no gradient to either player
            h_x_inference = inference.image_features(x)
            h_x_generative = h_x_inference if generative.shares_trunk_with(inference) else generative.image_features(x)
    else:
        h_x_inference, h_x_generative = real_features

    logs: dict[str, torch.Tensor] = {}
    encoder_loss = decoder_loss = 0.0  # (a Python 0.0 plus a tensor is that tensor, bit for bit)
    if weights.kl:  # Inference game (eq. 19, V_I): only its posterior term depends on the encoder.
        encoder_loss = encoder_loss + weights.kl * (-inference.score(h_x_inference, z).mean())
    if weights.info:
        k = min(info_batch, x.shape[0])  # k^2 pairs; the bound saturates at log k
        nce = info_nce(-inference.pairwise_scores(h_x_inference[:k], z[:k]))  # f = -T = log q(z|x) - log p(z) at T*
        encoder_loss = encoder_loss - weights.info * nce
        logs["info_nce"] = nce
    if weights.marginal:
        # With I(x; z) given back, what is left of E_x KL(q(z|x) || p(z)) is KL(r(z) || p(z)) (docs/method.md).
        # The Lipschitz critic T barely sees it (it cannot resolve peaked posteriors), so a kernel two-sample
        # distance between the batch's codes and prior draws does: without it the codes shrink to a small
        # region of the prior and samples from p(z) decode to nothing.
        marginal = mmd_imq(z.float(), model.prior_sample(z.shape[0], device=z.device))
        encoder_loss = encoder_loss + weights.marginal * marginal
        logs["marginal_mmd"] = marginal
    if weights.sliced:  # the same aggregate-posterior match, along random directions (per code: times d)
        sliced = sliced_wasserstein(z.float(), model.prior_sample(z.shape[0], device=z.device)) * z.shape[1]
        encoder_loss = encoder_loss + weights.sliced * sliced
        logs["marginal_sliced"] = sliced
    if weights.code:  # the encoder's side of the code game, E_q[1 - C(z)] through z, as the kl term's E_q[-T]
        encoder_loss = encoder_loss + weights.code * (-model.code_critic(z).mean())

    # Generative game (eq. 19, V_G): the decoder moves the fake term, the encoder both terms through z.
    if weights.generative or weights.feature or weights.sample:
        h_fake = generative.image_features(x_fake.to(x.dtype))
    if weights.generative:
        d_real, d_fake = generative.score(h_x_generative, z), generative.score(h_fake, z_fake)
        decoder_loss = decoder_loss + weights.generative * generative_critic_value(d_real, d_fake)
    if weights.sample:  # the decoded prior codes against real images, by the image-only head
        s_real, s_fake = generative.sample_score(h_x_generative), generative.sample_score(h_fake[n_recon:])
        decoder_loss = decoder_loss + weights.sample * generative_critic_value(s_real, s_fake)
    x_recon = x_fake[:n_recon].float()
    if weights.feature:
        # per-image sums: on the scale of a log-likelihood
        feature = (h_fake[:n_recon].float() - h_x_generative[:n_recon].float()).pow(2).sum(1).mean()
        decoder_loss = decoder_loss + weights.feature * feature
        logs["feature_recon"] = feature
    if weights.pixel:
        pixel = (x_recon - x[:n_recon]).abs().flatten(1).sum(1).mean()  # = -log Laplace(x | G(z), b=1/weight) + const
        decoder_loss = decoder_loss + weights.pixel * pixel
        logs["pixel_recon"] = pixel
    if weights.cycle:
        z_prior = model.prior_sample(x.shape[0], device=x.device, dtype=z.dtype)
        cycle = (model.encoder(model.decoder(z_prior)) - z_prior).float().pow(2).sum(1).mean()  # per-code sums
        decoder_loss = decoder_loss + weights.cycle * cycle
        logs["latent_cycle"] = cycle

    # a player none of whose terms is on (the encoder in a warm-up of an objective with no marginal term): zero
    encoder_loss, decoder_loss = (
        v if torch.is_tensor(v) else z.new_zeros((), dtype=torch.float32) for v in (encoder_loss, decoder_loss)
    )
    logs["encoder"], logs["decoder"] = encoder_loss, decoder_loss
    logs["recon_mse"] = F.mse_loss(x_recon.detach(), x[:n_recon])
    return Losses(encoder=encoder_loss, decoder=decoder_loss, logs=_floats(logs))

"""Every registered architecture at every supported size and channel count: shapes, ranges, save/load."""

from __future__ import annotations

import pytest
import torch
from helpers import gen, images, tiny_model
from torch.nn.utils import parametrize

from bavae import BAVAE, BAVAEConfig, nets

torch.set_num_threads(1)
LATENT, NOISE, N = 8, 4, 2


def all_configs():
    for name in nets.list_architectures():
        arch = nets.get_architecture(name)
        for size in arch.image_sizes:
            for channels in (1, 3):
                if channels in arch.channels:
                    yield name, size, channels


CONFIGS = list(all_configs())


def build(name, size, channels, seed=0, **kw):
    return tiny_model(
        seed, arch=name, image_size=size, channels=channels, latent_dim=LATENT, posterior_noise_dim=NOISE, width=8, **kw
    )


def test_registry_lists_the_families():
    names = nets.list_architectures()
    assert {"mlp", "dcgan", "resnet"} <= set(names)
    assert names == sorted(names)
    assert nets.list_architectures("dc*") == ["dcgan"]
    for name in names:
        arch = nets.get_architecture(name)
        assert arch.image_sizes and set(arch.channels) >= {1, 3}
        assert set(arch.builders) == set(nets.ROLES)


@pytest.mark.parametrize("name,size,channels", CONFIGS, ids=[f"{a}-{s}px-{c}ch" for a, s, c in CONFIGS])
def test_architecture_shapes_and_round_trip(name, size, channels, tmp_path):
    model = build(name, size, channels)
    x = images(N, channels, size, seed=size + channels)

    z = model.encode(x, generator=gen(1))
    assert z.shape == (N, LATENT) and z.dtype == torch.float32 and torch.isfinite(z).all()
    zk = model.encode(x, n_samples=3, generator=gen(2))
    assert zk.shape == (N, 3, LATENT)
    assert not torch.equal(zk[:, 0], zk[:, 1])  # the posterior is not a point mass

    out = model.decode(z)
    assert out.shape == (N, channels, size, size)
    assert out.min() >= 0 and out.max() <= 1
    s = model.sample(N, generator=gen(3))
    assert s.shape == (N, channels, size, size) and s.min() >= 0 and s.max() <= 1

    # the critics score (x, z) pairs, one scalar per pair
    for critic in (model.inference_critic, model.generative_critic):
        score = critic(x, z)
        assert score.shape == (N,) and torch.isfinite(score).all()
        assert critic.pairwise_scores(critic.image_features(x), zk[0]).shape == (N, 3)
        # spectral normalisation sits on the critics (config default) ...
        assert any(parametrize.is_parametrized(m) for m in critic.modules())
    # ... and nowhere else
    for player in (model.encoder, model.decoder):
        assert not any(parametrize.is_parametrized(m) for m in player.modules())

    # save / load: identical tensors and bit-identical outputs for the same seeded noise
    model.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").is_file() and (tmp_path / "model.safetensors").is_file()
    loaded = BAVAE.from_pretrained(str(tmp_path))
    assert loaded.config == model.config
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert torch.equal(loaded.encode(x, generator=gen(1)), z)
    assert torch.equal(loaded.decode(z), out)
    assert torch.equal(loaded.sample(N, generator=gen(3)), s)
    with torch.no_grad():
        for c1, c2 in (
            (model.inference_critic, loaded.inference_critic),
            (model.generative_critic, loaded.generative_critic),
        ):
            assert torch.equal(c1(x, z), c2(x, z))


@pytest.mark.parametrize("name", nets.list_architectures())
def test_outputs_do_not_depend_on_the_batch(name):
    """Encode one image or several: same codes for the same noise (no batch statistics anywhere)."""
    size = nets.get_architecture(name).image_sizes[0]
    model = build(name, size, 1)
    x = images(3, 1, size, seed=5)
    noise = torch.randn(3, NOISE, generator=gen(6))
    with torch.no_grad():
        together = model.encoder(x, noise=noise)
        alone = torch.cat([model.encoder(x[i : i + 1], noise=noise[i : i + 1]) for i in range(3)])
        torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(
            model.decoder(together), torch.cat([model.decoder(z[None]) for z in together]), rtol=1e-5, atol=1e-6
        )


@pytest.mark.parametrize("name", nets.list_architectures())
def test_unsupported_size_or_channels_fail_at_construction(name):
    arch = nets.get_architecture(name)
    supported = str(list(arch.image_sizes))
    for bad_size in (24, 48, 256):
        if bad_size in arch.image_sizes:
            continue
        with pytest.raises(ValueError, match=supported.replace("[", r"\[").replace("]", r"\]")):
            BAVAEConfig(arch=name, image_size=bad_size, channels=1)
        spec = nets.NetSpec(bad_size, 1, 8, 4, 0, 8, True)
        with pytest.raises(ValueError, match="image sizes"):
            nets.build(name, "encoder", spec)
    for bad_channels in (2, 4):
        with pytest.raises(ValueError, match="channels") as info:
            BAVAEConfig(arch=name, image_size=arch.image_sizes[0], channels=bad_channels)
        assert str(list(arch.channels)) in str(info.value) and supported in str(info.value)


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(ValueError) as info:
        BAVAEConfig(arch="vgg")
    message = str(info.value)
    assert "vgg" in message
    for name in nets.list_architectures():
        assert repr(name) in message
    with pytest.raises(ValueError, match="did you mean 'dcgan'"):
        nets.get_architecture("dcgn")
    with pytest.raises(ValueError, match="known"):
        nets.build("nope", "encoder", nets.NetSpec(32, 1, 8, 4, 0, 8, True))

"""hubconf.py through torch.hub itself: one entry point per zoo model, docstrings that torch.hub.help shows, and the
models they return. torch.hub.load takes this checkout (source="local"); torch.hub.list and help take only a GitHub
"owner/repo:ref", so they are given one whose clone is already in torch.hub's cache: this checkout, linked there
(no network: skip_validation, and a cached clone is not fetched again)."""

import os
from pathlib import Path

import pytest
import torch

from bavae import load, zoo

ROOT = str(Path(__file__).resolve().parents[1])


@pytest.fixture
def cached_repo(tmp_path):
    """ "bavae/bavae:main", with this checkout as its clone in a fresh torch.hub cache."""
    before = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    os.symlink(ROOT, tmp_path / "bavae_bavae_main")
    yield "bavae/bavae:main"
    torch.hub.set_dir(before)


def test_one_entry_point_per_zoo_model_with_its_record_as_help(cached_repo):
    hub = dict(skip_validation=True, trust_repo=True)
    names = torch.hub.list(cached_repo, verbose=False, **hub)
    assert sorted(names) == sorted(n.replace("-", "_") for n in zoo.list_models())
    text = torch.hub.help(cached_repo, "bavae_emoji64", **hub)
    assert text.startswith("bavae-emoji64: ") and "3x64x64 dcgan" in text and "pretrained" in text
    assert "Weights: none yet" in torch.hub.help(cached_repo, "bavae_celeba64", **hub)


def test_hub_load_returns_the_zoo_model():
    model = torch.hub.load(ROOT, "bavae_emoji64", source="local")
    reference = load("bavae-emoji64", device="cpu")
    assert type(model).__name__ == "BAVAE" and not model.training
    assert model.config == reference.config
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    images = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert images.shape == (4, 3, 64, 64) and 0 <= images.min() and images.max() <= 1


def test_a_model_without_weights_says_so_and_builds_fresh_networks():
    with pytest.raises(ValueError, match="bavae-celeba64 has no weights yet.*pretrained=False"):
        torch.hub.load(ROOT, "bavae_celeba64", source="local")
    fresh = torch.hub.load(ROOT, "bavae_celeba64", source="local", pretrained=False)
    assert fresh.config.image_size == 64 and fresh.config.channels == 3

"""list_models(pretrained=True) lists only the records with weights (timm's convention), and `bavae list` marks the
others; the default still lists every record, as documented."""

import pytest
from helpers import bavae_cli, clean_env, ok

from bavae import list_models, model_info


def test_pretrained_lists_only_models_with_weights():
    every, with_weights = list_models(), list_models(pretrained=True)
    assert "bavae-celeba64" in every and "bavae-celeba64" not in with_weights
    assert set(with_weights) == {n for n in every if model_info(n).sha256}
    assert "bavae-fashionmnist32" in with_weights and with_weights == sorted(with_weights, key=every.index)
    assert list_models("*64", pretrained=True) == ["bavae-dsprites64", "bavae-emoji64"]
    with pytest.raises(TypeError, match="pretrained must be True or False"):
        list_models(pretrained="yes")


def test_bavae_list_marks_the_models_without_weights():
    env = clean_env(HF_HUB_OFFLINE="1")
    rows = {line.split()[0]: line for line in ok(bavae_cli("list", env=env)).stdout.splitlines()}
    assert rows.keys() == set(list_models())
    assert "no weights yet" in rows["bavae-celeba64"]
    assert all("no weights" not in rows[n] for n in list_models(pretrained=True))
    listed = ok(bavae_cli("list", "--pretrained", env=env)).stdout.split()
    assert "bavae-celeba64" not in listed and "bavae-fashionmnist32" in listed

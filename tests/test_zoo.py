"""bavae.zoo: the records, list_models / model_info, and where load() finds weights (no network here).

Bundled weights are stood in for by tiny models in a tmp folder that BAVAE_WEIGHTS_DIR points at; the Hub side
(downloads, faults, offline mode) is tests/test_hub.py.
"""

import json
import re
import shutil
import sys

import pytest
import torch
from helpers import clean_env, run, same_weights, save_tiny, tiny_model
from hub_server import HubServer

import bavae
from bavae import zoo
from bavae.configs import BAVAEConfig
from bavae.devices import resolve_device
from bavae.errors import WeightsError
from bavae.files import sha256_file


def same_config(a: dict, b: dict) -> bool:
    """The same model config once defaults are filled in (a config.json written before a field existed omits it)."""
    return BAVAEConfig.from_dict(a) == BAVAEConfig.from_dict(b)


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the zoo table: records registered by a test vanish after it."""
    monkeypatch.setattr(zoo, "_MODELS", dict(zoo._MODELS))
    return zoo._MODELS


@pytest.fixture
def bundled(tmp_path, monkeypatch, registry):
    """A bundled-weights folder holding 'test-tiny', registered with its sha256 pinned."""
    root = tmp_path / "weights"
    model = save_tiny(root / "test-tiny", seed=0)
    monkeypatch.setenv(zoo.WEIGHTS_DIR_ENV, str(root))
    record = zoo.register_pretrained(
        zoo.ModelRecord(
            name="test-tiny",
            hf_hub_id="nobody/test-tiny",
            sha256=sha256_file(root / "test-tiny" / "model.safetensors"),
            config=model.config.to_dict(),
            dataset="fashion-mnist",
            bundled=True,
            train_command="bavae train --out runs/t",
        )
    )
    return root, model, record


# ------------------------------------------------------------------------------------------------ the table
def test_list_models_patterns_and_natural_order(registry):
    for name in ("test-m10", "test-m2", "test-m1"):
        zoo.register_pretrained(zoo.ModelRecord(name=name, hf_hub_id=f"nobody/{name}"))
    assert zoo.list_models("test-m*") == ["test-m1", "test-m2", "test-m10"]  # natural, like timm
    mnist = [n for n in zoo.list_models() if "mnist" in n]
    assert zoo.list_models(["*celeba*", "*mnist*"]) == ["bavae-celeba64", *mnist]
    assert mnist.index("bavae-fashionmnist28-mlp") < mnist.index("bavae-fashionmnist32")  # natural order
    assert zoo.list_models("nothing*") == []
    assert zoo.DEFAULT_MODEL in zoo.list_models() and bavae.list_models is zoo.list_models
    with pytest.raises(ValueError, match="already registered"):
        zoo.register_pretrained(zoo.ModelRecord(name="test-m1", hf_hub_id="nobody/x"))


def test_model_info_and_did_you_mean():
    assert bavae.model_info("bavae-celeba64").hf_hub_id == "bavae/bavae-celeba64"
    with pytest.raises(zoo.UnknownModelError, match="did you mean 'bavae-fashionmnist32'"):
        zoo.model_info("bavae-fashionmnst32")
    with pytest.raises(zoo.UnknownModelError, match="did you mean 'bavae-fashionmnist32'"):
        bavae.load("bavae-fashionmnst32")
    with pytest.raises(zoo.UnknownModelError, match="no model folder"):
        bavae.load("./no/such/folder")


def test_records_are_consistent():
    for name in zoo.list_models():
        r = zoo.model_info(name)
        assert BAVAEConfig.from_dict(r.config).to_dict() == r.config, name  # a full, valid config
        assert r.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", r.sha256), name
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", r.hf_hub_id) and r.revision and r.license and r.dataset, name
        assert r.train_command.startswith("bavae train ") and " --out " in r.train_command, name


def test_celeba_record():
    r = zoo.model_info("bavae-celeba64")
    c = r.config
    assert (c["arch"], c["image_size"], c["channels"]) == ("dcgan", 64, 3)
    assert not r.bundled and r.sha256 is None and r.hf_hub_id == "bavae/bavae-celeba64"
    assert (
        "bavae train --dataset celeba --data-dir PATH/TO/celeba --arch dcgan --image-size 64 --channels 3"
        in r.train_command
    ) and r.train_command.endswith("--out runs/celeba64")
    assert zoo.publish_command(r) == "bavae push runs/celeba64 --repo-id USER/bavae-celeba64"


def test_default_model_is_bundled_and_matches_its_record(bundled_default):
    r = zoo.model_info(bundled_default)
    folder = zoo.bundled_root() / r.name
    assert r.bundled and (r.config["image_size"], r.config["channels"]) == (32, 1)
    assert sha256_file(folder / "model.safetensors") == r.sha256  # the record is the source of truth
    assert same_config(json.loads((folder / "config.json").read_text()), r.config)
    assert (folder / "README.md").is_file()
    model = bavae.load(r.name, device="cpu")
    assert not model.training and model.sample(2).shape == (2, 1, 32, 32)


def test_every_record_command_makes_its_networks():
    """`bavae info NAME`'s command, run today, builds the recorded networks (the CLI's defaults have moved since
    some models were trained: their commands must say what they used). The sampler is fitted after training."""
    from helpers import model_config_of_command

    for name in zoo.list_models():
        r = zoo.model_info(name)
        built = model_config_of_command(r.train_command.split(" && ")[0]).to_dict()
        recorded = BAVAEConfig.from_dict(r.config).to_dict()
        for key in ("sampler", "default_sampler"):
            built.pop(key), recorded.pop(key)
        for config in (built, recorded):  # no critic width (every model before it was an option) means --width
            config["critic_width"] = config["critic_width"] or config["width"]
        assert built == recorded, name


def test_every_bundled_model_matches_its_record():
    """The five shipped models: hash, config, card with metrics and the command, size, and they load and sample."""
    bundled = [n for n in zoo.list_models() if zoo.model_info(n).bundled]
    assert {
        "bavae-fashionmnist32",
        "bavae-fashionmnist32-resnet",
        "bavae-fashionmnist28-mlp",
        "bavae-fashionmnist32-paper",
        "bavae-dsprites64",
    } <= set(bundled)
    for name in bundled:
        r = zoo.model_info(name)
        folder = zoo.bundled_root() / name
        weights = folder / "model.safetensors"
        assert sha256_file(weights) == r.sha256, name
        assert same_config(json.loads((folder / "config.json").read_text()), r.config), name
        assert r.size_mb == pytest.approx(weights.stat().st_size / 1e6, abs=0.01), name
        card = (folder / "README.md").read_text()
        assert r.train_command in card and "![samples](samples.png)" in card, name
        card_config = card.split("## Config", 1)[1].split("```json", 1)[1].split("```", 1)[0]
        assert json.loads(card_config) == json.loads((folder / "config.json").read_text()), name  # what ships
        fitted = f"fid_{(r.config.get('sampler') or {}).get('kind')}"
        if "fid_prior" in r.metrics and fitted in r.metrics:  # the card's numbers chose the default path
            assert r.metrics["fid"] == min(r.metrics["fid_prior"], r.metrics[fitted]), name
        assert {"recon_mse", "kl_nats"} <= set(r.metrics), name
        if r.dataset == "fashion-mnist":
            assert {"fid", "class_agreement"} <= set(r.metrics), name
        model = bavae.load(name, device="cpu")
        c = r.config
        assert model.sample(2).shape == (2, c["channels"], c["image_size"], c["image_size"]), name
    ds = zoo.model_info("bavae-dsprites64")
    assert "mig" in ds.metrics and (zoo.bundled_root() / ds.name / "traversal.png").is_file()
    assert "![traversal](traversal.png)" in (zoo.bundled_root() / ds.name / "README.md").read_text()


def test_bundled_root_is_overridable(monkeypatch, tmp_path):
    assert (zoo.bundled_root() / "__init__.py").is_file()  # the installed bavae.weights package
    monkeypatch.setenv(zoo.WEIGHTS_DIR_ENV, str(tmp_path))
    assert zoo.bundled_root() == tmp_path


# ------------------------------------------------------------------------------------------------ resolution
def test_local_folder_beats_bundled(bundled, tmp_path, monkeypatch):
    _, bundled_model, _ = bundled
    local = save_tiny(tmp_path / "cwd" / "test-tiny", seed=1)
    monkeypatch.chdir(tmp_path / "cwd")
    model = bavae.load("test-tiny", device="cpu")
    assert same_weights(model, local) and not model.training and model.device.type == "cpu"
    shutil.rmtree(tmp_path / "cwd" / "test-tiny")
    assert same_weights(bavae.load("test-tiny", device="auto"), bundled_model)


def test_bundled_beats_cache_and_cache_beats_hub(bundled, tmp_path, registry):
    root, bundled_model, record = bundled
    cache = tmp_path / "hf-cache"
    cached_model = save_tiny(tmp_path / "published", seed=2)
    from huggingface_hub import hf_hub_download

    with HubServer(root=tmp_path / "hub") as hub:
        files = {f: (tmp_path / "published" / f).read_bytes() for f in ("config.json", "model.safetensors")}
        hub.add_commit(record.hf_hub_id, files)
        for f in files:
            hf_hub_download(record.hf_hub_id, f, endpoint=hub.url, cache_dir=cache)
    # The Hub is gone now, and load() has no endpoint to reach it anyway: what follows is bundled, then cache.
    assert same_weights(bavae.load("test-tiny", device="cpu", cache_dir=cache), bundled_model)
    shutil.rmtree(root / "test-tiny")
    zoo.register_pretrained(
        zoo.ModelRecord(**{**record.to_dict(), "sha256": sha256_file(tmp_path / "published" / "model.safetensors")}),
        overwrite=True,
    )
    assert same_weights(bavae.load("test-tiny", device="cpu", cache_dir=cache), cached_model)


def test_bundled_sha256_mismatch_is_rejected(bundled):
    root, model, record = bundled
    weights = root / "test-tiny" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # one bit in the last tensor: still a valid safetensors file
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError) as e:
        bavae.load("test-tiny", device="cpu")
    assert str(weights) in str(e.value) and record.sha256 in str(e.value)
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    assert same_weights(bavae.load("test-tiny", device="cpu"), model)


def test_local_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="config.json is missing"):
        bavae.load(tmp_path / "empty")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(zoo.UnknownModelError, match="is a file"):
        bavae.load(str(tmp_path / "file.txt"))


def test_local_folders_are_loaded_as_they_are(tmp_path):
    """README: a local folder has no reference hash (it is the user's own run), so it is not sha256-checked: edited
    weights load as edited. A damaged file still fails, in one line, naming the file."""
    folder = tmp_path / "mine"
    model = save_tiny(folder, seed=0)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # one bit of the last tensor: another valid safetensors file
    weights.write_bytes(bytes(data))
    loaded = bavae.load(folder, device="cpu")
    changed = [k for k in model.state_dict() if not torch.equal(model.state_dict()[k], loaded.state_dict()[k])]
    assert len(changed) == 1, changed
    weights.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(WeightsError, match="not a readable safetensors file") as e:
        bavae.load(folder, device="cpu")
    assert str(weights) in str(e.value) and len(str(e.value).splitlines()) == 1


def test_celeba_offline_error_says_how_to_make_the_weights(tmp_path):
    code = (
        "import sys, bavae\ntry:\n    bavae.load('bavae-celeba64')\nexcept bavae.zoo.WeightsUnavailableError as e:\n"
        "    print(e); print('torch' in sys.modules)"
    )
    proc = run(sys.executable, "-c", code, env=clean_env(tmp_path / "hf", HF_HUB_OFFLINE="1"), timeout=60)
    message, torch_loaded = proc.stdout.strip().splitlines()
    assert "not available offline" in message and "bavae-celeba64" in message
    assert zoo.model_info("bavae-celeba64").train_command in message
    assert "bavae push runs/celeba64 --repo-id USER/bavae-celeba64" in message
    assert torch_loaded == "False"  # the error needs no torch: `bavae sample -m bavae-celeba64` fails fast


# ------------------------------------------------------------------------------------------------ cards, devices
def test_model_card_metadata_and_text():
    from huggingface_hub import ModelCard

    record = zoo.model_info("bavae-celeba64")
    card = ModelCard(str(zoo.model_card(record, {"fid": 12.5, "mse": 0.01, "note": "n/a"}, "samples.png")))
    data = card.data
    assert data.library_name == "bavae" and data.license == "mit" and "bavae" in data.tags
    assert data.datasets == ["celeba"]
    assert {r.metric_type: r.metric_value for r in data.eval_results} == {"fid": 12.5, "mse": 0.01}
    assert "bavae.load('bavae-celeba64')" in card.text and record.train_command in card.text
    assert "![samples](samples.png)" in card.text
    card = zoo.model_card(tiny_model(), {}, repo_id="user/tiny", dataset="fashion-mnist")
    assert "bavae.load('user/tiny')" in card.text and card.data.datasets == ["zalando-datasets/fashion_mnist"]
    assert "Training pictures in the weights" not in card.text  # no sampler: nothing kept
    emoji = zoo.model_info("bavae-emoji64")  # a neighbour sampler keeps the training codes: the card says so
    assert "codes of the 4,832 training pictures" in zoo.model_card(emoji).text


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")

"""bavae.eval: each metric against a closed form or an independent computation, the bundled classifier against
its card, and `bavae eval` on the bundled default model as a user runs it."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import assert_one_line_error, bavae_cli, clean_env, ok, read_idx_images, save_tiny, tiny_model

from bavae import eval as ev
from bavae import zoo
from bavae.data import FashionMNIST
from bavae.model import WeightsError


def spd(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


# ------------------------------------------------------------------------------------------------ FID
def test_frechet_distance_diagonal_closed_form():
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    s1, s2 = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([9.0, 1.0, 0.25])
    expected = float((mu1 - mu2).pow(2).sum() + (s1 + s2 - 2 * (s1 * s2).sqrt()).sum())
    assert ev.frechet_distance(mu1, torch.diag(s1), mu2, torch.diag(s2)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_matches_the_eigenvalues_of_the_product():
    # Independent route: C1 C2 is similar to a PSD matrix, so tr sqrt(C1 C2) = sum of sqrt(eigvals(C1 C2)).
    c1, c2 = spd(12, 0), spd(12, 1)
    mu1, mu2 = torch.zeros(12, dtype=torch.float64), torch.full((12,), 0.3, dtype=torch.float64)
    tr_sqrt = torch.linalg.eigvals(c1 @ c2).real.clamp_min(0).sqrt().sum()
    expected = float((mu1 - mu2).pow(2).sum() + c1.trace() + c2.trace() - 2 * tr_sqrt)
    assert ev.frechet_distance(mu1, c1, mu2, c2) == pytest.approx(expected, rel=1e-8)
    assert ev.frechet_distance(mu1, c1, mu1, c1) == pytest.approx(0.0, abs=1e-8)


def test_fid_of_features_sees_a_shift_and_not_a_resample():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(20000, 8, generator=g), torch.randn(20000, 8, generator=g)
    assert ev.fid_from_features(a, b) < 0.01
    assert ev.fid_from_features(a, b + 1.0) == pytest.approx(8.0, rel=0.02)  # ||shift||^2 = 8


# ------------------------------------------------------------------------------------------------ SSIM
def test_ssim_identity_constants_and_noise():
    x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ev.ssim(x, x), torch.ones(4, dtype=torch.float64), atol=1e-9)
    a, b = 0.3, 0.7  # constant images: only the luminance term is left
    c1 = 0.01**2
    got = ev.ssim(torch.full((1, 1, 16, 16), a), torch.full((1, 1, 16, 16), b)).item()
    assert got == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-5)
    noisy = [
        ev.ssim(x, (x + s * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)).mean().item()
        for s in (0.01, 0.05, 0.2)
    ]
    assert noisy[0] > noisy[1] > noisy[2]
    assert ev.ssim(x, x.flip(0)).mean() < 0.2  # different random images: no structure in common
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        ev.ssim(x, x[:2])


# ------------------------------------------------------------------------------------------------ InfoNCE
def test_infonce_bound_limits_and_a_gaussian_channel():
    n = 1000
    assert ev.infonce_bound(100 * torch.eye(n)) == pytest.approx(math.log(n), abs=1e-6)
    assert ev.infonce_bound(torch.zeros(n, n)) == pytest.approx(0.0, abs=1e-9)
    # x ~ N(0, 1), z = x + 0.5 e: I(x; z) = 0.5 log(1 + 1/0.25). With the true log-density ratio as the critic,
    # InfoNCE is a lower bound that is tight when I << log N.
    g = torch.Generator().manual_seed(0)
    bounds = []  # the critic is log p(z_j | x_i) up to a z-only constant: -(z_j - x_i)^2 / (2 * 0.25)
    for _ in range(8):
        x = torch.randn(n, generator=g, dtype=torch.float64)
        z = x + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
        bounds.append(ev.infonce_bound(-(z[None, :] - x[:, None]).pow(2) / 0.5))
    true = 0.5 * math.log(1 + 1 / 0.25)
    assert true - 0.1 < np.mean(bounds) < true + 0.03


# ------------------------------------------------------------------------------------------------ MIG
def test_mig_rewards_one_code_per_factor_only():
    rng = np.random.default_rng(0)
    n = 20000
    factors = np.stack([rng.integers(0, 3, n), rng.integers(0, 6, n), rng.integers(0, 10, n)], 1)
    noise = rng.normal(size=(n, 3))
    disentangled = np.concatenate([factors + 0.01 * rng.normal(size=factors.shape), noise], 1)
    assert ev.mutual_information_gap(disentangled, factors)["mig"] > 0.9
    assert ev.mutual_information_gap(rng.normal(size=(n, 6)), factors)["mig"] < 0.02
    duplicated = np.concatenate([disentangled[:, :1], disentangled], 1)  # two codes carry factor 0: no gap there
    per = ev.mutual_information_gap(duplicated, factors)["per_factor"]
    assert per[0] < 0.01 and per[1] > 0.9
    rotated = np.stack([factors[:, 1] + factors[:, 2], factors[:, 1] - factors[:, 2]], 1).astype(float)
    assert ev.mutual_information_gap(rotated, factors[:, 1:])["mig"] < 0.5  # entangled: each code has both
    with pytest.raises(ValueError, match="same N"):
        ev.mutual_information_gap(noise[:10], factors)
    # A factor that is constant in the data has no gap, and the others keep their places.
    constant = np.concatenate([np.zeros((n, 1), np.int64), factors], 1)
    per = ev.mutual_information_gap(disentangled, constant)["per_factor"]
    assert per[0] is None and per[1] > 0.9 and len(per) == 4


def test_dsprites_test_images_cover_every_factor():
    from bavae.data import DSprites

    x, labels, ds = ev._test_images("dsprites", 64, 1, 400)
    assert x.shape == (400, 1, 64, 64) and labels is None
    for k, size in enumerate((3, 6, 40, 32, 32)):  # spread over the split, not the first 400 (all squares)
        assert len(np.unique(ds.factors[:, k])) >= min(size, 20), k
    first = DSprites(split="test", limit=1)  # the same images as the dataset's test split
    assert torch.equal(x[0], first[0]) and (ds.factors[0] == first.factors[0]).all()


# ------------------------------------------------------------------------------------------------ classifier
def test_bundled_classifier_matches_its_hash_and_its_card(tmp_path, fashion_mnist_dir):
    folder = ev.classifier_dir()
    assert zoo.sha256_file(folder / "model.safetensors") == ev.CLASSIFIER_SHA256
    card = json.loads((folder / "config.json").read_text())
    clf = ev.load_classifier("cpu")
    test = FashionMNIST(split="test", image_size=28, limit=3000)  # 28px inputs are padded like 32px ones
    x = test.data.float().div(255).unsqueeze(1)
    with torch.no_grad():
        acc = torch.cat([clf(b).argmax(1) for b in x.split(1000)]).eq(test.labels).float().mean().item()
    # 3000 of the 10,000 images the card was measured on: within 3 binomial standard errors of it
    assert acc == pytest.approx(card["test_accuracy"], abs=3 * math.sqrt(0.1 * 0.9 / 3000))
    assert card["test_accuracy"] > 0.9
    with torch.no_grad():
        assert clf.features(x[:5]).shape == (5, 128)
    with pytest.raises(ValueError, match=r"\(N, 1, 28\|32, 28\|32\)"):
        clf(torch.zeros(2, 3, 32, 32))
    with pytest.raises(WeightsError, match="missing"):
        ev.load_classifier(path=tmp_path / "nowhere")


def test_bundled_colour_classifier_matches_its_hash_and_scores_colour_pictures():
    """The colour evaluator: sha256-checked, 3x64x64 in, 128-d features out, nine emoji categories, and its card's
    held-out accuracy and FID floors recorded beside it."""
    folder = ev.classifier_dir(ev.EMOJI_CLASSIFIER_NAME)
    assert zoo.sha256_file(folder / "model.safetensors") == ev.EMOJI_CLASSIFIER_SHA256
    card = json.loads((folder / "config.json").read_text())
    assert card["classes"] == list(ev.EMOJI_CATEGORIES) and 0.6 < card["test_accuracy"] < 1
    assert card["fid_floors"]["train_vs_test"] > 0
    clf = ev.load_classifier("cpu", name=ev.EMOJI_CLASSIFIER_NAME)
    white, red = torch.ones(1, 3, 64, 64), torch.zeros(1, 3, 64, 64)
    red[:, 0, 16:48, 16:48] = 1.0
    with torch.no_grad():
        f = clf.features(torch.cat([white, red]))
    assert f.shape == (2, 128) and not torch.allclose(f[0], f[1])
    with pytest.raises(ValueError, match=r"\(N, 3, 64, 64\)"):
        clf(torch.zeros(2, 1, 64, 64))
    assert ev.evaluator_for("folder", 3, 64).name == ev.EMOJI_CLASSIFIER_NAME
    assert ev.evaluator_for("fashion-mnist", 1, 28).name == ev.CLASSIFIER_NAME
    assert ev.evaluator_for("dsprites", 1, 64) is None and ev.evaluator_for("folder", 1, 32) is None


def test_a_tampered_bundled_classifier_is_refused(tmp_path, monkeypatch):
    """The installed classifier's bytes are checked against CLASSIFIER_SHA256 before anything is loaded: one bit
    flipped (still a valid safetensors file) and load_classifier, hence `bavae eval`, refuses it."""
    folder = ev.classifier_dir()
    bad = tmp_path / "clf"
    bad.mkdir()
    (bad / "config.json").write_bytes((folder / "config.json").read_bytes())
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (bad / "model.safetensors").write_bytes(bytes(data))
    monkeypatch.setattr(ev, "classifier_dir", lambda name=None: bad)  # the installed copy, tampered with
    with pytest.raises(WeightsError, match="sha256 mismatch") as e:
        ev.load_classifier("cpu")
    assert ev.CLASSIFIER_SHA256 in str(e.value) and str(bad / "model.safetensors") in str(e.value)


# ------------------------------------------------------------------------------------------------ evaluate
def _test_split(n: int, offset: int = 0) -> torch.Tensor:
    test = FashionMNIST(split="test", image_size=32)
    return torch.stack([test[i] for i in range(offset, offset + n)])


def test_evaluate_scores_a_perfect_autoencoder_and_real_samples_as_such(fashion_mnist_dir):
    n = 500
    others = _test_split(n, offset=5000)
    state = {"i": 0}

    def real_samples(k: int) -> torch.Tensor:
        out = others[state["i"] : state["i"] + k]
        state["i"] += k
        return out

    perfect = ev.ModelAdapter(lambda x: x, real_samples, 32, 1)
    settings = ev.EvalSettings(n_samples=n, n_test=n, batch_size=250, infonce_batch=250)
    good = ev.evaluate(perfect, settings=settings)
    assert good["recon_mse"] == 0 and good["recon_ssim"] == pytest.approx(1.0, abs=1e-5)
    assert good["class_agreement"] == 1.0 and good["classifier_accuracy_on_recon"] > 0.88
    blank = ev.ModelAdapter(lambda x: torch.zeros_like(x), lambda k: torch.rand(k, 1, 32, 32), 32, 1)
    bad = ev.evaluate(blank, settings=settings)
    assert bad["recon_mse"] > 0.05 and bad["class_agreement"] < 0.5
    assert good["fid"] < bad["fid"] / 20  # other real images are near the test split; noise is far
    assert "kl_nats" not in good  # no critic, no critic numbers


def test_evaluate_default_model_against_an_untrained_one(bundled_default, fashion_mnist_dir):
    import bavae
    from bavae.model import BAVAE

    settings = ev.EvalSettings(n_samples=500, n_test=500, n_kl=50, infonce_batch=250)
    trained = bavae.load(bundled_default, device="cpu")
    r = ev.evaluate(trained, settings=settings)
    torch.manual_seed(0)
    untrained = ev.evaluate(BAVAE(trained.config).eval(), settings=settings)
    recorded = zoo.model_info(zoo.DEFAULT_MODEL).metrics
    assert r["recon_mse"] == pytest.approx(recorded["recon_mse"], rel=0.25)
    assert r["class_agreement"] > 0.8 and r["recon_ssim"] > 0.6
    assert r["fid"] < untrained["fid"] / 5
    assert 0 < r["infonce_nats"] <= r["infonce_cap_nats"] == pytest.approx(math.log(250))
    assert r["infonce_nats"] > untrained["infonce_nats"] + 1  # trained codes identify their images
    assert r["kl_nats"] > 0 and r["samples_per_s"] > 0


def test_cli_eval_json_and_errors(tmp_path, bundled_default, fashion_mnist_dir):
    env = clean_env(tmp_path / "hf", HF_HUB_OFFLINE="1")
    p = ok(
        bavae_cli(
            "eval", bundled_default, "--json", "--n-samples", "200", "--n-test", "200", "--device", "cpu", env=env
        )
    )
    report = json.loads(p.stdout)
    assert report["model"] == bundled_default and report["dataset"] == "fashion-mnist"
    for key in ("fid", "recon_mse", "recon_ssim", "class_agreement", "kl_nats", "infonce_nats", "samples_per_s"):
        assert isinstance(report[key], float) and math.isfinite(report[key]), key
    assert_one_line_error(
        bavae_cli("eval", bundled_default, "--dataset", "folder", env=env), "needs --data-dir", code=2
    )
    assert_one_line_error(bavae_cli("eval", str(tmp_path / "missing-model"), env=env), "missing-model")


def test_cli_eval_recon_mse_is_the_mse_on_the_test_images(tmp_path, fashion_mnist_dir):
    """`bavae eval --json`'s recon_mse against a direct computation: the first n test images, read from the IDX
    file here (not through bavae.data) and zero-padded to 32 px, reconstructed with the eval's seed."""
    model = save_tiny(tmp_path / "tiny", seed=0)
    n = 100
    p = ok(
        bavae_cli(
            "eval",
            tmp_path / "tiny",
            "--json",
            "--n-samples",
            "100",
            "--n-test",
            n,
            "--seed",
            3,
            "--device",
            "cpu",
            env=clean_env(tmp_path / "hf", HF_HUB_OFFLINE="1"),
        )
    )
    report = json.loads(p.stdout)
    x = F.pad(
        read_idx_images(fashion_mnist_dir / "t10k-images-idx3-ubyte.gz", n).float().div(255)[:, None], (2, 2, 2, 2)
    )
    with torch.no_grad():
        recon = model.reconstruct(x, generator=torch.Generator().manual_seed(3))
    assert report["n_test"] == n
    assert report["recon_mse"] == pytest.approx((recon - x).pow(2).mean().item(), rel=1e-5)
    with torch.no_grad():  # the check can tell the seed: another seed gives another number
        other = model.reconstruct(x, generator=torch.Generator().manual_seed(4))
    assert (recon - x).pow(2).mean().item() != pytest.approx((other - x).pow(2).mean().item(), rel=1e-5)


def test_cli_eval_dsprites_gives_mig(tmp_path):
    p = ok(
        bavae_cli(
            "eval",
            "bavae-dsprites64",
            "--dataset",
            "dsprites",
            "--json",
            "--n-samples",
            "100",
            "--n-test",
            "400",
            "--device",
            "cpu",
            env=clean_env(tmp_path / "hf", HF_HUB_OFFLINE="1"),
        )
    )
    report = json.loads(p.stdout)
    assert report["dataset"] == "dsprites" and report["n_test"] == 400
    assert 0 <= report["mig"] <= 1
    # a gap per factor that varies (color is constant in dSprites: no gap for it)
    assert {f"mig_{k}" for k in ("shape", "scale", "orientation", "posX", "posY")} <= set(report), report
    assert "fid" not in report  # the Fashion-MNIST classifier is not used on dSprites


def test_a_colour_model_on_a_folder_gets_the_colour_evaluators_metrics(tmp_path):
    """3x64x64 on an image folder: FID of both samplers, reconstruction FID and class agreement from the colour
    evaluator; a perfect reconstruction scores recon FID ~0 and full agreement."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 40)):
        (tmp_path / split / "shapes").mkdir(parents=True)
        for i in range(n):
            arr = np.full((64, 64, 3), 255, np.uint8)
            y, x = rng.integers(4, 36, 2)
            arr[y : y + 24, x : x + 24] = rng.integers(0, 255, 3)
            Image.fromarray(arr).save(tmp_path / split / "shapes" / f"{i}.png")
    model = tiny_model(image_size=64, channels=3)
    settings = ev.EvalSettings(n_samples=64, n_test=40, n_kl=8, infonce_batch=8, batch_size=32)
    report = ev.evaluate(model, "folder", data_dir=tmp_path, settings=settings)
    assert {"fid", "fid_prior", "recon_fid", "class_agreement"} <= set(report) and report["n_test"] == 40
    assert "classifier_accuracy_on_recon" not in report  # a folder has no labels
    x, _, _ = ev._test_images("folder", 64, 3, 40, tmp_path)
    perfect = ev.ModelAdapter(lambda b: b, lambda n: x[:n], 64, 3)
    exact = ev.evaluate(perfect, "folder", data_dir=tmp_path, settings=settings)
    assert exact["recon_fid"] == pytest.approx(0, abs=1e-4) and exact["class_agreement"] == 1.0
    assert exact["recon_mse"] == 0 and report["recon_fid"] > 1.0


def test_the_emoji_sets_held_out_pictures_ship_and_score_a_colour_model():
    """`--dataset emoji` without a folder: the bundled held-out pictures (sha256-checked, labelled), enough for every
    colour metric; the training split needs the folder and says so in one line."""
    from bavae.data import EMOJI_CATEGORIES, DataError, Emoji, build_dataset
    from bavae.data.emoji import HELDOUT_SHA256, heldout_path

    assert zoo.sha256_file(heldout_path()) == HELDOUT_SHA256
    test = build_dataset("emoji", image_size=64, channels=3, split="test")
    assert len(test) > 500 and test[0].shape == (3, 64, 64) and 0 <= float(test[0].min()) <= float(test[0].max()) <= 1
    assert set(test.labels.tolist()) == set(range(len(EMOJI_CATEGORIES)))  # every category is held out
    with pytest.raises(DataError, match="needs --data-dir") as e:
        Emoji(None, split="train")
    assert "\n" not in str(e.value)
    # the bundled classifier recognises the held-out emoji well above chance (1/9)
    clf = ev.load_classifier("cpu", name=ev.EMOJI_CLASSIFIER_NAME)
    x = torch.stack([test[i] for i in range(len(test))])
    with torch.no_grad():
        accuracy = (clf(x).argmax(1) == test.labels).float().mean().item()
    card = json.loads((ev.classifier_dir(ev.EMOJI_CLASSIFIER_NAME) / "config.json").read_text())
    assert accuracy > 0.6 and accuracy == pytest.approx(card["test_accuracy"], abs=0.08)  # the card: all 4 styles

    model = tiny_model(image_size=64, channels=3)
    settings = ev.EvalSettings(n_samples=64, n_test=100, n_kl=8, infonce_batch=8, batch_size=50)
    report = ev.evaluate(model, "emoji", settings=settings)
    assert {"fid", "recon_fid", "class_agreement", "classifier_accuracy_on_recon"} <= set(report)
    assert report["n_test"] == 100

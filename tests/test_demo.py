"""`bavae demo` in a real browser: Debian's Chromium, driven by Playwright (through the system browser, never one of
Playwright's own downloads), opens the page the real command serves on loopback, offline, and uses it as a person
would: draws samples, uploads a picture and waits for its reconstruction, refuses a bad upload with a message,
switches to a colour model, moves an Explore slider. Each time it checks that the image the page shows changed and
has the size the page promises.

The browser is /usr/bin/chromium (`apt-get install -y chromium`; `.ci/run` installs it) or $CHROMIUM_PATH. Where
none is installed the browser test skips, saying so; under CI (CI=true) it fails instead, since CI installs one.
DEMO_SCREENSHOTS=docs/img also writes there the two screenshots the docs show (demo.png, demo-explore.png).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_one_line_error, bavae_cli, clean_env, ok, run
from PIL import Image

try:
    import gradio as gr
except ImportError:  # `make test` installs the demo extra: a missing gradio is a broken install, not a skip
    pytest.fail("gradio is not installed: pip install -e '.[demo]' (make install does)", pytrace=False)

from bavae import demo  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_MS = 90_000  # one answer of a busy 2-core machine (the first also loads torch's kernels)


def chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    path = chromium()
    if path is None:
        why = "no Chromium here (apt-get install -y chromium; or set CHROMIUM_PATH to a Chromium binary)"
        if os.environ.get("CI"):
            pytest.fail(f"CI installs a browser for this test, but there is {why}")
        pytest.skip(why)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`bavae demo` as users start it, offline, on a free loopback port; its cold start-up measured beside
    `python -c 'import gradio'` in the same run."""
    home = tmp_path_factory.mktemp("demo")
    env = clean_env(home / "hf", HF_HUB_OFFLINE="1", GRADIO_TEMP_DIR=home / "gradio")
    start = time.perf_counter()
    ok(run(sys.executable, "-c", "import gradio", env=env))
    gradio_import = time.perf_counter() - start
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bavae", "demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # printed once the server answers
        startup = time.perf_counter() - start
        assert line.startswith("bavae demo: serving http://127.0.0.1:"), line + proc.stdout.read(3000)
        url = re.search(r"http://\S+", line).group(0)
        print(f"\ncold `bavae demo` start-up: {startup:.2f} s; `python -c 'import gradio'`: {gradio_import:.2f} s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Shown:
    """The picture an output component shows: its bytes as the browser fetched them, and its natural size."""

    def __init__(self, page, elem_id: str):
        self.page, self.selector = page, f"#{elem_id} img"

    def src(self) -> str | None:
        el = self.page.query_selector(self.selector)
        return el.get_attribute("src") if el else None

    def wait_new(self, before: str | None) -> tuple[tuple[int, int], str]:
        """Wait until the component shows another picture than ``before``; its (natural size, sha256 of bytes)."""
        self.page.wait_for_function(
            "([sel, old]) => { const e = document.querySelector(sel);"
            " return e && e.complete && e.naturalWidth > 0 && e.getAttribute('src') !== old; }",
            arg=[self.selector, before],
            timeout=TIMEOUT_MS,
        )
        src = self.src()
        size = tuple(self.page.eval_on_selector(self.selector, "e => [e.naturalWidth, e.naturalHeight]"))
        body = self.page.request.get(src).body()
        assert Image.open(io.BytesIO(body)).size == size
        return size, hashlib.sha256(Image.open(io.BytesIO(body)).tobytes()).hexdigest()


def upload(page, elem_id: str, path: Path) -> None:
    """Put a file in a File component, as a person does: clear the one shown (the × button), then choose."""
    clear = page.locator(f"#{elem_id} button[aria-label=Clear]")
    if clear.count():
        clear.first.click()
    page.set_input_files(f"#{elem_id} input[type=file]", str(path), timeout=TIMEOUT_MS)


def screenshot(page, folder: Path, name: str) -> Path:
    """The whole page as a PNG; with DEMO_SCREENSHOTS=docs/img also copied there (the docs' pictures)."""
    shot = folder / name
    page.screenshot(path=str(shot), full_page=True)
    assert Image.open(shot).size[0] == 1280
    if os.environ.get("DEMO_SCREENSHOTS"):
        shutil.copy(shot, ROOT / os.environ["DEMO_SCREENSHOTS"] / name)
    return shot


def picture(path: Path, size: tuple[int, int], mode: str = "RGB", seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (size[1], size[0], len(mode)), dtype=np.uint8)
    Image.fromarray(a[..., 0] if len(mode) == 1 else a, mode).save(path)
    return path


@pytest.mark.slow  # 30-90 s on 2 busy cores: gradio's start-up, then a browser
def test_the_demo_in_a_real_browser(browser, server, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server)
    page.wait_for_selector("#sample-button", timeout=TIMEOUT_MS)
    assert "bavae-fashionmnist32" in page.inner_text("#about")

    # Sample: a 4x4 grid of 32 px images, then another seed gives other samples of the same size
    samples = Shown(page, "sample-out")
    page.click("#sample-button")
    size, first = samples.wait_new(None)
    assert size == demo.grid_size(16, 4, 32) == (414, 414)
    before = samples.src()
    page.fill("#sample-seed input", "7")
    page.click("#sample-button")
    size, second = samples.wait_new(before)
    assert size == (414, 414) and second != first

    # Reconstruct: a wide RGBA picture of odd size, uploaded; input beside reconstruction
    page.get_by_role("tab", name="Reconstruct").click()
    recon = Shown(page, "recon-out")
    upload(page, "recon-in", picture(tmp_path / "wide.png", (97, 41), "RGBA"))
    size, recon_hash = recon.wait_new(None)
    assert size == demo.grid_size(2, 2, 32) == (210, 108)
    shown = np.asarray(Image.open(io.BytesIO(page.request.get(recon.src()).body())).convert("L"))
    k = demo.display_scale(32)
    left, right = shown[2 * k : 34 * k, 2 * k : 34 * k], shown[2 * k : 34 * k, 36 * k : 68 * k]
    assert left.std() > 0 and right.std() > 0 and not np.array_equal(left, right)
    before = recon.src()
    upload(page, "recon-in", picture(tmp_path / "other.jpg", (50, 80), "L", seed=1))
    size, other = recon.wait_new(before)
    assert size == (210, 108) and other != recon_hash

    # a bad upload: a message in the page, no traceback, the last good picture kept
    (tmp_path / "not-a-picture.png").write_bytes(b"this is text, not a PNG\n" * 20)
    before = recon.src()
    upload(page, "recon-in", tmp_path / "not-a-picture.png")
    message = page.get_by_text("cannot read not-a-picture.png: not an image format PIL can read")
    message.first.wait_for(timeout=TIMEOUT_MS)
    assert "Traceback" not in page.content()
    assert recon.src() == before

    # the model picker: the colour emoji model, 64 px
    page.get_by_role("tab", name="Sample").click()
    page.click("#model input")
    page.get_by_role("option", name="bavae-emoji64").click()
    page.wait_for_function("() => document.querySelector('#about').innerText.includes('bavae-emoji64')")
    page.click("#sample-button")
    size, emoji = samples.wait_new(None if samples.src() is None else samples.src())
    assert size == demo.grid_size(16, 4, 64) == (532, 532)
    rgb = np.asarray(Image.open(io.BytesIO(page.request.get(samples.src()).body())).convert("RGB"), dtype=np.int16)
    assert np.abs(rgb - rgb.mean(axis=2, keepdims=True)).max() > 16  # colour
    message.first.wait_for(state="hidden", timeout=TIMEOUT_MS)  # the refusal's toast goes by itself
    screenshot(page, tmp_path, "demo.png")

    # Explore: set the centre, then drag the first slider; the decoded image changes, same size
    page.get_by_role("tab", name="Explore").click()
    explored = Shown(page, "explore-out")
    page.click("#explore-button")
    size, centre = explored.wait_new(None)
    assert size == demo.grid_size(1, 1, 64, demo.EXPLORE_TILE) == (204, 204)
    before = explored.src()
    track = page.locator("#dir-0 input[type=range]")
    track.scroll_into_view_if_needed()  # a long model description pushes the sliders below the viewport
    box = track.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.95, box["y"] + box["height"] / 2)
    size, moved = explored.wait_new(before)
    assert size == (204, 204) and moved != centre
    assert float(track.input_value()) > 2.0

    screenshot(page, tmp_path, "demo-explore.png")

    # offline: every request the page made went to the demo itself
    hosts = {re.match(r"\w+://([^/]+)", u).group(1) for u in requests if re.match(r"https?://", u)}
    assert hosts == {server.split("/")[2]}, hosts
    page.close()


# ------------------------------------------------------------------------------------------------ the pieces
def test_page_pieces_without_a_browser(tmp_path):
    """What the tabs compute, on the bundled default model: sizes, seeds, messages."""
    models = demo.Models()
    m = models.get("bavae-fashionmnist32")
    a, b = demo.sample(m, 9, 0, "auto"), demo.sample(m, 9, 0, "auto")
    assert a.size == demo.grid_size(9, 3, 32) and a.tobytes() == b.tobytes()
    assert demo.sample(m, 9, 1, "prior").tobytes() != a.tobytes()
    with pytest.raises(gr.Error, match="between 1 and 64"):
        demo.sample(m, 0, 0, "auto")
    with pytest.raises(gr.Error, match="upload both pictures"):
        demo.interpolate(m, str(picture(tmp_path / "a.png", (30, 30))), None, 5, 0)
    assert demo.interpolate(m, None, None, 5, 0).size == demo.grid_size(5, 5, 32)
    vectors, stds = demo.directions(m)
    assert vectors.shape == (demo.N_DIRECTIONS, m.config.latent_dim) and (stds[:-1] >= stds[1:]).all()
    assert np.allclose((vectors @ vectors.T).numpy(), np.eye(demo.N_DIRECTIONS), atol=1e-4)
    z, k = demo.centre(m, "component", 0, 3, None)
    assert k == 3 and len(z) == m.config.latent_dim
    with pytest.raises(gr.Error, match="components 0 to 49"):
        demo.centre(m, "component", 0, 50, None)
    with pytest.raises(gr.Error, match="unknown model"):
        models.get("bavae-nothing")


def test_demo_command_refuses_bad_arguments_in_one_line():
    env = clean_env(HF_HUB_OFFLINE="1")
    assert_one_line_error(bavae_cli("demo", "bavae-fashionmnst32", env=env), "unknown model", "bavae-fashionmnist32")
    assert_one_line_error(bavae_cli("demo", "--port", "70000", env=env), "70000")
    assert "--host" in ok(bavae_cli("demo", "--help", env=env)).stdout


@pytest.mark.slow  # 10-50 s on 2 busy cores: a process that imports gradio and torch
def test_app_py_is_the_same_page_as_a_space():
    """app.py builds the demo (as a Space runs it), and the Space README's header names it."""
    import yaml

    proc = run(
        sys.executable,
        "-c",
        "import runpy; ns = runpy.run_path('app.py'); import gradio; assert isinstance(ns['demo'], gradio.Blocks)",
        cwd=ROOT,
        env=clean_env(HF_HUB_OFFLINE="1"),
    )
    ok(proc)
    text = (ROOT / "space" / "README.md").read_text()
    header = yaml.safe_load(text.split("---")[1])
    assert header["sdk"] == "gradio" and header["app_file"] == "app.py"
    assert int(str(header["sdk_version"]).split(".")[0]) == int(gr.__version__.split(".")[0])
    assert "bavae[demo]" in (ROOT / "space" / "requirements.txt").read_text()

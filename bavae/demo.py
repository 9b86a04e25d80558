"""The demo page, a Gradio app: ``bavae demo [MODEL]`` serves it, ``app.py`` is the same page as a Hugging Face Space.

Tabs: Sample (a grid: n, seed, sampler), Reconstruct (a picture of any size or mode beside its reconstruction),
Interpolate (between two pictures' codes, or two random codes), Explore (sliders along the principal directions
of the fitted sampler's codes, or of one mixture component, around a sample, a component's mean or a picture's
code); a model picker over the zoo's models that have weights, grayscale and colour.

It runs offline: the zoo's bundled weights, no telemetry (``GRADIO_ANALYTICS_ENABLED=False`` is set before gradio is
imported), the theme's own fonts. Bad uploads are refused with a one-line message in the page (``gr.Error``), never
a traceback. Every picture the page shows is a PNG (lossless), each model image scaled up by a whole factor with
nearest-neighbour so that a 28 px image is not a smudge: :func:`display_scale`.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio reads it: no telemetry, no version check

import gradio as gr  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from . import __version__, samplers  # noqa: E402
from .images import ImageError, load_image, make_grid, to_uint8  # noqa: E402
from .zoo import DEFAULT_MODEL, UnknownModelError, list_models, load, model_info  # noqa: E402

DISPLAY_TILE = 96  # each model image is shown at least this many pixels wide (a whole-number upscale)
EXPLORE_TILE = 192  # the Explore tab's single image
N_DIRECTIONS = 6  # sliders in the Explore tab
SLIDER_RANGE = 3.0  # each slider moves up to 3 standard deviations along its direction
MAX_SAMPLES = 64
MAX_UPLOAD = "20mb"
SAMPLERS = [
    ("the model's default", "auto"),
    ("prior N(0, I)", "prior"),
    ("fitted mixture", "gmm"),
    ("nearest neighbours", "neighbours"),
]
AROUND = [("a sample", "sample"), ("a mixture component's mean", "component"), ("my picture", "picture")]


class DemoError(gr.Error):
    """A message for the page, without the traceback in the server's log."""

    def __init__(self, message: str):
        super().__init__(message, print_exception=False)


# ------------------------------------------------------------------------------------------------ models
class Models:
    """The models the page offers, loaded on first use and kept (a few MB each)."""

    def __init__(self, first: str | None = None, device: str = "auto"):
        self.device = device
        self.names = list_models(pretrained=True)
        self.first = first or DEFAULT_MODEL
        if self.first not in self.names:  # a folder or Hub repo given on the command line: offered first
            self.names = [self.first, *self.names]
        self._loaded: dict[str, object] = {}

    def get(self, name: str):
        if name not in self.names:
            raise DemoError(f"unknown model {name!r}: pick one of the list")
        if name not in self._loaded:
            try:
                self._loaded[name] = load(name, device=self.device)
            except (ValueError, OSError) as e:  # WeightsError, UnknownModelError, offline Hub: one line
                raise DemoError(f"cannot load {name}: {_one_line(e)}") from None
        return self._loaded[name]


def _one_line(e: BaseException | str) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def sampler_choices(model) -> list[tuple[str, str]]:
    """The Sample tab's choices for ``model``: its default, the prior and the kind of sampler it has."""
    fitted = (model.config.sampler or {}).get("kind")
    return [c for c in SAMPLERS if c[1] in ("auto", "prior", fitted)]


def describe(name: str, model) -> str:
    c = model.config
    shape = f"{c.channels}x{c.image_size}x{c.image_size}"
    sampler = samplers.describe(c.sampler)
    text = f"**{name}**: {shape} {'colour' if c.channels == 3 else 'grayscale'}, {c.arch} (width {c.width}), "
    text += f"latent {c.latent_dim}; fitted sampler: {sampler}; default: {model.default_sampler}."
    try:
        record = model_info(name)
    except (UnknownModelError, TypeError):
        return text
    return text + f" Trained on {record.dataset}. {record.description}"


# ------------------------------------------------------------------------------------------------ pictures
def display_scale(image_size: int, tile: int = DISPLAY_TILE) -> int:
    """The whole-number factor by which the page enlarges a model image (nearest-neighbour)."""
    return max(1, math.ceil(tile / image_size))


def grid_size(n: int, ncol: int, image_size: int, tile: int = DISPLAY_TILE) -> tuple[int, int]:
    """(width, height) in pixels of the picture the page shows for n images in rows of ncol (padding 2)."""
    ncol = max(1, min(ncol, n))
    rows, k = math.ceil(n / ncol), display_scale(image_size, tile)
    return (ncol * (image_size + 2) + 2) * k, (rows * (image_size + 2) + 2) * k


def to_picture(images: torch.Tensor, ncol: int, tile: int = DISPLAY_TILE) -> Image.Image:
    """(N, C, H, W) in [0, 1] -> one PIL grid, enlarged by :func:`display_scale`."""
    a = to_uint8(make_grid(images.detach().float().cpu().clamp(0, 1), ncol))
    im = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a, "L" if a.shape[-1] == 1 else "RGB")
    k = display_scale(images.shape[-1], tile)
    return im.resize((im.width * k, im.height * k), Image.NEAREST)


def read_upload(model, path: str | None, what: str = "picture") -> torch.Tensor:
    """An uploaded file as a batch of one image for ``model``; a bad file is a message in the page."""
    if not path:
        raise DemoError(f"upload a {what} first")
    try:
        x = load_image(path, model.config.image_size, model.config.channels)
    except ImageError as e:
        raise DemoError(_one_line(e).replace(str(path), os.path.basename(path))) from None  # not the server's path
    return x[None].to(model.device)


def _generator(model, seed) -> torch.Generator:
    try:
        seed = int(seed)
    except (TypeError, ValueError):
        raise DemoError(f"the seed must be a whole number, got {seed!r}") from None
    if not 0 <= seed < 2**32:
        raise DemoError(f"the seed must be between 0 and {2**32 - 1}, got {seed}")
    return torch.Generator(model.device).manual_seed(seed)


# ------------------------------------------------------------------------------------------------ the tabs' work
def sample(model, n, seed, sampler: str) -> Image.Image:
    n = int(n)
    if not 1 <= n <= MAX_SAMPLES:
        raise DemoError(f"draw between 1 and {MAX_SAMPLES} samples, got {n}")
    try:
        images = model.sample(n, generator=_generator(model, seed), sampler=sampler)
    except ValueError as e:  # a model without a fitted mixture asked for one
        raise DemoError(_one_line(e)) from None
    return to_picture(images, math.ceil(math.sqrt(n)))


def reconstruct(model, path: str | None, seed) -> Image.Image:
    x = read_upload(model, path)
    return to_picture(torch.cat([x, model.reconstruct(x, generator=_generator(model, seed))]), 2)


def interpolate(model, path_a: str | None, path_b: str | None, steps, seed) -> Image.Image:
    steps, g = int(steps), _generator(model, seed)
    if bool(path_a) != bool(path_b):
        raise DemoError("upload both pictures, or neither to go between two random codes")
    if path_a:
        a, b = read_upload(model, path_a, "picture A"), read_upload(model, path_b, "picture B")
        frames = model.interpolate(a, b, steps=steps, generator=g)[0]
        return to_picture(torch.cat([a, frames, b]), steps + 2)
    z = model.sample_codes(2, "auto", generator=g)
    t = torch.linspace(0, 1, steps, device=z.device, dtype=z.dtype)[:, None]
    return to_picture(model.decode((1 - t) * z[:1] + t * z[1:], generator=g), steps)


def directions(model, component: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(N_DIRECTIONS, latent) unit directions and their standard deviations, largest first: the principal axes of
    the fitted mixture's codes (its total covariance), or of one component's covariance; for a model without a
    fitted sampler, the prior's axes (all of spread 1)."""
    d = model.config.latent_dim
    s = model.latent_sampler
    if s is None:
        eye = torch.zeros(d, d)
        eye.diagonal().fill_(1.0)
        cov = eye
    elif isinstance(s, samplers.NeighbourSampler):  # the stored codes' covariance
        cov = s.codes.double().cpu().T.cov()
    else:
        w, mu, L = s.weights.double().cpu(), s.means.double().cpu(), s.scale_tril.double().cpu()
        covs = L @ L.transpose(-1, -2)
        if component is not None:
            cov = covs[component]
        else:  # the mixture's covariance: E[cov_k + mu_k mu_k^T] - mu mu^T
            mean = (w[:, None] * mu).sum(0)
            cov = (w[:, None, None] * (covs + mu[:, :, None] * mu[:, None, :])).sum(0) - mean[:, None] * mean[None]
    values, vectors = torch.linalg.eigh(cov.double())
    order = values.argsort(descending=True)[:N_DIRECTIONS]
    return vectors[:, order].T.float(), values[order].clamp(min=0).sqrt().float()


def centre(model, around: str, seed, component, path: str | None) -> tuple[list[float], int | None]:
    """The code the Explore sliders move around, and the component whose axes they follow (None: the mixture's)."""
    g = _generator(model, seed)
    if around == "picture":
        return model.encode(read_upload(model, path), generator=g)[0].float().cpu().tolist(), None
    if around == "component":
        s = model.latent_sampler
        if not isinstance(s, samplers.GaussianMixtureSampler):
            raise DemoError("this model has no fitted mixture: explore around a sample or a picture")
        k = int(component)
        if not 0 <= k < s.means.shape[0]:
            raise DemoError(f"the mixture has components 0 to {s.means.shape[0] - 1}, got {k}")
        return s.means[k].float().cpu().tolist(), k
    return model.sample_codes(1, "auto", generator=g)[0].float().cpu().tolist(), None


def explore(model, code: list[float] | None, component: int | None, *amounts: float) -> Image.Image:
    if not code or len(code) != model.config.latent_dim:
        raise DemoError("set the centre first")
    vectors, stds = directions(model, component)
    offset = sum(float(a) * std * v for a, std, v in zip(amounts, stds, vectors))
    z = torch.tensor(code)[None] + offset
    return to_picture(
        model.decode(z.to(model.device), generator=torch.Generator(model.device).manual_seed(0)), 1, EXPLORE_TILE
    )


def slider_labels(model, component: int | None) -> list[str]:
    _, stds = directions(model, component)
    kind = (model.config.sampler or {}).get("kind")
    where = {"gmm": "the mixture's codes", "neighbours": "the stored codes"}.get(kind) if component is None else None
    where = where or (f"component {component}" if component is not None else "the prior")
    return [f"direction {i + 1} of {where} (1 = {std:.2f} in the code)" for i, std in enumerate(stds.tolist())]


# ------------------------------------------------------------------------------------------------ the page
def build_demo(model: str | None = None, device: str = "auto") -> gr.Blocks:
    """The page, not yet served (``.launch(**launch_options())`` serves it): ``model`` is shown first (a zoo name,
    folder or Hub repo id; default: the zoo's default model)."""
    models = Models(model, device)
    first = models.get(models.first)

    def with_model(fn):
        def run(name, *args):
            return fn(models.get(name), *args)

        return run

    with gr.Blocks(title="bavae demo", analytics_enabled=False) as demo:
        gr.Markdown(
            f"# bavae {__version__}: Biadversarial VAEs\n"
            "Implicit encoder, implicit decoder, two critics ([arXiv 1902.03517](https://arxiv.org/abs/1902.03517)). "
            "Pick a model, then sample, reconstruct your own picture, interpolate or explore its latent space."
        )
        with gr.Row():
            picker = gr.Dropdown(models.names, value=models.first, label="model", elem_id="model", scale=1)
            about = gr.Markdown(describe(models.first, first), elem_id="about")

        with gr.Tab("Sample", id="sample"):
            with gr.Row():
                n = gr.Slider(1, MAX_SAMPLES, value=16, step=1, label="n", elem_id="sample-n")
                seed = gr.Number(0, precision=0, label="seed", elem_id="sample-seed", minimum=0)
                sampler = gr.Radio(sampler_choices(first), value="auto", label="codes from", elem_id="sample-sampler")
            sample_button = gr.Button("Sample", variant="primary", elem_id="sample-button")
            samples = gr.Image(label="samples", type="pil", format="png", interactive=False, elem_id="sample-out")
            sample_button.click(with_model(sample), [picker, n, seed, sampler], samples)

        with gr.Tab("Reconstruct", id="reconstruct"):
            with gr.Row():
                upload = gr.File(label="a picture (PNG, JPEG, ...; any size or mode)", elem_id="recon-in")
                recon_seed = gr.Number(0, precision=0, label="seed", elem_id="recon-seed", minimum=0)
            recon_button = gr.Button("Reconstruct", variant="primary", elem_id="recon-button")
            recon = gr.Image(
                label="the picture as the model sees it, and its reconstruction",
                type="pil",
                format="png",
                interactive=False,
                elem_id="recon-out",
            )
            upload.upload(with_model(reconstruct), [picker, upload, recon_seed], recon)
            recon_button.click(with_model(reconstruct), [picker, upload, recon_seed], recon)

        with gr.Tab("Interpolate", id="interpolate"):
            gr.Markdown("Two pictures, or none: then two random codes from the model's default sampler.")
            with gr.Row():
                upload_a = gr.File(label="picture A", elem_id="interp-a")
                upload_b = gr.File(label="picture B", elem_id="interp-b")
            with gr.Row():
                steps = gr.Slider(3, 16, value=8, step=1, label="steps", elem_id="interp-steps")
                interp_seed = gr.Number(0, precision=0, label="seed", elem_id="interp-seed", minimum=0)
            interp_button = gr.Button("Interpolate", variant="primary", elem_id="interp-button")
            interp = gr.Image(label="from A to B", type="pil", format="png", interactive=False, elem_id="interp-out")
            interp_button.click(with_model(interpolate), [picker, upload_a, upload_b, steps, interp_seed], interp)

        with gr.Tab("Explore", id="explore"):
            gr.Markdown(
                "Sliders along the principal directions of the fitted sampler's codes (or of one mixture "
                "component, around its mean), in standard deviations, around a sample, a component's mean or "
                "your picture's code."
            )
            with gr.Row():
                around = gr.Radio(AROUND, value="sample", label="around", elem_id="explore-around")
                explore_seed = gr.Number(0, precision=0, label="seed", elem_id="explore-seed", minimum=0)
                component = gr.Number(0, precision=0, label="component", elem_id="explore-component", minimum=0)
                explore_upload = gr.File(label="my picture", elem_id="explore-in")
            centre_button = gr.Button("Set the centre", variant="primary", elem_id="explore-button")
            code, axes = gr.State(None), gr.State(None)
            with gr.Row():
                with gr.Column():
                    labels = slider_labels(first, None)
                    sliders = [
                        gr.Slider(-SLIDER_RANGE, SLIDER_RANGE, value=0, step=0.1, label=label, elem_id=f"dir-{i}")
                        for i, label in enumerate(labels)
                    ]
                explored = gr.Image(label="decoded", type="pil", format="png", interactive=False, elem_id="explore-out")

            def set_centre(name, around_, seed_, component_, path, *amounts):
                m = models.get(name)
                z, k = centre(m, around_, seed_, component_, path)
                updates = [gr.update(label=label) for label in slider_labels(m, k)]
                return [z, k, explore(m, z, k, *amounts), *updates]

            centre_inputs = [picker, around, explore_seed, component, explore_upload, *sliders]
            centre_button.click(set_centre, centre_inputs, [code, axes, explored, *sliders])

            def move(name, z, k, seed_, *amounts):
                m = models.get(name)
                if z is None:  # a slider moved before any centre was set: around a sample of the seed
                    z, k = centre(m, "sample", seed_, 0, None)
                return [explore(m, z, k, *amounts), z, k]

            for slider in sliders:
                slider.change(
                    move,
                    [picker, code, axes, explore_seed, *sliders],
                    [explored, code, axes],
                    trigger_mode="always_last",
                )

        def switch(name):
            m = models.get(name)
            choices = gr.update(choices=sampler_choices(m), value="auto")
            return [describe(name, m), choices, None, None, None, None, None]

        picker.change(
            switch, picker, [about, sampler, samples, recon, interp, explored, code], trigger_mode="always_last"
        ).then(lambda name: [gr.update(label=x) for x in slider_labels(models.get(name), None)], picker, sliders)
        gr.Markdown(
            f"bavae {__version__}: the zoo's bundled weights; the page loads nothing from the internet. "
            "`bavae demo --help` for the options."
        )
    return demo


def launch_options() -> dict:
    """What :meth:`gradio.Blocks.launch` is given by ``bavae demo`` and ``app.py`` alike."""
    return dict(
        theme=gr.themes.Default(),  # its fonts ship with gradio: the page loads nothing from the internet
        max_file_size=MAX_UPLOAD,
        ssr_mode=False,  # client-side rendering: no Node server
        show_error=False,  # messages are raised as gr.Error; any other exception shows as "Error", not a traceback
        footer_links=["api", "settings"],
    )


def serve(model: str | None = None, host: str = "127.0.0.1", port: int = 7860, device: str = "auto") -> None:
    """Build the page and serve it on host:port until interrupted (``bavae demo``)."""
    demo = build_demo(model, device)
    demo.launch(server_name=host, server_port=port, quiet=True, prevent_thread_lock=True, **launch_options())
    print(f"bavae demo: serving {demo.local_url or f'http://{host}:{port}/'} (Ctrl+C stops it)", flush=True)
    try:
        demo.block_thread()
    finally:
        demo.close()


__all__ = ["build_demo", "launch_options", "serve", "display_scale", "grid_size", "directions"]

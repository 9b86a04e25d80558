"""torch.hub entry points: one per model of the bavae zoo, generated from its records (timm's hubconf is the same
few lines over its registry).

    import torch
    model = torch.hub.load(".", "bavae_fashionmnist32", source="local")     # a checkout of this repository
    torch.hub.list(".", source="local")                                     # every entry point
    print(torch.hub.help(".", "bavae_emoji64", source="local"))            # its record

An entry point's name is the zoo name with '-' as '_'. It returns ``bavae.load(name)``: the bundled weights,
sha256-checked (a model without them is downloaded from the Hub), in eval mode; ``pretrained=False`` builds the
same networks with fresh weights instead.
"""

import importlib.util as _importlib_util
import os as _os

dependencies = ["torch", "safetensors", "huggingface_hub", "numpy"]

from bavae import devices as _devices  # noqa: E402  (after `dependencies`, which torch.hub reads first)
from bavae import zoo as _zoo  # noqa: E402  (after `dependencies`, which torch.hub reads first)

if _importlib_util.find_spec("bavae.weights") is None:  # a checkout that was never pip-installed: its weights/
    _os.environ.setdefault(_zoo.WEIGHTS_DIR_ENV, _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "weights"))


def _entry_point(name: str):
    record = _zoo.model_info(name)

    def entry_point(pretrained: bool = True, device: str = "cpu"):
        if not pretrained:
            from bavae import BAVAE, BAVAEConfig

            return BAVAE(BAVAEConfig.from_dict(record.config)).to(_devices.resolve_device(device)).eval()
        if not record.has_weights:
            raise ValueError(
                f"{name} has no weights yet ({record.dataset} cannot be had where bavae is built): "
                f"`bavae info {name}` gives the command that trains them; pretrained=False builds the networks"
            )
        return _zoo.load(name, device=device)

    c = record.config
    metrics = ", ".join(f"{k} {v:g}" for k, v in record.metrics.items()) or "none yet"
    entry_point.__name__ = entry_point.__qualname__ = name.replace("-", "_")
    entry_point.__doc__ = (
        f"{name}: {record.description}\n\n"
        f"    {c['channels']}x{c['image_size']}x{c['image_size']} {c['arch']} (width {c['width']}, latent "
        f"{c['latent_dim']}), trained on {record.dataset}; license {record.license}; metrics: {metrics}.\n"
        f"    Weights: {'bundled with bavae' if record.bundled else record.hf_hub_id if record.has_weights else 'none yet'}.\n\n"
        "    Args:\n"
        "        pretrained: True (default) loads the published weights (sha256-checked); False builds the networks\n"
        "            with fresh weights.\n"
        "        device: 'cpu' (default), 'cuda', 'cuda:N', 'mps' or 'auto'.\n\n"
        "    Returns a bavae.BAVAE in eval mode: model.sample(64), model.encode(x), model.reconstruct(x), ...\n"
    )
    return entry_point


for _name in _zoo.list_models():
    globals()[_name.replace("-", "_")] = _entry_point(_name)

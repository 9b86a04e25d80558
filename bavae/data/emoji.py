"""The colour emoji set: several artists' styles of the same emoji, 64x64 RGB on white, labelled by emoji.json's
category. ``benchmarks/make_emoji_folder.py`` writes it as OUT/<split>/<style>/<category>/<codepoints>.png from the
npm packages of Noto (Apache-2.0), Twemoji (CC-BY 4.0: by Twitter, Inc and other contributors) and Fluent (MIT).

The training split is that folder (``data_dir``). The test split is the folder's test/ when a folder is given, else
the held-out pictures that ship with bavae (``bavae/weights/emoji-heldout``: every training style's version of the
186 held-out emoji, sha256-checked), so that ``bavae eval bavae-emoji64`` runs anywhere.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..files import hash_problem
from ._common import DataError, _apply_limit, _check_channels, _check_split
from .folder import ImageFolder

CATEGORIES = (  # emoji.json's, as make_emoji_folder.py names the folders; the colour evaluator's classes
    "activities",
    "animals-nature",
    "flags",
    "food-drink",
    "objects",
    "people-body",
    "smileys-emotion",
    "symbols",
    "travel-places",
)
HELDOUT_NAME = "emoji-heldout"
HELDOUT_FILE = "heldout.safetensors"
HELDOUT_SHA256 = "a3273eeee41a64bb9a790010c476abf89654742ded200f9ad7b4a7e02f17fc6e"


def heldout_path() -> Path:
    return Path(importlib.util.find_spec("bavae.weights").submodule_search_locations[0]) / HELDOUT_NAME / HELDOUT_FILE


def load_heldout() -> dict[str, torch.Tensor]:
    """The bundled held-out pictures: ``images`` (N, 3, 64, 64) uint8, ``labels`` (N,) into :data:`CATEGORIES`."""
    from safetensors.torch import load_file

    path = heldout_path()
    if not path.is_file():
        raise DataError(f"emoji: the held-out pictures are missing from {path.parent}; reinstall bavae")
    problem = hash_problem(path, HELDOUT_SHA256)
    if problem:
        raise DataError(f"emoji: {problem}; not loaded")
    return load_file(str(path))


class Emoji(Dataset):
    """The emoji set (64x64, as written), with ``labels`` beside the pictures."""

    def __init__(
        self,
        data_dir: str | os.PathLike | None,
        *,
        image_size: int = 64,
        channels: int = 3,
        split: str = "train",
        limit: int | None = None,
    ) -> None:
        _check_channels("emoji", channels)
        _check_split("emoji", split, ("train", "test"))
        self.image_size, self.channels, self.split = image_size, channels, split
        if data_dir is None and split == "train":
            raise DataError(
                "--dataset emoji needs --data-dir for its training pictures (python benchmarks/make_emoji_folder.py "
                "writes them); only the held-out test pictures ship with bavae"
            )
        if data_dir is None:
            held = load_heldout()
            n = _apply_limit(len(held["labels"]), limit)
            self.folder, self.images, self.labels = None, held["images"][:n], held["labels"][:n].long()
            return
        self.folder = ImageFolder(data_dir, image_size=image_size, channels=channels, split=split, limit=limit)
        self.images = None
        names = [Path(f).parent.name for f in self.folder.files]
        unknown = sorted(set(names) - set(CATEGORIES))
        if unknown:
            raise DataError(
                f"emoji: {data_dir} has pictures outside the categories ({', '.join(unknown[:3])}); expected the "
                "layout of benchmarks/make_emoji_folder.py: <split>/<style>/<category>/<codepoints>.png"
            )
        self.labels = torch.tensor([CATEGORIES.index(c) for c in names])
        self.summary = self.folder.summary

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self.folder is not None:
            return self.folder[i]
        x = self.images[i].float().div(255)
        if self.channels == 1:
            x = (x * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True)
        return x

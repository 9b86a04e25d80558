"""The colour emoji set in memory, for the benchmarks: the pictures of folders written by make_emoji_folder.py,
decoded by :class:`bavae.data.ImageFolder` exactly as `bavae train --dataset folder` decodes them, with the labels
the layout gives (OUT/<split>/<style>/<category>/<codepoints>.png)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from bavae.data import ImageFolder
from bavae.eval import EMOJI_CATEGORIES


@dataclass
class EmojiSet:
    images: torch.Tensor  # (N, 3, 64, 64) uint8
    labels: torch.Tensor  # (N,) index into EMOJI_CATEGORIES
    styles: list[str]  # per picture
    emoji: list[str]  # per picture: the code points (the file's stem)

    def floats(self, index=slice(None)) -> torch.Tensor:
        return self.images[index].float().div(255)

    def of_style(self, style: str) -> torch.Tensor:
        return torch.tensor([s == style for s in self.styles])


def load(folders: str | list[str], split: str, image_size: int = 64) -> EmojiSet:
    """Every picture of ``split`` under each folder (comma-separated or a list), in the folders' sorted order."""
    if isinstance(folders, str):
        folders = [f for f in folders.split(",") if f]
    images, labels, styles, emoji = [], [], [], []
    for folder in folders:
        ds = ImageFolder(folder, image_size=image_size, channels=3, split=split)
        for i, f in enumerate(ds.files):
            images.append(ds[i].mul(255).round().to(torch.uint8))
            labels.append(EMOJI_CATEGORIES.index(Path(f).parent.name))
            styles.append(Path(f).parent.parent.name)
            emoji.append(Path(f).stem)
    return EmojiSet(torch.stack(images), torch.tensor(labels), styles, emoji)

"""Write the colour emoji set: several artists' styles of the same emoji, 64x64 RGB on white, as an image folder
for `bavae train --dataset folder` (the bavae-emoji64 model) and for the colour evaluator.

    npm pack emoji-datasource-google@16.0.0 emoji-datasource-twitter@16.0.0 fluentui-emoji@1.3.0  # into PACKS
    apt-get install -y librsvg2-bin unicode-data         # rsvg-convert for Fluent's SVGs; CLDR names for matching
    python benchmarks/make_emoji_folder.py --packs PACKS --out data/emoji                      # training styles
    python benchmarks/make_emoji_folder.py --packs PACKS --out data/emoji-flat --styles fluent-flat   # held out

Styles (``--styles``, comma-separated):

* ``noto``: Google's Noto Color Emoji, the 64 px PNGs of npm ``emoji-datasource-google`` (Apache-2.0);
* ``twemoji``: Twitter's Twemoji, the 64 px PNGs of npm ``emoji-datasource-twitter`` (CC-BY 4.0: "Twemoji by
  Twitter, Inc and other contributors, https://github.com/twitter/twemoji, CC-BY 4.0");
* ``fluent-modern`` and ``fluent-flat``: Microsoft's Fluent Emoji, the SVGs of npm ``fluentui-emoji`` (MIT),
  rendered at 64x64 by ``rsvg-convert``; Fluent has no flags, and its files are matched to emoji by their CLDR
  names (Unicode's emoji-test.txt), so about 1,500 of the 1,906 emoji have a Fluent picture;
* ``noto-font``: the Noto Color Emoji font (Debian's fonts-noto-color-emoji) drawn by Pillow at its bitmap size
  and downscaled: the same artwork as ``noto``, so not in the default set.

Every picture is composited on white and written as OUT/<split>/<style>/<category>/<codepoints>.png, the category
being emoji.json's (smileys-emotion, animals-nature, ...: the evaluator's labels). The split is by *emoji*: every
tenth emoji of each category (in Unicode's order) is in test/ for every style, so a held-out emoji is not seen in
another artist's version either. The output is deterministic: the same packages give the same bytes.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

PACKAGES = {
    "noto": "emoji-datasource-google-16.0.0.tgz",
    "twemoji": "emoji-datasource-twitter-16.0.0.tgz",
    "fluent-modern": "fluentui-emoji-1.3.0.tgz",
    "fluent-flat": "fluentui-emoji-1.3.0.tgz",
}
DEFAULT_STYLES = ("noto", "twemoji", "fluent-modern")  # the training styles: fluent-flat is held out whole
LICENSES = {
    "noto": "Apache-2.0 (Google Noto Color Emoji)",
    "twemoji": "CC-BY 4.0 (Twemoji by Twitter, Inc and other contributors)",
    "fluent-modern": "MIT (Microsoft Fluent Emoji)",
    "fluent-flat": "MIT (Microsoft Fluent Emoji)",
    "noto-font": "Apache-2.0 images, SIL OFL 1.1 font (Google Noto Color Emoji)",
}
EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
NOTO_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
SIZE = 64


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("\u2019", "")).strip("-")


def cldr_names(path: Path) -> dict[str, str]:
    """Code points ('1f600', '1f44d-1f3fb') -> CLDR short name, from Unicode's emoji-test.txt."""
    names = {}
    pattern = re.compile(r"^([0-9A-F ]+?)\s*;\s*(?:fully|minimally)-qualified\s*#\s*\S+\s+E[\d.]+\s+(.*)$")
    for line in path.read_text(encoding="utf-8").splitlines():
        m = pattern.match(line)
        if m:
            names.setdefault(m.group(1).replace(" ", "-").lower(), m.group(2))
    return names


def read_emoji(pack: tarfile.TarFile) -> list[dict]:
    """The base emoji of emoji.json (no skin-tone variants, no 'Component'), in Unicode's order."""
    emoji = json.load(pack.extractfile("package/emoji.json"))
    emoji = [e for e in emoji if e["category"] != "Component"]
    return sorted(emoji, key=lambda e: e["sort_order"])


def test_split(emoji: list[dict], every: int) -> set[str]:
    """Every ``every``-th emoji of each category, by Unicode's order: these are held out in every style."""
    seen: Counter = Counter()
    held = set()
    for e in emoji:
        if seen[e["category"]] % every == every - 1:
            held.add(e["unified"])
        seen[e["category"]] += 1
    return held


def on_white(png: bytes):
    from PIL import Image

    rgba = Image.open(io.BytesIO(png)).convert("RGBA")
    if rgba.size != (SIZE, SIZE):
        rgba = rgba.resize((SIZE, SIZE), Image.LANCZOS)
    canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    canvas.alpha_composite(rgba)
    return canvas.convert("RGB")


class Style:
    """Pictures of one style: ``picture(emoji)`` is PNG bytes, or None where the style has no picture of it."""

    def __init__(self, name: str, packs: Path) -> None:
        self.name = name
        self.pack = tarfile.open(packs / PACKAGES[name]) if name in PACKAGES else None
        if self.pack is not None:
            self.members = {m.name: m for m in self.pack.getmembers() if m.isfile()}
        if name.startswith("fluent"):
            self.names = cldr_names(EMOJI_TEST)
            self.folder = "package/icons/" + name.split("-", 1)[1] + "/"
        if name == "noto-font":
            from PIL import ImageFont

            self.font = ImageFont.truetype(str(NOTO_FONT), 109)  # the only size of the font's colour bitmaps

    def _member(self, path: str) -> bytes | None:
        m = self.members.get(path)
        return None if m is None else self.pack.extractfile(m).read()

    def picture(self, e: dict) -> bytes | None:
        if self.name in ("noto", "twemoji"):
            style = {"noto": "google", "twemoji": "twitter"}[self.name]
            if not e[f"has_img_{style}"]:
                return None
            return self._member(f"package/img/{style}/64/{e['image']}")
        if self.name.startswith("fluent"):
            return self._fluent(e)
        return self._font(e)

    def _fluent(self, e: dict) -> bytes | None:
        codes = [e["unified"].lower(), e["unified"].lower() + "-fe0f", (e.get("non_qualified") or "").lower()]
        name = next((self.names[c] for c in codes if c in self.names), None)
        if name is None:
            return None
        for candidate in (slug(name), slug(name) + "-default"):  # people come as -default plus skin tones
            svg = self._member(self.folder + candidate + ".svg")
            if svg is not None:
                return subprocess.run(
                    ["rsvg-convert", "-w", str(SIZE), "-h", str(SIZE)], input=svg, capture_output=True, check=True
                ).stdout
        return None

    def _font(self, e: dict) -> bytes | None:
        from PIL import Image, ImageDraw

        text = "".join(chr(int(c, 16)) for c in e["unified"].split("-"))
        left, top, right, bottom = ImageDraw.Draw(Image.new("RGBA", (1, 1))).textbbox(
            (0, 0), text, font=self.font, embedded_color=True
        )
        w, h = right - left, bottom - top
        if w <= 0 or h <= 0 or w > 2 * 136:  # not drawn, or drawn as separate glyphs (no ligature)
            return None
        side = max(w, h)
        glyph = Image.new("RGBA", (side, side), (255, 255, 255, 0))
        ImageDraw.Draw(glyph).text(((side - w) // 2 - left, (side - h) // 2 - top), text, font=self.font,
                                   embedded_color=True)  # fmt: skip
        out = io.BytesIO()
        glyph.resize((SIZE, SIZE), Image.LANCZOS).save(out, format="PNG")
        return out.getvalue()


def bundle_heldout(out: Path, folder: Path) -> None:
    """The test split of an emoji folder as one uint8 safetensors file (sha256 printed for bavae.data.emoji)."""
    import torch
    from safetensors.torch import save_file

    from bavae.data import EMOJI_CATEGORIES, ImageFolder
    from bavae.files import atomic_write, sha256_file

    ds = ImageFolder(out, image_size=SIZE, channels=3, split="test")
    images = torch.stack([ds[i].mul(255).round().to(torch.uint8) for i in range(len(ds))])
    labels = torch.tensor([EMOJI_CATEGORIES.index(Path(f).parent.name) for f in ds.files], dtype=torch.int64)
    styles = sorted({Path(f).parent.parent.name for f in ds.files})
    style = torch.tensor([styles.index(Path(f).parent.parent.name) for f in ds.files], dtype=torch.int64)
    meta = {"styles": ",".join(styles), "emoji": ",".join(Path(f).stem for f in ds.files)}
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {"images": images, "labels": labels, "styles": style}
    atomic_write(folder / "heldout.safetensors", lambda t: save_file(tensors, t, metadata=meta))
    counts = ", ".join(f"{s} {int((style == i).sum())}" for i, s in enumerate(styles))
    card = f"""# emoji-heldout

The held-out test pictures of the colour emoji set (`bavae.data.Emoji`, split "test" without a folder): every
training style's version of the {len(set(meta["emoji"].split(",")))} emoji held out of training ({counts};
{len(images)} pictures, 64x64 RGB on white, uint8), labelled by emoji.json's category. `bavae eval` scores
bavae-emoji64 on them, so its colour metrics need no download.

Written by `python benchmarks/make_emoji_folder.py --out {out} --bundle-heldout {folder}` from the npm packages
emoji-datasource-google@16.0.0 (Noto Color Emoji, Apache-2.0), emoji-datasource-twitter@16.0.0 (Twemoji, CC-BY 4.0:
Twemoji by Twitter, Inc and other contributors, https://github.com/twitter/twemoji) and fluentui-emoji@1.3.0
(Microsoft Fluent Emoji, MIT).
"""
    atomic_write(folder / "README.md", lambda t: Path(t).write_text(card))
    print(f"wrote {folder / 'heldout.safetensors'} ({counts}); sha256 {sha256_file(folder / 'heldout.safetensors')}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--packs", required=True, type=Path, help="folder holding the npm tarballs (npm pack ...)")
    p.add_argument("--out", required=True, type=Path, help="folder to write (train/ and test/ inside)")
    p.add_argument("--styles", default=",".join(DEFAULT_STYLES), help="comma-separated, of: " + ", ".join(LICENSES))
    p.add_argument("--test-every", type=int, default=10, help="every N-th emoji of a category goes to test/")
    p.add_argument(
        "--bundle-heldout",
        metavar="DIR",
        default=None,
        help="also write OUT's test pictures as DIR/heldout.safetensors (bavae's weights/emoji-heldout) and stop",
    )
    args = p.parse_args()
    if args.bundle_heldout:
        return bundle_heldout(args.out, Path(args.bundle_heldout))
    from tqdm import tqdm

    styles = [s.strip() for s in args.styles.split(",") if s.strip()]
    unknown = [s for s in styles if s not in LICENSES]
    if unknown:
        sys.exit(f"unknown style(s) {unknown}; known: {', '.join(LICENSES)}")
    needed = {PACKAGES["noto"]} | {PACKAGES[s] for s in styles if s in PACKAGES}
    missing = [f for f in sorted(needed) if not (args.packs / f).is_file()]
    if missing:
        sys.exit(f"missing in {args.packs}: {', '.join(missing)} (npm pack NAME@VERSION fetches each)")
    if any(s.startswith("fluent") for s in styles) and not EMOJI_TEST.is_file():
        sys.exit(f"{EMOJI_TEST} is missing: apt-get install -y unicode-data")

    with tarfile.open(args.packs / PACKAGES["noto"]) as index:
        emoji = read_emoji(index)  # the same emoji list (and split) for every style
    held_out = test_split(emoji, args.test_every)
    counts: Counter = Counter()
    for name in styles:
        style = Style(name, args.packs)
        for e in tqdm(emoji, desc=name, unit="emoji"):
            png = style.picture(e)
            if png is None:
                continue
            split = "test" if e["unified"] in held_out else "train"
            folder = args.out / split / name / slug(e["category"])
            folder.mkdir(parents=True, exist_ok=True)
            on_white(png).save(folder / f"{e['unified'].lower()}.png", optimize=True)
            counts[name, split] += 1
    for name in styles:
        print(f"{name}: {counts[name, 'train']} train, {counts[name, 'test']} test ({LICENSES[name]})")
    print(f"{len(emoji)} emoji, {len(held_out)} held out in every style; wrote {sum(counts.values())} pictures")


if __name__ == "__main__":
    main()

"""Render Noto Color Emoji into an image folder for `bavae train --dataset folder` (the bavae-emoji64 model).

    apt-get install -y fonts-noto-color-emoji unicode-data
    python benchmarks/make_emoji_folder.py --out data/emoji

Every fully-qualified emoji of Unicode's emoji-test.txt (skin-tone variants left out: they would be near-copies)
that the font draws is rendered at the font's bitmap size (109 px) in colour, composited on white and centred on
a square canvas, then saved as PNG under OUT/<split>/<group>/<codepoints>.png. Unicode's groups (smileys, animals,
food, ...) are the subfolders, so they can serve as labels. Every tenth glyph of each group goes to the test split.

Licences: the images are Noto Color Emoji's (Apache-2.0; the font file itself is SIL OFL 1.1); emoji-test.txt is
Unicode data (Unicode licence). The output is deterministic: the same packages give the same files.
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
SKIN_TONES = {0x1F3FB, 0x1F3FC, 0x1F3FD, 0x1F3FE, 0x1F3FF}
SKIPPED_GROUPS = {"Component"}  # skin tones and hair styles on their own


def read_emoji(path: Path) -> list[tuple[str, list[int]]]:
    """(group, code points) of every fully-qualified emoji without a skin-tone modifier, in file order."""
    out, group = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
            continue
        m = re.match(r"^([0-9A-F ]+?)\s*;\s*fully-qualified\s*#", line)
        if m and group not in SKIPPED_GROUPS:
            points = [int(p, 16) for p in m.group(1).split()]
            if not SKIN_TONES & set(points):
                out.append((group, points))
    return out


def slug(group: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", group.lower()).strip("-")


def render(font, text: str):
    """The glyph in colour on white, centred on a square canvas; None if the font has no colour glyph for it."""
    from PIL import Image, ImageDraw

    left, top, right, bottom = ImageDraw.Draw(Image.new("RGBA", (1, 1))).textbbox(
        (0, 0), text, font=font, embedded_color=True
    )
    w, h = right - left, bottom - top
    if w <= 0 or h <= 0 or w > 2 * 136:  # not drawn, or drawn as a row of separate glyphs (no ligature)
        return None
    glyph = Image.new("RGBA", (w, h), (255, 255, 255, 0))
    ImageDraw.Draw(glyph).text((-left, -top), text, font=font, embedded_color=True)
    if glyph.getextrema()[3][1] == 0:  # fully transparent
        return None
    side = max(w, h)
    canvas = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    canvas.alpha_composite(glyph, ((side - w) // 2, (side - h) // 2))
    return canvas.convert("RGB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder to write (train/ and test/ inside)")
    p.add_argument("--test-every", type=int, default=10, help="every N-th glyph of a group goes to test/")
    args = p.parse_args()
    from PIL import ImageFont

    for f in (FONT, EMOJI_TEST):
        if not f.is_file():
            raise SystemExit(f"{f} is missing: apt-get install -y fonts-noto-color-emoji unicode-data")
    font = ImageFont.truetype(str(FONT), 109)  # the only size of the font's colour bitmaps
    counts: dict[str, int] = defaultdict(int)
    written = skipped = 0
    for group, points in read_emoji(EMOJI_TEST):
        image = render(font, "".join(map(chr, points)))
        if image is None:
            skipped += 1
            continue
        split = "test" if counts[group] % args.test_every == args.test_every - 1 else "train"
        counts[group] += 1
        folder = Path(args.out) / split / slug(group)
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / ("-".join(f"{c:x}" for c in points) + ".png"), optimize=True)
        written += 1
    print(
        f"wrote {written} glyphs to {args.out} ({skipped} not drawn by the font); per group: "
        + ", ".join(f"{g} {n}" for g, n in counts.items())
    )


if __name__ == "__main__":
    main()

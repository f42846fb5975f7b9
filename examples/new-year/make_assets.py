"""Paints the demo's keyframes and writes its music, so the example ships only what we made ourselves.

Run: .venv/bin/python examples/new-year/make_assets.py   (the outputs are committed beside it)
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).parent
W, H = 1280, 720


def ridge(rng: np.random.Generator, width: int, base: float, amp: float, octaves: int = 6) -> np.ndarray:
    """A mountain ridge line: summed sine octaves with random phases (fractal-ish)."""
    x = np.linspace(0, 1, width)
    y = np.full(width, base)
    for o in range(octaves):
        f = 2**o * rng.uniform(0.8, 1.2)
        y += amp / (1.6**o) * np.sin(2 * np.pi * (f * x * 1.5 + rng.uniform(0, 1)))
    return y


def ink_landscape(seed: int = 3, dusk: bool = True) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy = np.linspace(0, 1, H)[:, None, None]
    top = np.array([70, 84, 104]) if dusk else np.array([12, 16, 30])
    bottom = np.array([196, 190, 178]) if dusk else np.array([40, 44, 62])
    img = (top * (1 - yy) + bottom * yy) * np.ones((1, W, 1))  # (H, W, 3) sky gradient
    # A pale moon with a soft halo.
    cy, cx = 0.22 * H, 0.74 * W
    r = np.hypot(np.arange(H)[:, None] - cy, np.arange(W)[None, :] - cx)
    img += (np.clip(1 - r / 48, 0, 1) ** 0.3 * 60 + np.exp(-r / 140) * 25)[..., None] * np.array([1, 1, 0.95])
    # Mountain layers, far (pale) to near (dark ink), each with a misty fade at its foot.
    rows = np.arange(H)[:, None]
    for base, amp, ink in [(0.42, 0.06, 150), (0.52, 0.07, 110), (0.62, 0.05, 70)]:
        line = ridge(rng, W, base, amp) * H
        body = rows >= line[None, :]
        depth = np.clip((rows - line[None, :]) / (0.25 * H), 0, 1)
        shade = ink + (200 - ink) * depth * 0.7  # mist rises from the valley
        tone = np.stack([shade * 0.92, shade * 0.97, shade * 1.05], axis=-1)
        img = np.where(body[..., None], tone, img)
    # The frozen river: a pale band with ink streaks.
    river_top = int(0.78 * H)
    ice = np.array([205, 212, 218]) - rng.normal(0, 6, (H - river_top, W, 1))
    streaks = (np.sin(np.linspace(0, 90, W))[None, :] * rng.normal(0, 1, (H - river_top, 1)) > 1.6)[..., None]
    img[river_top:] = np.where(streaks, ice - 40, ice)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    # Two small figures on the ice (ink strokes).
    for fx, scale in ((0.40, 1.0), (0.45, 0.9)):
        x0, y0 = int(fx * W), int(0.86 * H)
        h = int(70 * scale)
        draw.ellipse([x0 - 7, y0 - h - 14, x0 + 7, y0 - h], fill=(30, 32, 40))
        draw.polygon([(x0 - 14, y0), (x0 + 14, y0), (x0 + 8, y0 - h), (x0 - 8, y0 - h)], fill=(34, 36, 46))
    # Paper grain and a slight blur, as ink on rice paper.
    out = out.filter(ImageFilter.GaussianBlur(1.2))
    grain = rng.normal(0, 5, (H, W, 1))
    return Image.fromarray(np.clip(np.asarray(out, float) + grain, 0, 255).astype(np.uint8))


def portrait(seed: int = 5) -> Image.Image:
    """OLD JIA's reference: an ink sketch of a man in a padded coat holding a thermos."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (W, H), (206, 200, 186))
    d = ImageDraw.Draw(img)
    cx = W // 2
    d.ellipse([cx - 90, 140, cx + 90, 340], fill=(70, 66, 64))  # head
    d.rectangle([cx - 60, 150, cx + 60, 190], fill=(40, 38, 40))  # fur hat
    d.polygon([(cx - 260, H), (cx + 260, H), (cx + 150, 330), (cx - 150, 330)], fill=(52, 60, 78))  # coat
    d.rounded_rectangle([cx + 120, 400, cx + 190, 600], radius=20, fill=(150, 40, 36))  # red thermos
    arr = np.asarray(img.filter(ImageFilter.GaussianBlur(2)), float) + rng.normal(0, 5, (H, W, 1))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def young_portrait(seed: int = 7) -> Image.Image:
    """XIAO LI's reference: an ink sketch of a young man, bare-headed, in a red scarf."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (W, H), (196, 204, 210))
    d = ImageDraw.Draw(img)
    cx = W // 2
    d.ellipse([cx - 80, 150, cx + 80, 330], fill=(96, 84, 76))  # head
    d.chord([cx - 84, 140, cx + 84, 260], 180, 360, fill=(28, 26, 30))  # short black hair
    d.polygon([(cx - 230, H), (cx + 230, H), (cx + 130, 340), (cx - 130, 340)], fill=(62, 66, 74))  # jacket
    d.rounded_rectangle([cx - 120, 320, cx + 120, 380], radius=24, fill=(176, 36, 34))  # red scarf
    d.polygon(
        [(cx + 40, 360), (cx + 100, 360), (cx + 90, 520), (cx + 50, 520)], fill=(176, 36, 34)
    )  # its tail
    arr = np.asarray(img.filter(ImageFilter.GaussianBlur(2)), float) + rng.normal(0, 5, (H, W, 1))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def music(path: Path, seconds: float = 16.0, rate: int = 48000) -> None:
    """A slow pentatonic melody over a drone, encoded as AAC in .m4a."""
    t = np.arange(int(seconds * rate)) / rate
    drone = 0.12 * np.sin(2 * np.pi * 110 * t) + 0.06 * np.sin(2 * np.pi * 165 * t)
    notes = [440, 494, 587, 659, 784, 659, 587, 494]  # A pentatonic
    melody = np.zeros_like(t)
    beat = 1.0
    for i, f in enumerate(notes * int(seconds // (beat * len(notes)) + 1)):
        start = int(i * beat * rate)
        if start >= t.size:
            break
        n = min(int(beat * rate), t.size - start)
        tt = np.arange(n) / rate
        melody[start : start + n] += 0.18 * np.sin(2 * np.pi * f * tt) * np.exp(-2.5 * tt)
    mono = (drone + melody).astype(np.float32)
    stereo = np.stack([mono, mono])  # (2, N) planar
    with av.open(str(path), "w", format="ipod") as container:
        stream = container.add_stream("aac", rate=rate, layout="stereo")
        frame_size = 1024
        for i in range(0, mono.size, frame_size):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(stereo[:, i : i + frame_size]), format="fltp", layout="stereo"
            )
            frame.sample_rate = rate
            frame.pts = i
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


if __name__ == "__main__":
    ink_landscape(seed=3).save(HERE / "river-dusk.png", optimize=True)
    ink_landscape(seed=11, dusk=False).save(HERE / "river-night.png", optimize=True)
    portrait().save(HERE / "old-jia.png", optimize=True)
    young_portrait().save(HERE / "xiao-li.png", optimize=True)
    music(HERE / "theme.m4a")
    print("wrote", *(p.name for p in sorted(HERE.glob("*.png"))), "theme.m4a")

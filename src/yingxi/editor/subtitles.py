"""Subtitles: one per spoken line, written as SRT beside the film or burnt into the frames."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from yingxi.media.files import replaced_when_done
from yingxi.media.fonts import draw_text, font_for, wrap_text


@dataclass(frozen=True)
class Subtitle:
    start: float  # seconds from the film's start
    end: float
    text: str


def subtitle_text(character: str, line: str) -> str:
    """ "OLD JIA: Happy new year." (the speaker's name in capitals, as screenplays write it)."""
    if not character:
        return line.strip()
    colon = "：" if any("\u4e00" <= ch <= "\u9fff" for ch in character) else ": "  # full-width after Chinese
    return f"{character.upper()}{colon}{line.strip()}"


def srt_timestamp(seconds: float) -> str:
    """00:00:01,250 (hours:minutes:seconds,milliseconds), rounded to the millisecond."""
    ms = max(0, int(round(seconds * 1000)))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def _srt_lines(text: str) -> str:
    """The text's non-blank lines: in SRT a blank line ends the block, so one inside a line (a YAML block
    scalar can hold one) would cut the subtitle short and leave the rest as a malformed block."""
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def srt_text(subtitles: Iterable[Subtitle]) -> str:
    blocks = [
        f"{i}\n{srt_timestamp(sub.start)} --> {srt_timestamp(sub.end)}\n{_srt_lines(sub.text)}\n"
        for i, sub in enumerate(subtitles, start=1)
    ]
    return "\n".join(blocks)


def write_srt(subtitles: Iterable[Subtitle], path: str | Path) -> Path:
    """Write an SRT file atomically (temp file, then os.replace)."""
    path = Path(path)
    with replaced_when_done(path) as tmp:
        tmp.write_text(srt_text(subtitles), encoding="utf-8")
    return path


class SubtitleOverlay:
    """Draws subtitles onto frames of one size; each text is rendered once and blended with numpy after."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        # Font px: 5% of the shorter side, legible at 480p and not shouting at 1080p; a portrait frame gets
        # the size of its landscape twin (5% of its height would fill a third of a 9:16 frame).
        self.size = max(10, round(min(width, height) * 0.05))
        self._cache: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}

    def _render(self, text: str) -> tuple[int, np.ndarray, np.ndarray]:
        """(top row, rgb float32 (h, W, 3), alpha float32 (h, W, 1)) of the band holding the text."""
        font = font_for(text, self.size)
        lines = wrap_text(text, font, 0.9 * self.width) or [""]
        stroke = max(1, self.size // 12)
        line_h = round(self.size * 1.25)
        pad = max(2, round(self.size * 0.3))
        band_h = min(self.height, line_h * len(lines) + 2 * pad)
        top = max(0, self.height - round(0.06 * self.height) - band_h)
        band = Image.new("RGBA", (self.width, band_h), (0, 0, 0, 0))
        draw = ImageDraw.Draw(band)
        widths = [font.getlength(line) for line in lines]
        box_w = min(self.width, max(widths) + 2 * pad)
        left = (self.width - box_w) / 2
        draw.rectangle((left, 0, left + box_w, band_h), fill=(0, 0, 0, 150))  # dark box: legible on white
        for k, (line, w) in enumerate(zip(lines, widths, strict=True)):
            xy = ((self.width - w) / 2, pad + k * line_h)
            draw_text(
                draw,
                xy,
                line,
                font,
                fill=(255, 255, 255, 255),
                stroke_width=stroke,
                stroke_fill=(0, 0, 0, 255),
            )
        rgba = np.asarray(band, dtype=np.float32)  # (h, W, 4)
        return top, rgba[..., :3], rgba[..., 3:] / 255.0

    def draw(self, frame: np.ndarray, text: str) -> np.ndarray:
        """A copy of `frame` (uint8 (H, W, 3)) with `text` bottom-centred on it."""
        if text not in self._cache:
            self._cache[text] = self._render(text)
        top, rgb, alpha = self._cache[text]
        out = frame.copy()
        region = out[top : top + rgb.shape[0]].astype(np.float32)
        out[top : top + rgb.shape[0]] = np.rint(region * (1.0 - alpha) + rgb * alpha).astype(np.uint8)
        return out


def active_subtitle(subtitles: list[Subtitle], seconds: float) -> Subtitle | None:
    for sub in subtitles:
        if sub.start <= seconds < sub.end:
            return sub
    return None


def burn_subtitles(
    frames: Iterable[np.ndarray], subtitles: list[Subtitle], fps: float
) -> Iterator[np.ndarray]:
    """Frames with the subtitle active at each frame's time (k / fps) drawn on; others pass unchanged."""
    overlay: SubtitleOverlay | None = None
    for k, frame in enumerate(frames):
        sub = active_subtitle(subtitles, k / fps)
        if sub is None:
            yield frame
            continue
        if overlay is None or (overlay.width, overlay.height) != (frame.shape[1], frame.shape[0]):
            overlay = SubtitleOverlay(frame.shape[1], frame.shape[0])
        yield overlay.draw(frame, sub.text)

"""SRT text and timestamps, and subtitles burnt into the frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import ImageFont

from yingxi.backends.base import Clip
from yingxi.director.plan import plan
from yingxi.editor import Subtitle, assemble, burn_subtitles, srt_text, write_srt
from yingxi.editor.dialogue import DialogueTake
from yingxi.editor.subtitles import SubtitleOverlay, srt_timestamp, subtitle_text
from yingxi.film.model import SIZES, DialogueLine, Film, Shot
from yingxi.media.fonts import wrap_text

FPS = 12
BACKGROUND = (30, 60, 90)


def test_timestamps():
    assert srt_timestamp(1.25) == "00:00:01,250"
    assert srt_timestamp(3723.5) == "01:02:03,500"
    assert srt_timestamp(0.0004) == "00:00:00,000" and srt_timestamp(59.9996) == "00:01:00,000"


def test_srt_content_exact(tmp_path: Path):
    subs = [Subtitle(1.25, 2.5, "OLD JIA: Happy new year."), Subtitle(3.0, 4.125, "MEI: Thank you.")]
    expected = (
        "1\n00:00:01,250 --> 00:00:02,500\nOLD JIA: Happy new year.\n\n"
        "2\n00:00:03,000 --> 00:00:04,125\nMEI: Thank you.\n"
    )
    assert srt_text(subs) == expected
    path = write_srt(subs, tmp_path / "film.srt")
    assert path.read_text(encoding="utf-8") == expected
    assert [p.name for p in tmp_path.iterdir()] == ["film.srt"]  # no temp file left behind
    assert subtitle_text("Old Jia", " Happy new year. ") == "OLD JIA: Happy new year."


def test_cut_subtitles_follow_the_placed_lines(tmp_path: Path):
    film = Film(
        shots=(
            Shot("a", duration=2.0),
            Shot("b", duration=4.0, dialogue=(DialogueLine("Old Jia", "a"), DialogueLine("Mei", "b"))),
        ),
        fps=FPS,
        resolution="480p",
    )
    takes = [[], [take("Old Jia", "Happy new year.", 1.0), take("Mei", "Thank you.", 0.5)]]
    cut = cut_for(film, takes)
    assert srt_text(cut.subtitles) == (
        "1\n00:00:02,300 --> 00:00:03,300\nOLD JIA: Happy new year.\n\n"
        "2\n00:00:03,550 --> 00:00:04,383\nMEI: Thank you.\n"  # 0.5 s of speech, shown 5/6 s
    )


def test_short_lines_stay_up_long_enough_to_read_but_never_overlap_or_leave_their_shot():
    film = Film(
        shots=(
            Shot("a", duration=1.45, dialogue=(DialogueLine("Bo", "a"), DialogueLine("Mei", "b"))),
            Shot("b", duration=1.0, dialogue=(DialogueLine("Bo", "c"),)),
        ),
        fps=20,
        resolution="480p",
    )
    # Shot a: lines at 0.3 s and 0.3 + 0.2 + 0.25 = 0.75 s; shot b (from 1.45 s): a line at 1.75 s.
    takes = [[take("Bo", "Yes.", 0.2), take("Mei", "No.", 0.3)], [take("Bo", "Go.", 0.4)]]
    subs = cut_for(film, takes).subtitles
    assert [(round(s.start, 3), round(s.end, 3)) for s in subs] == [
        (0.3, 0.75),  # held until the next line starts (5/6 s would overlap it)
        (0.75, 1.45),  # held to the end of its shot, not into the next
        (1.75, 2.45),  # likewise: 0.7 s left in the shot
    ]


def take(character: str, text: str, seconds: float) -> DialogueTake:
    return DialogueTake(character, text, "en-us", np.zeros(round(seconds * 48000), np.float32), seconds)


def cut_for(film: Film, takes, burn: bool = False):
    plans = plan(film)
    clips = [
        Clip(np.broadcast_to(np.array(BACKGROUND, np.uint8), (p.num_frames, 480, 864, 3)), FPS) for p in plans
    ]
    return assemble(film, plans, clips, takes, burn_subtitles=burn)


def test_burn_in_changes_only_the_bottom_while_a_subtitle_is_active():
    film = Film(
        shots=(Shot("a", duration=3.0, dialogue=(DialogueLine("Mei", "x"),)),), fps=FPS, resolution="480p"
    )
    takes = [[take("Mei", "Happy new year, grandpa!", 1.0)]]  # placed at 0.3 s .. 1.3 s: frames 4..15
    plain, burnt = cut_for(film, takes), cut_for(film, takes, burn=True)
    for k, (p, b) in enumerate(zip(plain.iter_frames(), burnt.iter_frames(), strict=True)):
        active = 0.3 <= k / FPS < 1.3
        changed = np.any(p != b, axis=2)  # (H, W)
        if not active:
            assert not changed.any(), f"frame {k} changed without a subtitle"
            continue
        rows = np.flatnonzero(changed.any(axis=1))
        assert rows.min() >= 480 * 0.75, f"frame {k}: subtitle reaches row {rows.min()}"
        assert changed.sum() > 2000  # a readable line of text, not a speck
        # White text with a dark outline: both near-white and darker-than-background pixels appear.
        assert (b[changed] > 230).all(axis=1).sum() > 300 and (b[changed] < 20).all(axis=1).sum() > 100


def test_burn_subtitles_on_any_frame_stream():
    frames = [np.full((96, 128, 3), 128, np.uint8) for _ in range(4)]
    out = list(burn_subtitles(iter(frames), [Subtitle(0.25, 0.5, "HI")], fps=4))
    assert [np.array_equal(a, b) for a, b in zip(frames, out, strict=True)] == [True, False, True, True]
    assert np.any(out[1][60:] != 128) and np.all(out[1][:60] == 128)


@pytest.mark.parametrize(
    "text", ["A much longer line of dialogue that will certainly need to wrap onto two lines"]
)
def test_long_subtitles_wrap_inside_the_frame(text: str):
    frames = [np.full((480, 864, 3), 128, np.uint8)]
    out = next(burn_subtitles(iter(frames), [Subtitle(0.0, 1.0, text)], fps=12))
    changed_cols = np.flatnonzero(np.any(out != 128, axis=(0, 2)))
    changed_rows = np.flatnonzero(np.any(out != 128, axis=(1, 2)))
    assert changed_cols.min() > 0 and changed_cols.max() < 863  # wrapped, not clipped at the edges
    assert changed_rows.max() - changed_rows.min() > 2 * 24  # two lines of 24 px text


def test_chinese_text_wraps_between_characters_and_uses_a_full_width_colon():
    assert subtitle_text("老贾", "新年快乐！") == "老贾：新年快乐！"
    font = ImageFont.load_default(size=24)
    text = "新年快乐！饺子好了，快来吃吧。今天是除夕，我们一家人终于团聚在一起了，真好啊。" * 2
    lines = wrap_text("老贾：" + text, font, 300)
    assert len(lines) > 1 and "".join(lines) == "老贾：" + text  # nothing lost, no spaces added
    assert all(font.getlength(line) <= 300 for line in lines)
    assert wrap_text("short words stay together", font, 1000) == ["short words stay together"]


@pytest.mark.parametrize("resolution", ["480p", "1080p"])
def test_portrait_subtitles_are_set_like_their_landscape_twin(resolution: str):
    text = subtitle_text(
        "Old Jia", "Happy new year, my old friend. The river froze again, like the winter we met."
    )
    bands = {}
    for ratio in ("16:9", "9:16"):
        w, h = SIZES[resolution][ratio]
        out = next(burn_subtitles(iter([np.full((h, w, 3), 128, np.uint8)]), [Subtitle(0, 1, text)], fps=12))
        rows = np.flatnonzero(np.any(out != 128, axis=(1, 2)))
        bands[ratio] = (rows.max() - rows.min()) / h  # fraction of the frame's height the subtitle covers
        cols = np.flatnonzero(np.any(out != 128, axis=(0, 2)))
        assert cols.min() > 0 and cols.max() < w - 1  # wrapped inside the frame
    assert (
        SubtitleOverlay(*SIZES[resolution]["9:16"]).size == SubtitleOverlay(*SIZES[resolution]["16:9"]).size
    )
    assert bands["16:9"] < 0.2 and bands["9:16"] < 0.2  # was 0.34 of a 9:16 frame (5% of its height per line)


def test_blank_lines_inside_a_subtitle_do_not_break_the_srt():
    subs = [Subtitle(0.0, 1.0, "MEI: first part\n\n  second part\n"), Subtitle(1.5, 2.0, "JIA: next")]
    blocks = srt_text(subs).split("\n\n")  # SRT blocks are separated by exactly one blank line
    assert blocks == ["1\n00:00:00,000 --> 00:00:01,000\nMEI: first part\nsecond part", blocks[1]]
    assert blocks[1] == "2\n00:00:01,500 --> 00:00:02,000\nJIA: next\n"

"""A Chinese prompt rendered end to end and checked on the decoded film: 23.976 fps exactly (average rate
24000/1001, frame count), Mandarin speech of a reading's length, every subtitle glyph drawn (no boxes),
and the closing fade out."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from tests.e2e.helpers import decode
from tests.media.test_media_speech import median_pitch
from yingxi.backends.animatic import AnimaticGenerator
from yingxi.editor.dialogue import trim_silence
from yingxi.editor.subtitles import SubtitleOverlay, subtitle_text
from yingxi.film import parse_prompt
from yingxi.film.model import Character
from yingxi.media.fonts import font_for
from yingxi.media.speech import synthesize_speech, to_pinyin
from yingxi.render import render

LINE = "今年的黄河冰封千里我们又一起过年了真好啊"  # 20 characters
SYMBOLS = "Café ü ß ñ Ç — • ½ € £"
SCRIPT = f"""水墨画风格。
镜头一（2秒，远景，缓慢左摇）：冰封的黄河。
老贾：“{LINE}”
镜头二（2秒、特写、推、叠化、淡出）：烟花。
MEI: "{SYMBOLS}"
"""
SIZE = (480, 270)  # subtitles 14 px high


@pytest.fixture(scope="module")
def film_mp4(tmp_path_factory):
    out = tmp_path_factory.mktemp("zh") / "film.mp4"
    cast = (Character("老贾", description="一位老先生"), Character("MEI", description="a young woman"))
    film = parse_prompt(SCRIPT, fps=Fraction(24000, 1001), custom_size=SIZE, characters=cast)
    result = render(film, AnimaticGenerator(), out, burn_subtitles=True, encoder_preset="veryfast")
    return out, result, decode(out)


def test_the_stream_is_23_976_fps_exactly_with_the_right_frame_count(film_mp4):
    out, result, (frames, _, _, _) = film_mp4
    with av.open(str(out)) as c:
        assert c.streams.video[0].average_rate == Fraction(24000, 1001)
    # The shots grew to fit their lines; the film is round(seconds * 24000/1001) frames.
    seconds = sum(grown(result))
    expected = round(seconds * Fraction(24000, 1001))
    assert frames.shape[0] == result.num_frames == expected
    assert result.duration == pytest.approx(expected * 1001 / 24000)


def test_the_mandarin_line_lasts_as_long_as_its_pinyin_reading(film_mp4):
    _, result, (_, _, audio, rate) = film_mp4
    # The shot grew only as far as the Mandarin line needs (the English letter names took 8.8 s).
    assert "shot 1 grew from 2s to" in result.notes[0]
    pinyin = len(trim_silence(synthesize_speech(to_pinyin(LINE), "cmn-latn-pinyin+m3", sample_rate=48000)))
    pinyin_seconds = pinyin / 48000
    # Voiced span of shot 1's audio (the line sits alone there), measured on the decoded AAC.
    shot1 = grown(result)[0]
    first = np.abs(audio[: int(shot1 * rate)])
    loud = np.flatnonzero(np.convolve(first > 0.01, np.ones(rate // 50), "same") > 0)
    spoken = (loud[-1] - loud[0]) / rate
    assert spoken == pytest.approx(pinyin_seconds, rel=0.25)
    assert 3.75 < spoken < 6.5
    # 老贾 is described as an old gentleman (一位老先生): a male voice, measured on the decoded AAC; MEI, "a
    # young woman", speaks higher.
    mei = audio[int(shot1 * rate) :]
    jia = audio[: int(shot1 * rate)]
    assert median_pitch(jia, rate) < 160 and median_pitch(mei, rate) > 1.3 * median_pitch(jia, rate)


def test_every_subtitle_glyph_is_drawn_on_the_decoded_frame(film_mp4):
    _, result, (frames, _, _, _) = film_mp4
    shot1 = round(grown(result)[0] * 24000 / 1001)
    frame = frames[shot1 + 24].astype(np.float32)  # inside shot 2, while MEI's line is up, before the fade
    text = subtitle_text("MEI", SYMBOLS)
    overlay = SubtitleOverlay(*SIZE)
    black = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    drawn = overlay.draw(black, text).astype(np.float32)
    # The same line with each symbol replaced by a character no font has: the "box" it would have been.
    boxed = SubtitleOverlay(*SIZE).draw(black, "".join(c if c.isascii() else "\ue000" for c in text))
    font = font_for(text, overlay.size)
    left = (SIZE[0] - font.getlength(text)) / 2
    rows = slice(*_text_rows(drawn))
    checked = 0
    for k, ch in enumerate(text):
        if ch.isascii():
            continue
        x0 = int(left + font.getlength(text[:k]))
        x1 = int(np.ceil(left + font.getlength(text[: k + 1])))
        real, box = drawn[rows, x0:x1].mean(axis=2), boxed.astype(np.float32)[rows, x0:x1].mean(axis=2)
        seen = frame[rows, x0:x1].mean(axis=2)
        assert not np.allclose(real, box, atol=30), ch  # the chain draws a glyph unlike the box
        # The film shows the glyph (the subtitle's dark band over a picture: compare edges, not levels).
        assert _corr(seen, real) > _corr(seen, box) and _corr(seen, real) > 0.5, ch
        checked += 1
    assert checked == 10


def test_the_film_fades_out_to_black(film_mp4):
    _, _, (frames, _, audio, rate) = film_mp4
    means = frames.reshape(len(frames), -1).mean(axis=1)
    assert means[-1] < 3 and means[-1] < 0.1 * means[-30]
    assert np.all(np.diff(means[-20:]) <= 1.0)  # getting darker, frame by frame
    assert np.abs(audio[-rate // 100 :]).max() < 0.02  # the sound fades with it


def grown(result) -> list[float]:
    """Each shot's seconds after growing to fit its dialogue (both shots grow in this film)."""
    notes = [n for n in result.notes if "grew from" in n]
    assert len(notes) == 2, result.notes
    return [float(n.split(" to ")[1].split("s ")[0].rstrip("s")) for n in notes]


def _text_rows(img: np.ndarray) -> tuple[int, int]:
    bright = np.flatnonzero((img.mean(axis=2) > 128).any(axis=1))
    return int(bright[0]), int(bright[-1]) + 1


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (np.sqrt((a * a).sum() * (b * b).sum()) + 1e-9))


def test_29_97_fps_end_to_end_frame_counts_and_time_base(tmp_path):
    from yingxi.director.plan import plan
    from yingxi.media.video import read_video, write_mp4

    film = parse_prompt("\n".join(f"Shot {k} (1s): x" for k in range(1, 61)), fps=Fraction(30000, 1001))
    frames = [p.num_frames for p in plan(film)]
    # Sixty 1 s shots at 29.97 fps are 1798 frames (round(60 * 29.97)), not 60 x 30 = 1800: each cut lands
    # on the frame nearest its time, so a 29-frame shot comes now and then.
    assert sum(frames) == 1798 and frames.count(29) == 2 and frames[:10] == [30] * 10
    out = tmp_path / "ntsc.mp4"
    write_mp4(out, (np.full((32, 48, 3), 40 * k, np.uint8) for k in range(6)), fps=Fraction(30000, 1001),
              width=48, height=32)  # fmt: skip
    with av.open(str(out)) as c:
        assert c.streams.video[0].average_rate == Fraction(30000, 1001)
    info = read_video(out)
    assert info.num_frames == 6 and info.duration == pytest.approx(6 * 1001 / 30000, abs=1e-6)


def test_the_cli_takes_fps_23_976(capsys):
    import json

    from yingxi.cli import main

    assert main(["plan", "镜头一（4秒，远景，推）：冰河。", "--fps", "23.976", "--json"]) == 0
    shot = json.loads(capsys.readouterr().out)["shots"][0]
    assert (
        shot["frames"] == 96 and shot["fps"] == pytest.approx(24000 / 1001) and shot["camera"] == "dolly in"
    )
    assert main(["plan", "镜头一（4秒）：冰河。", "--fps", "23.9"]) == 2
    err = capsys.readouterr().err
    assert "--fps" in err and "23.976" in err


@pytest.mark.parametrize("ch", list("éüßñÇ—•½€£新"))
def test_title_cards_draw_every_glyph_not_the_box(ch):
    from yingxi.backends.animatic_card import title_card

    card = title_card(320, 180, ch, seed=3).astype(np.float32)
    boxed = title_card(320, 180, "\ue000", seed=3).astype(np.float32)  # the missing-glyph box, same card
    plain = title_card(320, 180, " ", seed=3).astype(np.float32)
    glyph, box = np.abs(card - plain).mean(axis=2) > 40, np.abs(boxed - plain).mean(axis=2) > 40
    assert glyph.sum() > 20 and (glyph != box).sum() > 0.3 * max(glyph.sum(), box.sum()), ch

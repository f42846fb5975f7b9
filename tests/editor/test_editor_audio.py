"""The cut's sound track: dialogue where it is placed, silence elsewhere, music ducked under speech."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from yingxi.backends.base import Clip
from yingxi.director.plan import plan
from yingxi.editor import assemble, load_music, record_dialogue
from yingxi.editor.mix import CEILING, limit, mix
from yingxi.errors import InputError
from yingxi.film.model import DialogueLine, Film, Shot
from yingxi.media.video import read_audio, read_video, write_mp4

FPS, RATE = 12, 48000
TONE = 15000.0  # Hz: above anything espeak-ng makes (it speaks at 22.05 kHz), so music is measurable alone


def write_tone_wav(path: Path, seconds: float, freq: float = TONE, rate: int = 44100) -> Path:
    t = np.arange(round(seconds * rate)) / rate
    pcm = (0.5 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def cut_for(film: Film, with_takes: bool = True):
    plans = plan(film)
    clips = [Clip(np.broadcast_to(np.zeros(3, np.uint8), (p.num_frames, 480, 864, 3)), FPS) for p in plans]
    takes = record_dialogue(film) if with_takes else [[] for _ in plans]
    return assemble(film, plans, clips, takes)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def tone_amplitude(audio: np.ndarray, start: float, seconds: float = 0.1) -> float:
    """Amplitude of the TONE component of the left channel over [start, start + seconds), by one DFT bin."""
    seg = audio[round(start * RATE) : round((start + seconds) * RATE), 0]
    k = round(TONE * len(seg) / RATE)
    return float(2 * np.abs(np.fft.rfft(seg)[k]) / len(seg))


def test_dialogue_is_audible_where_placed_and_silent_elsewhere():
    film = Film(
        shots=(
            Shot("a", duration=2.0),
            Shot("b", duration=3.0, dialogue=(DialogueLine("Mei", "Happy new year."),)),
        ),
        fps=FPS,
        resolution="480p",
    )
    cut = cut_for(film)
    assert cut.audio.shape == (5 * RATE, 2) and cut.audio.dtype == np.float32 and cut.sample_rate == RATE
    line = cut.subtitles[0]
    assert line.start == pytest.approx(2.3)
    spoken = cut.audio[round(line.start * RATE) : round(line.end * RATE)]
    assert rms(spoken) > 0.03  # speech is levelled to about -20 dBFS (0.1 RMS) while voiced
    assert np.abs(cut.audio[: 2 * RATE]).max() < 1e-4  # shot 1: no dialogue, no music
    assert np.abs(cut.audio[round((line.end + 0.05) * RATE) :]).max() < 1e-4
    assert np.abs(cut.audio).max() <= CEILING


def test_silent_film_still_has_a_full_length_track():
    cut = cut_for(Film(shots=(Shot("a", duration=1.5),), fps=FPS, resolution="480p"), with_takes=False)
    assert cut.audio.shape == (round(1.5 * RATE), 2) and not cut.audio.any()


def test_music_loops_fades_and_ducks_under_speech(tmp_path: Path):
    music = write_tone_wav(tmp_path / "bed.wav", 1.0)  # 1 s, looped over a 6 s film
    film = Film(
        shots=(
            Shot("a", duration=3.0),
            Shot("b", duration=3.0, dialogue=(DialogueLine("Mei", "Happy new year, everyone."),)),
        ),
        fps=FPS,
        resolution="480p",
        music=music,
    )
    cut = cut_for(film)
    line = cut.subtitles[0]
    open_level = tone_amplitude(cut.audio, 1.5)  # shot 1, nobody speaking, past the fade-in
    ducked = tone_amplitude(cut.audio, line.start + 0.3)
    # Bed: a sine levelled to -20 - 14 = -34 dBFS RMS, i.e. amplitude 0.02 * sqrt(2). Tolerance 0.5 dB.
    assert 20 * np.log10(open_level / (0.02 * np.sqrt(2))) == pytest.approx(0.0, abs=0.5)
    # Ducked by 10 dB while speaking (ratio 0.316); tolerance 0.5 dB.
    assert 20 * np.log10(ducked / open_level) == pytest.approx(-10.0, abs=0.5)
    # The 150 ms ramp: half-way down 75 ms before the line starts.
    assert tone_amplitude(cut.audio, line.start - 0.08, 0.01) == pytest.approx(open_level * 0.658, rel=0.1)
    # Looped: still playing at 2.5 s in a 1 s file; faded in from silence and out to silence.
    assert tone_amplitude(cut.audio, 2.5) == pytest.approx(open_level, rel=0.05)
    assert tone_amplitude(cut.audio, 0.0, 0.02) < 0.05 * open_level
    assert tone_amplitude(cut.audio, 5.98, 0.02) < 0.05 * open_level
    assert np.abs(cut.audio).max() <= CEILING


def test_missing_music_file_names_the_file_and_field(tmp_path: Path):
    film = Film(shots=(Shot("a", duration=1.0),), fps=FPS, resolution="480p", music=tmp_path / "nope.mp3")
    with pytest.raises(InputError, match="nope.mp3, music: cannot read media: no such file"):
        cut_for(film, with_takes=False)


def test_load_music_fails_fast_on_a_file_that_is_not_audio(tmp_path: Path):
    fake = tmp_path / "song.mp3"
    fake.write_text("not music")
    film = Film(shots=(Shot("a", duration=1.0),), fps=FPS, resolution="480p", music=fake)
    with pytest.raises(InputError) as info:
        load_music(film)
    assert (info.value.field, info.value.file) == ("music", str(fake))
    assert load_music(Film(shots=(Shot("a"),))) is None
    good = write_tone_wav(tmp_path / "bed.wav", 0.5)
    music = load_music(Film(shots=(Shot("a"),), music=good))
    assert music.shape == (24000, 2)  # resampled from 44.1 kHz to 48 kHz
    # A preloaded bed gives exactly the track assemble makes when it loads the file itself.
    film = Film(shots=(Shot("a", duration=3.0),), fps=FPS, resolution="480p", music=good)
    plans = plan(film)
    clips = [Clip(np.zeros((p.num_frames, 480, 864, 3), np.uint8), FPS) for p in plans]
    a = assemble(film, plans, clips, [[]], music=music).audio
    assert np.array_equal(a, assemble(film, plans, clips, [[]]).audio)


def test_limiter_holds_the_ceiling_and_leaves_quiet_audio_alone():
    quiet = np.full((4800, 2), 0.5, np.float32)
    assert limit(quiet) is quiet
    loud = quiet.copy()
    loud[2400:2410] = 1.7
    out = limit(loud)
    assert np.abs(out).max() <= CEILING
    assert np.allclose(out[:1000], 0.5)  # far from the peak: untouched


def test_cut_encodes_to_an_mp4_with_matching_picture_and_sound(tmp_path: Path):
    film = Film(
        shots=(Shot("a", duration=1.0), Shot("b", duration=2.0, dialogue=(DialogueLine("Bo", "Yes."),))),
        fps=FPS,
        resolution="480p",
    )
    cut = cut_for(film)
    out = write_mp4(
        tmp_path / "cut.mp4",
        cut.iter_frames(),
        fps=cut.fps,
        width=cut.width,
        height=cut.height,
        audio=cut.audio,
    )
    info = read_video(out)
    assert (info.num_frames, info.width, info.height) == (36, 864, 480)
    assert info.audio_duration == pytest.approx(3.0, abs=1e-3)
    decoded = read_audio(out)
    start = round(cut.subtitles[0].start * RATE)
    # AAC keeps the speech's level within 1 dB and the silent shot near silent.
    assert 20 * np.log10(
        rms(decoded[start : start + 12000]) / rms(cut.audio[start : start + 12000])
    ) == pytest.approx(0, abs=1)
    assert rms(decoded[: RATE // 2]) < 1e-3


def test_music_shorter_than_the_film_loops_without_a_click():
    # 0.3037 s of 440 Hz does not hold a whole number of periods, so a hard loop would jump at every seam.
    t = np.arange(round(0.3037 * RATE)) / RATE
    music = np.repeat(np.sin(2 * np.pi * 440 * t).astype(np.float32)[:, None], 2, axis=1)
    out = mix(4 * RATE, [], music)
    assert out.shape == (4 * RATE, 2)
    middle = out[RATE : 3 * RATE, 0]  # between the music's 1 s fade in and fade out
    peak = float(np.abs(middle).max())
    # A sine of amplitude A moves at most 2 pi f A / rate per sample; a click is a jump far above that.
    # Tolerance: twice that bound, for the crossfade's own slope and the two overlapping phases.
    smooth = 2 * np.pi * 440 * peak / RATE
    assert np.abs(np.diff(out[:, 0])).max() < 2 * smooth
    # The level holds across the seams: 0.1 s windows within 3 dB of each other.
    levels = [rms(middle[k : k + 4800]) for k in range(0, len(middle), 4800)]
    assert max(levels) / min(levels) < 10 ** (3 / 20)


@pytest.mark.parametrize("fps", [23.976, 25.0])
def test_sound_and_picture_end_together_at_any_frame_rate(tmp_path: Path, fps: float):
    film = Film(shots=(Shot("a", duration=1.3), Shot("b", duration=0.7)), fps=fps, resolution="480p")
    plans = plan(film)
    clips = [Clip(np.broadcast_to(np.zeros(3, np.uint8), (p.num_frames, 480, 864, 3)), p.fps) for p in plans]
    cut = assemble(film, plans, clips, [[], []])
    assert len(cut.audio) == round(cut.num_frames / fps * RATE)  # the track is the picture's length
    out = write_mp4(tmp_path / "sync.mp4", cut.iter_frames(), fps=fps, width=864, height=480, audio=cut.audio)
    info = read_video(out)
    assert info.num_frames == cut.num_frames
    # Decoded sound (AAC priming and padding removed) ends within one frame of the picture.
    assert abs(info.audio_duration - info.duration) < 1 / fps


def test_long_music_is_decoded_only_as_far_as_the_film_can_use(tmp_path: Path):
    music = write_tone_wav(tmp_path / "long.wav", 75.0, freq=440.0, rate=8000)  # 75 s, 1.2 MB
    film = Film(shots=(Shot("a", duration=2.0),), fps=FPS, resolution="480p", music=music)
    bed = load_music(film)
    # The film's 2 s plus 60 s of slack, not all 75 s (an hour-long track would be 1.4 GB decoded).
    assert bed.shape == (62 * RATE, 2)
    assert rms(bed[61 * RATE :]) == pytest.approx(
        rms(bed[RATE : 2 * RATE]), rel=0.02
    )  # real sound to the end

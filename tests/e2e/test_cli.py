"""The CLI as a person uses it: a real subprocess, exit codes, messages, files."""

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.helpers import decode, flat_png

REPO = Path(__file__).resolve().parents[2]


def yingxi(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "yingxi.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_generate_prompt_prints_summary_and_writes_mp4(tmp_path):
    r = yingxi("generate", 'Shot 1 (1s, wide, pan left): Kites.\nShot 2 (1s, wipe right): Hills.\nMEI: "Look!"',
               "-o", "film.mp4", "--resolution", "480p", "--fps", "12", "--seed", "4", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "shots: 2" in r.stdout and "output: film.mp4" in r.stdout and "time:" in r.stdout
    assert "length: 2.00s (24 frames at 12 fps)" in r.stdout
    frames, fps, _, _ = decode(tmp_path / "film.mp4")
    assert frames.shape == (24, 480, 864, 3) and fps == 12
    assert (tmp_path / "film.srt").read_text().count("Look!") == 1


def test_image_and_ref_flags(tmp_path):
    flat_png(tmp_path / "first.png", (0, 200, 0))
    flat_png(tmp_path / "mei.png", (200, 0, 200))
    r = yingxi("generate", "Shot 1 (0.5s, static): Green.\nShot 2 (0.5s, static): MEI waves.\nMEI: \"Hi.\"",
               "--image", "first.png", "--ref", "MEI=mei.png", "-o", "o.mp4", "--resolution", "480p", "--fps", "8",
               "--strict-dialogue", cwd=tmp_path)  # fmt: skip
    if r.returncode == 2:  # "Hi." may not fit half a second: strict mode says so, and writes nothing
        assert "shot 2" in r.stderr and "dialogue" in r.stderr and not (tmp_path / "o.mp4").exists()
        r = yingxi("generate", "Shot 1 (0.5s, static): Green.\nShot 2 (2s, static): MEI waves.\nMEI: \"Hi.\"",
                   "--image", "first.png", "--ref", "MEI=mei.png", "-o", "o.mp4", "--resolution", "480p",
                   "--fps", "8", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    frames, *_ = decode(tmp_path / "o.mp4")
    assert abs(frames[1].astype(int).mean(axis=(0, 1)) - (0, 200, 0)).max() < 12
    assert abs(frames[-1].astype(int).mean(axis=(0, 1)) - (200, 0, 200)).max() < 12  # MEI's reference image


def test_video_and_audio_flags_go_where_the_text_says(tmp_path):
    """--audio: "@audio1" as the music bed, and "to the beat of @audio2", which the animatic cannot follow,
    laid as shot 2's sound with a note; a mention past the files given is exit 2 naming it."""
    import numpy as np

    from yingxi.media.wav import write_wav

    t = np.arange(96000, dtype=np.float32) / 48000
    write_wav(tmp_path / "bed.wav", (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 48000)
    write_wav(tmp_path / "bell.wav", (0.5 * np.sin(2 * np.pi * 1760 * t)).astype(np.float32), 48000)
    text = (
        "Shot 1 (1s, static): Kites. Music: @audio1.\nShot 2 (1s, static): She sings to the beat of @audio2."
    )
    r = yingxi("generate", text, "--audio", "bed.wav", "--audio", "bell.wav", "-o", "m.mp4", "--resolution",
               "480p", "--fps", "8", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    said = " ".join(r.stderr.split())  # notes wrap at the terminal's width
    assert (
        "shot 2: this backend takes no audio to follow; bell.wav is laid as the shot's sound instead" in said
    )
    _, _, audio, rate = decode(tmp_path / "m.mp4")
    spectrum = lambda a: np.abs(np.fft.rfft(a)) ** 2  # noqa: E731
    first, second = audio[rate // 5 : rate - rate // 5], audio[rate + rate // 5 : 2 * rate - rate // 5]
    bell_bin = lambda a: int(np.argmax(spectrum(a)) * rate / len(a))  # noqa: E731  # the loudest frequency
    assert abs(bell_bin(second) - 1760) < 30 and abs(bell_bin(first) - 220) < 30  # bell at 2, the bed at 1
    r = yingxi("generate", "Shot 1 (1s): She sings to the beat of @audio2.", "--audio", "bell.wav", "-o", "x.mp4",
               cwd=tmp_path)  # fmt: skip
    assert r.returncode == 2 and '"@audio2" refers to reference audio clip 2' in r.stderr
    assert "the closest is @audio1" in r.stderr and not (tmp_path / "x.mp4").exists()
    r = yingxi("generate", "Shot 1 (1s): x.", "--video", "none.mp4", "-o", "x.mp4", cwd=tmp_path)
    assert r.returncode == 2 and "--video (@video1): file not found: none.mp4" in r.stderr
    # --video goes to the shot that mentions it (the animatic says it cannot follow it); one that no shot of
    # several mentions is an error under its flag's name
    (tmp_path / "moves.mp4").write_bytes(b"")  # `plan` decodes nothing
    two = "Shot 1 (1s): Kites.\nShot 2 (1s): The camera moves as in @video1."
    r = yingxi("plan", two, "--video", "moves.mp4", cwd=tmp_path)
    said = " ".join((r.stdout + r.stderr).split())  # plan prints its notes under the table
    assert r.returncode == 0 and "shot 2: the reference video moves.mp4 is not used" in said, r.stderr
    r = yingxi("plan", "Shot 1 (1s): Kites.\nShot 2 (1s): Hills.", "--video", "moves.mp4", cwd=tmp_path)
    assert r.returncode == 2 and "--video (@video1): reference video 1 is tied to no shot" in r.stderr


def test_dialogue_that_does_not_fit_grows_the_shot_and_says_so(tmp_path):
    line = "This is a rather long line of dialogue that cannot possibly fit in half a second."
    r = yingxi("generate", f'Shot 1 (0.5s): A man talks.\nBO: "{line}"', "-o", "g.mp4", "--resolution", "480p",
               "--fps", "8", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "shot 1 grew from 0.5s" in r.stderr
    frames, *_ = decode(tmp_path / "g.mp4")
    assert frames.shape[0] > 4 * 8


def test_bad_input_exit_2_one_line_no_traceback_no_file(tmp_path):
    cases = [
        ("generate", "Shot 1 (2s, pan leftt): x", "-o", "a.mp4"),
        ("generate", "x", "--image", "nope.png", "-o", "a.mp4"),
        ("generate", "x", "-o", "a.avi"),
        ("generate", "--script", "missing.yaml", "-o", "a.mp4"),
        ("generate", "x", "--resolution", "4k", "-o", "a.mp4"),
        ("generate", "-o", "a.mp4"),
    ]
    for args in cases:
        r = yingxi(*args, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.startswith("yingxi: error: ") and r.stderr.count("\n") == 1, r.stderr
        assert "Traceback" not in r.stderr
        assert not (tmp_path / "a.mp4").exists()
    r = yingxi("generate", "Shot 1 (2s, pan leftt): x", "-o", "a.mp4", cwd=tmp_path)
    assert "shot 1" in r.stderr and 'did you mean "pan left"' in r.stderr


def test_plan_table_and_json(tmp_path):
    r = yingxi("plan", "--script", str(REPO / "examples/new-year/film.yaml"), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert [s["frames"] for s in data["shots"]] == [96, 96, 72, 120]
    assert [s["camera"] for s in data["shots"]] == ["slow pan left", "dolly in", "handheld", "crane up"]
    assert [s["keyframe"].split(" ")[0] for s in data["shots"]] == [
        "first_frame",
        "character",
        "two-shot:",  # OLD JIA | XIAO LI: XIAO LI speaks, so XIAO LI is on screen (issue 8, item 4)
        "first_frame",
    ]
    r = yingxi("plan", "Shot 1 (3s, close-up, orbit right): a", cwd=tmp_path)
    assert r.returncode == 0 and "orbit right" in r.stdout and "close-up" in r.stdout
    assert list(tmp_path.iterdir()) == []  # plan renders nothing


def test_bad_input_found_while_preparing_is_one_line_too(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    line = "This is a rather long line of dialogue that cannot possibly fit in half a second."
    cases = [
        ("generate", "Shot 1 (0.5s): x", "--image", "bad.png", "-o", "a.mp4"),
        ("generate", f'Shot 1 (0.5s): x\nBO: "{line}"', "--strict-dialogue", "-o", "a.mp4"),
    ]
    for args in cases:
        r = yingxi(*args, "--resolution", "480p", "--fps", "8", cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.startswith("yingxi: error: ") and r.stderr.count("\n") == 1, r.stderr
        assert "shot 1" in r.stderr and not (tmp_path / "a.mp4").exists()


def test_seed_and_fps_flags_are_range_checked_and_help_names_them(tmp_path):
    for flag, value, words in (("--seed", "-1", "--seed: seed must be from 0"),
                               ("--seed", "4294967296", "--seed: seed must be from 0"),
                               ("--fps", "61", "--fps: fps must be a whole number from 1 to 60")):  # fmt: skip
        r = yingxi("generate", "x", flag, value, "-o", "a.mp4", cwd=tmp_path)
        assert r.returncode == 2 and words in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert not (tmp_path / "a.mp4").exists()
    r = yingxi("generate", "--help", cwd=tmp_path)
    assert r.returncode == 0 and "film seed" in r.stdout and "default film.mp4" in r.stdout


def test_plan_table_shows_dialogue_size_and_fps(tmp_path):
    r = yingxi("plan", 'Shot 1 (2s, wide): A river.\nMEI: "Look!"\nShot 2 (1s, continue): Ice.', "--fps", "12",
               "--resolution", "480p", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "2 shots, 3.00s, 864x480 at 12 fps" in r.stdout
    assert "dialogue" in r.stdout and "MEI: Look!" in r.stdout


def test_square_brackets_in_peoples_words_are_text_not_markup(tmp_path):
    (tmp_path / "film.yaml").write_text(
        'title: "[bold]Exit[/]"\nshots:\n  - {prompt: "A sign reads [/] [red EXIT", duration: 0.5}\n'
        '  - {prompt: b, duration: 0.5, dialogue: [{character: "[X]", line: "[/b] ok"}]}\n'
    )
    r = yingxi("plan", "--script", "film.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "[bold]Exit[/]: 2 shots" in r.stdout and "[/] [red EXIT" in r.stdout and "[X]: [/b] ok" in r.stdout


def test_output_that_is_a_folder_is_refused_before_shooting(tmp_path):
    (tmp_path / "out.mp4").mkdir()
    r = yingxi("generate", "x", "-o", "out.mp4", cwd=tmp_path)
    assert (
        r.returncode == 2
        and r.stderr == "yingxi: error: --output: out.mp4 is a folder; name the .mp4 file to write\n"
    )


def test_duration_with_a_script_is_refused_not_ignored(tmp_path):
    (tmp_path / "film.yaml").write_text("shots: [{prompt: a, duration: 1}]\n")
    r = yingxi("plan", "--script", "film.yaml", "--duration", "3", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("yingxi: error: --duration: --duration is for a prompt")


def test_wan_flags_without_the_wan_backend_are_refused(tmp_path):
    r = yingxi("generate", "x", "--model", "wan2.1-t2v-1.3b", "--steps", "4", "-o", "a.mp4", cwd=tmp_path)
    assert (
        r.returncode == 2
        and r.stderr
        == "yingxi: error: --model: --model, --steps need --backend wan or diffusers (the animatic takes none)\n"
    )
    assert not (tmp_path / "a.mp4").exists()


def test_ref_with_spaces_around_the_equals_sign(tmp_path):
    flat_png(tmp_path / "jia.png", (200, 0, 200))
    r = yingxi("plan", 'Shot 1 (1s): a\nOLD JIA: "Hi."', "--ref", "OLD JIA = jia.png", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["shots"][0]["keyframe"] == "character (jia.png)"


def test_resolution_and_ratio_flags_take_the_script_spellings_and_hint(tmp_path):
    r = yingxi("plan", "a", "--resolution", "480", "--ratio", "9x16", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["shots"][0]["size"] == "480x864"
    r = yingxi("plan", "a", "--ratio", "16:10", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith(
        'yingxi: error: --ratio: unknown aspect ratio "16:10" (did you mean'
    )
    assert "accepted: 16:9, 9:16" in r.stderr


def test_no_command_names_the_commands(tmp_path):
    r = yingxi(cwd=tmp_path)
    assert r.returncode == 2
    assert (
        r.stderr
        == "yingxi: error: give a command: generate, plan, models, serve, worker or keys (yingxi --help says more)\n"
    )

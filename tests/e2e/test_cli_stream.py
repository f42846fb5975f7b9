"""The CLI refuses early and cleans up: an unwritable -o before the render, SIGTERM like Ctrl-C, exit 2 for
every bad input; misread names and contradicting flags are errors; plan reads at 80 columns; --version."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from yingxi.cli import main

SRC = str(Path(__file__).resolve().parents[2] / "src")


def yingxi(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC, **(env or {})}
    return subprocess.run([sys.executable, "-m", "yingxi.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env)  # fmt: skip


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """main() in this process (the same code as the console script, without a Python start per call)."""
    monkeypatch.chdir(tmp_path)
    handler = signal.getsignal(signal.SIGTERM)  # main() makes SIGTERM unwind like Ctrl-C; pytest's comes back

    def run(*args: str) -> subprocess.CompletedProcess:
        code = main(list(args))
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    yield run
    signal.signal(signal.SIGTERM, handler)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_encoding_leaves_no_file(tmp_path, sig, code):
    env = {**os.environ, "PYTHONPATH": SRC}
    film = "\n".join(f"Shot {i} (4s, pan left): scene {i}" for i in range(1, 6))  # 20 s: seconds to encode
    proc = subprocess.Popen([sys.executable, "-m", "yingxi.cli", "generate", film, "-o", "out/f.mp4",
                             "--resolution", "480p"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not list((tmp_path / "out").glob(".f.mp4.partial-*")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    assert list((tmp_path / "out").glob(".f.mp4.partial-*")), "the encoder never started"
    time.sleep(0.5)  # well inside encoding
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "no output was written" in err and "Traceback" not in err
    assert list((tmp_path / "out").iterdir()) == []  # no .partial, no .mp4, no .srt


def test_unwritable_output_exits_2_before_any_work_and_creates_nothing(tmp_path):
    (tmp_path / "notes.txt").write_text("a file")
    for out in ("notes.txt/film.mp4", "/sys/film.mp4"):
        started = time.monotonic()
        r = yingxi("generate", "Shot 1 (20s): a", "-o", out, cwd=tmp_path)
        assert r.returncode == 2 and "--output" in r.stderr and "cannot write" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and time.monotonic() - started < 30
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_missing_weights_exit_2(cli, tmp_path):
    r = cli("generate", "a", "--backend", "wan", "--model", str(tmp_path / "no-model"), "-o", "a.mp4")
    assert r.returncode == 2 and "no-model" in r.stderr and "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_misspelt_ref_name_is_an_error_with_the_closest_name(cli, tmp_path):
    (tmp_path / "mei.png").write_bytes(b"")  # never read: the name is wrong first
    r = cli("plan", 'Shot 1 (2s): A girl.\nMEI: "Hi."', "--ref", "MIE=mei.png")
    assert r.returncode == 2 and '"MIE"' in r.stderr and 'did you mean "MEI"' in r.stderr, r.stderr
    r = cli("plan", "Shot 1 (2s): A girl.", "--ref", "MEI=mei.png")  # no one to give it to
    assert r.returncode == 2 and "the film has none" in r.stderr
    (tmp_path / "f.yaml").write_text(
        "characters:\n  OLD JIA: {description: an old man}\nshots:\n  - {prompt: a, duration: 2, characters: [OLD JIA]}\n"
    )
    r = cli("plan", "--script", "f.yaml", "--ref", "old jia=mei.png", "--json")
    assert (
        r.returncode == 2 and "mei.png" in r.stderr
    )  # the name matched (case does not count): the file is read


def test_a_speaker_missing_from_a_scripts_characters_is_an_error_with_the_closest_name(cli, tmp_path):
    (tmp_path / "f.yaml").write_text(
        "characters:\n  OLD JIA: {description: an old man}\n  XIAO LI: {description: a young man}\nshots:\n"
        "  - prompt: a\n    duration: 3\n    dialogue:\n      - {character: OLD JIAA, line: Happy new year.}\n"
    )
    r = cli("plan", "--script", "f.yaml")
    assert r.returncode == 2 and "shot 1" in r.stderr and "dialogue[1].character" in r.stderr, r.stderr
    assert 'did you mean "OLD JIA"' in r.stderr
    # Without a characters list (a script without one, or the prompt grammar) every speaker is a character.
    (tmp_path / "g.yaml").write_text("shots:\n  - prompt: a\n    duration: 3\n    dialogue:\n"
                                     "      - {character: ANYONE, line: Hello.}\n")  # fmt: skip
    assert cli("plan", "--script", "g.yaml", "--json").returncode == 0
    assert cli("plan", 'Shot 1 (3s): a\nANYONE: "Hello."', "--json").returncode == 0


@pytest.mark.parametrize("flags", [["--resolution", "480p"], ["--ratio", "1:1"], ["--resolution", "720p",
                                                                                 "--ratio", "4:3"]])  # fmt: skip
def test_size_with_resolution_or_ratio_is_refused_naming_both(cli, flags):
    r = cli("plan", "a", "--size", "640x360", *flags, "--json")
    assert r.returncode == 2 and "--size" in r.stderr
    assert all(f in r.stderr for f in flags if f.startswith("--")), r.stderr


def test_version(tmp_path):
    r = yingxi("--version", cwd=tmp_path)  # argparse exits by itself: a real process
    assert r.returncode == 0 and r.stdout.strip().startswith("yingxi 0.")


def test_plan_reads_at_80_columns(cli, monkeypatch):
    prompt = ("Shot 1 (4s, extreme wide, slow pan left): Two men stand on the frozen Yellow River at dusk, "
              'mountains fading into mist.\nShot 2 (3s, close-up, handheld, crossfade): He laughs.\n'
              'XIAO LI: "Happy new year, old friend."')  # fmt: skip
    monkeypatch.setenv("COLUMNS", "80")
    r = cli("plan", prompt)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    words = {w.strip("│┃ ") for line in lines for w in line.split("│") if w.strip()}
    for header in ("seconds", "frames", "framing", "camera", "transition", "keyframe", "seed", "dialogue"):
        assert header in words, header  # whole, never "transi" + "tion"
    prompt_lines = [line for line in lines if "Yellow" in line or "mountains" in line or "mist." in line]
    assert len(prompt_lines) >= 2  # the prompt wraps, by words
    assert (
        "extreme wide" in r.stdout and "slow pan left" in r.stdout and "XIAO LI: Happy new year" in r.stdout
    )
    monkeypatch.setenv("COLUMNS", "250")
    wide = cli("plan", prompt)
    header = next(line for line in wide.stdout.splitlines() if "transition" in line)
    assert all(h in header for h in ("shot", "seconds", "keyframe", "prompt"))  # wide: one row per shot


def test_the_grew_to_fit_note_is_printed_once(cli, tmp_path):
    prompt = 'Shot 1 (0.5s): A man talks.\nBO: "A line far too long to be spoken in half a second."'
    r = cli("generate", prompt, "-o", "g.mp4", "--resolution", "480p", "--fps", "8")
    assert r.returncode == 0 and (r.stdout + r.stderr).count("to fit its dialogue") == 1, r.stderr
    r = cli("plan", prompt)
    assert r.returncode == 0 and (r.stdout + r.stderr).count("to fit its dialogue") == 1

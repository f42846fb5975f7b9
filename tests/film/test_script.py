import json

import pytest
from PIL import Image

from yingxi.errors import InputError
from yingxi.film import load_script, parse_script
from yingxi.film.model import CameraMove

SCRIPT = """
title: New Year on the Ice
fps: 12
resolution: 480p
ratio: "1:1"
seed: 9
style: Ink-wash style.
characters:
  OLD JIA: {description: a weathered man, image: jia.png, voice: en-us+m3}
  XIAO LI: a young man
music: music.wav
shots:
  - {prompt: Two men on the ice., duration: 4, framing: wide, camera: slow pan left}
  - prompt: The older man lifts a flask.
    duration: 2.5s
    framing: close-up
    camera: static
    transition: crossfade
    characters: [OLD JIA]
    dialogue:
      - {character: OLD JIA, line: Happy new year.}
  - prompt: He pours.
    continue: true
    transition: wipe right
    first_frame: frames/pour.png
    seed: 5
"""


@pytest.fixture
def script_dir(tmp_path):
    Image.new("RGB", (8, 8), "red").save(tmp_path / "jia.png")
    (tmp_path / "frames").mkdir()
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "frames" / "pour.png")
    (tmp_path / "music.wav").write_bytes(b"RIFF")
    (tmp_path / "film.yaml").write_text(SCRIPT)
    return tmp_path


def test_yaml_script(script_dir):
    film = load_script(script_dir / "film.yaml")
    assert (film.title, film.fps, film.resolution, film.ratio, film.seed) == (
        "New Year on the Ice",
        12,
        "480p",
        "1:1",
        9,
    )
    assert film.size == (640, 640)
    assert film.style == "Ink-wash style."
    jia = film.character("old jia")
    assert jia.image == script_dir / "jia.png" and jia.voice == "en-us+m3"
    assert film.character("XIAO LI").description == "a young man"
    assert film.music == script_dir / "music.wav"
    s1, s2, s3 = film.shots
    assert s1.camera.move == CameraMove("pan", "left", "slow") and s1.camera.framing == "wide"
    assert (
        s2.duration == 2.5 and s2.transition.kind == "crossfade" and s2.dialogue[0].line == "Happy new year."
    )
    assert s3.continue_previous and s3.transition.direction == "right" and s3.seed == 5
    assert s3.first_frame == script_dir / "frames" / "pour.png"
    assert film.duration == 4 + 2.5 + 5


def test_json_script_same_model(script_dir):
    import yaml

    data = yaml.safe_load(SCRIPT)
    (script_dir / "film.json").write_text(json.dumps(data))
    assert load_script(script_dir / "film.json") == load_script(script_dir / "film.yaml")


def test_defaults():
    film = parse_script({"shots": [{"prompt": "x"}]})
    assert (film.fps, film.resolution, film.ratio, film.size) == (24, "720p", "16:9", (1280, 720))


def err(data, base=None) -> InputError:
    with pytest.raises(InputError) as info:
        parse_script(data, base)
    return info.value


def test_errors_name_shot_field_and_accepted_words(tmp_path):
    e = err({"shots": [{"prompt": "a"}, {"prompt": "b", "camera": "zoom inn"}]})
    assert e.shot == 2 and e.field == "camera" and 'did you mean "zoom in"' in str(e)
    e = err({"shots": [{"prompt": "a", "framing": "wideshot"}]})
    assert e.field == "framing" and "extreme wide" in str(e)
    e = err({"shots": [{"prompt": "a", "tranistion": "cut"}]})
    assert 'did you mean "transition"' in str(e) and e.shot == 1
    e = err({"shots": [{"prompt": "a", "first_frame": "missing.png"}]}, tmp_path)
    assert e.field == "first_frame" and "file not found" in str(e)
    e = err({"resolution": "4k", "shots": [{"prompt": "a"}]})
    assert e.field == "resolution" and "720p" in str(e)
    e = err({"ratio": "16:10", "shots": [{"prompt": "a"}]})
    assert e.field == "ratio" and "16:9" in str(e)
    e = err({"fps": 0, "shots": [{"prompt": "a"}]})
    assert e.field == "fps"
    e = err({"shots": []})
    assert e.field == "shots"
    e = err({"shots": [{"prompt": "a", "dialogue": [{"character": "A"}]}]})
    assert e.field == "dialogue[1]"
    e = err({"shots": [{"prompt": "a", "duration": "long"}]})
    assert e.field == "duration" and "4s" in str(e)


def test_bad_yaml_and_missing_file(tmp_path):
    (tmp_path / "bad.yaml").write_text("shots: [\n")
    with pytest.raises(InputError, match="not valid YAML") as info:
        load_script(tmp_path / "bad.yaml")
    assert "bad.yaml" in str(info.value)
    with pytest.raises(InputError, match="not found"):
        load_script(tmp_path / "nope.yaml")


def test_exact_size_overrides_resolution_and_ratio():
    assert parse_script({"size": "832x480", "shots": [{"prompt": "x"}]}).size == (832, 480)
    e = err({"size": "831x480", "shots": [{"prompt": "x"}]})
    assert e.field == "size" and "even" in str(e)
    e = err({"size": "big", "shots": [{"prompt": "x"}]})
    assert e.field == "size" and "WIDTHxHEIGHT" in str(e)


def test_unquoted_yaml_ratio_is_read_as_written(tmp_path):
    # YAML 1.1 turns an unquoted 16:9 into the base-60 integer 969; people mean the ratio.
    for ratio in ("16:9", "9:16", "21:9", "1:1", "4:3", "3:4"):
        (tmp_path / "film.yaml").write_text(f"ratio: {ratio}\nshots: [a dog]\n")
        assert load_script(tmp_path / "film.yaml").ratio == ratio
    with pytest.raises(InputError, match='ratio: unknown aspect ratio "970"'):
        parse_script({"ratio": 970, "shots": ["a"]})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "nan", "inf"])
def test_non_finite_numbers_are_input_errors(bad):
    with pytest.raises(InputError, match="shot 1, duration: .* is not a duration"):
        parse_script({"shots": [{"prompt": "a", "duration": bad}]})
    with pytest.raises(InputError, match="fps: fps must be a whole number from 1 to 60"):
        parse_script({"fps": bad, "shots": ["a"]})


def test_full_width_colon_in_ratio():
    assert parse_script({"ratio": "9：16", "shots": ["a"]}).ratio == "9:16"


def test_script_file_encodings_and_yaml_errors_say_where(tmp_path):
    (tmp_path / "bom.json").write_bytes('\ufeff{"shots": ["a dog"]}'.encode())
    (tmp_path / "crlf.yaml").write_bytes("\ufeffshots:\r\n  - 一只狗。\r\n".encode())
    assert load_script(tmp_path / "bom.json").shots[0].prompt == "a dog"
    assert load_script(tmp_path / "crlf.yaml").shots[0].prompt == "一只狗。"
    (tmp_path / "tab.yaml").write_text("shots:\n\t- a\n")
    with pytest.raises(InputError) as info:
        load_script(tmp_path / "tab.yaml")
    assert str(info.value).startswith(f"{tmp_path / 'tab.yaml'}: not valid YAML: line 2, column 1: found")
    assert "<unicode string>" not in str(info.value)


def test_a_text_file_is_not_read_as_yaml(tmp_path):
    (tmp_path / "film.txt").write_text("Shot 1 (4s): a dog")
    with pytest.raises(InputError, match=r'a script is a \.yaml, \.yml or \.json file, got "\.txt"'):
        load_script(tmp_path / "film.txt")


def test_a_featured_character_must_be_one_the_script_defines():
    chars = {"OLD JIA": "a weathered man", "XIAO LI": "a young man"}
    e = err({"characters": chars, "shots": ["a", {"prompt": "b", "characters": ["OLD JAI"]}]})
    assert (e.shot, e.field) == (2, "characters") and 'did you mean "OLD JIA"' in str(e)
    film = parse_script({"characters": chars, "shots": [{"prompt": "b", "characters": ["old jia"]}]})
    assert film.shots[0].characters == ("old jia",) and film.character("old jia").name == "OLD JIA"
    assert parse_script({"shots": [{"prompt": "b", "characters": ["MEI"]}]}).shots[0].characters == ("MEI",)


def test_character_names_differing_only_in_case_are_refused():
    e = err({"characters": {"Mei": "a girl", "MEI": "another"}, "shots": ["a"]})
    assert e.field == "characters.MEI" and '"Mei"' in str(e)


def test_did_you_mean_ignores_case_and_keeps_the_accepted_spelling():
    from yingxi.errors import closest

    assert closest("old jai", ["OLD JIA", "XIAO LI"]) == "OLD JIA"
    assert closest("CROSSFAD", ["cut", "crossfade"]) == "crossfade"


def test_relative_windows_paths_resolve_against_the_script_folder(script_dir):
    data = {"shots": [{"prompt": "a", "first_frame": "frames\\pour.png"}]}
    assert parse_script(data, script_dir).shots[0].first_frame == script_dir / "frames" / "pour.png"
    e = err({"shots": [{"prompt": "a", "first_frame": "frames"}]}, script_dir)
    assert e.field == "first_frame" and "not a file" in str(e)


def test_a_shot_s_audio_is_a_sound_or_what_its_picture_follows(tmp_path):
    for name in ("bell.wav", "song.wav", "rain.wav"):
        (tmp_path / name).write_bytes(b"RIFF")
    film = parse_script({"shots": [
        {"prompt": "A bell.", "audio": "bell.wav"},
        {"prompt": "She sings.", "audio": [{"file": "song.wav", "use": "follow"}, {"file": "rain.wav"}]},
    ]}, tmp_path)  # fmt: skip
    first, second = film.shots
    assert first.sounds == (tmp_path / "bell.wav",) and first.audio_conditioning is None
    assert second.audio_conditioning == tmp_path / "song.wav" and second.sounds == (tmp_path / "rain.wav",)
    cases = [
        ({"file": "bell.wav", "use": "folow"}, "audio.use", 'did you mean "follow"'),
        ([{"file": "bell.wav", "use": "follow"}, {"file": "song.wav", "use": "follow"}], "audio[2]",
         "follows one audio clip"),
        ({"file": "none.wav"}, "audio", "file not found"),
        ({"use": "sound"}, "audio", "names no file"),
        ({"file": "bell.wav", "volume": 2}, "audio", 'unknown audio field "volume"'),
    ]  # fmt: skip
    for value, field, words in cases:
        with pytest.raises(InputError) as e:
            parse_script({"shots": [{"prompt": "x", "audio": value}]}, tmp_path)
        assert e.value.field == field and e.value.shot == 1 and words in e.value.message, e.value.message

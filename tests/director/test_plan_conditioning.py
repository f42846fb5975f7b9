"""The director's conditioning items per shot, within what the backend takes (Capabilities.conditioning_kinds
and audio): references instead of first frames, video extension for `continue`, reference videos, sound."""

from __future__ import annotations

from dataclasses import replace

import pytest

from yingxi.director import Capabilities, plan
from yingxi.errors import InputError
from yingxi.film.model import Character, Film, Shot
from yingxi.film.script import parse_script

I2V = frozenset({"t2v", "i2v", "flf2v"})


def caps(*kinds: str, audio: bool = False, conditionings=I2V, extension: int = 9) -> Capabilities:
    return Capabilities(conditionings=conditionings, conditioning_kinds=frozenset(kinds), audio=audio,
                        extension_frames=extension, frame_step=4, frame_offset=1)  # fmt: skip


@pytest.fixture
def film(tmp_path):
    for name in ("jia.png", "li.png", "first.png", "clip.mp4"):
        (tmp_path / name).write_bytes(b"x")  # the director reads paths only
    cast = (Character("OLD JIA", image=tmp_path / "jia.png"), Character("XIAO LI", image=tmp_path / "li.png"),
            Character("NARRATOR"))  # fmt: skip
    shots = (
        Shot("Two men on the ice.", 2, characters=("OLD JIA", "XIAO LI", "NARRATOR")),
        Shot("They walk on.", 2, continue_previous=True, reference_video=tmp_path / "clip.mp4"),
        Shot("A door.", 1, first_frame=tmp_path / "first.png", characters=("OLD JIA",),
             reference_video=tmp_path / "clip.mp4", reference_video_use="extend"),
    )  # fmt: skip
    return Film(shots=shots, characters=cast, fps=16, custom_size=(64, 64), generate_audio=True)


def test_a_backend_that_takes_every_kind_gets_references_extension_videos_and_sound(film):
    one, two, three = plan(film, caps("reference", "video", "control", audio=True, extension=5))
    assert [n for n, _ in one.conditioning.references] == ["OLD JIA", "XIAO LI"]  # those with images
    assert one.keyframe.source == "references" and one.keyframe.on_screen == ("OLD JIA", "XIAO LI")
    assert two.keyframe.source == "continue" and two.conditioning.extend_frames == 5
    assert (two.conditioning.reference_video.name, two.conditioning.reference_video_kind) == (
        "clip.mp4",
        "control",
    )
    # An explicit first frame stays the first frame; the character's image still gives identity.
    assert three.keyframe.source == "first_frame" and [n for n, _ in three.conditioning.references] == [
        "OLD JIA"
    ]
    assert three.conditioning.reference_video_kind == "video" and three.conditioning.source_frames == 5
    assert all(p.conditioning.generate_audio for p in (one, two, three))
    assert not any("not used" in n or "no generated sound" in n for p in (one, two, three) for n in p.notes)


def test_without_those_kinds_the_director_plans_as_before_and_says_what_is_not_used(film):
    one, two, three = plan(film, caps())
    assert one.keyframe.source == "character" and one.conditioning.references == ()
    assert two.keyframe.source == "continue" and two.conditioning.extend_frames == 0  # last frame -> first
    assert two.conditioning.reference_video is None and three.conditioning.reference_video is None
    assert "the reference video clip.mp4 is not used: this backend takes no control conditioning" in two.notes
    assert "the reference video clip.mp4 is not used: this backend takes no video conditioning" in three.notes
    assert not one.conditioning.generate_audio
    assert any(n.startswith("no generated sound") for n in one.notes)
    quiet = plan(replace(film, generate_audio=False), caps(audio=True))
    assert not any(p.conditioning.generate_audio for p in quiet)  # sound only where the film asks


def test_a_text_only_backend_that_extends_video_keeps_the_continue(film):
    _, two, _ = plan(film, caps("video", conditionings=frozenset({"t2v"})))
    assert two.keyframe.source == "continue" and two.conditioning.extend_frames == 9
    _, plain, _ = plan(film, caps(conditionings=frozenset({"t2v"})))
    assert plain.keyframe.source == "title"  # as before: a text-only backend drops the previous frame


def test_script_reference_video_and_generate_audio(tmp_path):
    (tmp_path / "moves.mp4").write_bytes(b"x")
    film = parse_script({"generate_audio": True, "shots": [
        {"prompt": "a", "reference_video": "moves.mp4"},
        {"prompt": "b", "reference_video": {"file": "moves.mp4", "use": "extend"}}]}, tmp_path)  # fmt: skip
    assert film.generate_audio
    assert [(s.reference_video.name, s.reference_video_use) for s in film.shots] == [
        ("moves.mp4", "control"), ("moves.mp4", "extend")]  # fmt: skip
    with pytest.raises(InputError, match='did you mean "extend"') as bad:
        parse_script({"shots": [{"prompt": "a", "reference_video": {"file": "moves.mp4", "use": "extnd"}}]},
                     tmp_path)  # fmt: skip
    assert bad.value.shot == 1 and bad.value.field == "reference_video.use"
    with pytest.raises(InputError, match="generate_audio is true or false"):
        parse_script({"generate_audio": "yes", "shots": ["a"]}, tmp_path)
    with pytest.raises(InputError, match="file not found"):
        parse_script({"shots": [{"prompt": "a", "reference_video": "gone.mp4"}]}, tmp_path)

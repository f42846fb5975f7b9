"""film.mentions: Seedance's `@video1` / `@视频1` tie a reference video to the shots whose camera move it shows;
`@audio1` / `@音频1` make a clip the music, a sound at a shot, or audio a shot's sound follows, as the clause
around the mention says; a mention of an item that does not exist names the closest one."""

from __future__ import annotations

from pathlib import Path

import pytest

from yingxi.errors import InputError
from yingxi.film import parse_prompt
from yingxi.film.mentions import attach_media, audio_use
from yingxi.film.references import check_mentions

V1, V2 = Path("v1.mp4"), Path("v2.mp4")
A1, A2, A3 = Path("a1.wav"), Path("a2.wav"), Path("a3.wav")


def test_each_clause_says_how_its_audio_is_used():
    assert audio_use("use @audio1 as the background music") == "music"
    assert audio_use("配乐用@音频1") == "music"
    assert audio_use("she sings to the beat of @audio2") == "conditioning"
    assert audio_use("口型对上@音频1") == "conditioning"
    assert audio_use("a bell rings in the background (@audio1)") == "sound"


def test_videos_and_audio_go_where_the_shots_mention_them():
    film = parse_prompt(
        "Rain on the city. @audio3 is the music throughout.\n"
        "Shot 1 (2s): The camera follows her the way @video2 moves. A door slams (@audio1).\n"
        "Shot 2 (2s): She sings with the voice of @音频2, copying the dolly of @视频1.\n"
        "Shot 3 (2s): Silence."
    )
    film = attach_media(film, [V1, V2], [A1, A2, A3])
    s1, s2, s3 = film.shots
    assert (s1.reference_video, s2.reference_video, s3.reference_video) == (V2, V1, None)
    assert (s1.sounds, s2.sounds, s3.sounds) == ((A1,), (), ())
    assert (s1.audio_conditioning, s2.audio_conditioning) == (None, A2)
    assert film.music == A3 and film.reference_audio == (A1, A2, A3) and film.reference_videos == (V1, V2)


def test_a_one_shot_prompt_uses_every_reference_even_unmentioned():
    film = attach_media(parse_prompt("A bell tower at dusk."), [V1], [A1, A2])
    (shot,) = film.shots
    assert shot.reference_video == V1 and film.music == A1 and shot.sounds == (A2,)


def test_what_nothing_ties_to_a_shot_is_an_error_naming_the_item():
    film = parse_prompt("Shot 1 (2s): A.\nShot 2 (2s): B.")
    with pytest.raises(InputError, match="reference video 1 is tied to no shot; mention @video1") as e:
        attach_media(film, [V1], [])
    assert e.value.field == "reference_videos[1]"
    assert attach_media(film, [], [A1]).music == A1  # one loose clip: the music, as before
    with pytest.raises(InputError, match="reference audio 2 is tied to nothing; mention @audio2"):
        attach_media(film, [], [A1, A2])
    both = parse_prompt("Shot 1 (2s): @audio1 as music.\nShot 2 (2s): @audio2 as music.")
    with pytest.raises(InputError, match="@audio1 and @audio2 are both called the music"):
        attach_media(both, [], [A1, A2])


def test_a_mention_of_a_missing_reference_names_the_closest():
    with pytest.raises(InputError, match=r"has 1 reference video .*; the closest is @video1$"):
        check_mentions("copy @video2", {"image": 2, "video": 1, "audio": 0})
    with pytest.raises(InputError, match=r"no reference audio clips .*; the closest is @image1$"):
        check_mentions("@audio1 rings", {"image": 2, "video": 0, "audio": 0})

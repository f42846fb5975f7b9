"""film.references: Seedance's `@image1` / `@图片1` mentions and named references become characters whose
images the director uses per shot, exactly as `--ref NAME=IMAGE` does."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from yingxi.director.plan import keyframe_for
from yingxi.errors import InputError
from yingxi.film import parse_prompt
from yingxi.film.references import attach_references, check_mentions, mentions

A, B, C = Path("a.png"), Path("b.png"), Path("c.png")


def test_every_mention_form_seedance_writes():
    text = "@image1, @Image 2, @img3, @图片4, @图4, @图像5, @video1, @视频2, @audio1, @音频2"
    assert [(m.kind, m.number) for m in mentions(text)] == [
        ("image", 1), ("image", 2), ("image", 3), ("image", 4), ("image", 4), ("image", 5),
        ("video", 1), ("video", 2), ("audio", 1), ("audio", 2)]  # fmt: skip
    assert mentions("mail me @ home, or at image1") == []


def test_a_mention_past_the_items_names_itself():
    check_mentions("@image2 and @video1", {"image": 2, "video": 1})
    with pytest.raises(
        InputError, match='"@图片3" refers to reference image 3, but the request has 2 reference'
    ):
        check_mentions("@图片3 waves", {"image": 2})
    with pytest.raises(
        InputError, match='"@video1" refers to reference video 1, but the request has no reference'
    ):
        check_mentions("@video1", {"image": 2, "video": 0})
    with pytest.raises(InputError, match="reference image 0"):
        check_mentions("@image0", {"image": 2})


def _keys(film):
    return [
        (k.source, k.character, k.path)
        for k in (keyframe_for(film, i) for i in range(1, len(film.shots) + 1))
    ]


def test_mentions_and_bindings_give_each_shot_its_characters_keyframe():
    text = (
        "OLD JIA (@image1) and 小李（@图片2） by the river.\n"
        'Shot 1 (2s): @image1 alone.\nShot 2 (2s): @图2 by the fire.\n小李: "新年好。"\n'
        'Shot 3 (2s): Both.\nOLD JIA: "Happy new year."'
    )
    film = attach_references(parse_prompt(text), [A, B], [None, None], single=False)
    assert [c.name for c in film.characters] == ["OLD JIA", "小李"]
    assert _keys(film) == [("character", "OLD JIA", A), ("character", "小李", B), ("character", "OLD JIA", A)]
    assert film.style == "OLD JIA and 小李 by the river."  # what a neural backend reads
    assert film.shots[0].prompt == "OLD JIA alone." and film.shots[1].prompt == "小李 by the fire."


def test_before_the_first_reference_was_every_shots_keyframe_now_only_the_style_image():
    text = 'Shot 1 (2s): A river.\nJIA: "Hi."\nShot 2 (2s): A fire.'
    film = attach_references(parse_prompt(text), [A, B], ["JIA", None], single=False)
    assert _keys(film) == [("character", "JIA", A), ("style", None, B)]  # one unnamed image: the style image
    with pytest.raises(InputError, match=r"reference images 1, 2 are tied to no character or shot"):
        attach_references(parse_prompt(text), [A, B], [None, None], single=False)


def test_a_first_frame_and_references_are_both_used():
    film = parse_prompt('Shot 1 (2s): Dawn.\nJIA: "Hi."\nShot 2 (2s): Dusk.\nJIA: "Bye."')
    film = film.with_shot(0, replace(film.shots[0], first_frame=C))
    film = attach_references(film, [A], ["JIA"], single=False)
    assert _keys(film) == [("first_frame", None, C), ("character", "JIA", A)]


def test_names_are_checked_and_keep_the_films_spelling():
    text = 'Shot 1 (2s): A river.\nOLD JIA: "Hi."\nShot 2 (2s): A fire.'
    film = attach_references(parse_prompt(text), [A], ["old jia"], single=False)
    assert [c.name for c in film.characters] == ["OLD JIA"]
    with pytest.raises(InputError, match=r'unknown character "OLD JAI" \(did you mean "OLD JIA"\?\)') as e:
        attach_references(parse_prompt(text), [A], ["OLD JAI"], single=False)
    assert e.value.field == "reference_images[1].name"
    # A name given to a mentioned image needs no speaker: the mention says where it is used.
    film = attach_references(parse_prompt("Shot 1 (2s): @image1 waits.\nShot 2 (2s): Rain."), [A], ["MEI"],
                             single=False)  # fmt: skip
    assert _keys(film)[0] == ("character", "MEI", A) and film.shots[0].prompt == "MEI waits."
    with pytest.raises(InputError, match='named "BOB", but the prompt calls it MEI'):
        attach_references(parse_prompt("MEI (@image1) waits.\nShot 1 (2s): @image1.\nShot 2 (2s): x."), [A],
                          ["BOB"], single=False)  # fmt: skip


def test_a_one_shot_prompt_uses_every_reference():
    film = attach_references(parse_prompt("@image2 hands @image1 a cup."), [A, B], [None, None], single=True)
    assert film.shots[0].featured == ("@image2", "@image1")
    assert keyframe_for(film, 1).path == B  # the first one the shot names

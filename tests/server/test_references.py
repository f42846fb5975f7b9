"""Reference images tied to characters through every API: Seedance 2.0's `@image1` / `@图片1` mentions and
named reference_image items (official Ark SDK), `NAME=file` in the native film API. Each reference is a
solid colour, so the decoded film shows which one each shot used."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
import yaml
from PIL import Image
from volcenginesdkarkruntime import Ark
from volcenginesdkarkruntime._exceptions import ArkBadRequestError

from tests.server.conftest import assert_error, data_url, wait_for
from yingxi.media.video import read_frames

RED, BLUE, GREEN = (220, 30, 30), (30, 40, 220), (30, 200, 60)
FINISHED = ("succeeded", "failed", "cancelled", "expired")


def solid(color: tuple[int, int, int], width: int = 96, height: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), color, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def image_item(data: bytes, role: str, name: str | None = None) -> dict:
    item = {"type": "image_url", "image_url": {"url": data_url(data)}, "role": role}
    if name is not None:
        item["name"] = name
    return item


def shot_colours(video: bytes, tmp_path, shots: int, fps: int = 24) -> list[tuple[int, int, int]]:
    """The mean colour of the middle third of the frame, at the middle of each 1 s shot."""
    path = tmp_path / "film.mp4"
    path.write_bytes(video)
    frames = read_frames(path)
    assert (
        shots * fps <= len(frames) <= shots * fps + fps // 3
    )  # a spoken line may lengthen its shot a little
    h, w = frames.shape[1:3]
    centre = frames[:, h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].reshape(len(frames), -1, 3).mean(axis=1)
    return [tuple(int(v) for v in centre[i * fps + fps // 2]) for i in range(shots)]


def near(colour: tuple[int, int, int], expected: tuple[int, int, int], tol: int = 30) -> bool:
    return max(abs(a - b) for a, b in zip(colour, expected, strict=True)) <= tol


def ark(live):
    return Ark(base_url=live.url + "/api/v3", api_key=live.alice, max_retries=0)


def run_ark(live, content: list[dict]) -> object:
    client = ark(live)
    created = client.content_generation.tasks.create(model="doubao-seedance-2-0", content=content,
                                                     resolution="480p", ratio="16:9")  # fmt: skip
    task = wait_for(
        lambda: client.content_generation.tasks.get(task_id=created.id), lambda t: t.status in FINISHED
    )
    assert task.status == "succeeded", task.error
    return task


MENTIONS = """Ink-wash winter. OLD JIA (@image1) and XIAO LI (@图片2) meet on the ice.
Shot 1 (1s, medium, static): @image1 stands alone on the frozen river.
Shot 2 (1s, medium, static): @Image 2 laughs by the fire.
Shot 3 (1s, medium, static): They walk home.
OLD JIA: "Hi."
"""


def test_ark_sdk_prompt_mentions_tie_each_reference_to_its_characters_shots(live, tmp_path):
    """Before: the first reference was every shot's keyframe. Now @image1 is OLD JIA (shots 1 and 3: he is
    mentioned, then speaks), @图片2 is XIAO LI (shot 2), by the order of the reference_image items."""
    task = run_ark(live, [{"type": "text", "text": MENTIONS}, image_item(solid(RED), "reference_image"),
                          image_item(solid(BLUE), "reference_image")])  # fmt: skip
    colours = shot_colours(httpx.get(task.content.video_url, timeout=30).content, tmp_path, 3)
    assert near(colours[0], RED) and near(colours[1], BLUE) and near(colours[2], RED), colours
    assert task.revised_prompt == MENTIONS.strip() or task.revised_prompt == MENTIONS  # the text as sent


def test_ark_sdk_named_items_are_used_and_a_first_frame_beside_them_is_refused(live, tmp_path):
    """Named items (yingxi's `name` on a reference_image): each character's reference is the keyframe of the
    shots where they speak. Seedance 2.0 does not mix first/last-frame mode with reference mode: adding a
    first frame is a 400 naming the item and the rule."""
    text = """Shot 1 (1s, medium, static): The young man turns.
XIAO LI: "You?"
Shot 2 (1s, medium, static): The old man nods.
OLD JIA: "Yes."
"""
    content = [{"type": "text", "text": text}, image_item(solid(RED), "reference_image", "OLD JIA"),
               image_item(solid(BLUE), "reference_image", "XIAO LI")]  # fmt: skip
    task = run_ark(live, content)
    colours = shot_colours(httpx.get(task.content.video_url, timeout=30).content, tmp_path, 2)
    assert near(colours[0], BLUE) and near(colours[1], RED), colours
    with pytest.raises(ArkBadRequestError) as e:
        ark(live).content_generation.tasks.create(
            model="m", content=[*content, image_item(solid(GREEN), "first_frame")]
        )
    assert e.value.body["code"] == "InvalidParameter" and e.value.body["param"] == "content[3].role"
    assert e.value.body["message"].startswith(
        "content[3]: first/last frame content cannot be mixed with reference media content (content[3] is a "
        "first_frame, content[1] a reference_image)"
    )


def test_ark_mentions_past_the_items_and_misspelt_names_are_400s(live):
    client = ark(live)
    text = "Shot 1 (1s): @image1 waits.\nShot 2 (1s): @图片3 arrives."
    with pytest.raises(ArkBadRequestError) as e:
        client.content_generation.tasks.create(model="m", content=[
            {"type": "text", "text": text}, image_item(solid(RED), "reference_image"),
            image_item(solid(BLUE), "reference_image")])  # fmt: skip
    message = e.value.body["message"] if isinstance(e.value.body, dict) else str(e.value)
    assert '"@图片3" refers to reference image 3, but the request has 2 reference images' in message
    assert message.endswith("the closest is @image2")

    text = 'Shot 1 (1s): The river.\nOLD JIA: "Hello."\nShot 2 (1s): The fire.'
    with live.http(live.alice) as http:
        body = {"model": "m", "content": [{"type": "text", "text": text},
                                          image_item(solid(RED), "reference_image", "OLD JAI")]}  # fmt: skip
        error = assert_error(http.post("/api/v3/contents/generations/tasks", json=body), 400)
        assert 'unknown character "OLD JAI" (did you mean "OLD JIA"?)' in error["message"]
        assert error["param"] == "reference_images[1].name"
        # Two references that nothing ties to a character or shot: which one is the style image?
        body["content"] = [{"type": "text", "text": text}, image_item(solid(RED), "reference_image"),
                           image_item(solid(BLUE), "reference_image")]  # fmt: skip
        error = assert_error(http.post("/api/v3/contents/generations/tasks", json=body), 400)
        assert "reference images 1, 2 are tied to no character or shot" in error["message"]
        # A name on a first frame means nothing.
        body["content"] = [{"type": "text", "text": text}, image_item(solid(RED), "first_frame", "OLD JIA")]
        assert assert_error(http.post("/api/v3/contents/generations/tasks", json=body), 400)["param"] == (
            "content[1].name"
        )


FILM = {
    "resolution": "480p",
    "ratio": "16:9",
    "shots": [
        {"prompt": "The old man on the ice.", "duration": 1, "framing": "medium",
         "dialogue": [{"character": "OLD JIA", "line": "Cold."}]},
        {"prompt": "The young man by the fire.", "duration": 1, "framing": "medium",
         "dialogue": [{"character": "XIAO LI", "line": "Warm."}]},
    ],
}  # fmt: skip


def test_native_film_api_takes_name_equals_file_references(live, tmp_path):
    """Multipart `ref=NAME=file` fields (as `yingxi generate --ref`), and `refs:` in a JSON script."""
    files = {"jia": ("jia.png", solid(RED), "image/png"), "li": ("li.png", solid(BLUE), "image/png")}
    with live.http(live.alice) as http:
        r = http.post("/api/v1/films", data={"script": yaml.safe_dump(FILM), "ref": ["OLD JIA=jia.png", "XIAO LI=li"]},
                      files=files)  # fmt: skip
        assert r.status_code == 200, r.text
        done = wait_for(
            lambda: http.get(f"/api/v1/films/{r.json()['id']}").json(), lambda f: f["status"] in FINISHED
        )
        assert done["status"] == "succeeded", done["error"]
        colours = shot_colours(httpx.get(done["video_url"]).content, tmp_path, 2)
        assert near(colours[0], RED) and near(colours[1], BLUE), colours
        srt = httpx.get(done["subtitles_url"])  # the dialogue as SubRip, served beside the video
        assert srt.status_code == 200 and srt.headers["content-type"].startswith("application/x-subrip")
        assert "Cold." in srt.text and "Warm." in srt.text and " --> " in srt.text

        script = {**FILM, "refs": [f"XIAO LI={data_url(solid(GREEN))}"]}
        r = http.post("/api/v1/films", json=script)
        assert r.status_code == 200, r.text
        done = wait_for(
            lambda: http.get(f"/api/v1/films/{r.json()['id']}").json(), lambda f: f["status"] in FINISHED
        )
        assert done["status"] == "succeeded", done["error"]
        colours = shot_colours(httpx.get(done["video_url"]).content, tmp_path, 2)
        assert near(colours[1], GREEN) and not near(colours[0], GREEN), colours

        # A name that is no character or speaker is refused with the closest one, before any work.
        error = assert_error(
            http.post("/api/v1/films", json={**FILM, "refs": {"XIAO LEE": data_url(solid(RED))}}), 400
        )
        assert 'unknown character "XIAO LEE" (did you mean "XIAO LI"?)' in error["message"]
        assert error["param"] == "refs.XIAO LEE"
        error = assert_error(http.post("/api/v1/films", json={**FILM, "refs": ["XIAO LI"]}), 400)
        assert error["param"] == "refs[0]" and "NAME=file" in error["message"]


def test_build_film_reads_the_shots_it_got_not_the_requests_flag(tmp_path):
    """What the worker renders from: a multi-shot text never has every reference in every shot, whatever
    the stored `single` says (a header the door's pattern missed, a request stored by an older server)."""
    from yingxi.director.plan import keyframe_for
    from yingxi.server.inputs import SHOT_HEADER_RE, build_film

    text = 'Shot 1 (1s): @image1 waits.\nShot 2 (1s): Rain.\nJIA: "Hi."'
    request = {"source": "prompt", "text": text, "default_duration": None, "single": True,
               "fields": {"resolution": "480p", "ratio": "16:9", "fps": 24, "seed": 1},
               "reference_images": ["a.png", "b.png"], "reference_names": [None, "JIA"]}  # fmt: skip
    film = build_film(request, tmp_path)
    folder = tmp_path / "inputs"
    assert [keyframe_for(film, i).path for i in (1, 2)] == [folder / "a.png", folder / "b.png"]
    assert all(SHOT_HEADER_RE.search(t) for t in ("镜头一：冰河", "第二镜：烟花", "Shot 3 (2s): x"))

"""`yingxi generate --export`: the edit beside the film, as a person runs it (a real subprocess)."""

import pytest

from tests.e2e.test_cli import yingxi

otio = pytest.importorskip("opentimelineio")


def test_export_otio_writes_the_timeline_and_shot_files_beside_the_film(tmp_path):
    r = yingxi("generate", "Shot 1 (1s, static): Kites.\nShot 2 (1s, static, fade): Hills.", "-o", "film.mp4",
               "--resolution", "480p", "--fps", "12", "--export", "otio", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "edit: film.otio (2 media files)" in r.stdout
    timeline = otio.adapters.read_from_file(str(tmp_path / "film.otio"))
    items = list(timeline.video_tracks()[0])
    assert [type(i).__name__ for i in items] == ["Clip", "Transition", "Clip"]
    assert items[1].transition_type == "Fade_Through_Black"
    assert sorted(p.name for p in (tmp_path / "film.shots").iterdir()) == ["shot-01.mp4", "shot-02.mp4"]


def test_bad_export_exits_2_naming_the_closest_and_writes_nothing(tmp_path):
    r = yingxi("generate", "Shot 1 (1s): Kites.", "-o", "film.mp4", "--export", "fcpxm", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0  # one line, no traceback
    assert 'unknown export format "fcpxm" (did you mean "fcpxml"?)' in r.stderr
    assert list(tmp_path.iterdir()) == []

"""The shot plan: what each shot needs so any backend can shoot it and the editor can cut it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from yingxi.director.camera import CameraPath, camera_path, camera_phrase
from yingxi.director.capabilities import Capabilities
from yingxi.director.conditioning import ShotConditioning, shot_conditioning
from yingxi.director.palette import RGB, palette_words, style_palette
from yingxi.errors import CapabilityError, InputError, unknown_word
from yingxi.film.model import COMPOSITIONS, FITS, Film, Shot, Transition
from yingxi.media.image import cover_kept, image_size

# The plan carries no negative prompt of its own: each neural backend has the one its model was sampled
# with (Wan: models.wan.config.WAN_NEGATIVE_PROMPT), and a generic list would only displace it.
DEFAULT_NEGATIVE_PROMPT = ""


# Keyframes the director chose (rather than the user): dropped, with a note, for text-only backends.
# An explicit first_frame is kept, so a backend that cannot use it says so before any work starts.
IMPLICIT_SOURCES = {"continue": "previous shot's last frame", "character": "character's reference image",
                    "style": "style image"}  # fmt: skip
IMAGE_CONDITIONINGS = frozenset({"i2v", "flf2v"})
SENTENCE_ENDS = (".", "!", "?", "…", "。", "！", "？", '"', "”", "」")
MAX_CROP_LOSS = 0.25  # a cover fit that cuts more than this much of a keyframe's area gets a note


@dataclass(frozen=True)
class Keyframe:
    """Where a shot's first picture comes from, in the order the director tries them."""

    source: str  # "first_frame" | "continue" | "character" | "style" | "title" | "references"
    path: Path | None = None  # the image, for first_frame / character / style
    character: str | None = None  # whose reference image, for "character"
    on_screen: tuple[str, ...] = ()  # characters the keyframe shows (for "character": whose images, in order)
    compose: str | None = None  # "two-shot" | "speaker" when several characters' images make the keyframe
    paths: tuple[Path, ...] = ()  # "character": each on_screen character's reference image
    speakers: tuple[str, ...] = ()  # "speaker": who is in frame during each dialogue line, in order
    fit: str = "cover"  # how its images meet the frame: "cover" | "contain" | "blur"

    @property
    def words(self) -> str:
        """What the plan's keyframe column says: 'character (jia.png)', 'two-shot: OLD JIA | XIAO LI'."""
        if self.compose == "two-shot":
            text = "two-shot: " + " | ".join(self.on_screen)
        elif self.compose == "speaker":
            text = "speaker: " + ", ".join(dict.fromkeys(self.speakers))
        elif self.source == "references":  # no first frame: the characters' images are reference items
            text = "references: " + ", ".join(self.on_screen)
        else:
            text = self.source + (f" ({self.path})" if self.path else "")
        plain = self.fit == "cover" or self.source in ("continue", "title", "references")
        return text if plain else f"{text}, fit {self.fit}"


@dataclass(frozen=True)
class ShotPlan:
    index: int  # 1-based shot number, as people count shots
    shot: Shot
    prompt: str  # full prompt for neural backends: style, characters, shot text, framing and move
    negative_prompt: str
    num_frames: int  # at `fps`
    fps: float
    width: int
    height: int
    seed: int
    camera: CameraPath  # one sample per frame
    camera_phrase: str
    keyframe: Keyframe
    last_frame: Path | None
    notes: tuple[str, ...] = ()  # what the director changed and why (snapped durations, sizes)
    palette: tuple[tuple[str, RGB], ...] = ()  # title-card colours named by the style's words, (word, RGB)
    conditioning: ShotConditioning = ShotConditioning()  # references, extension, reference video, sound

    @property
    def keyframe_words(self) -> str:
        """The keyframe as the plan shows it, with the title card's palette when it has one."""
        if self.keyframe.source == "title" and self.palette:
            return f"title (palette {palette_words(self.palette)})"
        return self.keyframe.words

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    @property
    def transition(self) -> Transition:
        return self.shot.transition


def shot_seed(film_seed: int, index: int) -> int:
    """A per-shot seed that depends only on the film's seed and the shot number (stable across runs)."""
    digest = hashlib.sha256(f"yingxi:{film_seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _sentence(text: str) -> str:
    """Text ending as a sentence does, once: "Is it late?" stays, "冰河。" gets no extra ".", "Ice" gets one."""
    text = text.strip()
    return text if text.endswith(SENTENCE_ENDS) else f"{text}."


def shot_prompt(film: Film, shot: Shot, phrase: str) -> str:
    parts = [_sentence(shot.prompt)]
    for name in shot.featured:
        character = film.character(name)
        if character and character.description:
            parts.append(_sentence(f"{character.name}: {character.description}"))
    parts.append(_sentence(phrase[0].upper() + phrase[1:]))
    if film.style:
        parts.append(_sentence(film.style))
    return " ".join(parts)


def _fit(film: Film, shot: Shot) -> str:
    return shot.fit or film.fit


def _check_framing(film: Film, shot: Shot, index: int) -> None:
    """The parsers only make valid fits, compositions and focus points; a Film built in Python may not."""
    if film.fit not in FITS:
        raise InputError(unknown_word("fit", str(film.fit), FITS), field="fit")
    if shot.fit is not None and shot.fit not in FITS:
        raise InputError(unknown_word("fit", str(shot.fit), FITS), shot=index, field="fit")
    if shot.compose is not None and shot.compose not in COMPOSITIONS:
        raise InputError(
            unknown_word("composition", str(shot.compose), COMPOSITIONS), shot=index, field="compose"
        )
    focus = shot.focus
    if focus is not None and not (
        len(focus) == 2 and all(isinstance(v, (int, float)) and 0.0 <= v <= 1.0 for v in focus)
    ):
        raise InputError(f"focus is (x, y), fractions of the keyframe in 0..1, got {focus!r}", shot=index,
                         field="focus")  # fmt: skip


def _composed(film: Film, shot: Shot, notes: list[str]) -> Keyframe | None:
    """The featured characters' reference images: one, side by side (two-shot), or whoever speaks."""
    cast = [c for c in (film.character(n) for n in shot.featured) if c is not None and c.image is not None]
    if not cast:
        return None
    names, paths, fit = tuple(c.name for c in cast), tuple(c.image for c in cast), _fit(film, shot)
    compose = shot.compose or "two-shot"
    if compose == "speaker" and shot.dialogue:
        speakers, shown = [], None
        for line in shot.dialogue:
            c = film.character(line.character)
            shown = c.name if c is not None and c.name in names else shown
            speakers.append(shown)
        first = next(s for s in speakers if s is not None) if any(speakers) else names[0]
        speakers = [s or first for s in speakers]  # before anyone with an image speaks: the first who does
        if len(set(speakers)) > 1:
            on = tuple(n for n in names if n in speakers)
            return Keyframe("character", path=paths[names.index(speakers[0])], character=speakers[0],
                            on_screen=on, compose="speaker", paths=tuple(paths[names.index(n)] for n in on),
                            speakers=tuple(speakers), fit=fit)  # fmt: skip
        names, paths = (speakers[0],), (paths[names.index(speakers[0])],)
    elif compose == "speaker":
        notes.append("compose: speaker needs dialogue; the shot has none, so it is a two-shot")
    if len(cast) > 1 and len(names) > 1:
        return Keyframe("character", path=paths[0], character=names[0], on_screen=names, compose="two-shot",
                        paths=paths, fit=fit)  # fmt: skip
    return Keyframe("character", path=paths[0], character=names[0], on_screen=names, paths=paths, fit=fit)


def keyframe_for(
    film: Film, index: int, previous: Keyframe | None = None, notes: list[str] | None = None
) -> Keyframe:
    """first_frame; else the previous shot's last frame when continuing (unless someone who speaks is not
    in it); else the featured characters' reference images, composed; else the style image; else a title card.
    `previous` is the keyframe chosen for the shot before (who is on screen when this one continues it)."""
    notes = [] if notes is None else notes
    shot = film.shots[index - 1]
    fit = _fit(film, shot)
    if shot.first_frame is not None:
        if shot.compose is not None:
            notes.append(f"compose: {shot.compose} is not used: the shot opens on its first_frame")
        return Keyframe("first_frame", path=shot.first_frame, on_screen=shot.featured, fit=fit)
    composed = _composed(film, shot, notes)
    if shot.continue_previous and index > 1:
        before = previous.on_screen if previous is not None else ()
        lower = {n.lower() for n in before}
        absent = [n for n in composed.on_screen if n.lower() not in lower] if composed else []
        speaking = {d.character.lower() for d in shot.dialogue}
        absent = [n for n in absent if n.lower() in speaking]
        if not absent:
            return Keyframe("continue", on_screen=before)
        notes.append(
            f"not continuing the previous shot: {', '.join(absent)} speaks but is not in its last frame, "
            "so the shot opens on the speakers' reference images"
        )
    if composed is not None:
        return composed
    if film.style_image is not None:
        return Keyframe("style", path=film.style_image, fit=fit)
    return Keyframe("title")


def _offscreen_speakers(film: Film, shot: Shot, key: Keyframe) -> list[str]:
    """Notes for lines spoken by someone the keyframe cannot show (no reference image)."""
    shown = {n.lower() for n in key.on_screen}
    notes = []
    for name in dict.fromkeys(d.character for d in shot.dialogue):
        if name.lower() in shown or key.source == "first_frame":
            continue
        c = film.character(name)
        if c is None or c.image is None:
            notes.append(f"{name} speaks but has no reference image, so is not on screen; give them an image")
    return notes


def _crop_notes(key: Keyframe, width: int, height: int) -> list[str]:
    """A cover fit that cuts more than MAX_CROP_LOSS of a keyframe's area is worth knowing about."""
    if key.fit != "cover":
        return []
    paths = key.paths or ((key.path,) if key.path is not None else ())
    columns = len(paths) if key.compose == "two-shot" else 1
    notes = []
    for path in dict.fromkeys(paths):
        size = image_size(path)
        if size is None:
            continue
        lost = 1.0 - cover_kept(size[0], size[1], round(width / columns), height)
        if lost > MAX_CROP_LOSS:
            notes.append(
                f"the keyframe {path.name} ({size[0]}x{size[1]}) loses {lost:.0%} of its area to the crop; "
                "fit: contain or fit: blur shows all of it"
            )
    return notes


def plan(film: Film, caps: Capabilities | None = None) -> list[ShotPlan]:
    """One ShotPlan per shot, within what the backend can shoot."""
    caps = caps or Capabilities()
    fps = float(caps.native_fps or film.fps)
    width, height = caps.legal_size(*film.size)
    plans = []
    # Frames are counted on the film's running clock, not shot by shot, so rounding does not add up:
    # ten 0.27 s shots at 24 fps are 65 frames (2.71 s), not 10 x 6 = 60 (2.5 s).
    ends, wanted_so_far = 0.0, 0
    palette = style_palette(film.style)
    previous: Keyframe | None = None
    shown_size = "medium"  # the shot size the previous shot's frames have
    for i, shot in enumerate(film.shots, start=1):
        _check_framing(film, shot, i)
        notes = []
        if (width, height) != film.size:
            notes.append(f"size {film.size[0]}x{film.size[1]} -> {width}x{height} for this backend")
        ends += shot.duration
        wanted = max(1, round(ends * fps) - wanted_so_far)
        wanted_so_far += wanted
        if caps.max_frames is not None and wanted > caps.max_frames + caps.frame_step:
            raise CapabilityError(
                f"the shot lasts {shot.duration:g}s, but this backend makes at most {caps.max_frames} frames "
                f"({caps.max_frames / fps:.2f}s at {fps:g} fps) in one shot; split it into shorter shots",
                shot=i,
                field="duration",
            )
        frames = caps.legal_frames(wanted)
        if frames != wanted:
            notes.append(
                f"duration {shot.duration:g}s -> {frames / fps:.2f}s ({frames} frames, the nearest this backend shoots)"
            )
        keyframe = previous = keyframe_for(film, i, previous, notes)
        notes += _offscreen_speakers(film, shot, keyframe) + _crop_notes(keyframe, width, height)
        conditioning = shot_conditioning(film, shot, keyframe.source, caps, notes)
        if keyframe.source == "character" and conditioning.references:  # identity, not the first frame
            keyframe = Keyframe("references", on_screen=keyframe.on_screen, fit=keyframe.fit)
        extends = conditioning.extend_frames > 0  # a continue that hands on frames, not a first frame
        if (
            keyframe.source in IMPLICIT_SOURCES
            and not extends
            and not caps.conditionings & IMAGE_CONDITIONINGS
        ):
            notes.append(
                f"the {IMPLICIT_SOURCES[keyframe.source]} is not used: this backend shoots from text only"
            )
            keyframe = Keyframe("title")
        seed = shot.seed if shot.seed is not None else shot_seed(film.seed, i)
        move = shot.camera.move
        phrase = camera_phrase(shot.camera.framing, move.kind, move.direction, move.speed)
        # A continued shot's keyframe already has the previous shot's size (a title card has none): frame
        # relative to it, so close-up after close-up stays a close-up.
        before = shown_size if keyframe.source == "continue" else "medium"
        shown_size = "medium" if keyframe.source == "title" else shot.camera.framing
        fill = "black" if _fit(film, shot) == "contain" else "blur"
        path = camera_path(move.kind, move.direction, move.speed, frames, seed, framing=shot.camera.framing,
                           focus=shot.focus, fill=fill, keyframe_framing=before)  # fmt: skip
        plans.append(
            ShotPlan(
                index=i,
                shot=shot,
                prompt=shot_prompt(film, shot, phrase),
                negative_prompt=DEFAULT_NEGATIVE_PROMPT,
                num_frames=frames,
                fps=fps,
                width=width,
                height=height,
                seed=seed,
                camera=path,
                camera_phrase=phrase,
                keyframe=keyframe,
                last_frame=shot.last_frame,
                notes=tuple(notes),
                palette=palette,
                conditioning=conditioning,
            )
        )
    return plans

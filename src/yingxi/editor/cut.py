"""assemble(): the editor's cut. Shots are laid end to end at the film's fps, transitions are mixed lazily
as frames are asked for, and the sound track is built whole. stream_frames() shoots each shot only when its
first frame is due and keeps of the shot before only what the transition and continuity need, so a render
holds one shot's clip at a time, however long the film."""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from yingxi.backends.base import Clip
from yingxi.director.plan import ShotPlan
from yingxi.editor.dialogue import SAMPLE_RATE, DialogueTake, place_lines
from yingxi.editor.mix import MixedTrack, fade_tail, mix
from yingxi.editor.sound import ShotSounds
from yingxi.editor.subtitles import Subtitle, SubtitleOverlay, active_subtitle, subtitle_text
from yingxi.editor.transitions import Window, fade_out, plan_windows
from yingxi.editor.transitions import mix as mix_frames
from yingxi.errors import InputError
from yingxi.film.model import Film
from yingxi.media.image import fit_image
from yingxi.media.video import read_audio

# Music is decoded only as far as the film can use: its length plus this much, for shots a backend's frame
# counts make a little longer than asked (the mix trims the rest).
MUSIC_SLACK_SECONDS = 60.0
MIN_SUBTITLE_SECONDS = 5 / 6  # shortest time on screen (20 frames at 24 fps, Netflix's timed text guide)


@dataclass(frozen=True)
class HeldFrames:
    """What is kept of a shot's clip once the next shot is being shot: some of its frames, by clip index."""

    frames: dict[int, np.ndarray]  # clip frame index -> uint8 (H, W, 3)
    num_frames: int  # of the whole clip
    fps: float


@dataclass(frozen=True)
class Cut:
    width: int
    height: int
    fps: float
    num_frames: int
    audio: (
        np.ndarray | MixedTrack
    )  # float32 (N, 2) at sample_rate, num_frames / fps long (made as read: timeline)
    sample_rate: int
    subtitles: list[Subtitle]
    shot_starts: list[float]  # seconds
    shot_frames: list[int]  # frames each shot contributes
    windows: list[Window | None] = field(repr=False)  # the transition into each shot
    clips: list[Clip | HeldFrames | None] = field(repr=False)  # None: not shot yet, or no longer needed
    burn_subtitles: bool = False
    _cache: OrderedDict = field(default_factory=OrderedDict, repr=False, compare=False)
    fade_out_frames: int = 0  # the film's closing fade to black ("fade out"), in frames
    lines: list[tuple[int, DialogueTake]] = field(default_factory=list, repr=False)  # (start sample, take)
    music: np.ndarray | None = field(default=None, repr=False)  # float32 (N, 2) as decoded, before looping
    sounds: ShotSounds | None = field(default=None, repr=False)  # the shots' own sound, put as they are shot

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    @cached_property
    def first_frames(self) -> list[int]:
        """The output frame each shot starts on."""
        return [int(f) for f in np.cumsum([0, *self.shot_frames[:-1]])]

    @cached_property
    def _overlay(self) -> SubtitleOverlay:
        return SubtitleOverlay(self.width, self.height)

    def shot_frame(self, shot: int, local: int) -> np.ndarray:
        """Frame `local` of shot `shot` (0-based) at the cut's fps and size: the clip frame nearest in time."""
        clip = self.clips[shot]
        src = self._clip_index(shot, local)
        key = (shot, src)
        if key not in self._cache:
            frame = clip.frames[src]
            if frame.shape[:2] != (self.height, self.width):
                frame = fit_image(frame, self.width, self.height)
            self._cache[key] = frame
            if len(self._cache) > 8:  # the frames a transition needs, plus a held one
                self._cache.popitem(last=False)
        return self._cache[key]

    def frame(self, index: int) -> np.ndarray:
        """Output frame `index`: uint8 (height, width, 3)."""
        if not 0 <= index < self.num_frames:
            raise IndexError(f"frame {index} outside 0..{self.num_frames - 1}")
        starts = self.first_frames
        i = bisect.bisect_right(starts, index) - 1
        local = index - starts[i]
        into, after = self.windows[i], self.windows[i + 1] if i + 1 < len(self.windows) else None
        if into is not None and index in into:
            a = None if into.kind == "fade-in" else self.shot_frame(i - 1, self.shot_frames[i - 1] - 1)
            out = mix_frames(into, index, a, self.shot_frame(i, local))
        elif after is not None and index in after:
            out = mix_frames(after, index, self.shot_frame(i, local), self.shot_frame(i + 1, 0))
        else:
            out = self.shot_frame(i, local)
        if self.burn_subtitles:
            sub = active_subtitle(self.subtitles, index / self.fps)
            if sub is not None:
                out = self._overlay.draw(out, sub.text)
        return fade_out(out, index, self.num_frames, self.fade_out_frames)

    def iter_frames(self) -> Iterator[np.ndarray]:
        """Every output frame in order, composed as it is asked for."""
        for index in range(self.num_frames):
            yield self.frame(index)

    def shot_of(self, index: int) -> int:
        """The 0-based shot whose part of the timeline holds output frame `index`."""
        return bisect.bisect_right(self.first_frames, index) - 1

    def _clip_index(self, shot: int, local: int) -> int:
        clip = self.clips[shot]
        return nearest_clip_frame(local, clip.num_frames, clip.fps, self.fps)

    def shot_frames_of(self, shot: int, clip: Clip) -> Iterator[np.ndarray]:
        """Shot `shot`'s own frames at the cut's fps and size, from `clip`, without transitions or subtitles:
        the frames shot_frame() gives (the editor's export writes them as the shot's clip file)."""
        for local in range(self.shot_frames[shot]):
            frame = clip.frames[nearest_clip_frame(local, clip.num_frames, clip.fps, self.fps)]
            if frame.shape[:2] != (self.height, self.width):
                frame = fit_image(frame, self.width, self.height)
            yield frame

    def hold_tail(self, shot: int, from_local: int) -> None:
        """Keep of shot `shot`'s clip only the frames its output frames from `from_local` on will read (an
        outgoing transition's half inside the shot, its last frame for the next transition), freeing the rest."""
        clip = self.clips[shot]
        if clip is None:
            return
        keep = {self._clip_index(shot, local) for local in range(from_local, self.shot_frames[shot])}
        keep.add(self._clip_index(shot, self.shot_frames[shot] - 1))
        # np.array copies: a clip's frames are views into its one (F, H, W, 3) array, which is freed now
        self.clips[shot] = HeldFrames({i: np.array(clip.frames[i]) for i in keep}, clip.num_frames, clip.fps)
        for key in [
            k for k in self._cache if k[0] == shot
        ]:  # views into that array too; made again on demand
            del self._cache[key]


def nearest_clip_frame(local: int, clip_frames: int, clip_fps: float, fps: float) -> int:
    """The clip frame nearest in time to output frame `local` of its shot."""
    return min(clip_frames - 1, max(0, math.floor(local * clip_fps / fps + 0.5 + 1e-9)))


def stream_frames(cut: Cut, shoot: Callable[[int], Clip]) -> Iterator[np.ndarray]:
    """Every output frame of `cut` (made by timeline()), calling shoot(i) for shot i's clip only when a frame
    first needs it; before each shoot the shot before is cut down to its held tail, and a shot two back is
    dropped. The frames are those cut.frame() gives with every clip in memory, bit for bit."""
    loaded = -1  # the last shot shot
    for index in range(cut.num_frames):
        while loaded < _shots_needed(cut, index):
            if loaded >= 0:
                local = index - cut.first_frames[loaded]
                cut.hold_tail(loaded, min(max(local, 0), cut.shot_frames[loaded] - 1))
            if loaded >= 1:
                cut.clips[loaded - 1] = None  # its last frame was for the transition into `loaded`
            for key in [k for k in cut._cache if k[0] < loaded]:  # fitted copies of frames no longer needed
                del cut._cache[key]
            loaded += 1
            cut.clips[loaded] = shoot(loaded)
            if cut.sounds is not None:  # its own sound joins the mix before the encoder reaches it
                cut.sounds.put(loaded, cut.clips[loaded])
        frame = cut.frame(index)
        if index + 1 < cut.num_frames and _shots_needed(cut, index + 1) > loaded:
            # The consumer still holds this frame while it asks for the next, which shoots: a view into the
            # clip would keep the whole clip alive beside the next one.
            frame = np.array(frame)
        yield frame


def _shots_needed(cut: Cut, index: int) -> int:
    """The last shot output frame `index` reads: its own, or the next one inside an outgoing transition."""
    i = cut.shot_of(index)
    after = cut.windows[i + 1] if i + 1 < len(cut.windows) else None
    return i + 1 if after is not None and index in after else i


def load_music(film: Film) -> np.ndarray | None:
    """float32 (N, 2) at 48 kHz of film.music, or None; an unreadable file is an InputError on field "music"
    (call it before shooting, so a bad file fails fast)."""
    if film.music is None:
        return None
    try:
        music = read_audio(film.music, SAMPLE_RATE, max_seconds=film.duration + MUSIC_SLACK_SECONDS)
    except InputError as e:
        raise InputError(e.message, file=e.file, field="music") from None
    if len(music) == 0:
        raise InputError("the music file holds no sound", file=str(film.music), field="music")
    return music


def sound_effects(plans: list[ShotPlan], starts: list[float], frames: list[int], fps: float,
                  n_samples: int) -> list:  # fmt: skip
    """(start sample, mono audio) of each shot's sound effects (a reference audio clip the prompt put at the
    shot, film/mentions.py, or one its backend could not follow: director/conditioning.py), from the shot's
    start, cut at its end; mixed like a line (the music ducks)."""
    out = []
    for i, p in enumerate(plans):
        for path in p.conditioning.sounds:
            try:
                sound = read_audio(path, SAMPLE_RATE, max_seconds=frames[i] / fps).mean(axis=1)  # (S,)
            except InputError as e:
                raise InputError(e.message, file=e.file, field="reference_audio", shot=i + 1) from None
            start = min(round(starts[i] * SAMPLE_RATE), n_samples)
            out.append((start, sound[: n_samples - start].astype(np.float32)))
    return out


def assemble(
    film: Film,
    plans: list[ShotPlan],
    clips: list[Clip],
    takes: list[list[DialogueTake]],
    *,
    burn_subtitles: bool = False,
    music: np.ndarray | None = None,
) -> Cut:
    """Cut the shot clips together with their transitions, dialogue, music and subtitles.
    `music`: the film's music as load_music gives it (None: loaded here from film.music, if any)."""
    if not (len(plans) == len(clips) == len(takes) == len(film.shots)):
        raise ValueError(
            f"assemble needs one plan, clip and take list per shot: {len(film.shots)} shots, "
            f"{len(plans)} plans, {len(clips)} clips, {len(takes)} take lists"
        )
    cut = timeline(film, plans, takes, burn_subtitles=burn_subtitles, music=music, audio_in_pieces=False,
                   clips=clips)  # fmt: skip
    cut.clips[:] = clips
    return cut


def timeline(
    film: Film,
    plans: list[ShotPlan],
    takes: list[list[DialogueTake]],
    *,
    burn_subtitles: bool = False,
    music: np.ndarray | None = None,
    audio_in_pieces: bool = True,
    clips: list[Clip] | None = None,
) -> Cut:
    """The cut before any shot is shot: where each shot and transition sits, the sound track, the subtitles
    (a shot's length comes from its plan). Its clips are None: stream_frames() shoots them as it goes.
    `audio_in_pieces`: the sound as a MixedTrack, mixed as the encoder reads it (False: mix() it whole now,
    with the shots' own sound from `clips`, when they are given)."""
    if not (len(plans) == len(takes) == len(film.shots)):
        raise ValueError(
            f"a timeline needs one plan and take list per shot: {len(film.shots)} shots, "
            f"{len(plans)} plans, {len(takes)} take lists"
        )
    fps = float(film.fps)
    width, height = film.size
    shot_frames = [max(1, round(p.num_frames * fps / p.fps)) for p in plans]
    transitions = [
        (p.shot.transition.kind, p.shot.transition.duration, p.shot.transition.direction) for p in plans
    ]
    windows = plan_windows(shot_frames, transitions, fps)
    total = sum(shot_frames)
    first = np.cumsum([0, *shot_frames[:-1]])
    shot_starts = [int(f) / fps for f in first]

    n_samples = round(total / fps * SAMPLE_RATE)
    lines: list[tuple[int, np.ndarray]] = []
    placed: list[tuple[int, DialogueTake]] = []
    subtitles: list[Subtitle] = []
    for i, shot_takes in enumerate(takes):
        seconds = shot_frames[i] / fps
        try:
            offsets = place_lines(shot_takes, seconds)
        except ValueError:
            need = sum(t.seconds for t in shot_takes)
            raise InputError(
                f"the lines need {need:.2f}s of speech but the shot came out {seconds:.2f}s long; make the "
                "shot longer or its lines shorter (editor.fit_dialogue, before planning, grows shots to fit)",
                shot=i + 1,
                field="dialogue",
            ) from None
        # A subtitle stays up while its line is spoken and at least MIN_SUBTITLE_SECONDS, if the shot has room
        # before its next line (or its end): a short "Yes." would otherwise flash past unread.
        ends = [*offsets[1:], seconds][: len(offsets)]
        for offset, next_start, take in zip(offsets, ends, shot_takes, strict=True):
            start = shot_starts[i] + offset
            sample = min(round(start * SAMPLE_RATE), n_samples - len(take.audio))
            lines.append((sample, take.audio))
            placed.append((sample, take))
            shown = min(max(take.seconds, MIN_SUBTITLE_SECONDS), next_start - offset)
            subtitles.append(Subtitle(start, start + shown, subtitle_text(take.character, take.text)))

    lines += sound_effects(plans, shot_starts, shot_frames, fps, n_samples)
    if music is None:
        music = load_music(film)
    sounds = shot_sounds(plans, first, fps, n_samples)
    for i, clip in enumerate(clips or ()):
        if sounds is not None:
            sounds.put(i, clip)
    audio = (MixedTrack if audio_in_pieces else mix)(n_samples, lines, music, SAMPLE_RATE, sounds)
    fade_frames = min(round(film.fade_out * fps), shot_frames[-1])  # "fade out": picture and sound together
    if fade_frames:
        audio = fade_tail(audio, min(n_samples, round(fade_frames / fps * SAMPLE_RATE)))
    return Cut(
        width=width,
        height=height,
        fps=fps,
        num_frames=total,
        audio=audio,
        sample_rate=SAMPLE_RATE,
        subtitles=subtitles,
        shot_starts=shot_starts,
        shot_frames=shot_frames,
        windows=windows,
        clips=[None] * len(plans),
        burn_subtitles=burn_subtitles,
        fade_out_frames=fade_frames,
        lines=placed,
        music=music,
        sounds=sounds,
    )


def shot_sounds(plans: list[ShotPlan], first: np.ndarray, fps: float, n_samples: int) -> ShotSounds | None:
    """Where each shot whose backend gives its sound (generated, or the audio it followed) has it: from its
    first frame's sample for its length on the timeline (None when no shot has one)."""
    if not any(p.conditioning.sounding for p in plans):
        return None
    edges = [min(n_samples, round(int(f) / fps * SAMPLE_RATE)) for f in first] + [n_samples]
    spans = [(edges[i], edges[i + 1]) if p.conditioning.sounding else None for i, p in enumerate(plans)]
    return ShotSounds(spans, SAMPLE_RATE)

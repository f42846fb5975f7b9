"""Dialogue: who speaks with which voice, recording each line, and fitting lines inside their shots."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from yingxi.editor.voices import describe
from yingxi.errors import InputError
from yingxi.film.model import MAX_SHOT_SECONDS, Film
from yingxi.media.speech import PINYIN_VOICE, resolve_voice, synthesize_speech, unreadable_kanji
from yingxi.media.video import AUDIO_RATE

SAMPLE_RATE = AUDIO_RATE  # the project's one audio rate, set in media
LEAD_IN = 0.3  # s from the shot's start to its first line
GAP = 0.25  # s between lines
LEAD_OUT = 0.3  # s from the last line's end to the shot's end
# Distinct English voices (pitch and accent alternate: measured median F0 about 107, 208, 178, 100, 179,
# 97, 193, 95 Hz), given to characters without a voice in order of first appearance.
DEFAULT_VOICES = (
    "en-us+m3",
    "en+f3",
    "en-us+f4",
    "en+m5",
    "en-gb-scotland+f1",
    "en-gb-x-rp+m4",
    "en-us+f2",
    "en-us-nyc+m1",
)
# A speaker whose lines are in another script gets a voice of its language: an English voice would spell
# each letter or character out by name ("Привет" as "pe er i ve ie te"). Variants alternate pitch as above.
VARIANTS = ("m3", "f3", "f4", "m5", "f2", "m4")
# Mandarin speaks through espeak-ng's pinyin voice (media.speech turns the characters into pinyin).
MANDARIN_VOICES = tuple(f"{PINYIN_VOICE}+{v}" for v in VARIANTS)
SCRIPT_LANGUAGES = (  # (first, last code point, espeak-ng language)
    (0x3040, 0x30FF, "ja"),  # hiragana and katakana (Japanese also writes kanji: counted with them)
    (0x1100, 0x11FF, "ko"),  # Hangul jamo
    (0xAC00, 0xD7AF, "ko"),  # Hangul syllables
    (0x3400, 0x4DBF, "cmn"),  # CJK ideographs
    (0x4E00, 0x9FFF, "cmn"),
    (0x0370, 0x03FF, "el"),
    (0x0400, 0x04FF, "ru"),
    (0x0590, 0x05FF, "he"),
    (0x0600, 0x06FF, "ar"),
    (0x0900, 0x097F, "hi"),
    (0x0E00, 0x0E7F, "th"),
)
_SILENCE = 1e-3  # |sample| below this counts as silence when trimming a take


@dataclass(frozen=True)
class DialogueTake:
    character: str
    text: str
    voice: str
    audio: np.ndarray  # float32 (N,) mono at SAMPLE_RATE, silence trimmed
    seconds: float
    note: str = ""  # what the voice could not say (kanji for espeak-ng's Japanese), for the render's notes


@dataclass(frozen=True)
class VoiceChoice:
    name: str  # as the cast list spells it (or the dialogue, for a speaker not in it)
    voice: str  # espeak-ng voice, e.g. "cmn-latn-pinyin+m3"
    why: str  # "set in the script", "from the description: man, young" or "default"


def spoken_language(text: str) -> str | None:
    """The espeak-ng language of the script most of the text's letters are in, or None (Latin: English)."""
    counts: dict[str, int] = {}
    letters = 0
    for ch in text:
        if not ch.isalpha():
            continue
        letters += 1
        o = ord(ch)
        lang = next((lang for lo, hi, lang in SCRIPT_LANGUAGES if lo <= o <= hi), None)
        if lang is not None:
            counts[lang] = counts.get(lang, 0) + 1
    if "ja" in counts:  # kana make it Japanese; its kanji count with them
        counts["ja"] += counts.pop("cmn", 0)
    if not counts:
        return None
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] * 2 >= letters else None


def language_voices(language: str | None, variants: tuple[str, ...] = VARIANTS) -> tuple[str, ...]:
    """The default voices, in the order they are given out, for speakers of `language` (None: English),
    restricted to `variants` (in that order) when a description asks for them."""
    if language is None:
        if variants == VARIANTS:
            return DEFAULT_VOICES
        by_variant = {v.partition("+")[2]: v for v in DEFAULT_VOICES}
        return tuple(by_variant.get(v, f"en-us+{v}") for v in variants)
    language = PINYIN_VOICE if language == "cmn" else language
    return tuple(f"{language}+{v}" for v in variants)


def assign_voices(film: Film) -> dict[str, str]:
    """Speaker name (lower case) -> espeak-ng voice (see choose_voices)."""
    return {name: choice.voice for name, choice in choose_voices(film).items()}


def choose_voices(film: Film) -> dict[str, VoiceChoice]:
    """Speaker name (lower case) -> their voice: the character's own, else the next unused default in the
    language of the script their first line is written in (English for Latin letters), of the gender and
    age their description gives (editor.voices); with no such words, defaults alternate pitch."""
    speakers: dict[str, str | None] = {}  # name -> language, in order of first appearance
    spelled: dict[str, str] = {}  # name -> as the dialogue first writes it
    for shot in film.shots:
        for line in shot.dialogue:
            speakers.setdefault(line.character.lower(), spoken_language(line.line))
            spelled.setdefault(line.character.lower(), line.character)
    voices: dict[str, VoiceChoice] = {}
    for name in speakers:
        character = film.character(name)
        if character is not None and character.voice:
            try:
                voices[name] = VoiceChoice(
                    character.name, resolve_voice(character.voice), "set in the script"
                )
            except InputError as e:
                raise InputError(f'character "{character.name}": {e.message}', field="voice") from None
    taken = {c.voice for c in voices.values()}
    used: dict[tuple, int] = {}  # (language, variants) -> default voices given out so far
    for name, language in speakers.items():
        if name in voices:
            continue
        character = film.character(name)
        described = describe(character.description if character is not None else "")
        defaults = language_voices(language, described.variants or VARIANTS)
        pool = [v for v in defaults if v not in taken]
        n = used.get((language, defaults), 0)
        voice = pool[0] if pool else defaults[n % len(defaults)]  # more speakers than voices: they repeat
        used[(language, defaults)] = n + 1
        taken.add(voice)
        why = f"from the description: {described.words}" if described.variants else "default"
        voices[name] = VoiceChoice(character.name if character is not None else spelled[name], voice, why)
    return voices


def trim_silence(audio: np.ndarray, pad: float = 0.02) -> np.ndarray:
    """Drop espeak's leading and trailing silence, keeping `pad` seconds of each."""
    loud = np.flatnonzero(np.abs(audio) > _SILENCE)
    if loud.size == 0:
        return audio[:0]
    p = int(pad * SAMPLE_RATE)
    return audio[max(0, loud[0] - p) : loud[-1] + 1 + p]


def record_dialogue(film: Film) -> list[list[DialogueTake]]:
    """Speak every line (per shot, in order). Identical (text, voice) pairs are synthesised once."""
    voices = assign_voices(film)
    cache: dict[tuple[str, str], np.ndarray] = {}
    takes: list[list[DialogueTake]] = []
    for i, shot in enumerate(film.shots, start=1):
        shot_takes = []
        for line in shot.dialogue:
            voice = voices[line.character.lower()]
            key = (line.line, voice)
            if key not in cache:
                try:
                    cache[key] = trim_silence(synthesize_speech(line.line, voice, sample_rate=SAMPLE_RATE))
                except InputError as e:
                    raise InputError(
                        f'{line.character}: "{line.line}": {e.message}', shot=i, field="dialogue"
                    ) from None
            audio = cache[key]
            character = film.character(line.character)
            name = character.name if character is not None else line.character  # as the cast list spells it
            kanji = unreadable_kanji(line.line, voice)
            note = (
                f"shot {i}: {name}: espeak-ng's Japanese voice cannot read kanji, so {'、'.join(kanji)} "
                "stays silent (write it in kana to hear it)"
                if kanji
                else ""
            )
            shot_takes.append(DialogueTake(name, line.line, voice, audio, len(audio) / SAMPLE_RATE, note))
        takes.append(shot_takes)
    return takes


def needed_seconds(takes: list[DialogueTake]) -> float:
    """How long a shot must be to hold its lines with the lead-in, gaps and lead-out."""
    if not takes:
        return 0.0
    return LEAD_IN + sum(t.seconds for t in takes) + GAP * (len(takes) - 1) + LEAD_OUT


def place_lines(takes: list[DialogueTake], shot_seconds: float) -> list[float]:
    """Start of each line, in seconds from the shot's start: LEAD_IN, then GAP after each line. If the shot
    came out a little shorter than planned (a backend's frame count), the padding shrinks evenly; a line is
    never cut: a shot too short for its lines raises."""
    if not takes:
        return []
    speech = sum(t.seconds for t in takes)
    padding = LEAD_IN + GAP * (len(takes) - 1) + LEAD_OUT
    scale = min(1.0, max(0.0, (shot_seconds - speech) / padding))
    if speech > shot_seconds + 1e-9:
        raise ValueError(f"lines need {speech:.2f}s but the shot is {shot_seconds:.2f}s")
    starts, t = [], LEAD_IN * scale
    for take in takes:
        starts.append(t)
        t += take.seconds + GAP * scale
    return starts


def fit_dialogue(film: Film, takes: list[list[DialogueTake]], *, grow: bool = True) -> tuple[Film, list[str]]:
    """Grow each shot too short for its lines to the next 0.1 s (with a note), or raise when grow=False."""
    if len(takes) != len(film.shots):
        raise ValueError(
            f"fit_dialogue needs one take list per shot: {len(film.shots)} shots, {len(takes)} lists"
        )
    notes = list(dict.fromkeys(t.note for shot_takes in takes for t in shot_takes if t.note))
    for i, (shot, shot_takes) in enumerate(zip(film.shots, takes, strict=True), start=1):
        need = needed_seconds(shot_takes)
        if need <= shot.duration + 1e-9:
            continue
        why = (
            f"the lines need {need:.2f}s ({len(shot_takes)} line(s) plus {LEAD_IN:g}s lead-in, {GAP:g}s gaps "
            f"and {LEAD_OUT:g}s lead-out) but the shot is {shot.duration:g}s long"
        )
        grown = math.ceil(round(need * 10, 6)) / 10
        if not grow:
            raise InputError(
                f"{why}; make the shot at least {grown:g}s or shorten its lines", shot=i, field="dialogue"
            )
        if grown > MAX_SHOT_SECONDS:
            raise InputError(
                f"{why}, and a shot can be at most {MAX_SHOT_SECONDS:g}s", shot=i, field="dialogue"
            )
        notes.append(f"shot {i} grew from {shot.duration:g}s to {grown:g}s to fit its dialogue")
        film = film.with_shot(i - 1, replace(shot, duration=grown))
    return film, notes

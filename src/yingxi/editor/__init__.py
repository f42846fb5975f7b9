"""The editor: cuts shot clips together with transitions, dialogue, music and subtitles."""

from yingxi.editor.cut import Cut, HeldFrames, assemble, load_music, stream_frames, timeline
from yingxi.editor.dialogue import DialogueTake, assign_voices, fit_dialogue, record_dialogue
from yingxi.editor.subtitles import Subtitle, burn_subtitles, srt_text, write_srt

__all__ = [
    "Cut",
    "HeldFrames",
    "DialogueTake",
    "Subtitle",
    "assemble",
    "assign_voices",
    "burn_subtitles",
    "fit_dialogue",
    "load_music",
    "record_dialogue",
    "srt_text",
    "stream_frames",
    "timeline",
    "write_srt",
]

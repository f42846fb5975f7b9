"""The user's request: Film and its parts, parsed from a prompt, the multi-shot grammar or a script."""

from yingxi.film.model import Camera, CameraMove, Character, DialogueLine, Film, Shot, Transition
from yingxi.film.prompt import parse_prompt
from yingxi.film.script import load_script, parse_script

__all__ = [
    "Camera", "CameraMove", "Character", "DialogueLine", "Film", "Shot", "Transition",
    "load_script", "parse_prompt", "parse_script",
]  # fmt: skip

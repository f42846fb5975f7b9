"""16-bit PCM WAV files: the sound an editor's timeline points at (dialogue lines, the music bed)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from yingxi.media.files import replaced_when_done


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> Path:
    """Write float32 samples in [-1, 1], (N,) mono or (N, C), as 16-bit PCM; the file appears only complete."""
    samples = np.asarray(samples, np.float32)
    if samples.ndim == 1:
        samples = samples[:, None]
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")  # (N, C)
    path = Path(path)
    with replaced_when_done(path) as tmp:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(pcm.shape[1])
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm.tobytes())
    return path


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """float32 (N, C) samples and the rate of a 16-bit PCM WAV file."""
    with wave.open(str(path), "rb") as w:
        channels, rate, n = w.getnchannels(), w.getframerate(), w.getnframes()
        data = np.frombuffer(w.readframes(n), "<i2").reshape(-1, channels)
    return data.astype(np.float32) / 32767, rate

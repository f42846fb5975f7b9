"""What a reference file is, read from its header where it says: an image's size before any pixel is
decoded, a clip's length (for Seedance 2.0's 15 s totals)."""

from __future__ import annotations

import io
from typing import Any


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the image's header alone; None when PIL cannot tell (the decoder then says why).
    Pillow's own bomb check refuses headers over 2x its limit before saying the size; the format's header
    is then read without it, so every oversized image gets the same 413 naming its size."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Image.DecompressionBombError:
        Image.init()
        for kind in Image.ID:
            factory, accept = Image.OPEN[kind]
            if accept is not None and not accept(data[:16]):
                continue
            try:
                with factory(io.BytesIO(data)) as image:  # the plugin alone: header parsed, no bomb check
                    return image.size
            except Exception:  # not this format after all
                continue
        return None
    except Exception:  # any unreadable header is reported by decode_image_bytes next
        return None


def media_seconds(container: Any, stream: Any, data: bytes, kind: str) -> float:
    """A clip's length: the container's header, else the stream's, else its frames decoded and counted."""
    import av

    if container.duration:
        return float(container.duration / av.time_base)
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    with av.open(io.BytesIO(data)) as again:  # no header says: decode (bounded by the upload limit)
        s = again.streams.audio[0] if kind == "audio" else again.streams.video[0]
        if kind == "audio":
            return sum(f.samples / f.sample_rate for f in again.decode(s))
        frames = sum(1 for _ in again.decode(s))
        return frames / float(s.average_rate or 24)

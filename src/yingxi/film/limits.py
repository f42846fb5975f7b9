"""The one table of how long a shot and a film may be, read by every entry point: the CLI and scripts
(film.vocabulary.parse_duration), the server's defaults (server.settings.Limits) and, through
`GET /api/v1/limits`, the studio's fields. A server operator may narrow the server's, never widen them."""

from __future__ import annotations

MIN_SHOT_SECONDS = 0.25  # six frames at 24 fps: shorter is a flash, not a shot
MAX_SHOT_SECONDS = 60.0  # one shot; a longer scene is several shots
MAX_FILM_SECONDS = 60.0  # the server's default cap on one request's whole film (the CLI has none)

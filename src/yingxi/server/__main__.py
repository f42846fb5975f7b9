"""`python -m yingxi.server --settings '{"port": 8000, ...}'`: run the server from a JSON settings object
(every ServerSettings field, limits included). Tests and the load benchmark start it this way."""

from __future__ import annotations

import argparse
import json

from yingxi.server.runner import run
from yingxi.server.settings import ServerSettings


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m yingxi.server")
    p.add_argument("--settings", required=True, help="ServerSettings as a JSON object")
    args = p.parse_args(argv)
    run(ServerSettings.from_dict(json.loads(args.settings)))


if __name__ == "__main__":
    main()

"""`yingxi serve`, `yingxi worker` and `yingxi keys`: the server side of the CLI (one machine or many)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from yingxi.backends.registry import backend_names
from yingxi.cli_files import add_file_args, file_parts
from yingxi.cli_parallel import add_parallel_args, run_worker, worker_plan
from yingxi.cli_runtime import add_server_runtime_args, server_runtime_fields
from yingxi.errors import InputError


def add_server_parsers(sub, parser_class: type[argparse.ArgumentParser]) -> None:
    """The serve, worker and keys subcommands, on `sub` (the top-level subparsers)."""
    serve = sub.add_parser("serve", help="run the Seedance-compatible API server and web studio")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--data-dir", type=Path, default=Path("yingxi-data"))
    serve.add_argument("--backend", default="animatic", help=f"{backend_names_help()} (default animatic)")
    serve.add_argument("--model")
    add_file_args(serve)
    serve.add_argument("--workers", type=int, default=1, help="render processes: one per GPU, or one on CPU")
    add_server_runtime_args(serve)  # --device --dtype --weights --offload --cache --lora --preset ...
    serve.add_argument(
        "--allow-url-fetch", action="store_true", help="fetch http(s) reference URLs (off: SSRF)"
    )
    serve.add_argument(
        "--allow-callbacks", action="store_true", help="POST finished tasks to their callback_url"
    )
    serve.add_argument(
        "--allow-private-urls",
        action="store_true",
        help="let URL fetches and callbacks reach loopback/private addresses (LAN setups)",
    )
    serve.add_argument("--output-ttl-hours", type=float, default=24.0 * 7, help="delete outputs after this")
    serve.add_argument("--public-url", help="base URL for the links handed out (default: from each request)")
    _scale_args(serve)
    serve.add_argument("--pool", default="local", metavar="local|ray|ray://HEAD[:PORT]",
                       help="where workers run: local (--workers processes here), ray (a Ray cluster on this "
                            "machine, or RAY_ADDRESS), ray://HEAD[:PORT] (a Ray cluster through Ray Client, "
                            "port 10001 by default): one worker actor per GPU (wan) or CPU (animatic), claiming "
                            "jobs from --database-url (PostgreSQL)")  # fmt: skip
    serve.add_argument("--pool-workers", type=int, default=0, metavar="N",
                       help="with --pool ray: this many worker actors (default: one per GPU, or per CPU for "
                            "the animatic, of the whole cluster)")  # fmt: skip
    serve.add_argument("--log-format", choices=("text", "json"), default="text",
                       help="json: one object a line with request id, tenant and job id")  # fmt: skip

    worker = sub.add_parser("worker", help="render jobs from a shared job database (no API; see serve)")
    worker.add_argument("--data-dir", type=Path, default=Path("yingxi-data"),
                        help="the folder every API server and worker shares (inputs and outputs)")  # fmt: skip
    worker.add_argument("--backend", default="animatic", help=f"{backend_names_help()} (default animatic)")
    worker.add_argument("--model")
    worker.add_argument("--gpus", type=int, default=1, help="worker processes here, one per GPU (default 1)")
    add_server_runtime_args(worker)  # the same as serve's
    add_parallel_args(
        worker, gpus=False
    )  # --parallel PLAN: one worker whose shots run across the plan's ranks
    worker.add_argument("--output-ttl-hours", type=float, default=24.0 * 7)
    _scale_args(worker)
    worker.add_argument("--log-format", choices=("text", "json"), default="text")

    keys = sub.add_parser("keys", help="manage API keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True, parser_class=parser_class)
    create = ksub.add_parser("create", help="create an API key (printed once)")
    create.add_argument("--name", required=True)
    create.add_argument("--data-dir", type=Path, default=Path("yingxi-data"))
    _scale_args(create)
    listing = ksub.add_parser("list", help="the keys: names, created, last used (never a key itself)")
    listing.add_argument("--data-dir", type=Path, default=Path("yingxi-data"))
    _scale_args(listing)
    revoke = ksub.add_parser("revoke", help="remove the keys named NAME; they stop working at once")
    revoke.add_argument("name")
    revoke.add_argument("--data-dir", type=Path, default=Path("yingxi-data"))
    _scale_args(revoke)


def backend_names_help() -> str:
    return ", ".join(backend_names())


def _scale_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database-url", default=os.environ.get("YINGXI_DATABASE_URL"),
                   help="the job database: sqlite:///PATH or postgresql://USER@HOST:PORT/DB, shared by every "
                        "API server and worker (default: DATA_DIR/jobs.db; env YINGXI_DATABASE_URL)")  # fmt: skip


def cmd_serve(args: argparse.Namespace) -> int:
    from yingxi.server import run

    settings = _settings(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        backend=args.backend,
        model=args.model,
        model_files=file_parts(args),
        workers=args.workers,
        allow_url_fetch=args.allow_url_fetch,
        allow_callbacks=args.allow_callbacks,
        allow_private_urls=args.allow_private_urls,
        **server_runtime_fields(args),  # runtime, loras, loras_2, preset, request_cache
        output_ttl_hours=args.output_ttl_hours,
        public_url=args.public_url,
        database_url=args.database_url,
        log_format=args.log_format,
        pool=args.pool,
        pool_workers=args.pool_workers,
    )
    run(settings)
    return 0


def cmd_worker(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    from yingxi.server.runner import run_workers

    if args.gpus < 1:
        raise InputError("must be at least 1 (one worker process per GPU)", field="--gpus")
    plan = worker_plan(args)
    settings = _settings(data_dir=args.data_dir, backend=args.backend, model=args.model, workers=args.gpus,
                         output_ttl_hours=args.output_ttl_hours, database_url=args.database_url,
                         log_format=args.log_format, **server_runtime_fields(args))  # fmt: skip
    if plan is not None and plan.world_size > 1:
        return run_worker(args, argv or [], settings, plan)
    run_workers(settings)
    return 0


def _settings(**fields):
    """ServerSettings from the command's arguments; a value it refuses is bad input (exit 2)."""
    from yingxi.server.settings import ServerSettings

    try:
        return ServerSettings(**fields)
    except ValueError as e:
        raise InputError(str(e)) from None


def cmd_keys(args: argparse.Namespace) -> int:
    from yingxi.server.keys import create_key, keys_table, list_keys, revoke_key

    if args.keys_command == "list":
        keys = list_keys(args.data_dir, args.database_url)
        print(
            keys_table(keys)
            if keys
            else f"no keys in {args.database_url or args.data_dir} (yingxi keys create --name NAME)"
        )
    elif args.keys_command == "revoke":
        n = revoke_key(args.data_dir, args.name, args.database_url)
        print(f"revoked {n} key{'s' if n != 1 else ''} named {args.name}")
    else:
        print(create_key(args.data_dir, args.name, args.database_url))
    return 0

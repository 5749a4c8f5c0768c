"""``s3fanout runs`` and ``s3fanout limit``: the runs sharing the pool, and their caps."""

from __future__ import annotations

import argparse
import json

from copy_control.commands.common import EXIT_OK, add_redis_url, open_store
from copy_control.errors import InvalidRequest
from copy_control.runs.overview import list_runs
from copy_control.runs.progress import format_bytes, format_duration
from copy_control.units import parse_size
from copy_core.runs.census import RunState
from copy_core.runs.controls import PRIORITIES, InvalidControl, check_cap, weight_of
from copy_core.runs.keys import RunKeys
from copy_core.runs.rates import RateStore
from copy_core.runs.store import RunStore


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    runs = commands.add_parser("runs", help="the runs in the pool: active first, then recent")
    add_redis_url(runs)
    runs.add_argument("--json", action="store_true", help="one JSON object per run (JSON lines)")
    runs.add_argument("--limit", type=int, default=50, help="at most this many runs (50)")
    runs.set_defaults(run=run_runs)

    limit = commands.add_parser("limit", help="change a run's rate caps or priority while it runs")
    limit.add_argument("run_id")
    add_redis_url(limit)
    limit.add_argument("--max-requests-per-second", metavar="N", default=None)
    limit.add_argument("--max-bytes-per-second", metavar="SIZE", default=None)
    limit.add_argument(
        "--priority", default=None, help=f"{', '.join(PRIORITIES)}, or a weight from 1 to 1000"
    )
    limit.add_argument("--no-limit", action="store_true", help="remove both rate caps")
    limit.set_defaults(run=run_limit)


def run_runs(args: argparse.Namespace) -> int:
    views = list_runs(open_store(args), limit=args.limit)
    if args.json:
        for view in views:
            print(json.dumps(view.to_dict()))
        return EXIT_OK
    print(_header())
    for view in views:
        print(_line(view))
    return EXIT_OK


_COLUMNS = "{:<28} {:<11} {:<28} {:>6} {:>19} {:>8} {:>9} {:>10} {:>8}"


def _header() -> str:
    return _COLUMNS.format(
        "RUN", "STATUS", "OWNER", "WEIGHT", "DONE/LISTED", "FAILED", "OBJ/S", "BYTES", "AGE"
    )


def _line(view: RunState) -> str:
    listed = f"{view.objects_listed:,}" + ("" if view.listing_done else "+")
    return _COLUMNS.format(
        view.run_id[:28],
        view.status,
        view.owner[:28],
        view.weight,
        f"{view.objects_done:,}/{listed}",
        f"{view.objects_failed:,}",
        f"{view.objects_per_second:,.1f}",
        format_bytes(view.bytes_copied),
        format_duration(view.age_s),
    )


def run_limit(args: argparse.Namespace) -> int:
    store = open_store(args)
    if not store.run_hash(args.run_id):
        raise InvalidRequest(f"no run {args.run_id!r} in Redis (wrong id or URL, or it expired)")
    rps, bps, weight = _limits(args)
    if not (args.no_limit or rps or bps or weight):
        raise InvalidRequest(
            "give --max-requests-per-second, --max-bytes-per-second, --priority or --no-limit"
        )
    rates = RateStore(store.client, store.ttl_s)
    rates.set_caps(args.run_id, rps, bps, clear=args.no_limit)
    if weight is not None:
        _set_weight(store, args.run_id, weight)
    caps = rates.caps(args.run_id)
    requests = f"{caps.requests_per_second:g}/s" if caps.requests_per_second else "no cap"
    size = f"{format_bytes(caps.bytes_per_second)}/s" if caps.bytes_per_second else "no cap"
    stored = store.run_hash(args.run_id).get("weight")
    print(f"run {args.run_id}: requests {requests}, bytes {size}, weight {stored}")
    return EXIT_OK


def _limits(args: argparse.Namespace) -> tuple[float | None, float | None, int | None]:
    try:
        rps = None if args.max_requests_per_second is None else float(args.max_requests_per_second)
        rps = check_cap(rps, "--max-requests-per-second")
        size = args.max_bytes_per_second
        bps = (
            None
            if size is None
            else check_cap(
                float(parse_size(size, "--max-bytes-per-second")), "--max-bytes-per-second"
            )
        )
        weight = None if args.priority is None else weight_of(args.priority)
    except (InvalidControl, ValueError) as exc:
        raise InvalidRequest(str(exc)) from None
    return rps, bps, weight


def _set_weight(store: RunStore, run_id: str, weight: int) -> None:
    store.client.hset(RunKeys(run_id).run, "weight", weight)

"""``s3fanout copy``: list and dispatch (here, or in a worker with --list-in-pool), wait, report.

The copy's options are declared in ``copy_control.option_spec``; this module adds the flags
that only a command line has (the two locations, the Redis URL, this process's S3 access, the
run id and the output format) and builds the rest from the declarations.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import signal
import socket
import sys
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from copy_control.commands.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    add_redis_url,
    open_store,
    print_summary,
)
from copy_control.dispatch.pool_listing import submit
from copy_control.dispatch.producer import producer_app
from copy_control.errors import InvalidRequest
from copy_control.option_spec import (
    BY_NAME,
    GROUPS,
    RUN,
    Option,
    PreparedCopy,
    cli_spelling,
    in_group,
    prepare,
)
from copy_control.request import CopyRequest, check_run_id
from copy_control.runs.progress import terminal_bar
from copy_control.runs.waiting import ListingFailed, RunLost, RunTimeout, wait_for_run
from copy_control.s3url import parse_s3_url
from copy_core import logs
from copy_core.contract import RunStatus
from copy_core.runs.store import RunGone, RunStore

if TYPE_CHECKING:
    from celery import Celery
    from mypy_boto3_s3 import S3Client

    from copy_control.dispatch.dry_run import DryRunReport

_METAVARS = {
    "size": "SIZE",
    "int": "N",
    "count": "N",
    "seconds": "SECONDS",
    "time": "ISO8601",
    "globs": "GLOB",
}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    copy = commands.add_parser("copy", help="copy one object, or a prefix with --recursive")
    copy.add_argument("source", help="s3://BUCKET/KEY, or s3://BUCKET/PREFIX with --recursive")
    copy.add_argument("dest", help="s3://BUCKET/KEY or s3://BUCKET/PREFIX")
    copy.add_argument("--recursive", action="store_true", help="copy every key under the prefix")
    add_redis_url(copy)
    copy.add_argument(
        "--endpoint-url",
        default=None,
        help="S3 endpoint for listing (workers use their own AWS_ENDPOINT_URL)",
    )
    copy.add_argument("--region", default=None, help="AWS region (default: boto3's)")
    copy.add_argument("--run-id", default=None, help="name the run (repeat it to resume)")
    copy.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    for group in GROUPS:
        section = copy if group == RUN else copy.add_argument_group(group.title, group.description)
        for option in in_group(group):
            add_flag(section, option)
    copy.set_defaults(run=run)


def add_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup, option: Option) -> None:
    """The flag of ``option``; absent from the namespace unless given (the spec has defaults)."""
    kwargs: dict[str, Any] = {"dest": option.name, "default": argparse.SUPPRESS}
    if option.kind == "bool":
        kwargs["action"] = "store_false" if option.default else "store_true"
    elif option.kind in ("pairs", "globs"):
        kwargs["action"] = "append"
    if option.choices:
        kwargs["choices"] = option.choices
    metavar = option.metavar or _METAVARS.get(option.kind)
    if metavar and option.kind != "bool":
        kwargs["metavar"] = metavar
    shown = "" if option.kind == "bool" or option.default is None else option.shown_default()
    help_text = f"{option.help} (default: {shown})" if shown else option.help
    parser.add_argument(option.cli_flag, help=help_text.replace("%", "%%"), **kwargs)


def run(args: argparse.Namespace) -> int:
    """Copy, wait, print the summary."""
    prepared = _prepared_from_args(args)
    request = prepared.request
    run_id = args.run_id or f"cli-{uuid.uuid4().hex[:16]}"
    check_run_id(run_id)
    if prepared.list_in_pool:
        _check_pool_listing(args, prepared)
        return _start_and_wait(
            args,
            prepared,
            run_id,
            lambda store, app, _: submit(request, run_id, store, app, prepared.controls),
            lambda store: print(
                f"s3fanout: write the report with `s3fanout report {run_id} --format batch-csv "
                f"--output {request.report}` (--list-in-pool gives this process no S3 access)",
                file=sys.stderr,
            ),
        )
    # Imported here: listing in this process needs boto3, which --list-in-pool does without.
    from copy_control.dispatch.runner import control_clients, dry_run, start_run  # noqa: PLC0415
    from copy_core.aws.clients import ClientFactory  # noqa: PLC0415

    factory = ClientFactory(endpoint_url=args.endpoint_url, region_name=args.region)
    s3, dest_s3 = control_clients(request, run_id, factory)
    if prepared.dry_run:
        with logs.bound(run_id):
            report = dry_run(request, s3, dest_s3)
        print_dry_run(report, request, as_json=args.json)
        return EXIT_OK
    return _start_and_wait(
        args,
        prepared,
        run_id,
        lambda store, app, created: start_run(
            request, run_id, s3, store, app, prepared.controls, created, dest_s3
        ),
        lambda store: _write_report(store, run_id, dest_s3, request.report),
    )


def _write_report(store: RunStore, run_id: str, dest_s3: S3Client, location: str | None) -> None:
    from copy_control.runs.batch_report import end_report  # noqa: PLC0415

    ended = end_report(store, run_id, dest_s3, location)
    if ended.line is not None:
        print(f"s3fanout: {ended.line}", file=sys.stderr)


def _start_and_wait(
    args: argparse.Namespace,
    prepared: PreparedCopy,
    run_id: str,
    start: Callable[[RunStore, Celery, Callable[[], None]], object],
    report: Callable[[RunStore], None] = lambda store: None,
) -> int:
    store = open_store(args)
    _refuse_a_cancelled_run(store, run_id)
    announced: list[bool] = []

    def announce() -> None:
        if not announced:
            announced.append(True)
            # The handler first: a Ctrl-C that follows the line must find it in place.
            _exit_on_interrupt(run_id)
            print(f"s3fanout: run {run_id}", file=sys.stderr, flush=True)

    with logs.bound(run_id):
        try:
            start(store, producer_app(args.redis_url), announce)
            announce()
            with terminal_bar(sys.stderr, enabled=not args.json) as on_progress:
                # The progress line is read every quarter second (one small Redis read);
                # the run's end is announced, so the wait returns as soon as it happens.
                summary = wait_for_run(
                    store,
                    run_id,
                    poll_s=0.25,
                    timeout_s=prepared.timeout_s,
                    on_progress=on_progress,
                    listed_by_worker=prepared.list_in_pool,
                    started_here=True,
                )
        except (RunTimeout, ListingFailed, RunLost) as exc:
            print(f"s3fanout: {exc}", file=sys.stderr)
            return EXIT_FAILED
        except RunGone:  # lost while this process listed it
            print(f"s3fanout: {RunLost(run_id)}", file=sys.stderr)
            return EXIT_FAILED
        except KeyboardInterrupt:  # before the run was recorded: nothing to follow
            print("s3fanout: interrupted before the run started", file=sys.stderr)
            return EXIT_INTERRUPTED
    if prepared.request.report is not None:
        report(store)
    print_summary(summary, as_json=args.json)
    return EXIT_OK if summary.status == RunStatus.SUCCEEDED else EXIT_FAILED


def _exit_on_interrupt(run_id: str) -> None:
    """Once the run is recorded, Ctrl-C ends this command at once, saying how to go on.

    The run lives in Redis and the pool, not in this process: nothing here needs unwinding
    (a listing's cursors are saved as it goes), and unwinding a KeyboardInterrupt through the
    listing threads and the broker's connection can leave the command waiting on them. So
    the handler writes its line with one system call and leaves with os._exit.
    """
    message = (
        f"\ns3fanout: interrupted; run {run_id} goes on in the pool. Follow it with "
        f"`s3fanout status {run_id}`, resume waiting (and listing) by repeating this command "
        f"with --run-id {run_id}, or stop it with `s3fanout cancel {run_id}`\n"
    ).encode()

    def leave(signum: int, frame: object) -> None:
        os.write(sys.stderr.fileno(), message)
        os._exit(EXIT_INTERRUPTED)

    signal.signal(signal.SIGINT, leave)


def _refuse_a_cancelled_run(store: RunStore, run_id: str) -> None:
    """A cancelled run stays cancelled: repeating it would only print its summary again."""
    if store.run_hash(run_id).get("status") == RunStatus.CANCELLED:
        raise InvalidRequest(
            f"run {run_id} was cancelled, and a cancelled run cannot be resumed: start the "
            "copy again under a new --run-id (or without one), with --overwrite if-different "
            "to skip what it copied"
        )


def _check_pool_listing(args: argparse.Namespace, prepared: PreparedCopy) -> None:
    """--list-in-pool leaves S3 to the workers: flags about this process's S3 access conflict."""
    for flag, given in (
        ("--dry-run", prepared.dry_run),
        ("--endpoint-url", args.endpoint_url),
        ("--region", args.region),
    ):
        if given:
            raise InvalidRequest(
                f"--list-in-pool and {flag} do not go together: with --list-in-pool the "
                "workers list the source with their own endpoint and region, and a dry run "
                "lists in this process; drop one of them"
            )


def _prepared_from_args(args: argparse.Namespace) -> PreparedCopy:
    source_bucket, source_key = parse_s3_url(args.source, "source")
    dest_bucket, dest_key = parse_s3_url(args.dest, "destination")
    values = {name: getattr(args, name) for name in BY_NAME if hasattr(args, name)}
    locations: dict[str, str | None] = {"source_bucket": source_bucket, "dest_bucket": dest_bucket}
    if args.recursive or values.get("manifest"):
        locations.update(source_prefix=source_key, dest_prefix=dest_key)
    elif not source_key:
        raise InvalidRequest(
            f"{args.source} names a bucket, not an object: add --recursive "
            "to copy every object in it"
        )
    elif dest_key == "" or dest_key.endswith("/"):
        locations.update(source_key=source_key, dest_prefix=dest_key)
    else:
        locations.update(source_key=source_key, dest_key=dest_key)
    return prepare(values, locations, cli_spelling, owner=_owner())


def _owner() -> str:
    """Who runs this copy, for ``s3fanout runs``: the user and the host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = str(os.getuid())
    return f"cli:{user}@{socket.gethostname()}"


def print_dry_run(report: DryRunReport, request: CopyRequest, as_json: bool) -> None:
    """One line for people, or the report as one JSON object."""
    if as_json:
        print(json.dumps(report.to_dict()))
        return
    print(
        f"dry run: {report.objects_to_copy:,} objects ({report.bytes_to_copy:,} bytes) would be "
        f"copied, {report.objects_to_skip:,} skipped (--overwrite {request.options.overwrite}), "
        f"{report.objects_missing:,} missing, of {report.objects_listed:,} selected in "
        f"{report.chunks:,} chunks; {report.objects_filtered:,} filtered out. Nothing was copied."
    )
    if not request.delete_extraneous:
        return
    over = " (over --max-delete: the run would delete none)" if report.over_max_delete else ""
    print(f"dry run: {report.objects_to_delete:,} destination keys would be deleted{over}:")
    for key in report.keys_to_delete:
        print(f"  delete s3://{request.dest_bucket}/{key}")
    if report.keys_to_delete_omitted:
        print(f"  ... and {report.keys_to_delete_omitted:,} more (--json lists the first ones)")

"""What a run learns about its two buckets once, before dispatch: regions, Object Lock, website.

Each bucket's region is read from S3's own answer to HeadBucket (``x-amz-bucket-region``,
which S3 sends with a 200, a 301 and a 403 alike), so the workers sign every request for its
bucket's region from the first one, on the fast lane too, which has no region redirector of
its own. ``object_lock="auto"`` and ``website_redirect="auto"`` become "copy" here where the
buckets show that something is there to carry: both cost a HeadObject per object on the
single-copy path. Otherwise they stay "auto", which a worker reads as "not on single copies"
(and, for a redirect, "carried where the HeadObject is read anyway"): the default is left off
the wire, so a run that carries nothing more is one that workers of an earlier version read.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from copy_control.errors import InvalidRequest
from copy_core.classify import DENIED_CODES, error_code
from copy_core.contract import CopyJob, ReportTarget

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from copy_control.request import CopyRequest

log = logging.getLogger(__name__)

REGION_HEADER = "x-amz-bucket-region"
_NO_LOCK = ("ObjectLockConfigurationNotFoundError", "404", "NoSuchBucket")
_NO_WEBSITE = ("NoSuchWebsiteConfiguration", "404", "NoSuchBucket")
_PREFLIGHT_THREADS = 6


def _head_bucket(client: S3Client, bucket: str) -> tuple[str | None, str | None]:
    """HeadBucket: the error code (None for a 200) and the region S3 names (None: not said)."""
    try:
        response = client.head_bucket(Bucket=bucket)
        code, headers = None, response["ResponseMetadata"].get("HTTPHeaders", {})
    except ClientError as exc:  # a 403 (another account's bucket) still names its region
        code = error_code(exc)
        headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    region = headers.get(REGION_HEADER)
    return code, str(region) if region else None


def bucket_region(client: S3Client, bucket: str) -> str | None:
    """The bucket's region as S3 states it; None where S3 does not say (a stand-in)."""
    return _head_bucket(client, bucket)[1]


def check_destination(client: S3Client, bucket: str) -> str | None:
    """Refuse a destination bucket that does not exist, before anything is copied; return
    its region, as S3 named it in the same answer.

    S3 answers HeadBucket of a missing bucket with 404 whoever asks, so the listing identity
    can tell; any other answer (403 for a bucket of another account, say) proves nothing and
    is left to the copies.
    """
    code, region = _head_bucket(client, bucket)
    if code in ("404", "NoSuchBucket"):
        raise InvalidRequest(
            f"destination bucket {bucket!r} does not exist (or is not visible from this "
            "endpoint): create it, or fix the destination URL"
        )
    return region


def settle_report(job: CopyJob, client: S3Client) -> CopyJob:
    """The job with its report bucket's region; a report bucket that does not exist is
    refused before anything is copied (a denied HeadBucket is left to the writes)."""
    if job.report is None:
        return job
    bucket = job.report.bucket
    code, region = _head_bucket(client, bucket)
    if code in ("404", "NoSuchBucket"):
        raise InvalidRequest(
            f"report bucket {bucket!r} does not exist: create it, or fix the report URL"
        )
    return dataclasses.replace(job, report=dataclasses.replace(job.report, region=region))


def check_versioning(request: CopyRequest, dest: S3Client) -> None:
    """An --all-versions copy needs a destination that keeps versions: refuse one that would
    keep only the last, before anything is copied (a denied read proves nothing: go on)."""
    if not request.all_versions:
        return
    try:
        status = dest.get_bucket_versioning(Bucket=request.dest_bucket).get("Status")
    except ClientError as exc:
        if error_code(exc) in DENIED_CODES:
            log.warning("cannot read the destination's versioning; copying all versions")
            return
        raise
    if status != "Enabled":
        raise InvalidRequest(
            f"all_versions copies every version, but versioning is not enabled on destination "
            f"bucket {request.dest_bucket!r} (it would keep only the newest): enable it "
            f"(aws s3api put-bucket-versioning --bucket {request.dest_bucket} "
            "--versioning-configuration Status=Enabled), or copy without all_versions"
        )


def object_lock_enabled(client: S3Client, bucket: str) -> bool | None:
    """Whether the bucket has Object Lock enabled; None if this identity may not ask."""
    try:
        config = client.get_object_lock_configuration(Bucket=bucket)
    except ClientError as exc:
        if error_code(exc) in _NO_LOCK:
            return False
        if error_code(exc) in DENIED_CODES:
            return None
        raise
    return config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"


def has_website(client: S3Client, bucket: str) -> bool:
    """Whether the bucket is configured as a website (denied: taken as not)."""
    try:
        client.get_bucket_website(Bucket=bucket)
    except ClientError as exc:
        if error_code(exc) in _NO_WEBSITE or error_code(exc) in DENIED_CODES:
            return False
        raise
    return True


def object_lock_decision(job: CopyJob, source_s3: S3Client, dest_s3: S3Client) -> str:
    """What ``job.options.object_lock`` means for these buckets: "copy", or as it was.

    ``auto`` becomes "copy" where the destination has Object Lock enabled and the source may
    have it; an explicit "copy" into a bucket without Object Lock is refused (InvalidRequest).
    """
    lock = job.options.object_lock
    if lock == "none":
        return lock
    dest_lock = object_lock_enabled(dest_s3, job.dest_bucket)
    if lock == "copy" and dest_lock is False:
        raise InvalidRequest(
            f"--object-lock copy: the destination bucket {job.dest_bucket!r} does not have "
            "Object Lock enabled, so S3 would refuse every retention and legal hold; enable "
            "it on the bucket, or pass --object-lock none to copy without them"
        )
    source_may_have_it = lock == "auto" and dest_lock is True
    if source_may_have_it and object_lock_enabled(source_s3, job.source_bucket) is not False:
        return "copy"
    return lock


def settle_run(
    request: CopyRequest,
    job: CopyJob,
    source_s3: S3Client,
    dest_s3: S3Client,
    check_source: Callable[[], None] = lambda: None,
) -> CopyJob:
    """Check the source and the destination, and return ``job`` with its buckets' regions,
    its "auto" carry-over decisions and its report bucket's region settled.

    ``source_s3`` reads the source bucket (the listing identity) and checks that the
    destination exists; ``dest_s3`` reads the destination's settings (the destination role
    where one is given). ``check_source`` raises InvalidRequest for a source that cannot be
    copied. The reads are independent of each other, a round trip each, and are all sent at
    once (``_preflight``).
    """
    found = _preflight(request, job, source_s3, dest_s3, check_source, settle=True)
    website = found.website or job.options.website_redirect
    dest_region = job.dest_region or found.dest_region or bucket_region(dest_s3, job.dest_bucket)
    settled = dataclasses.replace(
        job,
        options=dataclasses.replace(
            job.options, object_lock=found.object_lock, website_redirect=website
        ),
        source_region=job.source_region or found.source_region,
        dest_region=dest_region,
        report=found.report,
    )
    log.info(
        "bucket settings",
        extra={
            "source_region": settled.source_region,
            "dest_region": settled.dest_region,
            "object_lock": found.object_lock,
            "website_redirect": website,
        },
    )
    return settled


def check_run(
    request: CopyRequest,
    job: CopyJob,
    source_s3: S3Client,
    dest_s3: S3Client,
    check_source: Callable[[], None] = lambda: None,
) -> None:
    """What ``settle_run`` refuses, without reading what only a run needs (a dry run)."""
    _preflight(request, job, source_s3, dest_s3, check_source, settle=False)


@dataclass(frozen=True)
class _Found:
    dest_region: str | None
    object_lock: str
    website: str | None
    source_region: str | None
    report: ReportTarget | None


def _preflight(
    request: CopyRequest,
    job: CopyJob,
    source_s3: S3Client,
    dest_s3: S3Client,
    check_source: Callable[[], None],
    settle: bool,
) -> _Found:
    """Every check and read before a run, sent at once; refusals in the order a user fixes
    them (the source, the destination, its versioning, Object Lock, the report bucket).

    Made one after another, these five or six reads held a run's first copy for as many
    round trips: over a second where S3 answers in 250 ms. botocore's clients are
    thread-safe, and each read is a single request; the source's check runs meanwhile.
    """
    with ThreadPoolExecutor(max_workers=_PREFLIGHT_THREADS, thread_name_prefix="preflight") as pool:
        destination = pool.submit(check_destination, source_s3, request.dest_bucket)
        versioning = pool.submit(check_versioning, request, dest_s3)
        lock = pool.submit(object_lock_decision, job, source_s3, dest_s3)
        report = pool.submit(settle_report, job, dest_s3)
        website = source_region = None
        if settle:
            website = pool.submit(_website_decision, job, source_s3)
            if job.source_region is None:
                source_region = pool.submit(bucket_region, source_s3, job.source_bucket)
        # In this thread: a manifest's check reads every row, and Ctrl-C must reach it.
        check_source()
        dest_region = destination.result()
        versioning.result()
        found = _Found(
            dest_region,
            lock.result(),
            None if website is None else website.result(),
            None if source_region is None else source_region.result(),
            report.result().report,
        )
    return found


def _website_decision(job: CopyJob, source_s3: S3Client) -> str | None:
    """ "copy" where ``website_redirect="auto"`` meets a source bucket that is a website."""
    if job.options.website_redirect == "auto" and has_website(source_s3, job.source_bucket):
        return "copy"
    return None

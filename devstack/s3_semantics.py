"""Real S3's bucket regions and requester pays, in front of moto or SeaweedFS, which have neither.

moto answers a request signed for any region, and serves a requester-pays bucket to anyone;
real S3 does neither, and the copy paths must cope with what it does instead. ``s3_emulator``
puts a FaultProxy in front of the stand-in, with an ``S3Semantics`` as its hooks, so that, per
AWS's documentation:

- a request to a bucket of another region than the one it is signed for is refused without
  reaching the stand-in: ``400 AuthorizationHeaderMalformed`` naming the bucket's Region
  (``AuthorizationQueryParametersError`` for a presigned URL), or, to a HEAD, which has no
  body, ``301`` with the ``x-amz-bucket-region`` header. (Real S3 answers some HEADs, HeadObject
  mostly, ``400`` instead; botocore's region redirector follows either.) A copy is addressed to
  its destination: its source may be in any region. Every response about a bucket with a region
  carries ``x-amz-bucket-region``, as HeadBucket's always does.
- a request to a requester-pays bucket, or a copy from one, that does not say
  ``x-amz-request-payer: requester`` is refused ``403 AccessDenied``; one that does is served,
  with ``x-amz-request-charged: requester``. Real S3 waives the header for the bucket's owner:
  the emulator treats every requester as another account, since that is the case to test.

CreateBucket is always forwarded, however it is signed, so that tests can make the buckets.
Buckets named in neither map, and unsigned requests, pass unchecked. The maps can change while
the emulator runs (``set_region`` stands for a bucket deleted and recreated in another region).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from urllib.parse import unquote, urlsplit

from devstack.faultproxy import Answer, FaultProxy, FaultRule, Request, error_answer

REGION_HEADER = "x-amz-bucket-region"
PAYER_HEADER = "x-amz-request-payer"
CHARGED_HEADER = "x-amz-request-charged"
DEFAULT_ENDPOINT_HOSTS = ("localhost", "127.0.0.1")

_CREDENTIAL = re.compile(r"Credential=([^,\s]+)")


@dataclass(frozen=True)
class Target:
    """Where a request is addressed: its bucket ("" for ListBuckets) and key ("" for none)."""

    bucket: str
    key: str


def target_of(request: Request, endpoint_hosts: Collection[str] = DEFAULT_ENDPOINT_HOSTS) -> Target:
    """The bucket and key, from a ``bucket.<endpoint host>`` Host header or else the path."""
    hostname = urlsplit(f"//{request.header('host') or ''}").hostname or ""
    path = request.path.lstrip("/")
    for base in endpoint_hosts:
        if hostname.endswith(f".{base.lower()}"):
            return Target(hostname[: -len(base) - 1], path)
    bucket, _, key = path.partition("/")
    return Target(bucket, key)


def signed_region(request: Request) -> str | None:
    """The region of a SigV4 credential scope (header or presigned URL); None if unsigned."""
    authorization = request.header("authorization") or ""
    found = _CREDENTIAL.search(authorization) if authorization.startswith("AWS4-") else None
    scope = found.group(1) if found else next(iter(request.query.get("X-Amz-Credential", [])), "")
    parts = scope.split("/")  # AKID/20261202/us-east-1/s3/aws4_request
    return parts[-3] if len(parts) >= 5 else None


def copy_source_bucket(request: Request) -> str | None:
    """The bucket of ``x-amz-copy-source`` (``/bucket/key`` or ``bucket/key``, URL-encoded)."""
    source = request.header("x-amz-copy-source")
    if source is None:
        return None
    return unquote(source.split("?", 1)[0]).lstrip("/").split("/", 1)[0]


def is_create_bucket(request: Request, target: Target) -> bool:
    """CreateBucket: a PUT to a bucket with neither a key nor a subresource (``?versioning``)."""
    return request.method == "PUT" and bool(target.bucket) and not target.key and not request.query


def says_requester_pays(request: Request) -> bool:
    """Whether the request accepts the charges, by header or (presigned) query parameter."""
    value = request.header(PAYER_HEADER) or next(iter(request.query.get(PAYER_HEADER, [])), "")
    return value.lower() == "requester"


@dataclass(frozen=True)
class SemanticsStats:
    """What the emulator decided, by kind; each request is counted once."""

    wrong_region: int = 0  # refused: signed for another region than the bucket's
    wrong_region_objects: int = 0  # of which addressed to an object (not a bucket's own API)
    requester_pays_denied: int = 0  # refused: requester pays without the header
    requester_charged: int = 0  # forwarded with the header to (or from) a requester-pays bucket


@dataclass(frozen=True)
class _Decision:
    """What the state says about one request, read once under the lock."""

    target: Target
    region: str | None  # of the addressed bucket, if it has one
    pays: bool  # the bucket or the copy source is requester pays
    create: bool


class S3Semantics:
    """The buckets' regions and requester-pays flags, and the FaultProxy hooks that apply them.

    ``respond`` and ``response_headers`` are the proxy's ``responder`` and ``response_headers``;
    they run on the proxy's connection threads, so the state is behind a lock.
    """

    def __init__(
        self,
        regions: Mapping[str, str] | None = None,
        requester_pays: Collection[str] = (),
        *,
        endpoint_hosts: Collection[str] = DEFAULT_ENDPOINT_HOSTS,
    ) -> None:
        self._lock = threading.Lock()
        self._regions = dict(regions or {})
        self._requester_pays = set(requester_pays)
        self._endpoint_hosts = tuple(endpoint_hosts)
        self._stats = SemanticsStats()

    def set_region(self, bucket: str, region: str | None) -> None:
        """Put ``bucket`` in ``region`` from now on (None: the default region, unchecked)."""
        with self._lock:
            if region is None:
                self._regions.pop(bucket, None)
            else:
                self._regions[bucket] = region

    def set_requester_pays(self, bucket: str, enabled: bool) -> None:
        """Turn requester pays on or off for ``bucket``, for requests from now on."""
        with self._lock:
            if enabled:
                self._requester_pays.add(bucket)
            else:
                self._requester_pays.discard(bucket)

    def region_of(self, bucket: str) -> str | None:
        """The region ``bucket`` is in now; None for the default region."""
        with self._lock:
            return self._regions.get(bucket)

    @property
    def stats(self) -> SemanticsStats:
        """The counters so far."""
        with self._lock:
            return self._stats

    def respond(self, request: Request) -> Answer | None:
        """S3's refusal of the request, or None to forward it."""
        decision = self._decide(request)
        if not decision.target.bucket or decision.create:
            return None
        region = decision.region
        signed = signed_region(request)
        if region is not None and signed is not None and signed != region:
            self._count("wrong_region")
            if decision.target.key:
                self._count("wrong_region_objects")
            return _wrong_region(request, signed, region)
        if decision.pays and not says_requester_pays(request):
            self._count("requester_pays_denied")
            headers = () if region is None else ((REGION_HEADER, region),)
            return _refusal(request, "403 Forbidden", "AccessDenied", "Access Denied", headers)
        if decision.pays:
            self._count("requester_charged")
        return None

    def response_headers(self, request: Request, status: int) -> list[tuple[str, str]]:
        """The fields S3 would add to the upstream's response (they replace the upstream's)."""
        decision = self._decide(request)
        fields = []
        if decision.region is not None:
            fields.append((REGION_HEADER, decision.region))
        if decision.pays and says_requester_pays(request):
            fields.append((CHARGED_HEADER, "requester"))
        return fields

    def _decide(self, request: Request) -> _Decision:
        target = target_of(request, self._endpoint_hosts)
        source = copy_source_bucket(request)
        with self._lock:
            region = self._regions.get(target.bucket)
            pays = target.bucket in self._requester_pays or source in self._requester_pays
        return _Decision(target, region, pays, is_create_bucket(request, target))

    def _count(self, name: str) -> None:
        with self._lock:
            self._stats = replace(self._stats, **{name: getattr(self._stats, name) + 1})


def _wrong_region(request: Request, signed: str, region: str) -> Answer:
    """What S3 answers a request signed for ``signed`` to a bucket in ``region``."""
    headers = ((REGION_HEADER, region),)
    if request.method == "HEAD":
        return _refusal(request, "301 Moved Permanently", "PermanentRedirect", "", headers)
    if request.header("authorization"):
        code = "AuthorizationHeaderMalformed"
        message = "The authorization header is malformed"
    else:
        code = "AuthorizationQueryParametersError"
        message = "Error parsing the X-Amz-Credential parameter"
    message += f"; the region '{signed}' is wrong; expecting '{region}'"
    return _refusal(request, "400 Bad Request", code, message, headers, (("Region", region),))


def _refusal(
    request: Request,
    status: str,
    code: str,
    message: str,
    headers: tuple[tuple[str, str], ...],
    details: tuple[tuple[str, str], ...] = (),
) -> Answer:
    """An S3 error; to a HEAD, only its status and headers, as S3 sends (no XML to read)."""
    answer = error_answer(status, code, message, details=details, headers=headers)
    if request.method != "HEAD":
        return answer
    kept = tuple(field for field in answer.headers if field[0].lower() != "content-type")
    return Answer(answer.status, kept)


class S3Emulator:
    """A running emulator: ``url`` for clients, ``semantics`` to change, ``proxy`` for faults."""

    def __init__(self, proxy: FaultProxy, semantics: S3Semantics) -> None:
        self.proxy = proxy
        self.semantics = semantics

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def stats(self) -> SemanticsStats:
        return self.semantics.stats


@contextlib.contextmanager
def s3_emulator(
    upstream_url: str,
    *,
    regions: Mapping[str, str] | None = None,
    requester_pays: Collection[str] = (),
    latency_s: float = 0.0,
    rules: Iterable[FaultRule] = (),
    endpoint_hosts: Collection[str] = DEFAULT_ENDPOINT_HOSTS,
) -> Iterator[S3Emulator]:
    """An emulator in front of ``upstream_url`` (moto, SeaweedFS); stopped on exit.

    ``regions`` maps bucket names to regions, ``requester_pays`` names buckets; ``rules`` and
    ``latency_s`` are the FaultProxy's, applied before the S3 rules.
    """
    semantics = S3Semantics(regions, requester_pays, endpoint_hosts=endpoint_hosts)
    proxy = FaultProxy(
        upstream_url,
        rules,
        latency_s=latency_s,
        responder=semantics.respond,
        response_headers=semantics.response_headers,
    )
    proxy.start()
    try:
        yield S3Emulator(proxy, semantics)
    finally:
        proxy.stop()

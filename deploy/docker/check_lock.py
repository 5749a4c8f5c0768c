"""Fail an image build whose Python environment strays from the project's lock file.

Run it with the image's interpreter, after the install:

    /opt/s3fanout/bin/python check_lock.py requirements/airflow3.txt

Every installed distribution except this project must be pinned in the lock at the version
installed, and Airflow must not be installed at all. The lock pins every environment of the
project (Airflow and dev tools too); used as a pip constraints file it pins only what an install
actually pulls in, and this check proves that nothing came in unpinned.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata

PROJECT = "s3-fanout-copy"
FORBIDDEN = ("apache-airflow", "apache-airflow-core")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def normalize(name: str) -> str:
    """A distribution name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(text: str) -> dict[str, str]:
    """The ``name==version`` pins of a lock file, by normalized name."""
    pins: dict[str, str] = {}
    for line in text.splitlines():
        match = _PIN.match(line)
        if match:
            pins[normalize(match[1])] = match[2]
    return pins


def installed() -> dict[str, str]:
    """The distributions visible to this interpreter, by normalized name."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[normalize(name)] = dist.version
    return found


def problems(
    present: Mapping[str, str], lock: Mapping[str, str], forbidden: Iterable[str] = FORBIDDEN
) -> list[str]:
    """What is wrong with ``present`` against ``lock``: one line per distribution."""
    banned = {normalize(name) for name in forbidden}
    found: list[str] = []
    for name, version in sorted(present.items()):
        if name == PROJECT:
            continue
        pinned = lock.get(name)
        if name in banned:
            found.append(f"{name}=={version} must not be installed in this image")
        elif pinned is None:
            found.append(f"{name}=={version} is not pinned in the lock: run `make lock`")
        elif pinned != version:
            found.append(f"{name}=={version} installed, but the lock pins {pinned}")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lock", help="the lock file the image was installed from")
    args = parser.parse_args(argv)
    with open(args.lock, encoding="utf-8") as handle:
        lock = read_lock(handle.read())
    found = problems(installed(), lock)
    for line in found:
        print(f"check_lock: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m sageport.storage fetch <url> <dest-dir>``: the variant pod's init container."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Iterator

from sageport.storage.archive import UnsafeArchiveError
from sageport.storage.fetch import FetchError, fetch


class DownloadTimeoutError(Exception):
    """The fetch ran past its budget."""


@contextlib.contextmanager
def deadline(seconds: int | None) -> Iterator[None]:
    """Interrupt the (blocking, main-thread) fetch after ``seconds``: SIGALRM's handler raises,
    which ends even a socket read that waits for data."""
    if not seconds:
        yield
        return

    def expire(_signal: int, _frame: object) -> None:
        raise DownloadTimeoutError

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sageport.storage", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_cmd = commands.add_parser("fetch", help="fetch an artifact into a directory, unpacking .tar.gz")
    fetch_cmd.add_argument(
        "url", help="s3://bucket/key, s3://bucket/prefix/, https://..., file://... or a local path"
    )
    fetch_cmd.add_argument("dest", help="destination directory (created if missing)")
    fetch_cmd.add_argument(
        "--timeout",
        type=int,
        default=None,
        help="give up after this many seconds (modelDataDownloadTimeoutInSeconds)",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    try:
        with deadline(args.timeout):
            fetch(args.url, args.dest)
    except DownloadTimeoutError:
        print(
            f"sageport.storage: fetch of {args.url} did not finish within modelDataDownloadTimeoutInSeconds "
            f"({args.timeout} s): raise it, or make the artifact smaller",
            file=sys.stderr,
        )
        return 1
    except (FetchError, UnsafeArchiveError, OSError) as exc:
        print(f"sageport.storage: fetch of {args.url} failed: {exc}", file=sys.stderr)
        return 1
    logging.getLogger("sageport.storage").info(
        "fetched %s into %s in %.2fs", args.url, args.dest, time.monotonic() - started
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

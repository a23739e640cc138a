"""``python -m sageport.storage fetch <url> <dest-dir>``: the variant pod's init container."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from sageport.storage.archive import UnsafeArchiveError
from sageport.storage.fetch import FetchError, fetch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sageport.storage", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_cmd = commands.add_parser("fetch", help="fetch an artifact into a directory, unpacking .tar.gz")
    fetch_cmd.add_argument(
        "url", help="s3://bucket/key, s3://bucket/prefix/, https://..., file://... or a local path"
    )
    fetch_cmd.add_argument("dest", help="destination directory (created if missing)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    try:
        fetch(args.url, args.dest)
    except (FetchError, UnsafeArchiveError, OSError) as exc:
        print(f"sageport.storage: fetch of {args.url} failed: {exc}", file=sys.stderr)
        return 1
    logging.getLogger("sageport.storage").info(
        "fetched %s into %s in %.2fs", args.url, args.dest, time.monotonic() - started
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m sageport.batch run``: one worker of a TransformJob, in the job pod next to the model.

The job's spec (ACK field names, JSON) comes from ``$SAGEPORT_TRANSFORM_JOB`` or ``--spec-file``;
the worker index from ``$JOB_COMPLETION_INDEX`` (an indexed Job sets it) or ``--index``; S3 from
the same environment as the model fetcher (``AWS_ENDPOINT_URL_S3``, boto3's credential chain).
The result is one JSON line on stdout and, when Kubernetes mounted one, the termination message
file; the exit code is 0 when every object was transformed, 1 when the job failed, 143 when stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from sageport.api.v1alpha1 import TransformJobSpec
from sageport.batch.driver import Driver, Result
from sageport.contract import (
    CONTAINER_PORT,
    JOB_COMPLETION_INDEX_ENV,
    TERMINATION_MESSAGE_PATH,
    TRANSFORM_JOB_ENV,
    TransformJobStatus,
)
from sageport.storage.s3 import s3_client

EXIT_STOPPED = 143


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sageport.batch", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="transform this worker's share of the job's input")
    run.add_argument("--spec-file", type=Path, help=f"the spec as JSON (default: ${TRANSFORM_JOB_ENV})")
    run.add_argument("--index", type=int, default=int(os.environ.get(JOB_COMPLETION_INDEX_ENV, "0")))
    run.add_argument("--model-url", default=f"http://127.0.0.1:{CONTAINER_PORT}")
    run.add_argument("--ping-timeout", type=float, default=1800.0, help="seconds to wait for /ping")
    run.add_argument("--termination-log", type=Path, default=Path(TERMINATION_MESSAGE_PATH))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    raw = args.spec_file.read_text() if args.spec_file else os.environ.get(TRANSFORM_JOB_ENV)
    if not raw:
        parser.error(f"no spec: set ${TRANSFORM_JOB_ENV} or --spec-file")
    driver = Driver(
        TransformJobSpec.model_validate_json(raw),
        args.index,
        s3_client(),
        model_url=args.model_url.rstrip("/"),
        ping_timeout=args.ping_timeout,
    )
    result, code = asyncio.run(_run(driver))
    report = result.to_json()
    print(report, flush=True)
    # Only when Kubernetes provides the file: never create one under /dev on a workstation.
    if args.termination_log.exists():
        try:
            args.termination_log.write_text(report)
        except OSError as error:
            logging.getLogger(__name__).warning("cannot write %s: %s", args.termination_log, error)
    return code


async def _run(driver: Driver) -> tuple[Result, int]:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        result = await driver.run()
    except asyncio.CancelledError:
        driver.result.status = TransformJobStatus.STOPPED
        return driver.result, EXIT_STOPPED
    return result, 0 if result.status == TransformJobStatus.COMPLETED else 1


if __name__ == "__main__":
    sys.exit(main())

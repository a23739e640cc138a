"""``python -m sageport.batch run``: one worker of a TransformJob, in the job pod next to the model.

The job's spec (ACK field names, JSON) comes from ``$SAGEPORT_TRANSFORM_JOB`` or ``--spec-file``;
the worker index from ``$JOB_COMPLETION_INDEX`` (an indexed Job sets it) or ``--index``; S3 from
the same environment as the model fetcher (``AWS_ENDPOINT_URL_S3``, boto3's credential chain).
The result is one JSON line on stdout and, when Kubernetes mounted one, the termination message
file; the exit code is 0 when every object was transformed, 1 when the job failed, 143 when stopped,
2 on an error that is not the job's (worth running the worker again).
In a job pod the operator also sets ``$SAGEPORT_TRANSFORM_JOB_UID`` and ``$SAGEPORT_TRANSFORM_RETRY``
(driver.py: a worker run again after its pod died skips the outputs this job already wrote).
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
    TRANSFORM_JOB_UID_ENV,
    TRANSFORM_RETRY_ENV,
    TransformJobStatus,
)
from sageport.storage.s3 import s3_client

EXIT_STOPPED = 143
# Not the job's failure (S3 unreachable, a crash): the operator's Job runs this worker again,
# where exit 1 (a record the model rejected, bad input) fails it at once.
EXIT_RETRY = 2


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
        job_uid=os.environ.get(TRANSFORM_JOB_UID_ENV) or None,
        retry=_int(os.environ.get(TRANSFORM_RETRY_ENV)),
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


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


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
    except Exception as error:  # S3 unreachable, a bug: not the job's fault, so worth another run
        logging.getLogger(__name__).exception("the worker failed")
        driver.result.status = TransformJobStatus.FAILED
        driver.result.failure_reason = f"InternalServerError: {type(error).__name__}: {error}"
        return driver.result, EXIT_RETRY
    return result, 0 if result.status == TransformJobStatus.COMPLETED else 1


if __name__ == "__main__":
    sys.exit(main())

"""The serving entrypoint, as the SageMaker Inference Toolkit's README shows: SageMaker (and
sageport) start the container with the argument ``serve``."""

import shlex
import subprocess
import sys

from sagemaker_inference import model_server

HANDLER_SERVICE = "handler_service"  # /opt/program/handler_service.py, on PYTHONPATH


def main():
    if sys.argv[1:2] == ["serve"]:
        model_server.start_model_server(handler_service=HANDLER_SERVICE)  # returns when MMS exits
    else:
        subprocess.check_call(shlex.split(" ".join(sys.argv[1:])))


if __name__ == "__main__":
    main()

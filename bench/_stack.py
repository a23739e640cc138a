"""``make up``'s stack for the benchmarks that need the real node, with the iris model in S3."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sageport_dev import local_stack, stack


@dataclass(frozen=True)
class IrisStack:
    env: local_stack.StackEnv
    kubeconfig: Path
    s3: stack.S3Server
    runtime_image: str


def iris_stack() -> IrisStack:
    """The stack (started if it is not running, and left running), the iris model uploaded."""
    env = local_stack.up(log=lambda _: None)
    s3 = stack.running_s3(local_stack.stack_dir_from_env().absolute() / "s3")
    if s3 is None:
        raise stack.StackError("the stack's S3 server is not running")
    s3.put("sageport-models", "iris/model.tar.gz", stack.iris_model_tarball())
    runtime_image = next(ref for ref in env.images if "/runtime:" in ref)
    return IrisStack(env, Path(env.kubeconfig), s3, runtime_image)

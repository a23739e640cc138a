"""runtime/Dockerfile and operator/Dockerfile (the Docker path) define the same images as the
builder without Docker (sageport_dev.images.SPECS): extra, user, working directory, command,
environment, labels, ports, writable directories and the commands on PATH."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sageport_dev import images

REPO = Path(__file__).resolve().parents[2]


@dataclass
class FinalStage:
    """What the last stage of a Dockerfile sets, and what its build stage installs."""

    extra: str = ""
    seeds_pip: bool = False
    user: str = ""
    workdir: str = "/"
    cmd: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    exposed: tuple[str, ...] = ()
    made_dirs: set[str] = field(default_factory=set)
    owned_dirs: set[str] = field(default_factory=set)
    scripts: dict[str, str] = field(default_factory=dict)


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in joined.splitlines()
        if line.strip()
    ]


def _pairs(argument: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in shlex.split(argument))


def parse(dockerfile: Path) -> FinalStage:
    stage = FinalStage()
    for instruction, argument in _instructions(dockerfile.read_text()):
        if instruction == "FROM":
            extra, seeds = stage.extra, stage.seeds_pip
            stage = FinalStage(extra=extra, seeds_pip=seeds)  # only the last stage's settings count
        elif instruction == "RUN":
            if found := re.search(r"--extra (\w+)", argument):
                stage.extra = found.group(1)
            stage.seeds_pip |= "uv venv --seed" in argument
            for command in argument.split("&&"):
                words = shlex.split(command)
                if words[:2] == ["mkdir", "-p"]:
                    stage.made_dirs |= set(words[2:])
                if words[:1] == ["chown"]:
                    stage.owned_dirs |= set(words[2:])
            if script := re.search(
                r"printf '#!/bin/sh\\nexec (.+?) \"\$@\"\\n' > /usr/local/bin/(\S+)", argument
            ):
                stage.scripts[script.group(2)] = script.group(1)
        elif instruction == "USER":
            stage.user = argument.strip()
        elif instruction == "WORKDIR":
            stage.workdir = argument.strip()
        elif instruction == "CMD":
            stage.cmd = tuple(re.findall(r'"([^"]*)"', argument))
        elif instruction == "ENV":
            stage.env.update(_pairs(argument))
        elif instruction == "LABEL":
            stage.labels.update(_pairs(argument))
        elif instruction == "EXPOSE":
            stage.exposed = tuple(port if "/" in port else f"{port}/tcp" for port in argument.split())
    return stage


# Set by the Dockerfile's python base image or venv, not by our spec: the builder sets the
# equivalent itself (PATH to its interpreter, unbuffered output).
_BASE_ENV = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}


@pytest.mark.parametrize("spec", images.SPECS, ids=lambda spec: spec.name)
def test_the_dockerfile_defines_the_image_the_builder_makes(spec: images.ImageSpec) -> None:
    stage = parse(REPO / spec.name / "Dockerfile")
    assert stage.extra == spec.extra
    assert stage.user == f"{images.USER_ID}:{images.USER_ID}"
    assert stage.workdir == spec.working_dir
    assert stage.cmd == spec.cmd
    assert {k: v for k, v in stage.env.items() if k not in _BASE_ENV} == dict(spec.env)
    assert stage.labels == dict(spec.labels)
    assert stage.exposed == spec.exposed_ports
    assert stage.made_dirs == stage.owned_dirs == set(spec.writable_dirs)
    assert stage.seeds_pip == any(package.startswith("pip==") for package in spec.extra_packages)
    # Commands on PATH: the builder writes a wrapper per entry; the Dockerfile gets the console
    # scripts of pyproject.toml plus its own shell scripts, which must run the same module.
    for command, module in spec.wrappers.items():
        if command in stage.scripts:
            script = stage.scripts[command].split()
            assert spec.wrappers[script[0]].split()[0] == module.split()[0], command
            assert script[1:] == module.split()[1:], command
        else:
            assert (
                f'{command} = "{module.replace(" ", ".")}.main:main"' in (REPO / "pyproject.toml").read_text()
            )

"""The aws-mms example image is cached by its inputs: the base layer (its own root file system,
named by its extra Debian packages), the pinned requirements and the handler's files."""

from __future__ import annotations

from pathlib import Path

from sageport_dev import images


def test_the_hash_covers_every_input() -> None:
    requirements, program = images.mms_inputs()
    base = "sha256:" + "0" * 64
    reference = images.mms_image_hash(base, requirements, program)
    assert images.mms_image_hash(base, requirements, dict(program)) == reference  # deterministic
    assert images.mms_image_hash("sha256:" + "1" * 64, requirements, program) != reference
    assert images.mms_image_hash(base, requirements + "numpy==0\n", program) != reference
    changed = {**program, "handler_service.py": program["handler_service.py"] + "\n# changed\n"}
    assert images.mms_image_hash(base, requirements, changed) != reference


def test_the_inputs_are_the_examples_pinned_requirements_and_python_files() -> None:
    requirements, program = images.mms_inputs()
    assert sorted(program) == ["entrypoint.py", "handler_service.py"]
    pins = [line for line in requirements.splitlines() if line and not line.startswith("#")]
    assert all("==" in line for line in pins), pins  # every package pinned: a rebuild installs the same
    assert {"sagemaker-inference", "multi-model-server"} <= {line.split("==")[0] for line in pins}


def test_a_root_file_system_with_extra_packages_is_cached_apart() -> None:
    plain = images._rootfs_dir()
    with_jre = images._rootfs_dir(images.MMS_DEBS)
    assert plain == images.ROOTFS_DIR
    assert with_jre != plain
    assert with_jre.parent == plain.parent
    assert with_jre == images._rootfs_dir(tuple(reversed(images.MMS_DEBS)))  # named by the set
    assert images._base_key(images.MMS_DEBS) != images._base_key()
    assert isinstance(with_jre, Path)

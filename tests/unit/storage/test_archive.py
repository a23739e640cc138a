"""Safe unpacking: real tarballs, including hostile ones built member by member."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sageport.storage.archive import UnsafeArchiveError, is_archive_name, unpack, unsafe_member_reason


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def test_unpacks_a_model_archive_with_nested_code(tmp_path: Path) -> None:
    archive = _tar(
        tmp_path / "model.tar.gz",
        [(_file("model.joblib"), b"weights"), (_file("code/inference.py"), b"def model_fn(d): ...\n")],
    )
    unpack(archive, tmp_path / "out")
    assert (tmp_path / "out/model.joblib").read_bytes() == b"weights"
    assert (tmp_path / "out/code/inference.py").read_text().startswith("def model_fn")


def test_keeps_symlinks_that_stay_inside(tmp_path: Path) -> None:
    archive = _tar(
        tmp_path / "m.tar.gz", [(_file("v1/model.bin"), b"x"), (_link("model.bin", "v1/model.bin"), None)]
    )
    unpack(archive, tmp_path / "out")
    assert (tmp_path / "out/model.bin").read_bytes() == b"x"


@pytest.mark.parametrize(
    ("member", "fragment"),
    [
        ((_file("../escape.txt"), b"x"), "outside the destination"),
        ((_file("/etc/evil"), b"x"), "outside the destination"),
        ((_file("a/../../escape"), b"x"), "outside the destination"),
        ((_link("link", "/etc/passwd"), None), "symlink"),
        ((_link("a/link", "../../outside"), None), "symlink"),
        ((_link("hard", "../outside", tarfile.LNKTYPE), None), "hard link"),
        ((_link("dev", "", tarfile.CHRTYPE), None), "device"),
    ],
)
def test_rejects_hostile_members_without_writing_anything(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes | None], fragment: str
) -> None:
    archive = _tar(tmp_path / "bad.tar.gz", [(_file("innocent.txt"), b"ok"), member])
    out = tmp_path / "nested" / "out"
    with pytest.raises(UnsafeArchiveError, match=fragment):
        unpack(archive, out)
    assert not (out / "innocent.txt").exists(), "a rejected archive must not be half-extracted"
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "nested" / "escape").exists()


@given(st.lists(st.sampled_from(["a", "b", "..", ".", "c.txt"]), min_size=1, max_size=6))
def test_a_name_is_accepted_only_if_it_resolves_inside(parts: list[str]) -> None:
    name = "/".join(parts)
    root = Path("/dest")
    resolved = (root / name).resolve()
    inside = resolved == root or root in resolved.parents
    reason = unsafe_member_reason(tarfile.TarInfo(name))
    if reason is None:
        assert inside, f"{name!r} resolves to {resolved} but was accepted"


@pytest.mark.parametrize(
    ("name", "expected"), [("model.tar.gz", True), ("M.TGZ", True), ("x.tar", True), ("model.joblib", False)]
)
def test_archive_names(name: str, expected: bool) -> None:
    assert is_archive_name(name) is expected


@pytest.mark.parametrize(
    "members",
    [
        # a/up -> .. is lexically inside; a/up/x -> ../escape would then land outside.
        [(_link("a/up", ".."), None), (_link("a/up/x", "../escape"), None)],
        [(_link("a/up", ".."), None), (_file("a/up/../escape"), b"x")],
        [(_link("dir", "."), None), (_file("dir/file"), b"x")],
        [(_link("d", "sub"), None), (_link("hard", "d/file", tarfile.LNKTYPE), None)],
    ],
)
def test_rejects_members_written_through_an_archive_symlink(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]
) -> None:
    archive = _tar(tmp_path / "bad.tar.gz", members)
    with pytest.raises(UnsafeArchiveError):
        unpack(archive, tmp_path / "out")
    assert not (tmp_path / "escape").exists()


def test_unpacks_without_the_stdlib_data_filter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Debian bookworm's Python 3.11.2 (the images' base) predates tarfile's filters."""
    monkeypatch.delattr(tarfile, "data_filter")
    setuid = _file("tool")
    setuid.mode = 0o4777
    archive = _tar(tmp_path / "m.tar.gz", [(_file("model.joblib"), b"w"), (setuid, b"#!")])
    unpack(archive, tmp_path / "out")
    assert (tmp_path / "out/model.joblib").read_bytes() == b"w"
    assert (tmp_path / "out/tool").stat().st_mode & 0o7777 == 0o755

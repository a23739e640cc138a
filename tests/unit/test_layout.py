"""The repository layout rules that keep imports sane."""

import subprocess
import sys

from tests.support.manifests import REPO


def test_operator_folder_is_not_a_package() -> None:
    # operator/__init__.py would shadow the standard library's `operator` module.
    assert not (REPO / "operator" / "__init__.py").exists()
    assert not (REPO / "runtime" / "sageport" / "__init__.py").exists()
    assert not (REPO / "operator" / "sageport" / "__init__.py").exists()


def test_stdlib_operator_wins_with_source_roots_on_path() -> None:
    code = (
        "import sys; sys.path[:0] = [{root!r}, {root!r} + '/operator', {root!r} + '/runtime'];"
        "import operator, sageport;"
        "assert hasattr(operator, 'itemgetter'), operator.__file__;"
        "print(operator.__file__)"
    ).format(root=str(REPO))
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=False)
    # -S skips site-packages, so the stdlib module is found by path search, not pre-imported.
    assert result.returncode == 0, result.stderr
    assert "site-packages" not in result.stdout
    assert result.stdout.strip().endswith("operator.py")

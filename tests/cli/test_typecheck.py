"""mypy over the whole ``wormspace`` package, as installed.

The project's top-level folders become one import namespace only through setup.py's mapping
(``checker/`` is ``wormspace.checker``, ``cli/`` is ``wormspace`` itself...), which mypy cannot
follow from the source tree: run on the folders, it loses every ``wormspace.*`` import between
them. So the test lays the folders out as the installed package (symlinks in a temporary
directory, from setup.py's own ``FOLDERS``) and checks that with the project's mypy settings.
The same by hand: ``python tests/cli/test_typecheck.py``.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def package_folders() -> dict[str, str]:
    """setup.py's ``FOLDERS`` (import name -> folder), read without running setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "FOLDERS" for t in node.targets):
            folders: dict[str, str] = ast.literal_eval(node.value)
            return folders
    raise AssertionError("setup.py defines no FOLDERS")


def lay_out(target: Path) -> Path:
    """The package as installed, made of symlinks to the source folders, under ``target``."""
    folders = package_folders()
    pkg = target / "wormspace"
    pkg.mkdir()
    for entry in (ROOT / folders["wormspace"]).iterdir():  # the root package's own modules
        if entry.suffix == ".py":
            (pkg / entry.name).symlink_to(entry)
    for name, folder in folders.items():
        if name != "wormspace":
            assert name.count(".") == 1, f"nested mapping {name} needs a deeper layout"
            (pkg / name.split(".")[1]).symlink_to(ROOT / folder, target_is_directory=True)
    return target


def run_mypy(target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(target / ".mypy_cache"), "-p", "wormspace"],
        cwd=target, capture_output=True, text=True, timeout=600,
        env={**os.environ, "MYPYPATH": ""})


def test_the_whole_package_type_checks(tmp_path: Path) -> None:
    pytest.importorskip("mypy", reason="mypy is in the test extras")
    r = run_mypy(lay_out(tmp_path))
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert "no issues found" in r.stdout


def test_the_layout_covers_every_folder_setup_py_maps(tmp_path: Path) -> None:
    target = lay_out(tmp_path)
    for name, folder in package_folders().items():
        where = target.joinpath(*name.split("."))
        assert (where / "__init__.py").resolve() == (ROOT / folder / "__init__.py").resolve()


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        result = run_mypy(lay_out(Path(d)))
    print(result.stdout + result.stderr, end="")
    raise SystemExit(result.returncode)

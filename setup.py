"""Maps the project's top-level folders into one import namespace, ``wormspace``.

The folders are the ones the project is organised in (``checker/``, ``spec/``, ``model/``,
``impl/``, ``refinement_tests/``); installed, they become ``wormspace.checker`` and so on, so no
generic name such as ``model`` or ``spec`` lands in site-packages. ``cli/`` is the root package
``wormspace`` itself (the command line and the catalog of models). Sub-packages are found by
walking each folder, so a new sub-package needs no edit here.
"""

import os

from setuptools import setup

FOLDERS = {
    "wormspace": "cli",
    "wormspace.checker": "checker",
    "wormspace.spec": "spec",
    "wormspace.model": "model",
    "wormspace.impl": "impl",
    "wormspace.refinement_tests": "refinement_tests",
}


def _packages() -> tuple[dict[str, str], list[str]]:
    package_dir: dict[str, str] = {}
    packages: list[str] = []
    for name, folder in FOLDERS.items():
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
            if "__init__.py" not in files:
                dirs[:] = []
                continue
            rel = os.path.relpath(root, folder)
            pkg = name if rel == "." else name + "." + rel.replace(os.sep, ".")
            packages.append(pkg)
            package_dir[pkg] = root.replace(os.sep, "/")
    return package_dir, packages


_package_dir, _package_list = _packages()
setup(package_dir=_package_dir, packages=_package_list)

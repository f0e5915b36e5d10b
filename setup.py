"""Packaging hook: the wheel carries the repository's recipes, launch configs and constraints as ``rlft/_data``.

setuptools' package data only reaches files inside a package, and these three
folders stay at the repository root because users type ``recipes/math.yaml``
and ``--config_file launch/zero2.yaml`` in a clone. ``rlft.core.resources``
finds whichever copy is present.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA = ("recipes", "launch", "constraints")
SUFFIXES = {".yaml", ".txt"}


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        for folder in DATA:
            for src in sorted(Path(folder).rglob("*")):
                if src.is_file() and src.suffix in SUFFIXES:
                    dst = Path(self.build_lib, "rlft", "_data", src)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, dst)


setup(cmdclass={"build_py": BuildPyWithData})

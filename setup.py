"""The build step of the wheel: copy the checkout's templates, static files, migrations
and of the pinned front-end packages (node_modules, from `npm ci`) the files the pages
load (webapp.assets.BUNDLED_ONLY) into `webapp/bundled/`.

Everything else about the project is in pyproject.toml. The mapping is
webapp.assets.BUNDLED_FROM, which the app also reads to find these directories.
"""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


# webapp/assets.py, read as a file: nothing is installed yet while the wheel builds.
ASSETS = runpy.run_path(str(ROOT / "webapp" / "assets.py"))


class BuildWithAssets(build_py):
    """build_py, then the asset directories; an editable install reads them from the checkout instead."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for name, source in ASSETS["BUNDLED_FROM"].items():
            origin = ROOT / source
            if not origin.is_dir():
                raise SystemExit(f"cannot build Jobwarden: {origin} is missing (run `npm ci` first)")
            target = Path(self.build_lib, "webapp", ASSETS["BUNDLE"], name)
            shutil.rmtree(target, ignore_errors=True)
            only = ASSETS["BUNDLED_ONLY"].get(name)
            if only is None:
                shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                continue
            target.mkdir(parents=True)
            for file_name in only:
                shutil.copy2(origin / file_name, target / file_name)


setup(cmdclass={"build_py": BuildWithAssets})

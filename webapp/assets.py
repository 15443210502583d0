"""Where the templates, static files, migrations and pinned front-end packages are.

An installed wheel carries them inside the package, under `webapp/bundled/` (put
there by the build step in setup.py, which reads BUNDLED_FROM); a checkout or an
editable install reads them from the source tree. Standard library only: setup.py
loads this file before anything is installed.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

BUNDLE = "bundled"
# Name inside the bundle -> the directory of a checkout it is copied from.
BUNDLED_FROM = {
    "templates": "templates",
    "static": "static",
    "migrations": "migrations",
    "vendor/htmx": "node_modules/htmx.org/dist",
    "vendor/idiomorph": "node_modules/idiomorph/dist",
}
# Of these bundled folders, the only files the wheel carries: the ones the pages load
# (templates/base.html). The npm packages also ship other builds (AMD, CommonJS, ESM,
# unminified) and htmx's extensions, over a megabyte nothing here serves.
BUNDLED_ONLY = {
    "vendor/htmx": ("htmx.min.js",),
    "vendor/idiomorph": ("idiomorph-ext.min.js",),
}
# The checkout holding this package, when it runs from source or an editable install.
SOURCE_ROOT = Path(__file__).resolve().parent.parent


class AssetMissing(RuntimeError):
    """Neither the installed package nor a checkout holds a directory Jobwarden needs."""


def asset_dir(name: str) -> Path:
    """The directory `name` (a key of BUNDLED_FROM) in the installed package, else in the checkout."""
    bundled = files(__package__).joinpath(BUNDLE, *name.split("/"))
    if isinstance(bundled, Path) and bundled.is_dir():
        return bundled
    source = SOURCE_ROOT / BUNDLED_FROM[name]
    if source.is_dir():
        return source
    hint = " (run `npm ci` in the checkout)" if "node_modules" in BUNDLED_FROM[name] else ""
    raise AssetMissing(f"Jobwarden's {name} directory is missing: not in the package nor at {source}{hint}")

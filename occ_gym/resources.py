"""Where occ-gym's files live: the shipped assets (read-only package data) and a user cache.

Every asset path is resolved here, through ``importlib.resources``, never from the source
tree's layout, so an installed wheel finds the same files as a checkout. Nothing at run time
writes into the package: caches and training outputs go to :func:`user_cache_dir` or to an
explicit ``--out`` (the Makefile's ``models``, ``traces`` and ``policies`` targets name the
checkout's asset folders when they re-make the shipped files).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def asset_dir(name: str) -> Path:
    """The shipped asset folder ``name`` (``models``, ``traces``, ``policies``, ``pools`` or
    ``recordings``)."""
    return Path(str(resources.files("occ_gym") / "assets" / name))


def package_file(*parts: str) -> Path:
    """A data file shipped inside the package, e.g. ``package_file("schemas", "x.json")``."""
    return Path(str(resources.files("occ_gym").joinpath(*parts)))


def user_cache_dir() -> Path:
    """``$OCC_GYM_CACHE``, else ``$XDG_CACHE_HOME/occ-gym``, else ``~/.cache/occ-gym``."""
    explicit = os.environ.get("OCC_GYM_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "occ-gym"


MODELS_DIR = asset_dir("models")
TRACES_DIR = asset_dir("traces")
POLICIES_DIR = asset_dir("policies")
POOLS_DIR = asset_dir("pools")
DEMO_RECORDING = asset_dir("recordings") / "nano-demo"
"""OCC-Traces-v0's recording unless ``traces=`` names one: the nano generalists as a pool
(``pools/nano.toml``) on 200 OCC-Code-v1 train problems (``make recording``)."""

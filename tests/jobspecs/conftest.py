"""Fixtures of the spot watcher's tests: the script imported as a module, and the IMDS double."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.jobspecs.imds_double import IMDSDouble

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "spot_watcher.py"


@pytest.fixture(scope="session")
def sw() -> ModuleType:
    """The watcher script imported as a module (it is a standalone script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("spot_watcher", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["spot_watcher"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def imds() -> Iterator[IMDSDouble]:
    """A fresh instance metadata service double."""
    with IMDSDouble() as double:
        yield double

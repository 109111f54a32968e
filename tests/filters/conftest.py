"""Fixtures the filter tests share."""

from __future__ import annotations

from pathlib import Path

import pytest

from filters.kenlm_build import KenLMBuildError, ensure_tools


@pytest.fixture(scope="session")
def kenlm_tools() -> dict[str, Path]:
    """lmplz and build_binary (`make` builds them once into the cache); skipped where they cannot be built."""
    try:
        return ensure_tools(install_packages=False, log=lambda _: None)
    except KenLMBuildError as error:
        pytest.skip(f"KenLM's lmplz cannot be built on this machine: {error}")

"""Model folders a stage loads from, named so an executor can ship them where the driver's path is absent.

Why: a stage's params point at models on the driver (e.g. `<models_dir>/toxicity/`), but a Ray actor on
another node may have no such path. Params that load from folders implement `UsesModelFolders`: they list
the folders they read, by the name each is looked up under in a models home, and they give a copy of
themselves that looks the same names up in another home. The Ray executor packs each folder once, sends
the bytes through Ray's object store, rebuilds them in a node-local home and hands the stage that copy. It
only deals in folders and bytes, so this core package never imports the filters that define the models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from curate.stages.base import StageParams


@runtime_checkable
class UsesModelFolders(Protocol):
    def model_folders(self) -> dict[str, Path]:
        """Every folder the stage reads at setup, by the name it looks it up under (`<home>/<name>`)."""
        ...

    def with_models_home(self, home: Path) -> StageParams:
        """A copy of these params that reads the same names from `home` (already validated: no re-check)."""
        ...


def model_folders(params: StageParams) -> dict[str, Path]:
    """The folders a stage's params need shipped; none for a stage that loads no model folder."""
    return params.model_folders() if isinstance(params, UsesModelFolders) else {}

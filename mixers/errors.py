"""The two ways a mixture talks back to its user: a one-line error before work, or a warning during it.

`MixError` is a `ConfigError`, so the CLI prints it as one line (never a traceback) like every other user
error. `MixWarning` is a real `warnings` category, so tests can assert it with `pytest.warns` and the CLI
can print it; every warning is also recorded in the mixture's manifest, where it outlives the terminal.
"""

from __future__ import annotations

import warnings

from curate.errors import ConfigError


class MixError(ConfigError):
    """A user error in a mixture spec or command: one line naming the thing and the fix."""


class MixWarning(UserWarning):
    """Something the user should know but that does not stop the mixture (weights normalised, repetition)."""


def warn(message: str, notes: list[str]) -> None:
    """Emit a MixWarning and keep its text for the manifest."""
    notes.append(message)
    warnings.warn(message, MixWarning, stacklevel=3)

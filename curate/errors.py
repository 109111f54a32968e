"""The user errors every layer raises, and the one rule for them: a single line naming the thing and the fix.

They live at the bottom of the house, apart from the config model, so a trainer or a mixer can raise one
without importing YAML, readers and the stage registry; the CLI root catches them once and prints the line.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A user error in the config or command line: printed as one line, never as a traceback."""

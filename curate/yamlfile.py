"""Reading a user's YAML file (a pipeline, a mixture spec, a search config, a schedules file).

One reader, so every command answers a missing file, a syntax error or bad bytes with the same one line
naming the file and the fix, instead of a traceback from the YAML parser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from curate.errors import ConfigError


def read_yaml(path: Path, what: str, error: type[ConfigError] = ConfigError) -> Any:
    """The parsed document; `what` names the file's role in the message ("config file", "mixture spec")."""
    if path.is_dir():
        raise error(f"{what} {path} is a folder; pass the path of a YAML file")
    if not path.is_file():
        raise error(f"{what} {path} does not exist; pass the path of a YAML file")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as problem:
        raise error(f"{what} {path} cannot be read ({problem.strerror}); check its permissions") from None
    except (yaml.YAMLError, UnicodeDecodeError) as problem:
        raise error(f"{path}: not valid YAML ({one_line(problem)}); fix the syntax") from None


def one_line(error: Exception) -> str:
    return " ".join(str(error).split())

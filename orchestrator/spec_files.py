"""Reading a spec file: its bytes to the data `orchestrator.spec` validates.

TOML or JSON by the file's suffix, UTF-8 (a BOM is skipped). Every failure is a SpecError
naming the file: cannot be read, not UTF-8, not valid TOML or JSON, a JSON object with a
key given twice (TOML refuses those itself), or nested too deeply to parse.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from orchestrator.errors import SpecError

__all__ = ["read_spec_data"]


def read_spec_data(path: str | Path) -> Any:
    """The parsed content of a ``.toml`` or ``.json`` spec file; SpecError if it has none."""
    path = Path(path)
    shown = str(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise SpecError(shown, [f"unsupported spec file type {path.suffix!r}: use .toml or .json"])
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise SpecError(shown, [f"cannot read the spec file: {error.strerror or error}"]) from None
    except UnicodeDecodeError as error:
        raise SpecError(shown, [f"the spec file is not UTF-8 text (byte {error.start})"]) from None
    return _parse_toml(shown, text) if suffix == ".toml" else _parse_json(shown, text)


def _parse_toml(shown: str, text: str) -> Any:
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as error:
        raise SpecError(shown, [f"invalid TOML: {error}"]) from None
    except RecursionError:
        raise SpecError(shown, ["invalid TOML: nested too deeply"]) from None


def _parse_json(shown: str, text: str) -> Any:
    duplicates: list[str] = []

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                duplicates.append(f"invalid JSON: duplicate key {key!r} in one object")
            seen[key] = value
        return seen

    try:
        data = json.loads(text, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as error:
        raise SpecError(
            shown, [f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"]
        ) from None
    except (RecursionError, ValueError) as error:
        raise SpecError(shown, [f"invalid JSON: {error or 'nested too deeply'}"]) from None
    if duplicates:
        raise SpecError(shown, duplicates)
    return data

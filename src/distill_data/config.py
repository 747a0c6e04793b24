"""The workflow configuration: defaults from the JSON schema, then validation with errors
that name the key."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator


class ConfigError(ValueError):
    pass


def load_schema(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def apply_defaults(config: dict, schema: dict) -> dict:
    """A copy of `config` with every missing key set to its schema default (recursively)."""
    result = copy.deepcopy(config) if config is not None else {}
    if not isinstance(result, dict):
        return result
    for key, sub in schema.get("properties", {}).items():
        if key not in result and "default" in sub:
            result[key] = copy.deepcopy(sub["default"])
        if isinstance(result.get(key), dict) and sub.get("type") == "object":
            result[key] = apply_defaults(result[key], sub)
    return result


def validate_config(config: dict, schema: dict) -> dict:
    """Defaults applied, then checked; raises ConfigError listing every problem by key."""
    config = apply_defaults(config or {}, schema)
    problems = []
    for error in sorted(Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.path)):
        key = ".".join(str(p) for p in error.path) or "(top level)"
        if error.validator == "additionalProperties":
            allowed = ", ".join(sorted(error.schema.get("properties", {})))
            problems.append(f"config key {key}: {error.message} (allowed keys: {allowed})")
        else:
            problems.append(f"config key {key}: {error.message}")
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return config

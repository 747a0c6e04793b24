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


_BOOLEANS = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False}


def _coerce_scalar(value: str, types: list):
    """A string as the first schema type it parses as; unchanged when none fits (the
    validator then names the key)."""
    if "string" in types:
        return value
    text = value.strip()
    for kind in types:
        try:
            if kind == "integer":
                return int(text)
            if kind == "number":
                number = float(text)
                return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
            if kind == "boolean" and text.lower() in _BOOLEANS:
                return _BOOLEANS[text.lower()]
            if kind == "null" and text.lower() in ("null", "none", "~", ""):
                return None
        except ValueError:
            continue
    return value


def coerce_types(config, schema: dict):
    """Values typed by the schema: `--config 'merge={"seed": 7}'` reaches the workflow as
    {"seed": "7"} (Snakemake parses nested values as text), and becomes {"seed": 7} here."""
    if isinstance(config, dict):
        properties = schema.get("properties", {})
        return {key: coerce_types(value, properties[key]) if key in properties else value
                for key, value in config.items()}
    if isinstance(config, list) and isinstance(schema.get("items"), dict):
        return [coerce_types(item, schema["items"]) for item in config]
    if isinstance(config, str):
        types = schema.get("type")
        if types is None and "enum" in schema:
            return config
        types = [types] if isinstance(types, str) else list(types or [])
        return _coerce_scalar(config, types) if types else config
    return config


def validate_config(config: dict, schema: dict) -> dict:
    """Defaults applied, values coerced to the schema's types, then checked; raises ConfigError
    listing every problem by key."""
    config = coerce_types(apply_defaults(config or {}, schema), schema)
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


# --- the standalone scripts -------------------------------------------------------------------

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


def schema_property(schema: dict, key: str) -> dict:
    """The schema of a dotted config key (`synth.english_frac`)."""
    node = schema
    for part in key.split("."):
        node = node["properties"][part]
    return node


def _bound_problem(value, spec: dict) -> str | None:
    if value is None:
        return None
    if "minimum" in spec and value < spec["minimum"]:
        return f"must be at least {spec['minimum']}"
    if "exclusiveMinimum" in spec and value <= spec["exclusiveMinimum"]:
        return f"must be more than {spec['exclusiveMinimum']}"
    if "maximum" in spec and value > spec["maximum"]:
        return f"must be at most {spec['maximum']}"
    if "exclusiveMaximum" in spec and value >= spec["exclusiveMaximum"]:
        return f"must be less than {spec['exclusiveMaximum']}"
    return None


def check_args(args, keys: dict[str, str], schema: dict | None = None) -> None:
    """Refuse a command-line value the workflow's config would refuse: `keys` maps an argparse
    attribute (`english_frac`) to its config key (`synth.english_frac`), whose bounds apply.
    Raises ValueError naming the flag, the value, the bound and the config key."""
    schema = schema or load_schema(SCHEMA_PATH)
    problems = []
    for attr, key in keys.items():
        value = getattr(args, attr, None)
        problem = _bound_problem(value, schema_property(schema, key))
        if problem:
            flag = "--" + attr.replace("_", "-")
            problems.append(f"{flag} {value}: {problem} (as config key {key})")
    if problems:
        raise ValueError("; ".join(problems))

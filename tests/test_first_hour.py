"""Issue 17, "the first hour": what a new user hits, each with a real build of the demo.

One demo build per module (a private copy of the project); tests that damage it repair it
(a rebuild) before they end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from distill_data.demo.__main__ import write_demo
from workflow_helpers import PROJECT, copy_project, snakemake, write_config

MIX = "phase1_mix_8k_665m"
CONFIG = "config.demo.yaml"
OUT = "demo/distillation_1"


@pytest.fixture(scope="module")
def demo(tmp_path_factory, vocab_dir):
    project = copy_project(tmp_path_factory.mktemp("first_hour") / "project")
    shutil.copy2(PROJECT / CONFIG, project / CONFIG)
    write_demo(project / "demo" / "raw")
    snakemake(project, "-j", "2", "--configfile", CONFIG, "--", MIX)
    return project


def console(done: subprocess.CompletedProcess) -> str:
    return done.stdout + done.stderr


# --- 1. the README's --config override builds (not only dry-runs) ------------------------------

def test_merge_seed_override_from_the_readme_builds_and_validates(demo):
    override = ["--config", 'merge={"seed": 7}']
    try:
        snakemake(demo, "-j", "2", "--configfile", CONFIG, *override, "--", MIX)
        mix = json.loads((demo / OUT / MIX / "manifest.json").read_text())
        assert mix["params"]["seed"] == 7
        report = json.loads((demo / OUT / "_work" / "validate" / "mix.json").read_text())
        assert report["ok"] and report["settings"]["seed"] == 7
    finally:
        snakemake(demo, "-j", "2", "--configfile", CONFIG, "--", MIX)

"""Packaging invariants: exact torch pins, and environment.yml stating pyproject.toml's pins."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_pins() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def _environment_pins() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return [p for p in pip if not p.startswith("-e")]


def test_torch_pinned_exactly():
    pins = _pyproject_pins()
    assert "torch==2.14.1" in pins
    assert "torchvision==0.29.1" in pins


def test_environment_yml_matches_pyproject():
    assert sorted(_environment_pins()) == sorted(_pyproject_pins())


def test_every_dependency_pinned():
    assert all("==" in pin for pin in _pyproject_pins())

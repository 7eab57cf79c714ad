"""The conda environment file and pyproject.toml pin the same packages."""

import tomllib

import yaml

from conftest import PROJECT_ROOT


def _name(requirement: str) -> str:
    for separator in ("==", ">=", "<=", "<", ">", "["):
        requirement = requirement.split(separator)[0]
    return requirement.strip().lower()


def test_conda_pip_section_matches_pyproject():
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    environment = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    conda_pins = {_name(item): item for item in pip_section if not item.startswith("-e")}
    for requirement in pyproject["project"]["dependencies"]:
        assert _name(requirement) in conda_pins, f"{requirement} is missing from environment.yml"
        assert conda_pins[_name(requirement)] == requirement, f"environment.yml pins {conda_pins[_name(requirement)]}, pyproject {requirement}"


def test_torch_pinned_exactly():
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    assert "torch==2.13.0" in pyproject["project"]["dependencies"]


def test_conda_python_version():
    environment = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    assert "python=3.11" in environment["dependencies"]

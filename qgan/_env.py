"""Fail early, with the fix, when the environment does not match the pins in pyproject.toml.

Strawberry Fields 0.23 imports `scipy.integrate.simps` (gone in SciPy 1.14) and is only known
to work with the set below (FACTS.md). A mismatch surfaces here as one clear message instead
of an ImportError deep inside SF.
"""

from __future__ import annotations

from importlib import metadata

# package -> (predicate on the version tuple, the requirement as pip spells it)
PINS = {
    "tensorflow-cpu": (lambda v: v[:2] == (2, 21), "tensorflow-cpu==2.21.*"),
    "strawberryfields": (lambda v: v[:3] == (0, 23, 0), "strawberryfields==0.23.0"),
    "thewalrus": (lambda v: v[:3] == (0, 21, 0), "thewalrus==0.21.0"),
    "scipy": (lambda v: (1, 10) <= v[:2] < (1, 14), "scipy>=1.10,<1.14"),
    "numpy": (lambda v: v[:2] < (2, 3), "numpy<2.3"),
    # SF 0.23 imports pkg_resources, gone from setuptools 81 on
    "setuptools": (lambda v: (68,) <= v[:1] < (81,), "setuptools>=68,<81"),
}


class EnvironmentMismatch(ImportError):
    pass


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def check_environment() -> None:
    problems = []
    for package, (ok, requirement) in PINS.items():
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            problems.append(f"{package} is not installed; need {requirement}")
            continue
        if not ok(_version_tuple(version)):
            problems.append(f"{package} {version} is installed; need {requirement}")
    if problems:
        raise EnvironmentMismatch(
            "qgan-toolkit needs the pinned environment (see pyproject.toml):\n  - "
            + "\n  - ".join(problems)
            + "\nFix: `make venv` (or `pip install -e .` in a fresh virtual environment).")


check_environment()

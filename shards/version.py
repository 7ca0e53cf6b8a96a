"""The installed babylm-pipeline release, recorded in every manifest.json and run.json and shown by
`babylm-prep --version` / `babylm-train --version`, so a bug report can name what made a folder."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "babylm-pipeline"


def package_version() -> str:
    """The version pyproject.toml declares, as installed; `0+unknown` when run from an
    uninstalled checkout."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "0+unknown"

"""The layers and no-cycle contracts (pyproject `[tool.importlinter]`, run by `make lint`)
hold for the package, and they catch an arrow against the layers, also one inside a function."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(src: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with the project's contracts over the `duckpond` package under `src`."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=cwd,
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_package_keeps_its_contracts(tmp_path: Path) -> None:
    proc = _lint(ROOT / "src", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "BROKEN" not in proc.stdout
    assert "Contracts: 4 kept, 0 broken." in proc.stdout


def test_an_upward_import_inside_a_function_breaks_them(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "duckpond", src / "duckpond", ignore=shutil.ignore_patterns("__pycache__")
    )
    blobs = src / "duckpond" / "storage" / "blobs.py"
    blobs.write_text(
        blobs.read_text() + "\n\ndef _sneaky() -> object:\n"
        "    from ..steward import steward\n\n    return steward\n"
    )
    proc = _lint(src, tmp_path)
    assert proc.returncode != 0
    assert "duckpond.storage.blobs -> duckpond.steward.steward" in proc.stdout
    assert "Layers: each imports only the layers below it BROKEN" in proc.stdout
    assert "Storage knows nothing of the layers above it BROKEN" in proc.stdout
    assert "No import cycles, at any depth BROKEN" in proc.stdout
    # factories import storage, which now reaches the steward: an indirect arrow counts too
    assert "Factories never import the pond, the steward or remotes BROKEN" in proc.stdout

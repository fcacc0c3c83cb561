"""The architecture's executable form: layers that point down and no import cycle.

pyproject.toml's ``[tool.importlinter]`` contracts say which layer may import which
(``lint-imports`` checks them), and tools/import_cycles.py reports every cycle at
module and package level; both count imports inside functions and under
``TYPE_CHECKING``. Each runs in a process of its own (about a second together),
from the repository root as CI runs them, so its report is the failure message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_import_linter_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    done = _run(lint_imports, "--no-cache")
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_import_cycle_at_module_or_package_level() -> None:
    done = _run(sys.executable, REPO / "tools" / "import_cycles.py")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_cycle_report_counts_what_it_says() -> None:
    """Its JSON adds up: a cycle listed is a cycle counted, and every module is in one
    package of its root (so the figures in the closing notes can be trusted)."""
    done = _run(sys.executable, REPO / "tools" / "import_cycles.py", "--json")
    report = json.loads(done.stdout)
    listed = len(report["module_cycles"]) + len(report["package_cycles"])
    assert report["cycle_count"] == listed
    assert done.returncode == (1 if listed else 0)
    roots = {summary["root"]: summary for summary in report["roots"]}
    assert set(roots) == {"facelens", "bench"}
    for summary in roots.values():
        assert sum(summary["modules_per_package"].values()) == summary["modules"]
        assert len(summary["modules_per_package"]) == summary["packages"]


def test_imports_under_type_checking_and_in_functions_close_cycles(tmp_path: Path) -> None:
    """A cycle hidden behind ``TYPE_CHECKING`` or in a function is still reported."""
    package = tmp_path / "looped"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "inner" / "__init__.py").write_text("")
    (package / "a.py").write_text("from looped.inner import b\n")
    (package / "inner" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from looped import c\n"
    )
    (package / "c.py").write_text("def later() -> None:\n    from looped import a\n")
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "import_cycles.py"), "--json", "looped"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = json.loads(done.stdout)
    assert done.returncode == 1
    assert [cycle["members"] for cycle in report["module_cycles"]] == [
        ["looped.a", "looped.c", "looped.inner.b"]
    ]
    assert [cycle["members"] for cycle in report["package_cycles"]] == [
        ["looped.a", "looped.c", "looped.inner"]
    ]

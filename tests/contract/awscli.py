"""The AWS CLI as a subprocess, seeing only the environment a test gives it.

No AWS config or credentials file of the machine is read (both point to
files that do not exist) and no AWS_* variable leaks in: the credentials,
region and endpoints are exactly the test's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

CLI_TIMEOUT_S = 60


def isolated_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    """This process' environment without any AWS_* variable, plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        AWS_MAX_ATTEMPTS="1",
    )
    env.update(variables)
    return env


class AwsCli:
    """``aws SERVICE COMMAND …`` with JSON output, in ``cwd``, with ``env``."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "awscli", *args, "--output", "json"],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
        )

    def __call__(self, *args: str) -> Any:
        done = self.run(*args)
        if done.returncode != 0:
            raise AssertionError(f"aws {' '.join(args)} failed: {done.stderr}")
        return json.loads(done.stdout) if done.stdout.strip() else {}

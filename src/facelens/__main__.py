"""`python -m facelens` is the `facelens` command."""

from __future__ import annotations

from facelens.cli import main

main()

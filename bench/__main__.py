"""``python -m bench``: the whole suite (see :mod:`bench.suite`)."""

from bench.suite import main

main()

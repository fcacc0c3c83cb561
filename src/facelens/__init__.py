"""facelens: open person identification with Rekognition's vocabulary.

Importing the package does nothing: no model loading, no connections and no
environment reads. Build a :class:`facelens.config.Settings`, construct the
parts from it and call them.
"""

from __future__ import annotations

__version__ = "0.1.0"

"""The recognizer's rule on a gallery of its own, for ``facelens bench identify``.

The finder is built exactly as the recognizer's, under the match policy
(:func:`facelens.wiring.recognizer.engine_finder`), so what the benchmark measures is the
rule the recognizer applies to every crop.
"""

from __future__ import annotations

from contextlib import ExitStack

from facelens.config import Settings
from facelens.evaluation.identify_run import RecognizerRule
from facelens.wiring.people import match_policy
from facelens.wiring.recognizer import engine_finder
from facelens.wiring.stores import open_collections, open_profiles


def open_recognizer_rule(settings: Settings, stack: ExitStack) -> RecognizerRule:
    """A rule on the stores ``settings`` name (a gallery's
    :func:`facelens.evaluation.identify_run.gallery_settings`), closed by ``stack``."""
    collections = open_collections(settings, stack)
    policy = match_policy(collections, open_profiles(settings, stack))
    finder = engine_finder(settings, collections, policy)
    return RecognizerRule(finder, collections.store, collections.collections, collections.users)

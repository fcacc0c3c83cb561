"""Actors: who acts, as the audit log names them."""

from __future__ import annotations

import pytest

from facelens.errors import InvalidParameterException
from facelens.history.audit import LOCAL, RECOGNIZER, Actor, cli_actor


def test_an_actor_is_labelled_kind_colon_name_or_its_kind_alone() -> None:
    assert Actor("api-key", "admin").label == "api-key:admin"
    assert str(Actor("access-key", "sdk")) == "access-key:sdk"
    assert (LOCAL.label, RECOGNIZER.label) == ("local", "recognizer")
    assert cli_actor().kind == "cli"
    assert cli_actor().name


@pytest.mark.parametrize(("kind", "name"), [("", None), ("cli:x", "bob"), ("cli", "")])
def test_an_actor_that_would_not_read_back_is_refused(kind: str, name: str | None) -> None:
    with pytest.raises(InvalidParameterException):
        Actor(kind, name)

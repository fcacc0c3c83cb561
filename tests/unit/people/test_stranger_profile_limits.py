"""Naming a stranger with a profile the store refuses changes nothing.

The profile (nested past DynamoDB's 32 levels, or holding an unpaired
surrogate) is refused by the profile store; that refusal used to come after
the user was made and the stranger's faces copied to it, leaving the named
user behind beside the stranger it was meant to replace.
"""

from __future__ import annotations

from typing import Any

import pytest

from facelens.collection.stores.store import CollectionStore
from facelens.errors import InvalidParameterException, ResourceNotFoundException
from facelens.people.strangers import StrangerService
from tests.unit.people.test_strangers import MAIN, People, ledger, profiles, service, store  # noqa: F401


def nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.parametrize("profile", [{"deep": nested(40)}, {"Name": "\ud800"}])
def test_a_refused_profile_leaves_the_stranger_as_it_was(
    service: StrangerService,  # noqa: F811
    store: CollectionStore,  # noqa: F811
    profile: dict[str, Any],
) -> None:
    people = People()
    anna = people.person()
    sid = service.observe(MAIN, people.face(anna)).stranger_id
    with pytest.raises(InvalidParameterException):
        service.name(MAIN, sid, "anna", profile=profile)
    with pytest.raises(ResourceNotFoundException):
        store.get_user(MAIN, "anna")
    assert service.get(MAIN, sid).stranger_id == sid

"""What REST routes take besides their parts: the caller's role, paging, an uploaded photo.

Reading needs the ``read`` role, changing ``admin`` (:func:`facelens.api.security.require`).
Lists page with ``max_results`` and the ``next_token`` the previous page gave.
Photos are uploaded as ``multipart/form-data`` (``image``), not base64.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, File, Query, UploadFile

from facelens.access.keys import Principal, Role
from facelens.api.security import require
from facelens.errors import InvalidParameterException

Reader = Annotated[Principal, Depends(require(Role.READ))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
MaxResults = Annotated[int, Query(ge=1, le=1000, alias="max_results")]
Token = Annotated[str | None, Query(alias="next_token")]
Photo = Annotated[UploadFile, File(description="A JPEG or PNG photo.")]


async def read_photo(photo: UploadFile) -> bytes:
    """The uploaded photo's bytes; InvalidParameterException for an empty upload."""
    data = await photo.read()
    if not data:
        raise InvalidParameterException("The uploaded image is empty")
    return data

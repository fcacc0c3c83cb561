"""Options shared by several commands, spelled as the AWS CLI spells them."""

from __future__ import annotations

from typing import Annotated

import typer

from facelens.collection.models import QualityFilter

CollectionId = Annotated[str, typer.Option("--collection-id", help="The collection's id.")]
MaxFaces = Annotated[
    int, typer.Option("--max-faces", min=1, max=4096, help="Most faces to return.")
]
Threshold = Annotated[
    float,
    typer.Option(
        "--face-match-threshold",
        min=0,
        max=100,
        help="Lowest similarity (0-100) to return; 80 means <= 0.1% false matches on LFW.",
    ),
]
Quality = Annotated[
    QualityFilter, typer.Option("--quality-filter", case_sensitive=False, help="Quality bar.")
]
NextToken = Annotated[str | None, typer.Option("--next-token", help="Token from a previous page.")]
MaxResults = Annotated[int, typer.Option("--max-results", min=1, max=4096, help="Page size.")]
FaceIds = Annotated[
    list[str],
    typer.Option(
        "--face-ids",
        help="Face ids; repeat the option or separate ids with commas or spaces.",
    ),
]
UserIdOpt = Annotated[str, typer.Option("--user-id", help="The user's id.")]


def split_ids(values: list[str]) -> list[str]:
    """`--face-ids a --face-ids b,c "d e"` -> [a, b, c, d, e]."""
    return [part for value in values for part in value.replace(",", " ").split() if part]

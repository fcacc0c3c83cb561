"""The native REST API under ``/api/v1``: one router per resource, answers as pydantic models.

Rekognition's field names in the bodies, the same JSON the CLI prints; the
answers' shapes are :mod:`~facelens.api.rest.models`, which ``/docs`` shows.
"""

"""The dashboard under ``/ui/``: server-rendered pages, their templates and static files.

One router per page group (login, the live feed, people, search, strangers,
corrections); what they share is :mod:`~facelens.api.dashboard.web` and
:mod:`~facelens.api.dashboard.sightings`.
"""

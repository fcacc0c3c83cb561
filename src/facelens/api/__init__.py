"""The HTTP front end: the REST API, the dashboard and the AWS-compatible endpoints.

:mod:`~facelens.api.app` assembles the one FastAPI app from the routers of
:mod:`~facelens.api.rest` (``/api/v1``), :mod:`~facelens.api.dashboard` (``/ui/``)
and :mod:`~facelens.api.aws` (``POST /`` and ``/topics/``);
:mod:`~facelens.api.serve` builds it, with the parts its routes use
(:mod:`~facelens.api.parts`, handed out by :mod:`~facelens.api.context`),
and runs it. What every route shares: authentication
(:mod:`~facelens.api.security`), the error shape (:mod:`~facelens.api.errors`),
the checks before any route (:mod:`~facelens.api.middleware`) and who did what
(:mod:`~facelens.api.actors`).
"""

"""Builds facelens' parts from settings: the one place that chooses adapters.

Plain factories, one module per thing they assemble: :mod:`.stores`
(collections, profiles, objects, history), :mod:`.bus` (publication, events,
notifications, MQTT client ids), :mod:`.people`, :mod:`.recognizer` (with the
one assembly of the worker and the retention loop), :mod:`.edge`,
:mod:`.server` (what the HTTP server is built on) and :mod:`.evaluation`
(the recognizer's rule for ``bench identify``); :mod:`.process` names this
process's role and :mod:`.lifetime` closes what was opened. Each factory
takes the settings, the caller's :class:`contextlib.ExitStack` and the
bundles it builds on, and returns a small frozen bundle of built parts. What
must be closed is closed by the stack in the reverse order of opening, so a
part closes before what it was built on: publishers last, after everything
that publishes through them, so what they spooled goes out.

Front ends (the CLI, ``facelens up``, the HTTP server's assembly, the Lambda
handler) open what they use and nothing else: a command that lists profiles
opens the profile store and the audit log, connects to no broker and loads no
model. No object holds every part, and only front ends (and tests and the
benchmarks) import this package.
"""

"""facelens' results as the JSON (and sentences) people and programs read.

Pure functions from domain objects to dicts, shared by the front ends so the
CLI, the REST API and the Rekognition endpoint say the same: Rekognition's
shapes (:mod:`~facelens.rendering.rekognition_json`), the identification
rule (:mod:`~facelens.rendering.rule`) and what forgetting a person deleted
(:mod:`~facelens.rendering.forget`). Nothing here knows HTTP.
"""

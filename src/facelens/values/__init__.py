"""Values that cross layers: what one layer hands another, defined below both.

A face's box travels from the engine to the object store's crop metadata and into
the recognizer's messages; an S3 ObjectCreated event from the store through the
bus to the worker; an identity from the matching rule to the messages; a stranger
match from the stranger service to the recognizer. Each is defined here, at the
bottom, so that the layer that makes it and the layer that reads it both point
down to it instead of at each other. Frozen dataclasses only; nothing here imports
the rest of facelens.
"""

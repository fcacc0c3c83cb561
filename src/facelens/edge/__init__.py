"""The camera side: frames in; crops, status and a live view out.

``sources`` and ``capture`` turn a webcam, file or stream into frames
(reconnecting when a stream drops); ``detection`` finds faces on a scaled
copy and maps them back; ``tracking`` follows them across frames and
``picking`` chooses one crop per person per track; ``uploads`` keeps crops
on disk until the object store has them; ``reporting`` and ``names`` talk
MQTT; ``view``, ``metrics`` and ``server`` are the live view. ``runner``
wires them into the frame loop.
"""

"""Visits end to end: LFW people at a door, played through ``facelens up``; first and final answers.

Why: issue 19 asks for visits that are answered at once and surer with every
look, with no more wrong names than today's single-crop rule and fewer
unknowns for enrolled people. ``bench.visit_fusion`` measures the fusion
offline; this measures what the whole pipeline (edge: detection, tracking,
the quality gate, which looks it uploads; recognizer: fusion, revisions,
publication) does with it.

How:

* **The visits** (:func:`plan_visits`, seeded): development-split LFW
  identities with enough photos. ``--enrolled`` of them are enrolled with
  ``facelens enroll`` of their first photo (sorted by name; ``facelens
  enroll`` run in one process for speed, the command itself) and visit
  with ``--looks`` of their *other* photos; ``--strangers`` are never
  enrolled and visit with ``--looks`` of theirs; other identities are
  enrolled from one photo each until the gallery holds ``--gallery``
  people, so a stranger has someone to be mistaken for.
* **The video** (:func:`render`): each visit's photos (their central part,
  :data:`PHOTO_SIDE`) shown one after the other, ``--look-seconds`` each, at
  one place on a plain grey frame, drifting two pixels a frame (a person
  turning in front of the camera); visits are separated by ``--gap-seconds``
  of empty frames, longer than the edge's track timeout (1 s), so each visit
  is a new track. Written with OpenCV's VideoWriter (MJPG) in a temporary
  folder.
* **The run**: ``facelens up --source <video> --realtime --once --no-serve
  --mqtt <broker>`` in a fresh home, publishing to a Mosquitto on loopback;
  a subscriber keeps every message on ``<topic>/#``. Real-time playback makes
  a crop's ``CapturedAt`` (the wall clock when its frame was read) the
  playback's start plus the frame's position in the video, so a look is
  mapped to its visit by time: the start is estimated as the offset that puts
  the most crops inside the visits' windows (:func:`estimate_start`), then
  each crop and message falls in one window (or is counted unmatched).
  Messages that carry a ``VisitId`` are grouped by it and the group goes to
  the visit of its earliest ``CapturedAt``.
* **Whose answer**: an LFW photo's central part can still show the edge of
  another face (a crowd, a neighbour): a person of their own, with a track
  of their own. The answers in a visit's window are grouped by VisitId (by
  the crop's ``track-id`` in code from before visits); groups whose faces
  (the crops' ``frame-box``) overlap the window's widest face by
  :data:`OWN_FACE_OVERLAP` are the visitor's, the others bystanders, counted apart
  (``bystanders``: tracks, and how many were given a name). Two groups of
  the visitor's are one person split by the edge (``visits_split``).
* **Per visit**: the FIRST answer (``Revision`` 0, else the earliest message)
  and the FINAL one (the highest ``Revision``, else the latest message), each
  right (its own name), wrong (someone else's name; any name for a stranger)
  or unknown (no name, or no message at all: counted apart as
  ``no_answer``); ``changed``: the final answer differs from the first;
  uploads per visit (the crops in the object store, by their metadata) and
  the share of uploaded looks the recognizer found a face in (one minus the
  dead letters on ``<topic>/errors`` over uploads).

The same script measures the code as it was before visits existed: run it
with ``PYTHONPATH=<a checkout of 310875b>/src`` and ``--label baseline``
(writes ``visits_baseline.json``): there a visit may have one upload (the
best-of window) or a few (retries after "unknown"); first = earliest message,
final = latest. Latency is not measured here (``bench.up_latency`` does).

Run from the repository root (needs Mosquitto)::

    python -m bench.visits [--enrolled 24] [--strangers 24] [--gallery 80] [--looks 4]
                           [--seed 0] [--label NAME] [--env FACELENS_NAME=VALUE ...]

About 4-5 minutes on 2 cores (the video plays in real time: about 3 minutes).
Writes bench/results/visits.json (or visits_<label>.json).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench._common import machine_facts, percentile, stored_crops, testdata_dir, write_result
from bench.up_latency import base_env
from facelens.edge.tracking import iou
from facelens.storage.crops import CropMetadata
from facelens.values.boxes import PixelBox

TOPIC = "rekognition"
"""The recognizer's default topic: identifications here, unknowns on /unknown, dead letters
on /errors."""
FRAME_SIZE = (640, 480)
"""Width, height of the video: a doorway camera's modest resolution."""
PHOTO_SIDE = 170
"""What is shown of each photo: its central 170 x 170 px. LFW photos are 250 x 250 px with
the person's face, about 110 px wide, in the middle; their edges often hold other people's
faces (a crowd, a bystander), which would be visits of their own, neither this person's nor
anyone planned. The offline protocol likewise embeds each photo's central face."""
DRIFT_PX = 2.0
"""How far the photo moves per frame, to the right (pixels)."""
LEAD_IN_S = 1.0
"""Empty frames before the first visit (seconds)."""
MATCH_SLACK_S = 0.3
"""How far outside a visit's window a crop's CapturedAt may fall when the video's start is
estimated (frame reads are not exactly on time on a busy machine); once it is known, a crop
goes to the nearest visit within 0.45 gaps."""
RUN_TIMEOUT_S = 900


@dataclass(frozen=True)
class PlannedVisit:
    """One visit: whose (identity folder, display name), whether enrolled, the photos shown in
    order, and its window in the video (seconds from the first frame)."""

    index: int
    identity: str
    name: str
    enrolled: bool
    looks: tuple[str, ...]
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Plan:
    """The visits in order, who is enrolled from which photo (display name -> photo), and the
    video's timing."""

    visits: tuple[PlannedVisit, ...]
    enrol: Mapping[str, str]
    fps: float
    look_s: float
    gap_s: float
    duration_s: float


def display_name(identity: str) -> str:
    """LFW's folder name as a person's name: ``Aaron_Sorkin`` -> ``Aaron Sorkin``."""
    return identity.replace("_", " ")


def plan_visits(
    photos: Mapping[str, Sequence[str]],
    *,
    enrolled: int,
    strangers: int,
    gallery: int,
    looks: int,
    seed: int,
    fps: float = 15.0,
    look_s: float = 0.4,
    gap_s: float = 2.0,
) -> Plan:
    """Draws the visits (module docstring); enrolled and stranger visits interleaved in a seeded
    order. Raises ValueError when the photos cannot supply them."""
    rng = np.random.default_rng(seed)
    names = sorted(photos)
    order = [names[int(i)] for i in rng.permutation(len(names))]
    can_visit = [n for n in order if len(photos[n]) >= looks + 1]
    if len(can_visit) < enrolled + strangers:
        raise ValueError(
            f"{len(can_visit)} identities have {looks + 1} photos or more; "
            f"{enrolled + strangers} are needed"
        )
    members = can_visit[:enrolled]
    outsiders = can_visit[enrolled : enrolled + strangers]
    used = set(members) | set(outsiders)
    fillers = [n for n in order if n not in used][: max(0, gallery - enrolled)]
    enrol = {display_name(n): sorted(photos[n])[0] for n in (*members, *fillers)}
    cast = [(n, True) for n in members] + [(n, False) for n in outsiders]
    cast = [cast[int(i)] for i in rng.permutation(len(cast))]
    visits: list[PlannedVisit] = []
    at = LEAD_IN_S
    for index, (identity, member) in enumerate(cast):
        pool = sorted(photos[identity])[1:] if member else sorted(photos[identity])
        shown = tuple(pool[int(i)] for i in rng.permutation(len(pool))[:looks])
        end = at + looks * look_s
        visits.append(PlannedVisit(index, identity, display_name(identity), member, shown, at, end))
        at = end + gap_s
    return Plan(tuple(visits), enrol, fps, look_s, gap_s, at)


def frame_count(plan: Plan) -> int:
    return math.ceil(plan.duration_s * plan.fps)


def central(image: npt.NDArray[np.uint8], side: int) -> npt.NDArray[np.uint8]:
    """The central ``side`` x ``side`` pixels of ``image`` (padded grey where it is smaller)."""
    height, width = image.shape[:2]
    out = np.full((side, side, 3), 128, dtype=np.uint8)
    top, left = max(0, (height - side) // 2), max(0, (width - side) // 2)
    part = image[top : top + side, left : left + side]
    y, x = (side - part.shape[0]) // 2, (side - part.shape[1]) // 2
    out[y : y + part.shape[0], x : x + part.shape[1]] = part
    return out


def render(plan: Plan, out: Path) -> int:
    """Writes the plan's video (MJPG) to ``out``; how many frames."""
    import cv2

    width, height = FRAME_SIZE
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"MJPG"), plan.fps, FRAME_SIZE)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write MJPG video to {out}")
    blank = np.full((height, width, 3), 128, dtype=np.uint8)
    images: dict[str, npt.NDArray[np.uint8]] = {}
    frames = frame_count(plan)
    try:
        for i in range(frames):
            t = i / plan.fps
            frame = blank.copy()
            visit = next((v for v in plan.visits if v.start_s <= t < v.end_s), None)
            if visit is not None:
                step = int((t - visit.start_s) / plan.look_s)
                photo = visit.looks[min(step, len(visit.looks) - 1)]
                if photo not in images:
                    image = cv2.imread(photo, cv2.IMREAD_COLOR)
                    if image is None:
                        raise RuntimeError(f"cannot read {photo}")
                    images[photo] = central(np.asarray(image, dtype=np.uint8), PHOTO_SIDE)
                moved = int(DRIFT_PX * round((t - visit.start_s) * plan.fps))
                x = (width - PHOTO_SIDE) // 2 - 30 + moved
                y = (height - PHOTO_SIDE) // 2
                frame[y : y + PHOTO_SIDE, x : x + PHOTO_SIDE] = images[photo]
            writer.write(frame)
    finally:
        writer.release()
    return frames


def estimate_start(captured: Sequence[float], windows: Sequence[tuple[float, float]]) -> float:
    """The wall-clock time (s) of the video's first frame that puts the most ``captured`` times
    inside the ``windows`` (seconds into the video, ascending, non-overlapping), each widened
    by MATCH_SLACK_S. Candidates line each capture up with each window's start and end; of the
    range of starts that place the most, its middle (the most robust to jitter either way)."""
    if not captured or not windows:
        raise ValueError("nothing to align")
    c = np.asarray(captured, dtype=np.float64)
    starts = np.array([w[0] for w in windows]) - MATCH_SLACK_S
    ends = np.array([w[1] for w in windows]) + MATCH_SLACK_S
    candidates = np.unique(
        np.concatenate([c[:, None] - starts[None, :], c[:, None] - ends[None, :]]).ravel()
    )

    def inside(t0: float) -> int:
        media = c - t0
        i = np.searchsorted(starts, media, side="right") - 1
        return int(((i >= 0) & (media <= ends[np.maximum(i, 0)])).sum())

    if len(candidates) == 1:
        return float(candidates[0])
    # The count only changes at a candidate: between two neighbours it is what it is halfway.
    counts = [inside(float(a + b) / 2) for a, b in itertools.pairwise(candidates)]
    most = max(counts)
    runs: list[tuple[float, float]] = []  # (from, to) of each run of neighbours placing most
    for i, n in enumerate(counts):
        if n != most:
            continue
        if runs and runs[-1][1] == candidates[i]:
            runs[-1] = (runs[-1][0], float(candidates[i + 1]))
        else:
            runs.append((float(candidates[i]), float(candidates[i + 1])))
    lo, hi = max(runs, key=lambda r: r[1] - r[0])
    return (lo + hi) / 2


def window_of(
    captured: float, start: float, windows: Sequence[tuple[float, float]], reach: float
) -> int | None:
    """The index of the window (seconds into the video) nearest to ``captured`` (wall-clock
    seconds) given the video's ``start``, if it is at most ``reach`` seconds outside it (0
    inside); None otherwise. ``reach`` under half the gap between visits keeps a late frame
    read (a busy machine reads behind time) with its own visit."""
    media = captured - start
    best: tuple[float, int] | None = None
    for i, (lo, hi) in enumerate(windows):
        distance = max(lo - media, media - hi, 0.0)
        if distance <= reach and (best is None or distance < best[0]):
            best = (distance, i)
    return None if best is None else best[1]


@dataclass(frozen=True)
class Answer:
    """One recognizer message as this bench reads it. name: the profile's Name (None: no
    name given). revision: ``Revision``, None when the message has none (before visits)."""

    captured_at: float
    received_at: float
    status: str
    name: str | None
    visit_id: str | None
    revision: int | None
    looks: int | None
    key: str | None = None
    """The crop's object key: what ties the answer to its crop's metadata (track, face box)."""


@dataclass(frozen=True)
class CropFacts:
    """What an uploaded crop's metadata says about its face: the edge's track (a visit's, in
    code with visits, and a track's before) and the face's box in the frame (left, top,
    right, bottom, pixels)."""

    track: str | None
    box: tuple[float, float, float, float] | None

    @property
    def width(self) -> float | None:
        return None if self.box is None else self.box[2] - self.box[0]


OWN_FACE_OVERLAP = 0.3
"""A track in a visit's window is the visitor's own when its widest face overlaps (IoU) the
widest face of the window by at least this: the visitor stays where the photos are shown,
so a track the edge split off them is in the same place; a face at an LFW photo's edge (a
crowd, a neighbour, up to 70 px wide beside the visitor's 85-110) is beside it, overlapping
0-0.1."""


def parse_answer(payload: bytes, received_at: float) -> Answer | None:
    """An identification or unknown message; None for anything else (dead letters too)."""
    try:
        body = json.loads(payload)
        captured = datetime.fromisoformat(body["CapturedAt"]).timestamp()
    except (ValueError, KeyError, TypeError):
        return None
    status = str(body.get("Status"))
    if status not in ("identified", "unknown"):
        return None
    name: str | None = None
    if status == "identified":  # the profile's Name; its UserId when it has none
        name = str(body.get("Name") or body.get("UserId"))
    visit_id, revision, looks = body.get("VisitId"), body.get("Revision"), body.get("Looks")
    key = body.get("Key")
    return Answer(
        captured_at=captured,
        received_at=received_at,
        status=status,
        name=name,
        visit_id=visit_id if isinstance(visit_id, str) else None,
        revision=revision if isinstance(revision, int) else None,
        looks=looks if isinstance(looks, int) else None,
        key=key if isinstance(key, str) else None,
    )


def first_and_final(answers: Sequence[Answer]) -> tuple[Answer, Answer] | None:
    """A planned visit's first answer and its final one.

    Within one VisitId the first is the lowest Revision (then the earliest arrival) and the
    final the highest (then the latest). The edge may split one person's visit into several
    VisitIds (a lost track): then the first answer is that of the VisitId answered first and
    the final one that of the VisitId answered last, as a user watching the door sees them.
    Messages without a VisitId (code from before visits) are one group, ordered by arrival.
    """
    if not answers:
        return None

    def key(a: Answer) -> tuple[int, float]:
        return (a.revision if a.revision is not None else 0, a.received_at)

    groups: dict[str | None, list[Answer]] = {}
    for a in answers:
        groups.setdefault(a.visit_id, []).append(a)
    opened = min(groups.values(), key=lambda g: min(a.received_at for a in g))
    closed = max(groups.values(), key=lambda g: max(a.received_at for a in g))
    return min(opened, key=key), max(closed, key=key)


def track_of(answer: Answer, facts: Mapping[str, CropFacts]) -> str | None:
    """The answer's visit: its VisitId, else its crop's track (code from before visits)."""
    if answer.visit_id is not None:
        return answer.visit_id
    crop = facts.get(answer.key or "")
    return None if crop is None else crop.track


def own_and_bystanders(
    answers: Sequence[Answer], facts: Mapping[str, CropFacts]
) -> tuple[list[Answer], list[list[Answer]]]:
    """A visit window's answers split into the visitor's own (tracks whose widest face
    overlaps the window's widest by OWN_FACE_OVERLAP) and each bystander track's. Without
    crop facts (a document from before this split) every answer is the visitor's."""
    groups: dict[str | None, list[Answer]] = {}
    for a in answers:
        groups.setdefault(track_of(a, facts), []).append(a)

    def widest(group: Sequence[Answer]) -> CropFacts | None:
        known = [f for a in group if (f := facts.get(a.key or "")) is not None and f.box]
        return max(known, key=lambda f: f.width or 0.0) if known else None

    faces = {track: widest(group) for track, group in groups.items()}
    known = [f for f in faces.values() if f is not None and f.box is not None]
    if not known:
        return list(answers), []
    anchor = max(known, key=lambda f: f.width or 0.0).box
    own: list[Answer] = []
    bystanders: list[list[Answer]] = []
    for track, group in groups.items():
        face = faces[track]
        if (
            face is None
            or face.box is None
            or anchor is None
            or iou(PixelBox(*face.box), PixelBox(*anchor)) >= OWN_FACE_OVERLAP
        ):
            own.extend(group)
        else:
            bystanders.append(group)
    return own, bystanders


def verdict(visit: PlannedVisit, answer: Answer | None) -> str:
    """right / wrong / unknown / no_answer for one answer to one visit."""
    if answer is None:
        return "no_answer"
    if answer.name is None:
        return "unknown"
    return "right" if visit.enrolled and answer.name == visit.name else "wrong"


def assign(
    answers: Sequence[Answer], start: float, windows: Sequence[tuple[float, float]], reach: float
) -> tuple[dict[int, list[Answer]], int]:
    """Each answer's visit: by its VisitId group's earliest CapturedAt, else its own; returns
    visit index -> answers, and how many answers fell in no window."""
    groups: dict[str, list[Answer]] = {}
    for a in answers:
        if a.visit_id is not None:
            groups.setdefault(a.visit_id, []).append(a)
    anchor = {vid: min(x.captured_at for x in group) for vid, group in groups.items()}
    out: dict[int, list[Answer]] = {}
    unmatched = 0
    for a in answers:
        at = anchor[a.visit_id] if a.visit_id is not None else a.captured_at
        i = window_of(at, start, windows, reach)
        if i is None:
            unmatched += 1
        else:
            out.setdefault(i, []).append(a)
    return out, unmatched


def summarise(
    plan: Plan,
    by_visit: Mapping[int, Sequence[Answer]],
    uploads: Mapping[int, int],
    dead_letters: int,
    facts: Mapping[str, CropFacts] | None = None,
) -> dict[str, Any]:
    """The figures (module docstring) and one row per visit."""
    rows: list[dict[str, Any]] = []
    tallies: dict[str, Counter[str]] = {
        "first_enrolled": Counter(),
        "final_enrolled": Counter(),
        "first_strangers": Counter(),
        "final_strangers": Counter(),
    }
    changed = 0
    bystander_tracks = bystanders_named = 0
    for visit in plan.visits:
        own, bystanders = own_and_bystanders(by_visit.get(visit.index, []), facts or {})
        bystander_tracks += len(bystanders)
        bystanders_named += sum(1 for g in bystanders if any(a.name is not None for a in g))
        pair = first_and_final(own)
        first, final = (None, None) if pair is None else pair
        who = "enrolled" if visit.enrolled else "strangers"
        v_first, v_final = verdict(visit, first), verdict(visit, final)
        tallies[f"first_{who}"][v_first] += 1
        tallies[f"final_{who}"][v_final] += 1
        differs = (first.name if first else None) != (final.name if final else None)
        changed += differs
        rows.append(
            {
                "visit": visit.index,
                "identity": visit.identity,
                "enrolled": visit.enrolled,
                "window_s": [round(visit.start_s, 2), round(visit.end_s, 2)],
                "messages": len(own),
                "visit_ids": len({a.visit_id for a in own if a.visit_id is not None}),
                "bystander_tracks": len(bystanders),
                "uploads": uploads.get(visit.index, 0),
                "first": v_first,
                "first_name": first.name if first else None,
                "final": v_final,
                "final_name": final.name if final else None,
                "final_revision": final.revision if final else None,
                "final_looks": final.looks if final else None,
            }
        )

    def shape(t: Counter[str]) -> dict[str, int]:
        return {k: t.get(k, 0) for k in ("right", "wrong", "unknown", "no_answer")}

    report: dict[str, Any] = {}
    for when in ("first", "final"):
        enrolled, strangers = tallies[f"{when}_enrolled"], tallies[f"{when}_strangers"]
        report[when] = {
            "enrolled": shape(enrolled),
            "strangers": {
                "named": strangers.get("wrong", 0),
                "unknown": strangers.get("unknown", 0),
                "no_answer": strangers.get("no_answer", 0),
            },
            "wrong_names": enrolled.get("wrong", 0) + strangers.get("wrong", 0),
            "enrolled_not_named": enrolled.get("unknown", 0) + enrolled.get("no_answer", 0),
        }
    counts = sorted(uploads.get(v.index, 0) for v in plan.visits)
    total = sum(counts)
    report["changed"] = changed
    report["visits_split"] = sum(1 for row in rows if row["visit_ids"] > 1)
    # Faces at a photo's edge are people of their own, not the visitor: counted apart (a
    # name given to one is a name given to someone unplanned, most likely a wrong one).
    report["bystanders"] = {"tracks": bystander_tracks, "named": bystanders_named}
    report["uploads_per_visit"] = {
        "total": total,
        "mean": round(total / len(counts), 2) if counts else None,
        "p50": percentile(counts, 50) if counts else None,
        "max": counts[-1] if counts else None,
        "visits_without_upload": sum(1 for n in counts if n == 0),
    }
    report["dead_letters"] = dead_letters
    report["looks_with_a_face"] = round(1 - dead_letters / total, 4) if total else None
    report["visits"] = rows
    return report


def crop_facts(crop: CropMetadata) -> CropFacts:
    """A crop's track and face box, as the facts kept in a document's ``raw``."""
    box = crop.frame_box
    return CropFacts(
        crop.track_id, None if box is None else (box.left, box.top, box.right, box.bottom)
    )


def lfw_photos(images: Path) -> dict[str, list[str]]:
    """identity -> its photos (LFW layout), as strings."""
    return {
        d.name: sorted(str(p) for p in d.iterdir() if p.suffix.lower() in (".jpg", ".png"))
        for d in sorted(images.iterdir())
        if d.is_dir()
    }


def enrol_in_process(pairs: Mapping[str, str]) -> None:
    """``facelens enroll <photo> --name <name>`` for each pair, in this one process (the CLI
    command itself; one process loads the models once: 0.3 s a person instead of 5)."""
    from facelens.cli import build_app

    for name, photo in pairs.items():
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                build_app()(["enroll", photo, "--name", name])
        except SystemExit as exc:
            if exc.code:
                raise RuntimeError(f"facelens enroll {photo} --name {name!r}: {exc.code}") from exc


def child(args: Sequence[str], env: Mapping[str, str], timeout: float) -> None:
    done = subprocess.run(
        [sys.executable, *args], env=dict(env), capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr[-4000:]}")


def code_under_test() -> dict[str, Any]:
    """Which facelens the children run (PYTHONPATH wins over the editable install)."""
    import facelens

    where = Path(facelens.__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(where), "status", "--porcelain", "--", "."],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    return {"facelens": str(where), "commit": commit, "uncommitted_changes": dirty}


def analyse(
    plan: Plan,
    answers: Sequence[Answer],
    captured: Sequence[float],
    dead_letters: int,
    facts: Mapping[str, CropFacts] | None = None,
) -> dict[str, Any]:
    """The figures from what a run collected: its answers, the CapturedAt (Unix seconds) of
    every uploaded crop, how many dead letters, and each crop's facts by key."""
    windows = [(v.start_s, v.end_s) for v in plan.visits]
    start = estimate_start(captured or [a.captured_at for a in answers], windows)
    reach = 0.45 * plan.gap_s
    per_visit_uploads: Counter[int] = Counter()
    stray: list[float] = []
    for t in captured:
        i = window_of(t, start, windows, reach)
        if i is None:
            stray.append(round(t - start, 2))
        else:
            per_visit_uploads[i] += 1
    by_visit, unmatched_answers = assign(answers, start, windows, reach)
    report = summarise(plan, by_visit, per_visit_uploads, dead_letters, facts)
    report["unmatched"] = {
        "uploads": len(stray),
        "answers": unmatched_answers,
        "upload_times_s": sorted(stray),  # seconds into the video: where a stray look was
    }
    return report


def run(plan: Plan, workdir: Path, extra_env: Mapping[str, str]) -> dict[str, Any]:
    """Enrols, renders, plays the video through ``facelens up`` (its environment plus
    ``extra_env``) and summarises."""
    from tests.servers.mosquitto import Subscriber, running_broker

    home = workdir / "home"
    env = {**base_env(home), "FACELENS_EDGE__VIEW_PORT": "0", **extra_env}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    started = time.perf_counter()
    pairs = workdir / "enrol.json"
    pairs.write_text(json.dumps(dict(plan.enrol)))
    child(["-m", "bench.visits", "--enrol-from", str(pairs)], env, RUN_TIMEOUT_S)
    enrol_s = time.perf_counter() - started
    video = workdir / "visits.avi"
    frames = render(plan, video)
    with running_broker() as broker, Subscriber(broker, f"{TOPIC}/#") as everything:
        played = time.perf_counter()
        child(
            ["-m", "facelens", "up", "--source", str(video), "--realtime", "--once",
             "--no-serve", "--mqtt", broker.url],
            env,
            RUN_TIMEOUT_S,
        )  # fmt: skip
        play_s = time.perf_counter() - played
        time.sleep(1.0)  # the last publications' round trip to the subscriber
        messages = everything.messages
    answers = [a for m in messages if (a := parse_answer(m.payload, m.received_at)) is not None]
    dead = sum(1 for m in messages if m.topic == f"{TOPIC}/errors")
    uploaded = stored_crops(home)
    captured = [c.captured_at.timestamp() for c in uploaded.values() if c.captured_at]
    facts = {key: crop_facts(crop) for key, crop in uploaded.items()}
    report = analyse(plan, answers, captured, dead, facts)
    report["messages"] = {
        "answers": len(answers),
        "all": len(messages),
        "with_visit_id": sum(1 for a in answers if a.visit_id is not None),
    }
    # What the figures were computed from, so they can be recomputed (analyse) without a rerun.
    report["raw"] = {
        "answers": [asdict(a) for a in answers],
        "uploads_captured_at": captured,
        "dead_letters": dead,
        "crops": {key: asdict(f) for key, f in facts.items()},
    }
    report["run"] = {
        "frames": frames,
        "video_s": round(plan.duration_s, 1),
        "enrol_s": round(enrol_s, 1),
        "play_s": round(play_s, 1),
    }
    return report


def reanalyse(path: Path) -> None:
    """Recomputes a written document's figures from its ``raw`` part (no rerun), in place."""
    document = json.loads(path.read_text())
    visits = tuple(
        PlannedVisit(**{**v, "looks": tuple(v["looks"])}) for v in document["plan_visits"]
    )
    p = document["plan"]
    plan = Plan(visits, {}, p["fps"], p["look_seconds"], p["gap_seconds"], visits[-1].end_s)
    raw = document["raw"]
    answers = [Answer(**a) for a in raw["answers"]]
    facts = {
        key: CropFacts(f["track"], tuple(f["box"]) if f.get("box") else None)
        for key, f in raw.get("crops", {}).items()
    }
    document.update(analyse(plan, answers, raw["uploads_captured_at"], raw["dead_letters"], facts))
    write_result(path.stem, document)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=None, help="default: <testdata>/lfw/images")
    parser.add_argument("--enrolled", type=int, default=24, help="visits of enrolled people")
    parser.add_argument("--strangers", type=int, default=24, help="visits of strangers")
    parser.add_argument("--gallery", type=int, default=80, help="people enrolled in all")
    parser.add_argument("--looks", type=int, default=4, help="photos shown per visit")
    parser.add_argument("--look-seconds", type=float, default=0.4)
    parser.add_argument("--gap-seconds", type=float, default=2.0)
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label", default=None, help="writes visits_<label>.json")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="FACELENS_NAME=VALUE",
        help="a setting for facelens up and enroll (repeatable), e.g. "
        "FACELENS_RECOGNIZER__VISITS__REVISE_FACTOR=0.1",
    )
    parser.add_argument(
        "--reanalyse",
        type=Path,
        default=None,
        help="recompute a written visits*.json from its raw answers (no run)",
    )
    parser.add_argument("--enrol-from", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    extra_env: dict[str, str] = {}
    for assignment in args.env:
        key, sep, value = assignment.partition("=")
        if not sep or not key.startswith("FACELENS_"):
            parser.error(f"--env {assignment!r}: expected FACELENS_NAME=VALUE")
        extra_env[key] = value
    if args.reanalyse is not None:
        reanalyse(args.reanalyse)
        return
    if args.enrol_from is not None:  # the child that enrols (under the code being measured)
        enrol_in_process(json.loads(args.enrol_from.read_text()))
        return
    from tests.servers.mosquitto import _binary

    name = f"visits_{args.label}" if args.label else "visits"
    if _binary() is None:
        write_result(name, {"skipped": "mosquitto is not installed"})
        return
    images = args.images or testdata_dir() / "lfw" / "images"
    plan = plan_visits(
        lfw_photos(images),
        enrolled=args.enrolled,
        strangers=args.strangers,
        gallery=args.gallery,
        looks=args.looks,
        seed=args.seed,
        fps=args.fps,
        look_s=args.look_seconds,
        gap_s=args.gap_seconds,
    )
    machine = machine_facts()
    with tempfile.TemporaryDirectory(prefix="facelens-visits-") as tmp:
        report = run(plan, Path(tmp), extra_env)
    write_result(
        name,
        {
            "code": code_under_test(),
            "plan": {
                "images": str(images),
                "seed": args.seed,
                "enrolled_visits": args.enrolled,
                "stranger_visits": args.strangers,
                "gallery": len(plan.enrol),
                "looks_per_visit": args.looks,
                "look_seconds": args.look_seconds,
                "gap_seconds": args.gap_seconds,
                "fps": args.fps,
                "frame_size": list(FRAME_SIZE),
                "env": extra_env,
            },
            **report,
            "plan_visits": [asdict(v) for v in plan.visits],
            "machine": machine,
        },
    )


if __name__ == "__main__":
    main()

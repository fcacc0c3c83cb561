"""Pose and image quality of a detected face, from its five landmarks and pixels.

Both work for any detector that gives the five Rekognition landmarks, so the
quality filter means the same thing whichever detector found the face.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from facelens.engine.types import DetectedFace, Landmarks, Pose, Quality, RGBImage

# Where the nose tip sits between the eye line (0) and the mouth line (1) on an
# upright frontal face: measured on dlib's aligned chips (LFW), see ALIGN_TEMPLATE.
_NEUTRAL_NOSE_T = 0.511
# Nose-tip depth in front of the eye plane, as a fraction of half the
# inter-ocular distance; and eye-to-mouth height over nose depth. Rough
# anthropometric ratios: good to about ten degrees, enough for EXTREME_POSE.
_NOSE_DEPTH_OVER_HALF_IOD = 0.7
_MOUTH_DROP_OVER_NOSE_DEPTH = 3.1

# Sharpness: variance of the Laplacian on the face resized to this many pixels
# square (so the score does not depend on face size), mapped to 0-100 by
# 100 * (1 - exp(-variance / _SHARPNESS_SCALE)). Calibrated on the test photos:
# in-focus faces score 60-100, a Gaussian blur of sigma 3 on a 100 px face ~10.
_SHARPNESS_SIDE = 112
_SHARPNESS_SCALE = 150.0


def estimate_pose(landmarks: Landmarks) -> Pose:
    """Roll, yaw and pitch in degrees from five points (approximate, about ±10°).

    Roll is the eye line's angle; yaw comes from how far the nose tip sits off
    the eyes' midline, pitch from where it sits between eye and mouth lines,
    both after undoing roll. Positive yaw: the face turns towards the image's
    right; positive pitch: the face looks up.
    """
    el, er = landmarks.eye_left, landmarks.eye_right
    roll = math.atan2(er.y - el.y, er.x - el.x)
    cos_r, sin_r = math.cos(-roll), math.sin(-roll)
    cx = (el.x + er.x) / 2
    cy = (el.y + er.y) / 2

    def upright(x: float, y: float) -> tuple[float, float]:
        dx, dy = x - cx, y - cy
        return dx * cos_r - dy * sin_r, dx * sin_r + dy * cos_r

    half_iod = max(math.hypot(er.x - el.x, er.y - el.y) / 2, 1e-6)
    nose_x, nose_y = upright(landmarks.nose.x, landmarks.nose.y)
    _, ml_y = upright(landmarks.mouth_left.x, landmarks.mouth_left.y)
    _, mr_y = upright(landmarks.mouth_right.x, landmarks.mouth_right.y)
    mouth_y = max((ml_y + mr_y) / 2, 1e-6)

    yaw = math.atan((nose_x / half_iod) / _NOSE_DEPTH_OVER_HALF_IOD)
    t = nose_y / mouth_y
    pitch = math.atan((_NEUTRAL_NOSE_T - t) * _MOUTH_DROP_OVER_NOSE_DEPTH)
    return Pose(roll=math.degrees(roll), yaw=math.degrees(yaw), pitch=math.degrees(pitch))


def estimate_quality(image: RGBImage, face: DetectedFace) -> Quality:
    """Brightness (mean luminance) and sharpness of the face box, both 0-100."""
    height, width = image.shape[:2]
    box = face.box
    left = max(0, int(box.left))
    top = max(0, int(box.top))
    right = min(width, math.ceil(box.right))
    bottom = min(height, math.ceil(box.bottom))
    if right - left < 2 or bottom - top < 2:
        return Quality(brightness=0.0, sharpness=0.0)
    gray = cv2.cvtColor(np.ascontiguousarray(image[top:bottom, left:right]), cv2.COLOR_RGB2GRAY)
    brightness = float(gray.mean()) / 255.0 * 100.0
    square = cv2.resize(gray, (_SHARPNESS_SIDE, _SHARPNESS_SIDE), interpolation=cv2.INTER_AREA)
    variance = float(cv2.Laplacian(square, cv2.CV_64F).var())
    sharpness = 100.0 * (1.0 - math.exp(-variance / _SHARPNESS_SCALE))
    return Quality(brightness=brightness, sharpness=sharpness)

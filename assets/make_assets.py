"""Procedurally generate the example clips shown in the app, so the repo ships no third-party media.

Run `python assets/make_assets.py` to (re)write them next to this file. Everything is drawn with
numpy/OpenCV from fixed formulas and seeds, so the output is the same on every run.

- pose_*.mp4: 18-keypoint OpenPose body skeletons on black, in the ControlNet colour convention,
  so the Pose tab can use them directly as control maps.
- edge_*.mp4, depth_*.mp4: shaded shapes with clear outlines and depth cues, for canny and depth.
- edit_*.mp4: a small landscape and a seascape for Instruct-Pix2Pix editing.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # let `python assets/make_assets.py` find the modules package
    sys.path.insert(0, str(ROOT))

from modules.video_io import write_mp4  # noqa: E402

ASSETS_DIR = Path(__file__).resolve().parent

POSE_SIZE = (256, 256)  # (width, height)
POSE_FPS = 8
POSE_FRAMES = 16  # 2 s
SCENE_SIZE = (320, 240)
SCENE_FPS = 10
SCENE_FRAMES = 20  # 2 s
SEED = 1234

# ---------------------------------------------------------------------------------------- pose
# OpenPose COCO-18 order and drawing convention, as in controlnet_aux/open_pose/util.py
# draw_bodypose (reproduced rather than imported: importing controlnet_aux.open_pose pulls in torch).
NOSE, NECK, R_SHOULDER, R_ELBOW, R_WRIST, L_SHOULDER, L_ELBOW, L_WRIST = range(8)
R_HIP, R_KNEE, R_ANKLE, L_HIP, L_KNEE, L_ANKLE, R_EYE, L_EYE, R_EAR, L_EAR = range(8, 18)
LIMB_SEQUENCE = [  # 1-based pairs, same order as the colours below
    (2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11),
    (2, 12), (12, 13), (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18),
]
POSE_COLORS = [
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
]
STICK_WIDTH = 4
JOINT_RADIUS = 4
LIMB_DIM = 0.6  # limbs are drawn at 60% of the joint colour

# A standing person facing the camera, in units of the canvas (x right, y down). The person's
# right side is on the image's left, as OpenPose sees it.
REST_POSE = np.array([
    (0.50, 0.20),  # nose
    (0.50, 0.30),  # neck
    (0.40, 0.30), (0.36, 0.43), (0.34, 0.55),  # right shoulder, elbow, wrist
    (0.60, 0.30), (0.64, 0.43), (0.66, 0.55),  # left shoulder, elbow, wrist
    (0.44, 0.55), (0.43, 0.71), (0.43, 0.87),  # right hip, knee, ankle
    (0.56, 0.55), (0.57, 0.71), (0.57, 0.87),  # left hip, knee, ankle
    (0.48, 0.18), (0.52, 0.18), (0.46, 0.19), (0.54, 0.19),  # eyes, ears
])
UPPER_ARM = 0.13
FOREARM = 0.12
THIGH = 0.16
SHIN = 0.16


def draw_body_pose(canvas: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """Same pixels as controlnet_aux draw_bodypose: ellipse limbs, then round joints on top."""
    height, width = canvas.shape[:2]
    points = keypoints * (width, height)
    for (first, second), color in zip(LIMB_SEQUENCE, POSE_COLORS):
        (x1, y1), (x2, y2) = points[first - 1], points[second - 1]
        length = math.hypot(x1 - x2, y1 - y2)
        angle = math.degrees(math.atan2(y1 - y2, x1 - x2))
        polygon = cv2.ellipse2Poly(
            (int((x1 + x2) / 2), int((y1 + y2) / 2)), (int(length / 2), STICK_WIDTH), int(angle), 0, 360, 1
        )
        cv2.fillConvexPoly(canvas, polygon, [int(c * LIMB_DIM) for c in color])
    for (x, y), color in zip(points, POSE_COLORS):
        cv2.circle(canvas, (int(x), int(y)), JOINT_RADIUS, color, thickness=-1)
    return canvas


def _limb(origin: np.ndarray, angle_deg: float, length: float) -> np.ndarray:
    """End of a segment from origin; 0 degrees points straight down, positive swings to image right."""
    angle = math.radians(angle_deg)
    return origin + length * np.array([math.sin(angle), math.cos(angle)])


def _set_arm(pose: np.ndarray, side: str, upper_deg: float, lower_deg: float) -> None:
    """Angles are mirrored for the right arm (image left), so the same numbers pose both arms alike."""
    sign = -1 if side == "right" else 1
    joints = (R_SHOULDER, R_ELBOW, R_WRIST) if side == "right" else (L_SHOULDER, L_ELBOW, L_WRIST)
    shoulder, elbow, wrist = joints
    pose[elbow] = _limb(pose[shoulder], sign * upper_deg, UPPER_ARM)
    pose[wrist] = _limb(pose[elbow], sign * lower_deg, FOREARM)


def _set_leg(pose: np.ndarray, side: str, thigh_deg: float, shin_deg: float) -> None:
    sign = -1 if side == "right" else 1
    hip, knee, ankle = (R_HIP, R_KNEE, R_ANKLE) if side == "right" else (L_HIP, L_KNEE, L_ANKLE)
    pose[knee] = _limb(pose[hip], sign * thigh_deg, THIGH)
    pose[ankle] = _limb(pose[knee], sign * shin_deg, SHIN)


def _knee_between(hip: np.ndarray, ankle: np.ndarray, outward: float) -> np.ndarray:
    """Two-bone IK: the knee where thigh and shin keep their lengths, bent towards `outward` (+1 / -1)."""
    span = ankle - hip
    distance = min(float(np.linalg.norm(span)), THIGH + SHIN - 1e-6)
    along = (THIGH ** 2 - SHIN ** 2 + distance ** 2) / (2 * distance)
    across = math.sqrt(max(THIGH ** 2 - along ** 2, 0.0))
    direction = span / np.linalg.norm(span)
    normal = np.array([direction[1], -direction[0]])  # points to image right for a leg going down
    return hip + along * direction + outward * across * normal


def wave_pose(phase: float) -> np.ndarray:
    """Right arm raised and waving from the elbow, left arm relaxed, head swaying slightly."""
    pose = REST_POSE.copy()
    pose[[NOSE, R_EYE, L_EYE, R_EAR, L_EAR], 0] += 0.01 * math.sin(phase)
    _set_arm(pose, "right", 110, 170 + 35 * math.sin(2 * phase))
    _set_arm(pose, "left", 12, 8)
    return pose


def walk_pose(phase: float) -> np.ndarray:
    """Walking in place: legs lift in antiphase, arms counter-swing, the body bobs and drifts."""
    pose = REST_POSE.copy()
    pose[:, 1] += 0.015 * abs(math.sin(phase))
    pose[:, 0] += 0.03 * math.sin(phase / 2)
    right_lift, left_lift = max(0.0, math.sin(phase)), max(0.0, -math.sin(phase))
    _set_leg(pose, "right", 5 + 25 * right_lift, 5 - 20 * right_lift)
    _set_leg(pose, "left", 5 + 25 * left_lift, 5 - 20 * left_lift)
    swing = 20 * math.sin(phase)
    _set_arm(pose, "right", 10 - swing, 10 - 1.5 * swing)
    _set_arm(pose, "left", 10 + swing, 10 + 1.5 * swing)
    return pose


def squat_pose(phase: float) -> np.ndarray:
    """Squatting down and up, feet planted, knees opening outwards, arms raised forward for balance."""
    pose = REST_POSE.copy()
    depth = 0.5 - 0.5 * math.cos(phase)  # 0 standing, 1 lowest
    drop = 0.12 * depth
    upper_body = [NOSE, NECK, R_SHOULDER, R_ELBOW, R_WRIST, L_SHOULDER, L_ELBOW, L_WRIST,
                  R_HIP, L_HIP, R_EYE, L_EYE, R_EAR, L_EAR]
    pose[upper_body, 1] += drop
    pose[R_KNEE] = _knee_between(pose[R_HIP], pose[R_ANKLE], outward=-1)
    pose[L_KNEE] = _knee_between(pose[L_HIP], pose[L_ANKLE], outward=+1)
    raise_deg = 40 + 50 * depth
    _set_arm(pose, "right", raise_deg, raise_deg + 10)
    _set_arm(pose, "left", raise_deg, raise_deg + 10)
    return pose


def pose_clip(pose_at: Callable[[float], np.ndarray]) -> np.ndarray:
    """One full motion cycle over the clip, so it loops cleanly."""
    width, height = POSE_SIZE
    frames = []
    for k in range(POSE_FRAMES):
        canvas = np.zeros((height, width, 3), np.uint8)
        frames.append(draw_body_pose(canvas, pose_at(2 * math.pi * k / POSE_FRAMES)))
    return np.stack(frames)


# ---------------------------------------------------------------------------------------- scenes


def _vertical_gradient(top: tuple, bottom: tuple, size: tuple[int, int] = SCENE_SIZE) -> np.ndarray:
    width, height = size
    mix = np.linspace(0.0, 1.0, height)[:, None, None]
    column = (1 - mix) * np.array(top, float) + mix * np.array(bottom, float)
    return np.repeat(column, width, axis=1)


CHECKER_FADE = 2.0  # squares keep full contrast up to this many floor units away


def _checker_floor(image: np.ndarray, horizon: int, phase: float = 0.0) -> None:
    """A perspective checkerboard below the horizon: strong edges and an obvious depth gradient."""
    height, width = image.shape[:2]
    rows = np.arange(horizon, height)
    distance = (height - horizon) / np.maximum(rows - horizon + 1, 1)  # far near the horizon
    xs = (np.arange(width) - width / 2) / width
    u = np.floor(xs[None, :] * distance[:, None] * 6)
    v = np.floor(distance[:, None] * 2 + phase)
    # Fade the squares out towards the horizon, where they would alias into noise (and noisy edges).
    contrast = np.clip(CHECKER_FADE / distance, 0.0, 1.0)[:, None, None]
    checker = 0.5 + (((u + v) % 2)[..., None] - 0.5) * contrast
    shade = np.clip(1.2 - 0.5 * distance / distance.max(), 0.3, 1.0)[:, None, None]
    light, dark = np.array((200, 190, 170.0)), np.array((90, 80, 70.0))
    image[horizon:] = (checker * light + (1 - checker) * dark) * shade


def _to_frame(image: np.ndarray) -> np.ndarray:
    return np.clip(image, 0, 255).astype(np.uint8)


FOCAL = 280  # pixels; the cube fills about a third of the frame


def rotating_box_clip() -> np.ndarray:
    """A flat-shaded cube turning over a checker floor (edge source)."""
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    face_colors = [(220, 70, 60), (60, 160, 220), (240, 200, 60),
                   (80, 190, 90), (170, 90, 200), (240, 140, 50)]
    # Direction the light travels (screen y points down): from the upper left, in front of the cube.
    light = np.array([0.5, 0.7, 0.5]) / np.linalg.norm([0.5, 0.7, 0.5])
    width, height = SCENE_SIZE
    frames = []
    for k in range(SCENE_FRAMES):
        image = _vertical_gradient((235, 215, 190), (150, 170, 200))
        _checker_floor(image, height // 2)
        yaw = 2 * math.pi * k / SCENE_FRAMES / 2  # the cube looks the same after a quarter turn
        pitch = 0.45
        rot_y = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
        rot_x = np.array([[1, 0, 0],
                          [0, math.cos(pitch), -math.sin(pitch)],
                          [0, math.sin(pitch), math.cos(pitch)]])
        world = corners @ rot_y.T @ rot_x.T + np.array([0, 0, 6.0])
        screen = np.stack([width / 2 + FOCAL * world[:, 0] / world[:, 2],
                           height * 0.55 + FOCAL * world[:, 1] / world[:, 2]], axis=1)
        image = _to_frame(image)
        # Painter's algorithm: far faces first; back faces are hidden by the front ones.
        order = sorted(range(len(faces)), key=lambda f: -world[list(faces[f]), 2].mean())
        for f in order:
            face = world[list(faces[f])]
            normal = np.cross(face[1] - face[0], face[2] - face[0])
            normal /= np.linalg.norm(normal)
            if normal @ face.mean(axis=0) >= 0:  # facing away from the camera
                continue
            brightness = 0.4 + 0.6 * max(0.0, -normal @ light)
            color = [int(c * brightness) for c in face_colors[f]]
            polygon = screen[list(faces[f])].round().astype(np.int32)
            cv2.fillConvexPoly(image, polygon, color, lineType=cv2.LINE_AA)
        frames.append(image)
    return np.stack(frames)


def moving_shapes_clip() -> np.ndarray:
    """Circles, a triangle and a bar sliding past each other on a gradient (edge source)."""
    width, height = SCENE_SIZE
    frames = []
    for k in range(SCENE_FRAMES):
        t = k / SCENE_FRAMES
        image = _to_frame(_vertical_gradient((40, 60, 110), (200, 120, 80)))
        cx = int(width * (0.2 + 0.6 * t))
        cv2.circle(image, (cx, 80), 38, (250, 230, 90), -1, cv2.LINE_AA)
        cv2.circle(image, (cx, 80), 38, (120, 80, 20), 3, cv2.LINE_AA)
        tri_x = int(width * (0.8 - 0.5 * t))
        triangle = np.array([(tri_x, 120), (tri_x - 45, 200), (tri_x + 45, 200)], np.int32)
        cv2.fillConvexPoly(image, triangle, (90, 200, 150), cv2.LINE_AA)
        angle = 180 * t
        bar = cv2.boxPoints(((width / 2, 170), (180, 18), angle)).astype(np.int32)
        cv2.fillConvexPoly(image, bar, (230, 90, 120), cv2.LINE_AA)
        frames.append(image)
    return np.stack(frames)


def bouncing_ball_clip() -> np.ndarray:
    """A shaded ball bouncing towards the camera over a checker floor (depth source)."""
    width, height = SCENE_SIZE
    horizon = int(height * 0.45)
    ys, xs = np.mgrid[0:height, 0:width]
    frames = []
    for k in range(SCENE_FRAMES):
        t = k / SCENE_FRAMES
        image = _vertical_gradient((120, 170, 230), (220, 235, 245))
        _checker_floor(image, horizon, phase=2 * t)
        nearness = 0.5 - 0.5 * math.cos(2 * math.pi * t)  # rolls towards us and back
        radius = 22 + 28 * nearness
        ground = horizon + (height - horizon) * (0.25 + 0.6 * nearness)
        bounce = abs(math.sin(2 * math.pi * 2 * t)) * (40 + 30 * nearness)
        cx, cy = width * (0.35 + 0.3 * t), ground - radius - bounce
        # Soft shadow on the floor, shrinking as the ball rises.
        shadow = np.exp(-(((xs - cx) / (radius * 1.1)) ** 2 + ((ys - ground) / (radius * 0.3)) ** 2))
        image *= 1 - 0.5 * shadow[..., None] * (1 - bounce / 120)
        # Lambert-shaded sphere lit from the upper left.
        dx, dy = (xs - cx) / radius, (ys - cy) / radius
        inside = dx ** 2 + dy ** 2 <= 1
        dz = np.sqrt(np.clip(1 - dx ** 2 - dy ** 2, 0, 1))
        shade = np.clip(-0.5 * dx - 0.6 * dy + 0.62 * dz, 0, 1) * 0.85 + 0.15
        ball = shade[..., None] * np.array((235, 60, 50.0))
        image[inside] = ball[inside]
        frames.append(_to_frame(image))
    return np.stack(frames)


def _ridge(width: int, rng: np.random.Generator, base: float, amplitude: float) -> np.ndarray:
    """A mountain silhouette from a few random sine octaves."""
    x = np.linspace(0, 1, width)
    ridge = np.full(width, base)
    for octave in range(1, 5):
        ridge += amplitude / octave * np.sin(2 * math.pi * (octave * 1.7 * x + rng.random()))
    return ridge


def landscape_clip() -> np.ndarray:
    """Sun rising over layered hills and a lake, with drifting clouds (editing source)."""
    width, height = SCENE_SIZE
    rng = np.random.default_rng(SEED)
    ridges = [(_ridge(width, rng, height * 0.50, 14), (90, 110, 150)),
              (_ridge(width, rng, height * 0.60, 10), (60, 110, 80)),
              (_ridge(width, rng, height * 0.68, 6), (40, 85, 50))]
    clouds = [(rng.uniform(0, width), rng.uniform(20, 70), rng.uniform(30, 55)) for _ in range(4)]
    lake_top = int(height * 0.78)
    ys, xs = np.mgrid[0:height, 0:width]
    frames = []
    for k in range(SCENE_FRAMES):
        t = k / SCENE_FRAMES
        image = _vertical_gradient((70, 120, 200), (250, 200, 150))
        sun_x, sun_y = width * 0.7, height * (0.55 - 0.25 * t)
        glow = np.exp(-((xs - sun_x) ** 2 + (ys - sun_y) ** 2) / (2 * 40.0 ** 2))
        image += glow[..., None] * np.array((80, 60, 20.0))
        image[(xs - sun_x) ** 2 + (ys - sun_y) ** 2 <= 16 ** 2] = (255, 240, 190)
        for cloud_x, cloud_y, cloud_w in clouds:
            x = (cloud_x + 40 * t * (1 + cloud_w / 50)) % (width + 2 * cloud_w) - cloud_w
            puff = np.exp(-(((xs - x) / cloud_w) ** 2 + ((ys - cloud_y) / (cloud_w * 0.3)) ** 2) * 2)
            image = image * (1 - 0.8 * puff[..., None]) + 0.8 * puff[..., None] * 250
        for ridge, color in ridges:
            image[ys >= ridge[None, :]] = color
        # The lake mirrors the sky above it, darkened and rippled.
        mirror = image[2 * lake_top - np.arange(lake_top, height)]
        shifts = np.round(2 * np.sin(np.arange(height - lake_top) * 0.9 + 2 * math.pi * t)).astype(int)
        ripple = np.stack([np.roll(row, shift, axis=0) for row, shift in zip(mirror, shifts)])
        image[lake_top:] = 0.65 * ripple + 0.35 * np.array((30, 60, 90.0))
        frames.append(_to_frame(image))
    return np.stack(frames)


def seascape_clip() -> np.ndarray:
    """Waves rolling under a sky with a sailing boat (editing source)."""
    width, height = SCENE_SIZE
    horizon = int(height * 0.5)
    ys, xs = np.mgrid[0:height, 0:width]
    frames = []
    for k in range(SCENE_FRAMES):
        t = k / SCENE_FRAMES
        image = _vertical_gradient((90, 150, 220), (200, 225, 245))
        depth = np.clip((ys - horizon) / (height - horizon), 0, 1)
        waves = np.sin(xs * 0.08 / (0.2 + depth) + 2 * math.pi * t * 2 + ys * 0.3) * depth
        sea = np.array((20, 70, 120.0)) + waves[..., None] * 25 + depth[..., None] * np.array((10, 40, 40.0))
        below = ys >= horizon
        image[below] = sea[below]
        boat_x, boat_y = int(width * (0.25 + 0.4 * t)), horizon + 25 + int(3 * math.sin(2 * math.pi * 2 * t))
        hull = np.array([(boat_x - 30, boat_y), (boat_x + 30, boat_y), (boat_x + 20, boat_y + 12),
                         (boat_x - 20, boat_y + 12)], np.int32)
        image = _to_frame(image)
        cv2.fillConvexPoly(image, hull, (110, 60, 30), cv2.LINE_AA)
        sail = np.array([(boat_x, boat_y - 4), (boat_x, boat_y - 55), (boat_x + 26, boat_y - 4)], np.int32)
        cv2.fillConvexPoly(image, sail, (245, 245, 235), cv2.LINE_AA)
        cv2.line(image, (boat_x, boat_y), (boat_x, boat_y - 58), (70, 40, 20), 2, cv2.LINE_AA)
        frames.append(image)
    return np.stack(frames)


# ---------------------------------------------------------------------------------------- output

# file name -> (clip maker, fps)
CLIPS: dict[str, tuple[Callable[[], np.ndarray], float]] = {
    "pose_wave.mp4": (lambda: pose_clip(wave_pose), POSE_FPS),
    "pose_walk.mp4": (lambda: pose_clip(walk_pose), POSE_FPS),
    "pose_squat.mp4": (lambda: pose_clip(squat_pose), POSE_FPS),
    "edge_box.mp4": (rotating_box_clip, SCENE_FPS),
    "edge_shapes.mp4": (moving_shapes_clip, SCENE_FPS),
    "depth_ball.mp4": (bouncing_ball_clip, SCENE_FPS),
    "edit_landscape.mp4": (landscape_clip, SCENE_FPS),
    "edit_sea.mp4": (seascape_clip, SCENE_FPS),
}


def make_all(out_dir: str | Path = ASSETS_DIR) -> list[Path]:
    """Write every example clip into out_dir; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (make_clip, fps) in CLIPS.items():
        written.append(Path(write_mp4(make_clip(), out_dir / name, fps)))
    return written


if __name__ == "__main__":
    for path in make_all():
        print(f"{path.name:22s} {path.stat().st_size / 1024:6.1f} KB")

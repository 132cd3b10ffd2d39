"""Real video frames for streaming inference, from the Debian package ``opencv-doc``.

It ships ``examples/data/vtest.avi`` (795 frames, 768×576, static camera, pedestrians), ``Megamind.avi``
(270 frames, a film clip with camera motion) and ``tree.avi`` (320×240; its header says 444 frames, but the
pip opencv-python-headless 4.14 build decodes only the first 68 — later frames fail to decode; we stop at the first
failure rather than skip, so a stream never jumps). opencv-python-headless decodes them
(its own FFmpeg build); frames are resized with area interpolation (the right filter for downscaling) and scaled
to [0, 1].
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from spikemfm.errors import DataError

DEFAULT_DIR = Path("/usr/share/doc/opencv-doc/examples/data")
ENV_VAR = "SPIKEMFM_VIDEO_DIR"
VIDEOS = {"vtest": "vtest.avi", "megamind": "Megamind.avi", "tree": "tree.avi"}
_HINT = f"install it with `sudo apt-get install opencv-doc` or point {ENV_VAR} at a folder holding {sorted(VIDEOS.values())}"


def video_path(name_or_path: str | Path) -> Path:
    """The file of a named video (``vtest``, ``megamind``, ``tree``) or a path as given.

    Raises:
        DataError: the file does not exist.
    """
    key = str(name_or_path).lower()
    if key in VIDEOS:
        path = Path(os.environ.get(ENV_VAR, DEFAULT_DIR)) / VIDEOS[key]
        if not path.is_file():
            raise DataError(f"{path}: video {key!r} not found; {_HINT}")
        return path
    path = Path(name_or_path)
    if not path.is_file():
        raise DataError(f"{path}: no such video file; give a path or one of {sorted(VIDEOS)}")
    return path


def _check(size: int, max_frames: int | None, stride: int) -> None:
    for name, v, low in (("size", size, 1), ("stride", stride, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise DataError(f"video_frames: {name}={v!r} must be an integer >= {low}")
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1):
        raise DataError(f"video_frames: max_frames={max_frames!r} must be a positive integer or None")


def video_frames(name_or_path: str | Path, size: int = 28, gray: bool = True, max_frames: int | None = None,
                 stride: int = 1) -> torch.Tensor:
    """Decoded frames as a float32 tensor (F, C, size, size) in [0, 1] (C = 1 grey, 3 RGB).

    Args:
        name_or_path: ``vtest``, ``megamind``, ``tree`` (looked up in ``$SPIKEMFM_VIDEO_DIR`` or opencv-doc's
            folder) or a video file.
        size: output height and width (the frame is resized whole: the aspect ratio is not kept).
        gray: convert to grey (ITU-R BT.601 luma, OpenCV's) instead of RGB.
        max_frames: keep at most this many frames (after the stride).
        stride: keep every ``stride``-th frame.

    Raises:
        DataError: missing or unreadable video, or no frame decoded.
    """
    import cv2

    _check(size, max_frames, stride)
    path = video_path(name_or_path)
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"{path}: OpenCV cannot open it as a video (corrupt file or unknown codec)")
    frames: list[np.ndarray] = []
    try:
        index = 0
        while max_frames is None or len(frames) < max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            if index % stride == 0:
                img = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY if gray else cv2.COLOR_BGR2RGB)
                frames.append(cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA))
            index += 1
    finally:
        cap.release()
    if not frames:
        raise DataError(f"{path}: no frame could be decoded (corrupt or empty video)")
    arr = np.stack(frames).astype(np.float32) / 255.0
    t = torch.from_numpy(arr)
    return t[:, None] if gray else t.permute(0, 3, 1, 2).contiguous()

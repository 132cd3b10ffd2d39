"""Real video frames (opencv-doc's vtest / Megamind / tree) and their errors."""
import pytest
import torch

from spikemfm.data import video_frames
from spikemfm.data.video import DEFAULT_DIR
from spikemfm.errors import DataError


def test_frames_are_real_decoded_video():
    f = video_frames("vtest", 32, max_frames=10)
    assert f.shape == (10, 1, 32, 32) and f.dtype == torch.float32
    assert 0.0 <= float(f.min()) and float(f.max()) <= 1.0 and float(f.std()) > 0.05  # a real image, not blank
    assert not torch.equal(f[0], f[9])  # pedestrians move
    rgb = video_frames("megamind", 16, gray=False, max_frames=2)
    assert rgb.shape == (2, 3, 16, 16)
    strided = video_frames("vtest", 32, max_frames=3, stride=4)
    assert torch.equal(strided[1], f[4]) and torch.equal(strided[2], f[8])


def test_video_errors_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEMFM_VIDEO_DIR", str(tmp_path))
    with pytest.raises(DataError, match="apt-get install opencv-doc"):
        video_frames("vtest")
    (tmp_path / "vtest.avi").write_bytes(b"not a video at all" * 10)
    with pytest.raises(DataError, match="vtest.avi"):
        video_frames("vtest")
    with pytest.raises(DataError, match="no such video file"):
        video_frames(tmp_path / "nope.avi")
    with pytest.raises(DataError, match="size=0"):
        video_frames(DEFAULT_DIR / "vtest.avi", size=0)
    with pytest.raises(DataError, match="max_frames=0"):
        video_frames(DEFAULT_DIR / "vtest.avi", max_frames=0)

"""Every bad input is answered in the app's own sentence (issue 18).

Pictures (the first-frame image arrives as the raw uploaded file), videos ffmpeg cannot read,
fast mode's steps 1, and prompts that only look like storyboards. No message may carry ffmpeg's
or PIL's text, or the server path of the upload.
"""

from __future__ import annotations

import logging
import struct
import subprocess
import zlib
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st
from PIL import Image

from modules import video_io
from modules.engine.storyboard import StoryboardError, parse_storyboard
from modules.errors import UserError
from modules.request_types import ControlVideoRequest, RequestError, Text2VideoRequest, VideoWindow
from modules.settings import Settings

FOREIGN = ("ffmpeg", "Error opening", "Invalid data", "PIL", "cannot identify", "Traceback", "/tmp", "Errno")


def assert_own_sentence(message: str, upload: Path) -> None:
    """The app's words only: a sentence, no decoder's text, no server path of the upload."""
    assert message.endswith(".") and message[:1].isupper(), message
    assert str(upload.parent) not in message, message
    assert not [word for word in FOREIGN if word.lower() in message.lower()], message

# ------------------------------------------------------------------------------ storyboards

PLAIN_PROMPTS = [
    "16:9 widescreen shot of a beach",
    "18:30 sunset over the city",
    "4:3 photo, a cat",
    "1080p: a skyline",
    "1984: a dystopian city",
    "0:00 on the clock, a race starts",
    "16:9 widescreen\n4:3 inset, a cat",
    "a cat, style: anime",
]


@pytest.mark.parametrize("prompt", PLAIN_PROMPTS)
def test_ratios_times_and_sizes_are_plain_prompts(prompt):
    assert parse_storyboard(prompt) == prompt


@pytest.mark.parametrize(
    ("text", "board"),
    [
        ("0: a cat sleeping\n16: the cat wakes up", {0: "a cat sleeping", 16: "the cat wakes up"}),
        ("0:a cat\n16:the cat wakes", {0: "a cat", 16: "the cat wakes"}),  # no space, no digit after ':'
        ("# story\n0 : a cat\n\n16 :  the cat wakes  ", {0: "a cat", 16: "the cat wakes"}),
        ("0: a cat", {0: "a cat"}),
    ],
)
def test_real_storyboards_are_read(text, board):
    assert parse_storyboard(text) == board


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("4: a cat\n16: the cat wakes", "must start at frame 0"),
        ("0: a cat\nthe cat wakes", r"line 2 \('the cat wakes'\) has no frame number"),
        ("0: a cat\n16:9 the cat wakes", "number right after the ':'"),
        ("0: a cat\n1.5: b", "whole number"),
        ("0: a cat\n-4: b", "start at 0"),
        ("0: a cat\n8:", "no prompt"),
        ("0: a\n8: b\n8: c", "already given on line 2"),
    ],
)
def test_a_malformed_storyboard_says_how_to_write_one(text, problem):
    with pytest.raises(StoryboardError, match=problem) as error:
        parse_storyboard(text)
    assert "one line per key frame, 'frame: prompt', starting at 0" in str(error.value)
    assert "'0: a cat sleeping' / '16: the cat wakes up'" in str(error.value)


_WORDS = st.text(st.characters(codec="ascii", categories=("L", "Zs", "P")), max_size=40)


@hypothesis_settings(max_examples=200, deadline=None)
@given(left=st.integers(0, 10**6), right=st.integers(0, 10**6), rest=_WORDS,
       more=st.lists(_WORDS.filter(lambda line: not line.lstrip()[:1].isdigit()), max_size=3))
def test_a_first_line_of_digits_colon_digits_is_a_plain_prompt(left, right, rest, more):
    text = "\n".join([f"{left}:{right}{rest}", *more])
    assert parse_storyboard(text) == text.strip()


# ------------------------------------------------------------------------------ fast mode's steps 1


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from modules.settings import Settings
    from modules.studio import Studio

    return Studio(Settings.from_env(preset="tiny", device="cpu", outputs_dir=str(tmp_path_factory.mktemp("answers"))))


def _fast_engines():
    from modules import engines

    return [engine.name for engine in engines.with_fast("text2video")]


@pytest.mark.parametrize("engine_name", _fast_engines())
def test_fast_text_to_video_runs_steps_1_as_its_recipe_with_a_note(studio, engine_name):
    """As in the ControlNet tabs: fast mode turns 1 step into the recipe's, and says so."""
    from modules import engines
    from modules.request_types import Text2VideoRequest

    engine = engines.get(engine_name)
    recipe_steps = engine.fast.for_tab("text2video")["steps"]
    request = Text2VideoRequest(prompt="a boat", num_frames=engine.rules.frames.nearest(2), width=64, height=64,
                                steps=1, guidance_scale=1.0, seed=1, engine=engine_name, fast=True)
    result = studio.text2video(request, None)
    assert result.notes == [f"Fast mode ({engine.fast.name}) runs {engine.fast.steps_text()} steps with guidance up "
                            f"to {engine.fast.max_guidance:g}: used steps {recipe_steps}."]


def test_steps_1_without_fast_is_refused_as_before():
    from modules.request_types import RequestError, Text2VideoRequest
    from modules.settings import Settings

    with pytest.raises(RequestError, match=r"^Steps must be a whole number from 2 to \d+; got 1\.$"):
        Text2VideoRequest(prompt="a boat", width=64, height=64, steps=1).validate(Settings.from_env(preset="tiny"))


# ------------------------------------------------------------------------------ first-frame pictures


def _png_of_zeros(path: Path, width: int, height: int) -> Path:
    """A 1-bit PNG of any size, written row by row: a 20000x20000 one is some 50 KB (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def tiny_settings():
    return Settings.from_env(preset="tiny")


def _validate_image(path: Path, settings: Settings) -> Text2VideoRequest:
    return Text2VideoRequest(prompt="a boat", width=64, height=64, image=str(path)).validate(settings)


def _bad_pictures(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what its message says); each is answered when the request is validated."""
    (folder / "notes.png").write_text("this is not a picture\n" * 10)
    (folder / "empty.png").write_bytes(b"")
    Image.new("RGB", (64, 48), "red").save(folder / "whole.png")
    data = (folder / "whole.png").read_bytes()
    (folder / "cut.png").write_bytes(data[: len(data) // 2])
    Image.new("RGB", (16, 16)).save(folder / "page.pdf")
    (folder / "drawing.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg' width='9' height='9'/>")
    return {
        "text renamed .png": (folder / "notes.png", "is not a picture this server can read"),
        "empty file": (folder / "empty.png", "is an empty file"),
        "truncated PNG": (folder / "cut.png", "damaged or cut short"),
        "PDF": (folder / "page.pdf", "Please upload a PNG, JPEG, WebP, GIF, BMP or TIFF picture"),
        "SVG": (folder / "drawing.svg", "Please upload a PNG, JPEG, WebP, GIF, BMP or TIFF picture"),
        "decompression bomb": (_png_of_zeros(folder / "bomb.png", 20000, 20000),
                               r"is 20000x20000 \(400,000,000 pixels\); this server reads pictures of up to 8192x8192"),
    }


def test_bad_pictures_are_answered_when_the_request_is_validated(tmp_path, tiny_settings, caplog):
    for name, (path, fragment) in _bad_pictures(tmp_path).items():
        with pytest.raises(RequestError, match=fragment) as error:
            _validate_image(path, tiny_settings)
        assert str(error.value).startswith("The first-frame image"), name
        assert_own_sentence(str(error.value), path)
        if path.stat().st_size:
            with pytest.raises(video_io.ImageError, match=fragment) as read_error:  # read_image answers too
                video_io.read_image(path, 64, 64)
            assert_own_sentence(str(read_error.value), path)
    assert str(tmp_path / "notes.png") in caplog.text  # the detail, with the path, is in the server log


def test_a_huge_picture_is_refused_from_its_header_with_its_size(tmp_path, monkeypatch):
    path = _png_of_zeros(tmp_path / "huge.png", 9000, 9000)  # under Pillow's own bomb cap, over ours
    assert path.stat().st_size < 100_000

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", no_decoding)
    for call in (video_io.probe_image, lambda p: video_io.read_image(p, 64, 64)):
        with pytest.raises(video_io.ImageError) as error:
            call(path)
        assert str(error.value) == (
            "The first-frame image is 9000x9000 (81,000,000 pixels); this server reads pictures of up to 8192x8192 "
            "(67,108,864 pixels). Scale it down and upload it again.")


def test_a_picture_over_the_upload_cap_is_refused(tmp_path, tiny_settings):
    from dataclasses import replace

    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")
    small_cap = replace(tiny_settings, limits=replace(tiny_settings.limits, max_upload_mb=0.001))
    with pytest.raises(RequestError, match=r"^The first-frame image is 0\.0 MB; this server accepts up to 0\.001 MB"):
        _validate_image(tmp_path / "noise.png", small_cap)


def test_a_truncated_jpeg_is_answered_when_it_is_read(tmp_path, tiny_settings):
    noise = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "photo.jpg", quality=90)
    data = (tmp_path / "photo.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    _validate_image(tmp_path / "cut.jpg", tiny_settings)  # its header is fine; only decoding finds the cut
    with pytest.raises(video_io.ImageError, match="damaged or cut short") as error:
        video_io.read_image(tmp_path / "cut.jpg", 64, 64)
    assert_own_sentence(str(error.value), tmp_path / "cut.jpg")


RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def _odd_pictures(folder: Path) -> dict[str, tuple[Path, tuple[int, int, int]]]:
    """name -> (file, the colour its first frame reads as)."""
    made = {}

    def save(name, image, colour, **options):
        image.save(folder / name, **options)
        made[name] = (folder / name, colour)

    save("cmyk.jpg", Image.new("CMYK", (40, 30), (255, 0, 255, 0)), (0, 255, 0))  # no magenta: green
    palette = Image.new("P", (40, 30), 1)
    palette.putpalette([0, 0, 0, *BLUE] + [0] * 762)
    save("palette.png", palette, BLUE)
    save("clear.png", Image.new("RGBA", (40, 30), (0, 0, 0, 0)), WHITE)  # transparency shows as white
    save("grey.png", Image.new("L", (40, 30), 100), (100, 100, 100))
    save("grey-alpha.png", Image.new("LA", (40, 30), (100, 255)), (100, 100, 100))
    save("grey16.png", Image.fromarray(np.full((30, 40), 257 * 200, np.uint16)), (200, 200, 200))
    save("grey16.tif", Image.fromarray(np.full((30, 40), 257 * 50, np.uint16)), (50, 50, 50))
    frames = [Image.new("RGB", (40, 30), colour) for colour in (RED, BLUE)]
    save("animated.gif", frames[0], RED, save_all=True, append_images=frames[1:], duration=100)
    save("animated.webp", frames[0], RED, save_all=True, append_images=frames[1:], duration=100, lossless=True)
    save("plain.bmp", frames[1], BLUE)
    (folder / "really-a-png.jpg").write_bytes((folder / "plain.bmp").read_bytes())  # named as another kind
    made["really-a-png.jpg"] = (folder / "really-a-png.jpg", BLUE)
    return made


def test_odd_but_valid_pictures_read_as_rgb(tmp_path, tiny_settings):
    for name, (path, colour) in _odd_pictures(tmp_path).items():
        assert _validate_image(path, tiny_settings).image == str(path), name
        frame = video_io.read_image(path, 24, 16)
        assert frame.shape == (16, 24, 3) and frame.dtype == np.uint8, name
        assert np.abs(frame.astype(int) - colour).max() <= 3, (name, frame[0, 0])


def test_exif_orientation_is_applied(tmp_path):
    """Stored 60x40 with orientation 6 (turn 90 degrees clockwise): shown 40x60, its left band on top."""
    stored = Image.new("RGB", (60, 40), RED)
    stored.paste(BLUE, (0, 0, 20, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    frame = video_io.read_image(tmp_path / "phone.jpg", 40, 60)
    assert np.abs(frame[2, 20].astype(int) - BLUE).max() < 40
    assert np.abs(frame[-3, 20].astype(int) - RED).max() < 40
    assert video_io.probe_image(tmp_path / "phone.jpg").format == "JPEG"


def test_a_bad_picture_stops_a_job_before_any_model_loads(studio, tmp_path):
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(UserError, match="The first-frame image is not a picture this server can read") as error:
        studio.text2video(Text2VideoRequest(prompt="a boat", width=64, height=64, steps=2,
                                            image=str(tmp_path / "notes.png")), None)
    assert_own_sentence(str(error.value), tmp_path / "notes.png")


# ------------------------------------------------------------------------------ videos ffmpeg cannot read


def _ffmpeg(*args: str) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True, timeout=60)


@pytest.fixture(scope="module")
def bad_videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad videos")
    frames = np.random.default_rng(0).integers(0, 255, (6, 32, 48, 3), dtype=np.uint8)
    whole = Path(video_io.write_mp4(frames, folder / "whole.mp4", 8)).read_bytes()
    (folder / "notes.mp4").write_text("this is not a video\n" * 20)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "cut.mp4").write_bytes(whole[:200])
    (folder / "noise.mp4").write_bytes(np.random.default_rng(1).bytes(5000))
    Image.new("RGB", (32, 32), RED).save(folder / "picture.gif", format="PNG")
    (folder / "noise.webm").write_bytes(np.random.default_rng(2).bytes(5000))
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=48x32:rate=8", "-frames:v", "0", "-c:v", "libx264",
            str(folder / "no frames.mp4"))
    _ffmpeg("-f", "lavfi", "-i", "anullsrc", "-t", "0.5", "-c:a", "aac", str(folder / "sound only.mp4"))
    return {path.name: path for path in folder.iterdir() if path.name != "whole.mp4"}


def test_unreadable_videos_are_answered_in_the_apps_words(bad_videos, caplog):
    caplog.set_level(logging.WARNING, logger="modules.video_io")
    for name, path in bad_videos.items():
        for call in (video_io.probe_video, video_io.read_video):
            with pytest.raises(video_io.VideoError) as error:
                call(path)
            message = str(error.value)
            assert message.startswith(f"Could not read the video '{name}': "), message
            assert message.endswith("Please upload an mp4, webm, mov, gif, avi or mkv video."), message
            assert_own_sentence(message, path)
    assert "Invalid data found" in caplog.text and str(bad_videos["notes.mp4"]) in caplog.text  # the log keeps it


def test_what_is_wrong_with_a_video_is_said(bad_videos):
    reasons = {
        "empty.mp4": "the file is empty",
        "notes.mp4": "it is not a video file this server can decode, or it is damaged",
        "sound only.mp4": "it holds no video pictures (perhaps only sound)",
        "no frames.mp4": "it holds no video pictures",
        "picture.gif": "its name ends in .gif but it is not a GIF",
    }
    for name, reason in reasons.items():
        with pytest.raises(video_io.VideoError, match=reason.replace("(", r"\(").replace(")", r"\)")):
            video_io.read_video(bad_videos[name])


def test_one_frame_and_damaged_but_decodable_videos_give_frames(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (6, 32, 48, 3), dtype=np.uint8)
    one = video_io.read_video(video_io.write_mp4(frames[:1], tmp_path / "one.mp4", 8))
    assert one.frames.shape == (1, 32, 48, 3)
    data = Path(video_io.write_mp4(frames, tmp_path / "whole.mp4", 8)).read_bytes()
    (tmp_path / "tail cut.mp4").write_bytes(data[: len(data) * 2 // 3])
    try:
        clip = video_io.read_video(tmp_path / "tail cut.mp4")
    except video_io.VideoError as error:  # whether frames survive depends on where the cut falls
        assert_own_sentence(str(error), tmp_path / "tail cut.mp4")
    else:
        assert 1 <= len(clip.frames) <= 6


def test_an_unreadable_video_stops_a_job_in_a_sentence(studio, bad_videos):
    request = ControlVideoRequest(kind="edge", video=str(bad_videos["notes.mp4"]), prompt="a robot", steps=2,
                                  window=VideoWindow(resolution=64))
    with pytest.raises(UserError, match="Could not read the video 'notes.mp4'") as error:
        studio.control_video(request, None)
    assert_own_sentence(str(error.value), bad_videos["notes.mp4"])


def test_write_mp4_keeps_sizes_that_are_not_multiples_of_16_without_the_macro_block_warning(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    frames = np.zeros((3, 70, 100, 3), np.uint8)
    info = video_io.probe_video(video_io.write_mp4(frames, tmp_path / "odd.mp4", 8))
    assert (info.width, info.height) == (100, 70)
    assert "macro_block_size" not in caplog.text

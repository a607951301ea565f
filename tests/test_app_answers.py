"""Every input gets the app's sentence through the API: nothing fails inside a component with Gradio's
generic "raised an exception", nothing carries Gradio's or ffmpeg's text, and each refusal is logged
with a reference."""

import logging
import re
import struct
import zlib

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from modules import engines

BASE = "dreamlike-art/dreamlike-photoreal-2.0"
TEXT2VIDEO = dict(prompt="a cat", negative_prompt="", model=BASE, num_frames=2, width=64, height=64, steps=2,
                  guidance_scale=7.5, motion_x=0, motion_y=0, t0=-1, t1=-1, seed=1, chunk_size=8, fps=4)
FOREIGN = re.compile(r"raised an exception|not in the list of choices|<class |Traceback|ffmpeg|Invalid data|/tmp/")


def refused(call) -> str:
    """The sentence the app answered with; it must be the app's own."""
    with pytest.raises(AppError) as caught:
        call()
    message = str(caught.value)
    assert message and not FOREIGN.search(message), message
    return message


def png_header_only(path, width: int, height: int) -> str:
    """A valid PNG of `width`x`height` whose pixels compress to almost nothing: a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\x00" * width  # filter byte + one greyscale byte per pixel
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return str(path)


def test_a_text_file_named_png_is_answered_in_a_sentence(client_factory, tmp_path):
    fake = tmp_path / "photo.png"
    fake.write_text("this is not a picture")
    message = refused(lambda: client_factory().predict(**TEXT2VIDEO, image=handle_file(str(fake)), api_name="/text2video"))
    assert "first-frame image" in message


def test_a_decompression_bomb_is_refused_before_decoding(client_factory, tmp_path):
    bomb = png_header_only(tmp_path / "bomb.png", 20000, 20000)
    assert (tmp_path / "bomb.png").stat().st_size < 2_000_000
    message = refused(lambda: client_factory().predict(**TEXT2VIDEO, image=handle_file(bomb), api_name="/text2video"))
    assert "20000" in message  # says what it got, and the limit
    assert re.search(r"\d+ ?(×|x) ?\d+|megapixel|pixels", message)


def test_a_text_file_named_mp4_is_answered_without_ffmpeg_text(client_factory, tmp_path):
    fake = tmp_path / "clip.mp4"
    fake.write_text("not a video at all")
    message = refused(lambda: client_factory().predict(
        handle_file(str(fake)), "make it snowy", "", 1.5, 7.5, 2, "euler_ancestral", 1, 0, 0, 0, 64, 8, False,
        api_name="/edit_video"))
    assert "video" in message


def test_engine_names_in_any_case_and_unknown_ones_in_our_words(client_factory):
    client = client_factory()
    other = [e for e in engines.for_tab("text2video") if e.name != engines.default("text2video").name][0]
    video, *_ = client.predict(**{**TEXT2VIDEO, "num_frames": other.rules.frames.smallest}, engine=other.name.upper(),
                               api_name="/text2video")
    assert video
    message = refused(lambda: client.predict(**TEXT2VIDEO, engine="sora", api_name="/text2video"))
    assert all(name in message for name in engines.names("text2video"))
    message = refused(lambda: client.predict(**{**TEXT2VIDEO, "model": "nobody/nothing"}, api_name="/text2video"))
    assert BASE in message


def test_compare_with_engines_null_means_every_engine(client_factory):
    """The README says `engines=None` (JSON null) compares every text-to-video engine."""
    client = client_factory()
    side_by_side, files, seconds, seed = client.predict(
        "a windmill", None, "", BASE, 1, 64, 64, 2, 3, 4, api_name="/compare")
    assert side_by_side and set(seconds) == set(engines.names("text2video"))


def test_every_refusal_is_logged_with_its_reference(client_factory, caplog):
    with caplog.at_level(logging.WARNING, logger="modules"):
        refused(lambda: client_factory().predict(**{**TEXT2VIDEO, "prompt": ""}, api_name="/text2video"))
    answered = [r.getMessage() for r in caplog.records if "Please enter a prompt" in r.getMessage()]
    assert answered and re.search(r"reference [0-9a-f]{8}", answered[0])


@pytest.mark.parametrize("image", ["garbage", 5, [1, 2], {"path": 5}])
def test_a_malformed_file_value_is_answered_in_a_sentence(client_factory, image):
    """Gradio parses file inputs into its data model before any component or handler runs
    (modules/ui/inputs.py answers that step); file data without Gradio's "meta" is refused there too."""
    message = refused(lambda: client_factory().predict(**TEXT2VIDEO, image=image, api_name="/text2video"))
    assert 'The "image" (First frame) input must be a file uploaded to this app' in message and "handle_file" in message


def test_a_video_path_without_gradio_meta_is_answered(client_factory):
    message = refused(lambda: client_factory().predict(
        {"path": "/etc/hostname"}, "make it snowy", "", 1.5, 7.5, 2, "euler_ancestral", 1, 0, 0, 0, 64, 8, False,
        api_name="/edit_video"))
    assert 'The "video"' in message and "must be a file uploaded to this app" in message


def test_the_wrapped_gradio_step_still_exists():
    """inputs.py wraps Blocks.preprocess_data (no public hook): this fails when Gradio renames it."""
    import inspect

    import gradio as gr

    assert list(inspect.signature(gr.Blocks.preprocess_data).parameters)[:4] == ["self", "block_fn", "inputs", "state"]
    assert "self.preprocess_data(" in inspect.getsource(gr.Blocks.process_api)

"""A job reads only files Gradio received for this app: a crafted server path is refused in a sentence."""

import json

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from modules import video_io


@pytest.fixture
def server_files(tmp_path):
    """Files on the server that nobody uploaded: a picture, a clip and a params.json."""
    import imageio.v3 as iio

    picture = tmp_path / "private.png"
    iio.imwrite(picture, np.full((64, 64, 3), 200, np.uint8))
    clip = video_io.write_mp4(np.zeros((3, 64, 64, 3), np.uint8), tmp_path / "private.mp4", 3)
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"mode": "text2video", "request": {"prompt": "secret"}}))
    return {"image": str(picture), "video": str(clip), "params": str(params)}


def test_a_crafted_path_is_refused_for_every_file_input(client_factory, server_files, caplog):
    client = client_factory()
    common = dict(prompt="a cat", negative_prompt="", model="dreamlike-art/dreamlike-photoreal-2.0", num_frames=2,
                  width=64, height=64, steps=2, guidance_scale=7.5, motion_x=0, motion_y=0, t0=-1, t1=-1, seed=1,
                  chunk_size=8, fps=4)
    # gr.Image takes {"path": ...} without any check of its own: ours refuses it.
    with pytest.raises(AppError, match="The first-frame image must be a file uploaded to this app, not a path on the server"):
        client.predict(**common, image={"path": server_files["image"]}, api_name="/text2video")
    # The same picture uploaded is fine.
    video, *_ = client.predict(**common, image=handle_file(server_files["image"]), api_name="/text2video")
    assert video


def test_uploaded_accepts_only_the_upload_folder_and_the_examples(tmp_path, monkeypatch):
    from modules.errors import UserError
    from modules.ui.common import ASSETS, uploaded

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))
    inside = tmp_path / "uploads" / "abc" / "clip.mp4"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(b"x")
    assert uploaded(str(inside), "video") == str(inside)
    assert uploaded({"path": str(inside), "meta": {}}, "video") == str(inside)
    example = next(ASSETS.glob("*.mp4"))
    assert uploaded(str(example), "video") == str(example)
    assert uploaded(None, "video") is None and uploaded("", "video") == "" and uploaded(5, "video") == 5
    for crafted in ("/etc/hostname", str(tmp_path / "uploads-evil" / "x"), str(tmp_path / "uploads" / ".." / "x")):
        with pytest.raises(UserError, match="must be a file uploaded to this app"):
            uploaded(crafted, "video")
    link = tmp_path / "uploads" / "link.png"
    link.symlink_to("/etc/hostname")
    with pytest.raises(UserError):
        uploaded(str(link), "first-frame image")  # a link out of the folder is a path elsewhere


def test_load_params_refuses_a_server_path(server_files):
    from modules.ui.params_files import load_params

    import gradio as gr

    out = load_params(server_files["params"], lambda data: pytest.fail("read a file nobody uploaded"), 2)
    assert out[-2] is None and all(isinstance(v, type(gr.skip())) for v in out[:-2]) and "uploaded" in out[-1]

"""The Pose, Edge and Depth tabs as built (no launch): what their widgets offer and what their endpoints take."""

from __future__ import annotations

import inspect

import gradio as gr
import pytest

from modules.empty_maps import GO_ON
from modules.settings import EDGE_STYLES, Settings
from modules.studio import Studio
from modules.ui import controlnet


@pytest.fixture(scope="module")
def tabs(tmp_path_factory):
    """Each control tab built alone in its own Blocks: kind -> the Blocks."""
    studio = Studio(Settings.from_env(preset="tiny", device="cpu", outputs_dir=str(tmp_path_factory.mktemp("tabs"))))
    built = {}
    for kind in ("pose", "edge", "depth"):
        with gr.Blocks() as demo:
            controlnet.build(demo, studio, kind)
        built[kind] = demo
    return studio, built


def components(demo: gr.Blocks, kind: type, label: str) -> list:
    return [block for block in demo.blocks.values() if isinstance(block, kind) and block.label == label]


def test_edge_styles_are_shown_by_name_and_sent_as_repo_ids(tabs):
    studio, built = tabs
    (dropdown,) = components(built["edge"], gr.Dropdown, "Base model or DreamBooth style")
    shown = dict((value, label) for label, value in dropdown.choices)
    assert list(shown) == [*studio.settings.base_models, *studio.settings.edge_style_models]  # the API's values
    assert [shown[repo] for repo in studio.settings.edge_style_models] == ["Anime", "Arcane", "GTA V", "Avatar"]
    assert all("/" not in EDGE_STYLES[repo] for repo in studio.settings.edge_style_models)
    assert dropdown.value == studio.settings.base_models[0]


@pytest.mark.parametrize("kind", ["pose", "edge", "depth"])
def test_go_on_with_empty_maps_is_a_box_and_the_endpoints_last_parameter(tabs, kind):
    """After `fast`, so that a client's positional call of the parameters before keeps working."""
    _, built = tabs
    (box,) = components(built[kind], gr.Checkbox, GO_ON)
    assert box.value is False
    (generate,) = [fn for fn in built[kind].fns.values() if fn.api_name == f"{kind}2video"]
    names = [name for name in inspect.signature(generate.fn).parameters if name != "progress"]
    assert names[-2:] == ["fast", "allow_empty_maps"]
    assert generate.inputs[-1] is box and len(generate.inputs) == len(names)

"""What the settings and `python app.py --help` say matches what the code does."""

import re

from modules.settings import ENV_VARS


def _help_of(name: str) -> str:
    return next(meaning for names, meaning in ENV_VARS if name in names)


def test_memory_budget_help_says_what_zero_means():
    from modules.models import CUDA_BUDGET_FRACTION

    meaning = _help_of("T2VZ_MEMORY_BUDGET_GB")
    assert f"0 = {CUDA_BUDGET_FRACTION:.0%}".replace("%", " %") in meaning  # "0 = 80 %" of the GPU's memory
    assert "none on CPU" in meaning


def test_download_help_names_what_each_choice_fetches():
    """`default` and `all` fetch what modules/download.py lists for them, and the help says so."""
    from app import build_parser
    from modules.download import models_to_download
    from modules.settings import Settings

    download = next(a.help for a in build_parser()._actions if "--download" in a.option_strings)  # noqa: SLF001
    default, everything = download.split("`all`", 1)
    kinds = {which: {kind for kind, _ in models_to_download(Settings(), which)} for which in ("default", "all")}
    # a kind models_to_download returns -> how the help names it (single files: by the choice)
    names = {"controlnet": "ControlNets", "pose": "annotators", "depth": "annotators", "taesd": "TAESD"}
    for kind in kinds["default"]:
        assert (names.get(kind) or ("LCM-LoRA" if kind.startswith("file:") else "base model")) in default, kind
    assert "editing model" in default and "styles" in everything
    from modules.engines import all_engines  # `all` adds each engine's own models, named in the help

    for engine in all_engines():
        for spec in engine.models:
            assert f"{engine.title}'s" in everything and spec.key.replace("_", " ") in everything, spec.key


def test_settings_module_names_only_what_exists():
    """Its docstring points at ENV_VARS (no `describe_env`), and no unused helper is left."""
    import modules.settings as settings

    for name in re.findall(r"`(\w+)\(\)`", settings.__doc__):
        assert hasattr(settings, name), name
    assert "ENV_VARS" in settings.__doc__
    assert not hasattr(settings, "settings_fields")

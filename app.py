"""Text2Video-Zero Studio: `python app.py [--preset tiny] [--host H] [--port P] [--share] [--download [default|all]]`."""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

try:  # ZeroGPU wants `spaces` imported before torch touches CUDA; absent elsewhere.
    import spaces  # noqa: F401
except ImportError:
    pass

from modules.engines import all_engines  # noqa: E402
from modules.settings import ENV_VARS, PRESETS, Settings  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog="Environment: " + "; ".join(f"{name}: {meaning}" for name, meaning in ENV_VARS),
    )
    parser.add_argument("--preset", choices=PRESETS, help="real (Hub weights, default) or tiny (offline, random weights)")
    parser.add_argument("--host", help="address to serve on (default 127.0.0.1; 0.0.0.0 for a LAN or a container)")
    parser.add_argument("--port", type=int, help="port (default 7860)")
    parser.add_argument("--share", action="store_true", default=None, help="also serve through a public gradio.live link")
    parser.add_argument(
        "--download",
        nargs="?",
        const="default",
        choices=("default", "all"),
        help="fetch the Hub models into the cache and exit: `default` (the default base model, the ControlNets, "
        "the editing model, the annotators, and fast mode's LCM-LoRA and TAESD) or `all` (also every offered base "
        "model, the Edge tab's DreamBooth styles, and the engines' own models: "
        + ", ".join(f"{e.title}'s {', '.join(s.key.replace('_', ' ') for s in e.models)}" for e in all_engines() if e.models)
        + ")",
    )
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def create_app(settings: Settings):
    """The Studio and its page; nothing is loaded until the first job asks for it."""
    from modules.studio import Studio
    from modules.ui import build_demo

    studio = Studio(settings)
    return studio, build_demo(studio)


def launch_options(settings: Settings, studio) -> dict:
    """demo.launch() arguments: where to serve, and what files and uploads to allow."""
    return dict(
        server_name=settings.host,
        server_port=settings.port,
        share=settings.share,
        allowed_paths=[str(studio.outputs.root)],  # the only folder of ours that is served
        max_file_size=f"{settings.limits.max_upload_mb:g}mb",
        footer_links=["api", "gradio"],
    )


def main(argv=None) -> None:
    args = parse_args(argv)
    settings = Settings.from_env(preset=args.preset, host=args.host, port=args.port, share=args.share)
    if args.download:
        from modules.download import download

        raise SystemExit(1 if download(settings, args.download) else 0)
    studio, demo = create_app(settings)
    demo.launch(**launch_options(settings, studio))


if __name__ == "__main__":
    main()

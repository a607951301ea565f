"""Text2Video-Zero Studio: `python app.py [--preset tiny] [--host H] [--port P] [--share] [--download [default|all]]`."""

from __future__ import annotations

import argparse
import errno
import os
import socket

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

try:  # ZeroGPU wants `spaces` imported before torch touches CUDA; absent elsewhere.
    import spaces  # noqa: F401
except ImportError:
    pass

from modules import quiet  # noqa: E402
from modules.engines import all_engines  # noqa: E402
from modules.errors import UserError  # noqa: E402
from modules.settings import BACKENDS, ENV_VARS, PRESETS, Settings  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog="Environment: " + "; ".join(f"{name}: {meaning}" for name, meaning in ENV_VARS),
    )
    parser.add_argument("--preset", choices=PRESETS, help="real (Hub weights, default) or tiny (offline, random weights)")
    parser.add_argument("--host", help="address to serve on (default 127.0.0.1; 0.0.0.0 for a LAN or a container)")
    parser.add_argument("--port", type=int, help="port (default 7860)")
    parser.add_argument("--share", action="store_true", default=None, help="also serve through a public gradio.live link")
    parser.add_argument("--backend", choices=BACKENDS,
                        help="where the GPU workers run: local (this process, default) or ray (Ray Serve replicas)")
    parser.add_argument("--ray-address", help="the Ray cluster for --backend ray (e.g. auto); default: start a local one")
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


def port_problem(host: str, port: int) -> str | None:
    """Why the app can't serve on host:port, as one sentence to act on; None where it can.

    Asked before launching: Gradio's own answer is a traceback ("Cannot find empty port").
    """
    if not 1 <= port <= 65535:
        return f"Port {port} is not a port number: use one from 1024 to 65535, e.g. --port 7860."
    error = _bind_error(host, port)
    other_hosts = "use --host 127.0.0.1 (this machine only) or --host 0.0.0.0 (every network interface)"
    if error is None:
        return None
    if isinstance(error, socket.gaierror):
        return f"Unknown host {host!r}: {other_hosts}."
    if error.errno == errno.EADDRINUSE:
        free = next((p for p in range(port + 1, min(port + 100, 65535) + 1) if _bind_error(host, p) is None), None)
        return f"Port {port} is in use: try --port {free}." if free else f"Port {port} is in use: try another --port."
    if error.errno == errno.EADDRNOTAVAIL:
        return f"This machine has no address {host}: {other_hosts}."
    if error.errno == errno.EACCES:
        return f"Port {port} needs administrator rights here: use one from 1024 up, e.g. --port 7860."
    return f"Can't serve on {host}:{port}: {error.strerror or error}."


def _bind_error(host: str, port: int) -> OSError | None:
    """Bind host:port as the server will (SO_REUSEADDR: a closing connection is no obstacle), then let go.

    127.0.0.1 too: Gradio binds it first to test the port, whatever the host.
    """
    for address in dict.fromkeys((host, "127.0.0.1")):
        try:
            family, kind, proto, _, sockaddr = socket.getaddrinfo(
                address.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            with socket.socket(family, kind, proto) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(sockaddr)
        except OSError as error:  # socket.gaierror included
            return error
    return None


def serve(settings: Settings, studio, demo) -> None:
    """Launch and print the address to open; Gradio's own launch lines (and its `share=True` hint) stay out."""
    try:
        demo.launch(**launch_options(settings, studio), quiet=True, prevent_thread_lock=True)
    except OSError:
        problem = port_problem(settings.host, settings.port)  # taken between our check and Gradio's bind
        if problem is None:
            raise
        raise SystemExit(problem) from None
    print(f"* Running on local URL:  {demo.local_url.rstrip('/')}", flush=True)
    demo.block_thread()


def main(argv=None) -> None:
    args = parse_args(argv)
    settings = Settings.from_env(preset=args.preset, host=args.host, port=args.port, share=args.share,
                                 backend=args.backend, ray_address=args.ray_address)
    quiet.install()
    if args.download:
        from modules.download import download

        raise SystemExit(1 if download(settings, args.download) else 0)
    problem = port_problem(settings.host, settings.port)
    if problem:
        raise SystemExit(problem)  # the sentence on stderr, status 1, no traceback
    try:
        studio, demo = create_app(settings)
    except UserError as error:  # the Ray cluster can't be reached: one sentence, as for a busy port
        raise SystemExit(str(error)) from None
    serve(settings, studio, demo)


if __name__ == "__main__":
    main()

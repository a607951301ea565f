"""Keeps third-party noise out of the server's terminal, and only that.

The terminal is where whoever runs the server reads our own logs (`modules.*`: failures with the
reference a user quotes, out-of-memory retries); lines that need no action bury them. Dropped,
by their exact text, and nothing else:

- CLIP's 77-token limit, twice per long prompt: transformers' tokenizer ("Token indices sequence
  length is longer than ...", when a pipeline measures the untruncated prompt) and diffusers'
  pipelines ("The following part of your input was truncated because CLIP can only handle
  sequences up to 77 tokens: [...]", which repeats the prompt). Truncating is what every SD 1.5
  pipeline does with a long prompt; the server's operator can't change it.
- imageio-ffmpeg's "IMAGEIO FFMPEG_WRITER WARNING: input image is not divisible by
  macro_block_size": our writer keeps sizes exactly (video_io.write_mp4), so it only comes from
  a third-party writer that picked its own.

Gradio's "To create a public link, set `share=True`" hint is not a log record: app.py launches
quietly and prints the address itself.
"""

from __future__ import annotations

import logging

NOISE = (
    "Token indices sequence length is longer than the specified maximum sequence length",
    "The following part of your input was truncated because CLIP can only handle sequences up to",
    "IMAGEIO FFMPEG_WRITER WARNING: input image is not divisible by macro_block_size",
)
# transformers and diffusers print through a handler of their own on their root logger (not
# propagated to ours); imageio-ffmpeg logs on its one logger, which reaches the root's handlers.
LIBRARY_ROOTS = ("transformers", "diffusers")
LOGGERS = ("imageio_ffmpeg",)


class NoiseFilter(logging.Filter):
    """Drops the records whose message starts with one of NOISE."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the library's to report, not ours to hide
            return True
        return not message.startswith(NOISE)


NOISE_FILTER = NoiseFilter()


def install() -> None:
    """Filter the noise wherever it would print; cheap, imports no library, safe to call twice.

    A logger's filters see only its own records, a handler's see its children's too: so the filter
    goes on each library root's handlers, those it has and those it adds when the library is
    first imported (the app imports them with the first job, after this runs).
    """
    for name in LIBRARY_ROOTS:
        _filter_every_handler(logging.getLogger(name))
    for name in LOGGERS:
        logging.getLogger(name).addFilter(NOISE_FILTER)


def _filter_every_handler(logger: logging.Logger) -> None:
    for handler in logger.handlers:
        handler.addFilter(NOISE_FILTER)  # addFilter adds a filter once
    if getattr(logger.addHandler, "adds_noise_filter", False):
        return
    add_handler = logger.addHandler

    def add_filtered_handler(handler: logging.Handler) -> None:
        handler.addFilter(NOISE_FILTER)
        add_handler(handler)

    add_filtered_handler.adds_noise_filter = True
    logger.addHandler = add_filtered_handler

"""Reading, resampling, resizing and writing short videos for the pipelines (one job a module below; this
package re-exports their public names, so callers write `video_io.read_video`).

Decoding goes through imageio: its ffmpeg plugin (the binary bundled with imageio-ffmpeg) for
mp4/webm/mov/..., and its pillow plugin for GIFs, whose per-frame delays ffmpeg would flatten.
Frames are decoded as a stream and resized one at a time, so only the frames we return are held.
Uploads are checked against the server's caps from their header alone (file size, picture size,
frame count, duration) before any frame is decoded. With the window on its defaults (end and fps
on auto) any accepted upload gives frames: read_video lowers the frame rate, and past a floor
shortens the window, to fit the frame cap, and says what it did in `VideoWindowUsed.note`.
A file that cannot be read is answered in the app's own sentence; what ffmpeg or Pillow said,
and the upload's path, go to the server log only. `read_image` reads a first-frame picture.
No Gradio and no torch here: this module must stay importable in tests and tools.
"""

import os

# imageio-ffmpeg starts each ffmpeg with preexec_fn=os.setpgrp (so a Ctrl+C in the terminal does not reach it),
# which makes Python fork the whole process: tens of ms of a core each time in a process holding GBs of models,
# for every clip read, probed or written. Without it Python spawns ffmpeg by vfork. Its documented switch:
os.environ.setdefault("IMAGEIO_FFMPEG_NO_PREVENT_SIGINT", "1")

from .clips import MIN_AUTO_FPS, TIME_EPS, SourceLimits, VideoClip, VideoError, VideoInfo, VideoWindowUsed
from .frames import fit_size, output_size, to_rgb, to_uint8
from .gif import is_gif, write_gif
from .images import ImageError, ImageInfo, probe_image, read_image
from .probe import probe_video
from .read import read_video
from .window import fit_window, frame_count
from .write import gif_as_mp4, write_mp4

__all__ = [
    "MIN_AUTO_FPS", "TIME_EPS", "SourceLimits", "VideoClip", "VideoError", "VideoInfo", "VideoWindowUsed",
    "fit_size", "output_size", "to_rgb", "to_uint8", "is_gif", "write_gif", "ImageError", "ImageInfo", "probe_image",
    "read_image", "probe_video", "read_video", "fit_window", "frame_count", "gif_as_mp4", "write_mp4",
]

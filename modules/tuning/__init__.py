"""Tune-A-Video (arXiv 2212.11565): one-shot tuning of SD 1.5 on a single clip.

Pure torch + diffusers on the app's unchanged `UNet2DConditionModel` (no UI here):
- `attention`: sparse-causal spatial attention and temporal attention, attached by
  `add_video_layers(unet, parameters=None)` and removed by `VideoLayers.remove()`, leaving the
  base UNet bit for bit as it was;
- `train`: `tune(unet, vae, text_encoder, tokenizer, frames, prompt, ...)`, returning only the
  trained parameters;
- `weights`: `save_tuned` / `load_tuned` (safetensors + model card) and `applied_to(unet,
  parameters)`, the tuned video UNet for one job;
- `inference`: `generate(layers, ...)`, DDIM inversion of the source clip and sampling with a
  new prompt.

Submodules are imported on use (each pulls in diffusers).
"""

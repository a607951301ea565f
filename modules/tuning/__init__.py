"""Tune-A-Video (arXiv 2212.11565): one-shot tuning of SD 1.5 on a single clip.

Pure torch + diffusers on the app's unchanged `UNet2DConditionModel`:
- `attention`: sparse-causal spatial attention and temporal attention, attached and removed
  without changing the base UNet;
- `train`: the tuning loop, returning only the trained parameters;
- `weights`: safetensors + model card on disk, and applying trained parameters for one job;
- `inference`: DDIM inversion of the source clip and sampling with a new prompt.
"""

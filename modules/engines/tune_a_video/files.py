"""The files of a tuned model's folder (light: the page lists models without importing torch)."""

WEIGHTS_NAME = "tune_a_video.safetensors"  # the trained parameters
CARD_NAME = "README.md"  # the Hugging Face model card
SOURCE_NAME = "source.safetensors"  # the clip it was tuned on (uint8 frames): DDIM inversion starts from it
SAMPLE_NAME = "sample.gif"  # the sample prompt's clip, for the Hub page
ENDED_NAME = ".training-ended"  # written when a training job ended where it ran (its last save done)
FILES = (WEIGHTS_NAME, CARD_NAME, SOURCE_NAME, SAMPLE_NAME)  # what a tuned model's folder holds (the first marks it)

"""Fast mode's published recipe for SD 1.5 (LCM-LoRA, TAESD): plain numbers, no torch.

The UI and the engine registry read these before any job runs; `fast.py` applies them.
"""

LCM_LORA_REPO = "latent-consistency/lcm-lora-sdv1-5"
LCM_LORA_FILE = "pytorch_lora_weights.safetensors"
LCM_ADAPTER = "lcm"
TAESD_REPO = "madebyollin/taesd"

LCM_MIN_STEPS, LCM_MAX_STEPS = 2, 8  # the LCM-LoRA card's range (LCMScheduler allows up to 50)
FAST_STEPS = 4

# Fast-mode defaults per tab. Guidance: LCM-LoRA is distilled with guidance folded in; its card
# and diffusers' LCM docs use guidance_scale 1.0 (off) to 2.0, and above ~2 frames over-saturate.
# 1.0 turns classifier-free guidance off, which halves every UNet batch (no negative prompt);
# that is the largest single speed-up after the step count, so it is the default. Editing follows
# the LCM authors' InstructPix2Pix recipe (4 steps, guidance 2.0, image guidance 1.0: "turn off
# image guidance, otherwise artifacts"); with image guidance 1 the unconditional branch cancels,
# so the engine runs 2 groups (`skip_unused_guidance=True`).
FAST_DEFAULTS = {
    "text2video": dict(steps=FAST_STEPS, guidance_scale=1.0, scheduler="lcm"),
    "control": dict(steps=FAST_STEPS, guidance_scale=1.0, scheduler="lcm"),
    "edit": dict(
        steps=FAST_STEPS, guidance_scale=2.0, image_guidance_scale=1.0, scheduler="lcm", skip_unused_guidance=True
    ),
}

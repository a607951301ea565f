"""Real Hub file layouts of the app's models, read from the Hub's file pages (via search) on 2026-11-25.

Sizes are in bytes.  Most Hub pages only show rounded figures ("3.44 GB", "582 Bytes"
is exact, "1.48 kB" is not); those were converted with decimal units (1 kB = 1000 B,
1 GB = 10**9 B) and are approximate.  Per repo:

* ``files``        path -> size in bytes (every file of the repo's main branch that was found).
* ``exact_sizes``  paths whose size is an exact byte count (an "N Bytes" figure on a Hub page,
                   an LFS pointer ``size N`` in a commit diff, or an exact figure copied from the
                   Hub API by third-party code).  Every other size is approximate (``~``).
* ``inferred``     paths that were NOT seen on a page for this repo; they are filled in from
                   sibling repos / the diffusers save format and may be wrong.
* ``confirmed``    True where the listing itself (the set of paths) was seen; False where a
                   substantial part of it is inferred.
* ``class_names``  component -> [library, class] from model_index.json (or the ``_class_name`` of
                   a single-model repo's config.json); ``note`` says where it came from.

No code here touches the network; it is plain data.
"""

# Common CLIP tokenizer files (identical bytes in every SD-1.x repo; merges/vocab sizes exact).
_TOK_MERGES = 524_619
_TOK_VOCAB = 1_059_962

LAYOUTS = {
    # ------------------------------------------------------------------ SD 1.5
    "stable-diffusion-v1-5/stable-diffusion-v1-5": {
        "source": (
            "https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/tree/main and "
            "https://huggingface.co/api/models/stable-diffusion-v1-5/stable-diffusion-v1-5 "
            "(siblings; sha 451f4fe16113bff5a5d2269ed5ad43b0592e9a14), file list of the "
            "'Duplicate from stable-diffusion-v1-5/stable-diffusion-v1-5' commit page; exact sizes "
            "from Hub-API dumps (model_info(files_metadata=True)) of runwayml/stable-diffusion-v1-5 "
            "(same LFS objects) and a pinned manifest of this repo at 451f4fe; read via search 2026-11-25"
        ),
        "confirmed": True,
        "files": {
            ".gitattributes": 1_548,
            "README.md": 14_461,
            "feature_extractor/preprocessor_config.json": 342,
            "model_index.json": 541,
            "safety_checker/config.json": 4_723,
            "safety_checker/model.fp16.safetensors": 608_018_440,
            "safety_checker/model.safetensors": 1_215_981_830,
            "safety_checker/pytorch_model.bin": 1_216_061_799,
            "safety_checker/pytorch_model.fp16.bin": 608_103_564,
            "scheduler/scheduler_config.json": 308,
            "text_encoder/config.json": 617,
            "text_encoder/model.fp16.safetensors": 246_144_864,
            "text_encoder/model.safetensors": 492_265_874,
            "text_encoder/pytorch_model.bin": 492_305_335,
            "text_encoder/pytorch_model.fp16.bin": 246_187_076,
            "tokenizer/merges.txt": _TOK_MERGES,
            "tokenizer/special_tokens_map.json": 472,
            "tokenizer/tokenizer_config.json": 806,
            "tokenizer/vocab.json": _TOK_VOCAB,
            "unet/config.json": 743,
            "unet/diffusion_pytorch_model.bin": 3_438_354_725,
            "unet/diffusion_pytorch_model.fp16.bin": 1_719_327_893,
            "unet/diffusion_pytorch_model.fp16.safetensors": 1_719_125_304,
            "unet/diffusion_pytorch_model.non_ema.bin": 3_438_366_373,
            "unet/diffusion_pytorch_model.non_ema.safetensors": 3_438_167_536,
            "unet/diffusion_pytorch_model.safetensors": 3_438_167_540,
            "v1-5-pruned-emaonly.ckpt": 4_265_380_512,
            "v1-5-pruned-emaonly.safetensors": 4_265_146_304,
            "v1-5-pruned.ckpt": 7_703_807_346,
            "v1-5-pruned.safetensors": 7_703_324_286,
            "v1-inference.yaml": 1_873,
            "vae/config.json": 547,
            "vae/diffusion_pytorch_model.bin": 334_707_217,
            "vae/diffusion_pytorch_model.fp16.bin": 167_405_651,
            "vae/diffusion_pytorch_model.fp16.safetensors": 167_335_342,
            "vae/diffusion_pytorch_model.safetensors": 334_643_276,
        },
        # all but .gitattributes (1.55 kB) and v1-inference.yaml (1.87 kB)
        "exact_sizes": [
            "README.md", "feature_extractor/preprocessor_config.json", "model_index.json",
            "safety_checker/config.json", "safety_checker/model.fp16.safetensors",
            "safety_checker/model.safetensors", "safety_checker/pytorch_model.bin",
            "safety_checker/pytorch_model.fp16.bin", "scheduler/scheduler_config.json",
            "text_encoder/config.json", "text_encoder/model.fp16.safetensors",
            "text_encoder/model.safetensors", "text_encoder/pytorch_model.bin",
            "text_encoder/pytorch_model.fp16.bin", "tokenizer/merges.txt",
            "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json",
            "tokenizer/vocab.json", "unet/config.json", "unet/diffusion_pytorch_model.bin",
            "unet/diffusion_pytorch_model.fp16.bin", "unet/diffusion_pytorch_model.fp16.safetensors",
            "unet/diffusion_pytorch_model.non_ema.bin",
            "unet/diffusion_pytorch_model.non_ema.safetensors",
            "unet/diffusion_pytorch_model.safetensors", "v1-5-pruned-emaonly.ckpt",
            "v1-5-pruned-emaonly.safetensors", "v1-5-pruned.ckpt", "v1-5-pruned.safetensors",
            "vae/config.json", "vae/diffusion_pytorch_model.bin",
            "vae/diffusion_pytorch_model.fp16.bin", "vae/diffusion_pytorch_model.fp16.safetensors",
            "vae/diffusion_pytorch_model.safetensors",
        ],
        "inferred": [],
        "class_names": {
            "_class_name": "StableDiffusionPipeline",
            "feature_extractor": ["transformers", "CLIPImageProcessor"],
            "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
            "scheduler": ["diffusers", "PNDMScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        },
        "note": (
            "Pipeline class confirmed (API config.diffusers._class_name). Component classes from "
            "knowledge; the 541-byte model_index.json is the version after runwayml PR #124 "
            "(CLIPFeatureExtractor -> CLIPImageProcessor). Has fp16 AND non_ema variants, .bin and "
            "safetensors for every component, four root single-file checkpoints."
        ),
    },
    # ------------------------------------------------------------ dreamlike
    "dreamlike-art/dreamlike-photoreal-2.0": {
        "source": (
            "https://huggingface.co/dreamlike-art/dreamlike-photoreal-2.0/tree/<rev> pages for "
            "refs/pr/37, refs/pr/39, d62909e, 05fed4f (+ unet/, vae/, text_encoder/, tokenizer/ "
            "subfolder pages); the tree page for 'main' itself was not in the index; read via search 2026-11-25"
        ),
        "confirmed": True,
        "files": {
            ".gitattributes": 1_670,
            "LICENSE.md": 14_000,
            "README.md": 4_110,
            "apreview1.jpg": 720_000,
            "church.jpg": 141_000,
            "dreamlike-photoreal-2.0.ckpt": 2_130_000_000,
            "dreamlike-photoreal-2.0.safetensors": 2_130_000_000,
            "dreamlike.jpg": 2_030_000,
            "example.jpg": 908_000,
            "gpt.jpg": 7_790,
            "model_index.json": 511,
            "preview1.jpg": 500_000,
            "preview2.jpg": 500_000,
            "scheduler/scheduler_config.json": 340,
            "text_encoder/config.json": 617,
            "text_encoder/model.safetensors": 246_000_000,  # fp16 weights under the default name
            "text_encoder/pytorch_model.bin": 246_000_000,  # fp16 (torch.HalfStorage)
            "tokenizer/merges.txt": _TOK_MERGES,
            "tokenizer/special_tokens_map.json": 472,
            "tokenizer/tokenizer_config.json": 807,
            "tokenizer/vocab.json": _TOK_VOCAB,
            "unet/config.json": 901,
            "unet/diffusion_pytorch_model.bin": 1_720_000_000,  # fp16 under the default name
            "unet/diffusion_pytorch_model.safetensors": 1_720_000_000,  # fp16 under the default name
            "vae/config.json": 577,
            "vae/diffusion_pytorch_model.bin": 167_000_000,  # fp16
            "vae/diffusion_pytorch_model.safetensors": 167_000_000,  # fp16
        },
        "exact_sizes": [
            "model_index.json", "text_encoder/config.json", "tokenizer/merges.txt",
            "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json",
            "tokenizer/vocab.json", "unet/config.json", "vae/config.json",
        ],
        # preview*.jpg: the tree listings were cut off after model_index.json ("prev...");
        # names taken from a mirror's .gitattributes. scheduler_config.json size not seen.
        "inferred": ["preview1.jpg", "preview2.jpg", "scheduler/scheduler_config.json"],
        "class_names": {
            "_class_name": "StableDiffusionPipeline",
            "scheduler": ["diffusers", "DDIMScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        },
        "note": (
            "NO safety_checker/ and NO feature_extractor/ folders (confirmed: folder list is "
            "scheduler, text_encoder, tokenizer, unet, vae). Weights are fp16 stored under the "
            "default (non-variant) names; there are no *.fp16.* variant files. Root single-file "
            "checkpoints .ckpt + .safetensors (2.13 GB each). Pipeline class confirmed by Hub tag; "
            "component classes from re-saved derivatives (_name_or_path dreamlike-art/...) — the "
            "original 511-byte model_index.json content was not seen (inferred: safety_checker / "
            "feature_extractor absent or null). README.md size on main not seen (4.01-4.12 kB on "
            "other revisions)."
        ),
    },
    # ------------------------------------------------------------ DreamShaper 8
    "Lykon/dreamshaper-8": {
        "source": (
            "https://huggingface.co/Lykon/dreamshaper-8/tree/main (+ text_encoder/, tokenizer/, unet/, "
            "safety_checker/, scheduler/ pages, blob/main/model_index.json, blob of "
            "vae/diffusion_pytorch_model.fp16.safetensors); read via search 2026-11-25"
        ),
        "confirmed": True,
        "files": {
            ".gitattributes": 1_520,
            "README.md": 2_420,
            "image.png": 375_000,
            "model_index.json": 642,
            "feature_extractor/preprocessor_config.json": 520,
            "safety_checker/config.json": 796,
            "safety_checker/model.fp16.safetensors": 608_000_000,
            "safety_checker/model.safetensors": 1_220_000_000,
            "scheduler/scheduler_config.json": 614,
            "text_encoder/config.json": 724,
            "text_encoder/model.fp16.safetensors": 246_000_000,
            "text_encoder/model.safetensors": 492_000_000,
            "tokenizer/merges.txt": _TOK_MERGES,
            "tokenizer/special_tokens_map.json": 472,
            "tokenizer/tokenizer_config.json": 737,
            "tokenizer/vocab.json": _TOK_VOCAB,
            "unet/config.json": 1_870,
            "unet/diffusion_pytorch_model.fp16.safetensors": 1_720_000_000,
            "unet/diffusion_pytorch_model.safetensors": 3_440_000_000,
            "vae/config.json": 610,
            "vae/diffusion_pytorch_model.fp16.safetensors": 167_000_000,
            "vae/diffusion_pytorch_model.safetensors": 335_000_000,
        },
        "exact_sizes": [
            "model_index.json", "safety_checker/config.json", "scheduler/scheduler_config.json",
            "text_encoder/config.json", "tokenizer/merges.txt", "tokenizer/special_tokens_map.json",
            "tokenizer/tokenizer_config.json", "tokenizer/vocab.json",
        ],
        # folders seen on the main tree; these file names/sizes inside them were not seen
        "inferred": [
            "feature_extractor/preprocessor_config.json", "vae/config.json",
            "vae/diffusion_pytorch_model.safetensors",
        ],
        "class_names": {
            "_class_name": "StableDiffusionPipeline",
            "feature_extractor": ["transformers", "CLIPFeatureExtractor"],
            "requires_safety_checker": True,
            "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
            "scheduler": ["diffusers", "DEISMultistepScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        },
        "note": (
            "model_index.json content confirmed (blob page). safetensors-only: no .bin files, no "
            "root single-file checkpoint. fp16 variants for every weight file; no non_ema."
        ),
    },
    # ------------------------------------------------- PAIR Text2Video-Zero models
    # All four are plain StableDiffusionPipeline repos (DreamBooth-style UNet, no controlnet/
    # folder), uploaded 24-27 Mar 2023 with diffusers ~0.14: .bin only, fp32, no variants.
    "PAIR/text2video-zero-controlnet-canny-anime": {
        "source": (
            "https://huggingface.co/PAIR/text2video-zero-controlnet-canny-anime/tree/main "
            "(+ tokenizer/, text_encoder/, safety_checker/, scheduler/, vae/ pages at earlier "
            "revisions of the same single upload commit 032a131); read via search 2026-11-25"
        ),
        "confirmed": True,
        "files": {
            ".gitattributes": 1_480,
            "README.md": 4_080,
            "model_index.json": 582,
            "feature_extractor/preprocessor_config.json": 518,
            "safety_checker/config.json": 4_900,
            "safety_checker/pytorch_model.bin": 1_220_000_000,
            "scheduler/scheduler_config.json": 465,
            "text_encoder/config.json": 612,
            "text_encoder/pytorch_model.bin": 492_000_000,
            "tokenizer/merges.txt": _TOK_MERGES,
            "tokenizer/special_tokens_map.json": 472,
            "tokenizer/tokenizer_config.json": 806,
            "tokenizer/vocab.json": _TOK_VOCAB,
            "unet/config.json": 1_250,
            "unet/diffusion_pytorch_model.bin": 3_440_000_000,
            "vae/config.json": 582,
            "vae/diffusion_pytorch_model.bin": 335_000_000,
        },
        "exact_sizes": [
            "model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
            "tokenizer/merges.txt", "tokenizer/special_tokens_map.json",
            "tokenizer/tokenizer_config.json", "tokenizer/vocab.json", "vae/config.json",
        ],
        # folders seen; contents taken from the gta5 (unet/) and arcane/avatar (feature_extractor/) pages
        "inferred": [
            "feature_extractor/preprocessor_config.json", "unet/config.json",
            "unet/diffusion_pytorch_model.bin",
        ],
        "class_names": {
            "_class_name": "StableDiffusionPipeline",
            "feature_extractor": ["transformers", "CLIPFeatureExtractor"],
            "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
            "scheduler": ["diffusers", "PNDMScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        },
        "note": (
            "Pipeline class confirmed by Hub tag 'StableDiffusionPipeline'. Component classes and "
            "the scheduler are inferred (model_index.json content not seen; feature_extractor class "
            "as saved by diffusers 0.14 = CLIPFeatureExtractor). .bin only."
        ),
    },
    "PAIR/text2video-zero-controlnet-canny-arcane": {
        "source": (
            "https://huggingface.co/PAIR/text2video-zero-controlnet-canny-arcane/tree/<rev> "
            "(4c6fbad = 8 commits, 372beee, 4a1685c) + main/scheduler, feature_extractor pages; "
            "read via search 2026-11-25"
        ),
        "confirmed": True,
        "files": {
            ".gitattributes": 1_480,
            "README.md": 4_080,
            "model_index.json": 582,
            "feature_extractor/preprocessor_config.json": 518,
            "safety_checker/config.json": 4_900,
            "safety_checker/pytorch_model.bin": 1_220_000_000,
            "scheduler/scheduler_config.json": 465,
            "text_encoder/config.json": 612,
            "text_encoder/pytorch_model.bin": 492_000_000,
            "tokenizer/merges.txt": _TOK_MERGES,
            "tokenizer/special_tokens_map.json": 472,
            "tokenizer/tokenizer_config.json": 806,
            "tokenizer/vocab.json": _TOK_VOCAB,
            "unet/config.json": 1_250,
            "unet/diffusion_pytorch_model.bin": 3_440_000_000,
            "vae/config.json": 582,
            "vae/diffusion_pytorch_model.bin": 335_000_000,
        },
        "exact_sizes": [
            "model_index.json", "feature_extractor/preprocessor_config.json",
            "scheduler/scheduler_config.json", "tokenizer/merges.txt", "tokenizer/vocab.json",
        ],
        "inferred": [
            "safety_checker/config.json", "safety_checker/pytorch_model.bin",
            "text_encoder/config.json", "text_encoder/pytorch_model.bin",
            "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json",
            "unet/config.json", "unet/diffusion_pytorch_model.bin", "vae/config.json",
            "vae/diffusion_pytorch_model.bin",
        ],
        "class_names": {
            "_class_name": "StableDiffusionPipeline",
            "feature_extractor": ["transformers", "CLIPFeatureExtractor"],
            "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
            "scheduler": ["diffusers", "PNDMScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        },
        "note": (
            "Root + folder list confirmed; files inside safety_checker/text_encoder/unet/vae taken "
            "from the sibling PAIR repos (same single-commit upload format). A 9-commit revision "
            "68e7f44 ('the earth', README 4.11 kB) is a community PR ref, not main."
        ),
    },
    "PAIR/text2video-zero-controlnet-canny-gta5": {
        "source": (
            "https://huggingface.co/PAIR/text2video-zero-controlnet-canny-gta5/tree/main "
            "(+ main/unet, main/scheduler, main/tokenizer pages); read via search 2026-11-25"
        ),
        "confirmed": True,
        "files": {
            ".gitattributes": 1_480,
            "README.md": 4_090,
            "model_index.json": 582,
            "feature_extractor/preprocessor_config.json": 518,
            "safety_checker/config.json": 4_900,
            "safety_checker/pytorch_model.bin": 1_220_000_000,
            "scheduler/scheduler_config.json": 465,
            "text_encoder/config.json": 612,
            "text_encoder/pytorch_model.bin": 492_000_000,
            "tokenizer/merges.txt": _TOK_MERGES,
            "tokenizer/special_tokens_map.json": 472,
            "tokenizer/tokenizer_config.json": 806,
            "tokenizer/vocab.json": _TOK_VOCAB,
            "unet/config.json": 1_250,
            "unet/diffusion_pytorch_model.bin": 3_440_000_000,
            "vae/config.json": 582,
            "vae/diffusion_pytorch_model.bin": 335_000_000,
        },
        "exact_sizes": [
            "model_index.json", "scheduler/scheduler_config.json", "tokenizer/merges.txt",
            "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json",
            "tokenizer/vocab.json",
        ],
        "inferred": [
            "feature_extractor/preprocessor_config.json", "safety_checker/config.json",
            "safety_checker/pytorch_model.bin", "text_encoder/config.json",
            "text_encoder/pytorch_model.bin", "vae/config.json", "vae/diffusion_pytorch_model.bin",
        ],
        "class_names": {
            "_class_name": "StableDiffusionPipeline",
            "feature_extractor": ["transformers", "CLIPFeatureExtractor"],
            "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
            "scheduler": ["diffusers", "PNDMScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        },
        "note": "Upload commit 3abc839 'ControlNet Cann GTA5 style' (24 Mar 2023). .bin only.",
    },
    "PAIR/text2video-zero-controlnet-canny-avatar": {
        "source": (
            "https://huggingface.co/PAIR/text2video-zero-controlnet-canny-avatar/tree/main "
            "(+ main/feature_extractor, main/safety_checker, main/scheduler, tokenizer pages); "
            "read via search 2026-11-25"
        ),
        "confirmed": True,
        "files": {
            ".gitattributes": 1_480,
            "README.md": 4_070,
            "model_index.json": 582,
            "feature_extractor/preprocessor_config.json": 518,
            "safety_checker/config.json": 4_900,
            "safety_checker/pytorch_model.bin": 1_220_000_000,
            "scheduler/scheduler_config.json": 465,
            "text_encoder/config.json": 612,
            "text_encoder/pytorch_model.bin": 492_000_000,
            "tokenizer/merges.txt": _TOK_MERGES,
            "tokenizer/special_tokens_map.json": 472,
            "tokenizer/tokenizer_config.json": 806,
            "tokenizer/vocab.json": _TOK_VOCAB,
            "unet/config.json": 1_250,
            "unet/diffusion_pytorch_model.bin": 3_440_000_000,
            "vae/config.json": 582,
            "vae/diffusion_pytorch_model.bin": 335_000_000,
        },
        "exact_sizes": [
            "model_index.json", "feature_extractor/preprocessor_config.json",
            "scheduler/scheduler_config.json", "tokenizer/merges.txt",
            "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json",
            "tokenizer/vocab.json",
        ],
        "inferred": [
            "text_encoder/config.json", "text_encoder/pytorch_model.bin", "unet/config.json",
            "unet/diffusion_pytorch_model.bin", "vae/config.json", "vae/diffusion_pytorch_model.bin",
        ],
        "class_names": {
            "_class_name": "StableDiffusionPipeline",
            "feature_extractor": ["transformers", "CLIPFeatureExtractor"],
            "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
            "scheduler": ["diffusers", "PNDMScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        },
        "note": "Upload commit e679734 'ControlNet Canny and Avatar DB guidance' (27 Mar 2023). .bin only.",
    },
    # ------------------------------------------------------------ ControlNets (v1.0)
    "lllyasviel/sd-controlnet-openpose": {
        "source": "https://huggingface.co/lllyasviel/sd-controlnet-openpose/tree/main (+ main/images); read via search 2026-11-25",
        "confirmed": True,
        "files": {
            ".gitattributes": 1_530,
            "README.md": 11_500,
            "config.json": 920,
            "controlnet_utils.py": 2_760,
            "diffusion_pytorch_model.bin": 1_445_254_969,
            "diffusion_pytorch_model.safetensors": 1_445_157_124,
            "images/chef_pose_out.png": 650_000,
            "images/openpose.png": 6_550,
            "images/pose.png": 592_000,
            "sd.png": 59_500,
        },
        "exact_sizes": ["config.json"],
        "inferred": [],
        "class_names": {"_class_name": "ControlNetModel"},
        "note": (
            "Single ControlNetModel at the repo root (config.json + weights), fp32, no variants. "
            "safetensors byte count copied from sd-controlnet-canny (identical architecture; exact "
            "there); .bin count from memory — both approximate here."
        ),
    },
    "lllyasviel/sd-controlnet-canny": {
        "source": "https://huggingface.co/lllyasviel/sd-controlnet-canny/tree/main (+ images/ pages); read via search 2026-11-25",
        "confirmed": True,
        "files": {
            ".gitattributes": 1_530,
            "README.md": 11_700,
            "config.json": 920,
            "diffusion_pytorch_model.bin": 1_445_254_969,
            "diffusion_pytorch_model.safetensors": 1_445_157_124,
            "images/bird.png": 1_070_000,
            "images/bird_canny.png": 29_100,
            "images/bird_canny_out.png": 776_000,
            "sd.png": 59_500,
        },
        "exact_sizes": ["config.json", "diffusion_pytorch_model.safetensors"],
        "inferred": [],
        "class_names": {"_class_name": "ControlNetModel"},
        "note": (
            "controlnet_utils.py was deleted before main (present at 1881086, absent on main). "
            "safetensors size exact (third-party download manifest of .../resolve/main/...)."
        ),
    },
    "lllyasviel/sd-controlnet-depth": {
        "source": "https://huggingface.co/lllyasviel/sd-controlnet-depth/tree/main (+ images/ pages); read via search 2026-11-25",
        "confirmed": True,
        "files": {
            ".gitattributes": 1_530,
            "README.md": 11_500,
            "config.json": 920,
            "diffusion_pytorch_model.bin": 1_445_254_969,
            "diffusion_pytorch_model.safetensors": 1_445_157_124,
            "images/stormtrooper.png": 218_000,
            "images/stormtrooper_depth.png": 54_100,
            "images/stormtrooper_depth_out.png": 268_000,
            "sd.png": 59_500,
        },
        "exact_sizes": ["config.json"],
        "inferred": [],
        "class_names": {"_class_name": "ControlNetModel"},
        "note": "No controlnet_utils.py on main (deleted after 0cd07db).",
    },
    # ------------------------------------------------------------ InstructPix2Pix
    "timbrooks/instruct-pix2pix": {
        "source": (
            "file list of the 'Duplicate from timbrooks/instruct-pix2pix' commit page (23 files); "
            "root sizes from tree pages of refs/pr/1, refs/pr/13, refs/pr/15, 6150add; unet/ page of "
            "refs/pr/15; read via search 2026-11-25 (the tree page for 'main' itself was not in the index)"
        ),
        "confirmed": True,
        "files": {
            ".gitattributes": 1_480,
            "README.md": 1_290,
            "feature_extractor/preprocessor_config.json": 518,
            "instruct-pix2pix-00-22000.ckpt": 7_700_000_000,
            "instruct-pix2pix-00-22000.safetensors": 7_700_000_000,
            "model_index.json": 616,
            "safety_checker/config.json": 4_900,
            "safety_checker/model.safetensors": 1_220_000_000,
            "safety_checker/pytorch_model.bin": 1_220_000_000,
            "scheduler/scheduler_config.json": 480,
            "text_encoder/config.json": 617,
            "text_encoder/model.safetensors": 492_000_000,
            "text_encoder/pytorch_model.bin": 492_000_000,
            "tokenizer/merges.txt": _TOK_MERGES,
            "tokenizer/special_tokens_map.json": 472,
            "tokenizer/tokenizer_config.json": 806,
            "tokenizer/vocab.json": _TOK_VOCAB,
            "unet/config.json": 1_020,
            "unet/diffusion_pytorch_model.bin": 3_440_000_000,  # 8 input channels
            "unet/diffusion_pytorch_model.safetensors": 3_440_000_000,
            "vae/config.json": 580,
            "vae/diffusion_pytorch_model.bin": 335_000_000,
            "vae/diffusion_pytorch_model.safetensors": 335_000_000,
        },
        "exact_sizes": ["model_index.json", "tokenizer/merges.txt", "tokenizer/vocab.json"],
        "inferred": [],
        "class_names": {
            "_class_name": "StableDiffusionInstructPix2PixPipeline",
            "feature_extractor": ["transformers", "CLIPImageProcessor"],
            "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
            "scheduler": ["diffusers", "EulerAncestralDiscreteScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        },
        "note": (
            "Paths confirmed; sizes of small json files (except model_index.json) approximate. "
            "fp16 weights live on a separate 'fp16' BRANCH (same file names, 1.72 GB unet), not as "
            "*.fp16.* variant files on main. Component classes from re-saved derivatives "
            "(_name_or_path timbrooks/instruct-pix2pix); the 616-byte original not seen."
        ),
    },
    # ------------------------------------------------------------ annotators
    "lllyasviel/Annotators": {
        "source": (
            "https://huggingface.co/lllyasviel/Annotators/tree/83cbccd (11-commit snapshot); exact LFS "
            "sizes from the 'Upload 7 files' commit 733558a diff and the ckpt/ControlNet-v1-1 mirror "
            "commit; read via search 2026-11-25"
        ),
        "confirmed": False,  # main has later additions not listed here
        "files": {
            ".gitattributes": 1_480,
            "150_16_swin_l_oneformer_coco_100ep.pth": 949_602_739,
            "250_16_swin_l_oneformer_ade20k_160k.pth": 949_729_587,
            "ControlNetHED.pth": 29_400_000,
            "README.md": 23,
            "RealESRGAN_x4plus.pth": 67_000_000,
            "ZoeD_M12_N.pt": 1_443_406_099,
            "body_pose_model.pth": 209_267_595,  # fetched by OpenposeDetector.from_pretrained
            "dpt_hybrid-midas-501f0c75.pt": 492_757_791,  # fetched by MidasDetector (dpt_hybrid)
            "facenet.pth": 153_718_792,  # fetched by OpenposeDetector.from_pretrained
            "hand_pose_model.pth": 147_341_049,  # fetched by OpenposeDetector.from_pretrained
            "mlsd_large_512_fp32.pth": 6_341_481,
            "netG.pth": 218_000_000,
            "network-bsds500.pth": 58_871_680,
            "scannet.pt": 291_000_000,
            "sk_model.pth": 17_200_000,
            "sk_model2.pth": 17_200_000,
            "table5_pidinet.pth": 2_870_000,
            "upernet_global_small.pth": 206_000_000,
        },
        "exact_sizes": [
            "150_16_swin_l_oneformer_coco_100ep.pth", "250_16_swin_l_oneformer_ade20k_160k.pth",
            "README.md", "ZoeD_M12_N.pt", "body_pose_model.pth", "dpt_hybrid-midas-501f0c75.pt",
            "facenet.pth", "hand_pose_model.pth", "mlsd_large_512_fp32.pth", "network-bsds500.pth",
        ],
        "inferred": [],
        # files controlnet-aux 0.0.10 downloads (checked in .venv/site-packages/controlnet_aux:
        # OpenposeDetector.from_pretrained -> hf_hub_download of body_pose_model.pth,
        # hand_pose_model.pth, facenet.pth; MidasDetector.from_pretrained(model_type="dpt_hybrid")
        # -> dpt_hybrid-midas-501f0c75.pt; the DPT backbone is built with use_pretrained=False,
        # so no timm/hub download follows).
        "fetched_by_controlnet_aux": [
            "body_pose_model.pth", "hand_pose_model.pth", "facenet.pth",
            "dpt_hybrid-midas-501f0c75.pt",
        ],
        "class_names": {},
        "note": (
            "Not a diffusers repo (flat .pth/.pt files). Later commits on main add more files "
            "(a mirror also lists ControlNetLama.pth, erika.pth, lama.ckpt, latest_net_G.pth, "
            "res101.pth); those are omitted here."
        ),
    },
    # ======================================================== for later work
    "guoyww/animatediff-motion-adapter-v1-5-3": {
        "source": "https://huggingface.co/guoyww/animatediff-motion-adapter-v1-5-3/tree/main; read via search 2026-11-25",
        "confirmed": True,
        "files": {
            ".gitattributes": 1_520,
            "README.md": 2_420,
            "config.json": 349,
            "diffusion_pytorch_model.fp16.safetensors": 1_670_000_000,
            "diffusion_pytorch_model.safetensors": 1_670_000_000,
        },
        "exact_sizes": ["config.json"],
        "inferred": [],
        "class_names": {"_class_name": "MotionAdapter"},
        "note": (
            "The page shows 1.67 GB for BOTH the default and the fp16 file (sic). _class_name from "
            "knowledge."
        ),
    },
    "damo-vilab/text-to-video-ms-1.7b": {
        "source": (
            "https://huggingface.co/ali-vilab/text-to-video-ms-1.7b/tree/main (the damo-vilab id "
            "redirects there) + unet/, vae/, tokenizer/ pages; read via search 2026-11-25"
        ),
        "confirmed": True,
        "files": {
            ".gitattributes": 1_480,
            "README.md": 6_860,
            "model_index.json": 384,
            "scheduler/scheduler_config.json": 480,
            "text_encoder/config.json": 620,
            "text_encoder/model.fp16.safetensors": 681_000_000,
            "text_encoder/model.safetensors": 1_360_000_000,
            "text_encoder/pytorch_model.bin": 1_360_000_000,
            "text_encoder/pytorch_model.fp16.bin": 681_000_000,
            "tokenizer/merges.txt": _TOK_MERGES,
            "tokenizer/special_tokens_map.json": 460,
            "tokenizer/tokenizer_config.json": 755,
            "tokenizer/vocab.json": _TOK_VOCAB,
            "unet/config.json": 787,
            "unet/diffusion_pytorch_model.bin": 5_650_000_000,
            "unet/diffusion_pytorch_model.fp16.bin": 2_820_000_000,
            "unet/diffusion_pytorch_model.fp16.safetensors": 2_820_000_000,
            "unet/diffusion_pytorch_model.safetensors": 5_650_000_000,
            "vae/config.json": 657,
            "vae/diffusion_pytorch_model.bin": 335_000_000,
            "vae/diffusion_pytorch_model.fp16.bin": 167_000_000,
            "vae/diffusion_pytorch_model.fp16.safetensors": 167_000_000,
            "vae/diffusion_pytorch_model.safetensors": 335_000_000,
        },
        "exact_sizes": [
            "model_index.json", "tokenizer/merges.txt", "tokenizer/special_tokens_map.json",
            "tokenizer/tokenizer_config.json", "tokenizer/vocab.json", "unet/config.json",
            "vae/config.json",
        ],
        "inferred": [
            "scheduler/scheduler_config.json", "text_encoder/config.json",
            "text_encoder/model.fp16.safetensors", "text_encoder/model.safetensors",
            "text_encoder/pytorch_model.bin", "text_encoder/pytorch_model.fp16.bin",
        ],
        "class_names": {
            "_class_name": "TextToVideoSDPipeline",
            "scheduler": ["diffusers", "DDIMScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet3DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        },
        "note": (
            "Repo now lives at ali-vilab/text-to-video-ms-1.7b (Hub redirects the damo-vilab id). "
            "No safety_checker / feature_extractor. Pipeline class confirmed by Hub tag; component "
            "classes from knowledge. text_encoder/ contents not seen (OpenCLIP-H text tower sizes "
            "estimated)."
        ),
    },
    "Wan-AI/Wan2.1-T2V-1.3B-Diffusers": {
        "source": (
            "https://huggingface.co/Wan-AI/Wan2.1-T2V-1.3B-Diffusers/tree/main/transformer, .../text_encoder and "
            ".../examples (commit 5af5c01 'Diffusers-format weights (#1)'); tokenizer/ from the wan-community "
            "duplicate of this repo and Wan-AI/Wan2.1-T2V-14B-Diffusers/tree/main/tokenizer (the same files); "
            "the root and scheduler/ from the 14B repo's 'Diffusers-format weights (#1)' commit file list; "
            "vae size from NOTES (508 MB; a-r-r-o-w/Wan-VACE-1.3B-diffusers/vae shows the same); read via "
            "search 2026-11-30"
        ),
        "confirmed": False,  # transformer/, text_encoder/ and examples/ seen for this repo; the rest inferred
        "files": {
            ".gitattributes": 1_570,
            "README.md": 16_000,
            "examples/i2v_input.JPG": 251_000,
            "model_index.json": 408,
            "scheduler/scheduler_config.json": 800,
            "text_encoder/config.json": 854,
            "text_encoder/model-00001-of-00005.safetensors": 4_970_000_000,
            "text_encoder/model-00002-of-00005.safetensors": 4_900_000_000,
            "text_encoder/model-00003-of-00005.safetensors": 4_970_000_000,
            "text_encoder/model-00004-of-00005.safetensors": 5_000_000_000,
            "text_encoder/model-00005-of-00005.safetensors": 2_890_000_000,
            "text_encoder/model.safetensors.index.json": 22_500,
            "tokenizer/special_tokens_map.json": 7_080,
            "tokenizer/spiece.model": 4_550_000,
            "tokenizer/tokenizer.json": 16_800_000,
            "tokenizer/tokenizer_config.json": 61_800,
            "transformer/config.json": 465,
            "transformer/diffusion_pytorch_model-00001-of-00002.safetensors": 5_000_000_000,
            "transformer/diffusion_pytorch_model-00002-of-00002.safetensors": 677_000_000,
            "transformer/diffusion_pytorch_model.safetensors.index.json": 73_300,
            "vae/config.json": 724,
            "vae/diffusion_pytorch_model.safetensors": 508_000_000,
        },
        "exact_sizes": ["text_encoder/config.json", "transformer/config.json"],
        "inferred": [
            ".gitattributes", "README.md", "model_index.json", "scheduler/scheduler_config.json",
            "tokenizer/special_tokens_map.json", "tokenizer/spiece.model", "tokenizer/tokenizer.json",
            "tokenizer/tokenizer_config.json", "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
        ],
        "class_names": {
            "_class_name": "WanPipeline",
            "_diffusers_version": "0.33.0.dev0",
            "scheduler": ["diffusers", "UniPCMultistepScheduler"],
            "text_encoder": ["transformers", "UMT5EncoderModel"],
            "tokenizer": ["transformers", "T5TokenizerFast"],
            "transformer": ["diffusers", "WanTransformer3DModel"],
            "vae": ["diffusers", "AutoencoderKLWan"],
        },
        "note": (
            "Weights in fp32 (no fp16 variants): the transformer in 2 safetensors shards (5.68 GB), the UMT5-XXL "
            "text encoder in 5 (22.7 GB), each with its *.safetensors.index.json. The tokenizer ships both "
            "tokenizer.json and spiece.model: the fast tokenizer loads from tokenizer.json alone. "
            "model_index.json as the 14B repo's (408 Bytes there); scheduler UniPC, flow_prediction, "
            "use_flow_sigmas, flow_shift 3.0 (the published config of the 1.3B model)."
        ),
    },
    "Wan-AI/Wan2.1-VACE-1.3B-diffusers": {
        "source": (
            "https://huggingface.co/Wan-AI/Wan2.1-VACE-1.3B-diffusers/tree/main/transformer (7.15 GB; commit 72ff8bd "
            "'Diffusers format weights (#1)' by hanzhn) and .../tree/main/text_encoder (the same commit); the "
            "transformer's config (vace_layers 0, 2, ..., 28; vace_in_channels 96) from callgg/wan-decoder's copy; "
            "tokenizer/, vae/ and scheduler/ from a-r-r-o-w/Wan-VACE-1.3B-diffusers (the pre-release upload whose "
            "text_encoder/ listing is the same as this repo's, byte for byte); read via search 2026-11-30"
        ),
        # transformer/ and text_encoder/ seen for this repo; tokenizer/, vae/, scheduler/ from the pre-release
        # upload; the root files not seen
        "confirmed": False,
        "files": {
            ".gitattributes": 1_570,
            "README.md": 16_000,
            "model_index.json": 408,
            "scheduler/scheduler_config.json": 751,
            "text_encoder/config.json": 850,
            "text_encoder/model-00001-of-00003.safetensors": 4_940_000_000,
            "text_encoder/model-00002-of-00003.safetensors": 4_980_000_000,
            "text_encoder/model-00003-of-00003.safetensors": 1_440_000_000,
            "text_encoder/model.safetensors.index.json": 22_500,
            "tokenizer/special_tokens_map.json": 7_080,
            "tokenizer/spiece.model": 4_550_000,
            "tokenizer/tokenizer.json": 16_837_459,
            "tokenizer/tokenizer_config.json": 61_800,
            "transformer/config.json": 662,
            "transformer/diffusion_pytorch_model-00001-of-00002.safetensors": 5_000_000_000,
            "transformer/diffusion_pytorch_model-00002-of-00002.safetensors": 2_150_000_000,
            "transformer/diffusion_pytorch_model.safetensors.index.json": 114_000,
            "vae/config.json": 724,
            "vae/diffusion_pytorch_model.safetensors": 508_000_000,
        },
        "exact_sizes": ["scheduler/scheduler_config.json", "text_encoder/config.json", "tokenizer/tokenizer.json",
                        "transformer/config.json", "vae/config.json"],
        "inferred": [".gitattributes", "README.md", "model_index.json"],
        "class_names": {
            "_class_name": "WanVACEPipeline",
            "scheduler": ["diffusers", "UniPCMultistepScheduler"],
            "text_encoder": ["transformers", "UMT5EncoderModel"],
            "tokenizer": ["transformers", "T5TokenizerFast"],
            "transformer": ["diffusers", "WanVACETransformer3DModel"],
            "vae": ["diffusers", "AutoencoderKLWan"],
        },
        "note": (
            "Not the T2V repo's layout: the UMT5-XXL text encoder is in bfloat16 here, 3 shards (11.4 GB; the T2V "
            "repo's is the same checkpoint in float32, 5 shards, 22.7 GB), and the transformer is 7.15 GB in 2 "
            "shards (5 GB + 2.15 GB): its 1.42 B Wan parameters in float32 (5.68 GB, as the T2V transformer) and "
            "the 0.73 B of its 15 VACE blocks in bfloat16 (1.47 GB), going by the sizes. The tokenizer (4 files, "
            "21.5 MB) and the VAE (508 MB) are the T2V model's. The app reads the tokenizer, text encoder and VAE "
            "from the T2V repo (WAN_VACE_MODEL.shared_roles), so it fetches only transformer/ and scheduler/ here. "
            "tokenizer.json size exact from an LFS pointer of a mirror of the VACE 14B repo (same file)."
        ),
    },
    "nvidia/AnyFlow-Wan2.1-T2V-1.3B-Diffusers": {
        "source": (
            "README.md and .gitattributes pages of https://huggingface.co/nvidia/AnyFlow-Wan2.1-T2V-1.3B-Diffusers "
            "(license: other, base_model Wan-AI/Wan2.1-T2V-1.3B-Diffusers, pipeline_tag text-to-video); "
            "nvidia/AnyFlow-Wan2.1-T2V-14B-Diffusers/blob/main/model_index.json and .../transformer/config.json "
            "(the NVlabs converter's class names); the converters NVlabs/AnyFlow scripts/convert_model/"
            "convert_anyflow_to_diffusers.py and diffusers' scripts/convert_anyflow_to_diffusers.py (text encoder, "
            "tokenizer and VAE re-saved from Wan-AI/Wan2.1-T2V-1.3B-Diffusers; the transformer cast to bfloat16 by "
            "NVlabs' before saving; FlowMap scheduler with shift 5); read via search and the repos 2026-11-30"
        ),
        "confirmed": False,  # no tree page of this repo was found: the listing is inferred from its converter
        "files": {
            ".gitattributes": 1_570,
            "README.md": 6_000,
            "model_index.json": 520,
            "scheduler/scheduler_config.json": 160,
            "text_encoder/config.json": 854,
            "text_encoder/model-00001-of-00005.safetensors": 4_970_000_000,
            "text_encoder/model-00002-of-00005.safetensors": 4_900_000_000,
            "text_encoder/model-00003-of-00005.safetensors": 4_970_000_000,
            "text_encoder/model-00004-of-00005.safetensors": 5_000_000_000,
            "text_encoder/model-00005-of-00005.safetensors": 2_890_000_000,
            "text_encoder/model.safetensors.index.json": 22_500,
            "tokenizer/special_tokens_map.json": 7_080,
            "tokenizer/spiece.model": 4_550_000,
            "tokenizer/tokenizer.json": 16_800_000,
            "tokenizer/tokenizer_config.json": 61_800,
            "transformer/config.json": 780,
            "transformer/diffusion_pytorch_model.safetensors": 2_843_600_000,
            "vae/config.json": 724,
            "vae/diffusion_pytorch_model.safetensors": 508_000_000,
        },
        "exact_sizes": [],
        "inferred": [
            "model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
            "text_encoder/model-00001-of-00005.safetensors", "text_encoder/model-00002-of-00005.safetensors",
            "text_encoder/model-00003-of-00005.safetensors", "text_encoder/model-00004-of-00005.safetensors",
            "text_encoder/model-00005-of-00005.safetensors", "text_encoder/model.safetensors.index.json",
            "tokenizer/special_tokens_map.json", "tokenizer/spiece.model", "tokenizer/tokenizer.json",
            "tokenizer/tokenizer_config.json", "transformer/config.json",
            "transformer/diffusion_pytorch_model.safetensors", "vae/config.json",
            "vae/diffusion_pytorch_model.safetensors",
        ],
        "class_names": {
            "_class_name": "WanAnyFlowPipeline",
            "_diffusers_version": "0.35.1",
            "scheduler": ["far.schedulers.scheduling_flowmap_euler_discrete", "FlowMapDiscreteScheduler"],
            "text_encoder": ["transformers", "UMT5EncoderModel"],
            "tokenizer": ["transformers", "T5TokenizerFast"],
            "transformer": ["far.models.transformer_far_wan_model", "FAR_Wan_Transformer3DModel"],
            "vae": ["diffusers", "AutoencoderKLWan"],
        },
        "note": (
            "Inferred: the 14B repo's model_index.json names the NVlabs classes (WanAnyFlowPipeline, "
            "FAR_Wan_Transformer3DModel, FlowMapDiscreteScheduler), so this one was written by the same converter: "
            "the transformer (Wan 2.1 1.3B plus the flow map's delta-time embedder: 1,421,752,384 parameters) "
            "saved in bfloat16 as one file (diffusers' 10 GB shard default), the T2V repo's text encoder, "
            "tokenizer and VAE saved again (float32: 5 shards as the T2V repo's). The app loads the transformer "
            "as diffusers' AnyFlowTransformer3DModel (the same parameter names; the NVlabs config's extra keys "
            "are ignored) and the scheduler as FlowMapEulerDiscreteScheduler, and reads the text encoder, "
            "tokenizer and VAE from the T2V repo (WAN_FAST_MODEL.shared_roles): it fetches transformer/ and "
            "scheduler/ only. The weights' licence is NVIDIA's (the card: license other), not Apache-2.0."
        ),
    },
    # ------------------------------------------------------------ CogVideoX engine
    "THUDM/CogVideoX-2b": {
        "source": (
            "https://huggingface.co/zai-org/CogVideoX-2b/tree/main (the THUDM id redirects there; 13.8 GB) and "
            ".../tree/main/text_encoder; THUDM/CogVideoX-2b/tree/main/vae (1137dac 'Upload VAE in fp32 (#13)'), "
            ".../tree/<rev>/transformer, .../tree/refs/pr/12/tokenizer, .../blob/refs/pr/2/scheduler/"
            "scheduler_config.json, the blame pages of transformer/config.json and vae/config.json; read via "
            "search 2026-11-30"
        ),
        "confirmed": True,
        "files": {
            ".gitattributes": 1_520,
            ".gitignore": 83,
            "LICENSE": 11_400,
            "README.md": 16_500,
            "README_zh.md": 15_500,
            "model_index.json": 411,
            "scheduler/scheduler_config.json": 482,
            "text_encoder/config.json": 783,
            "text_encoder/model-00001-of-00002.safetensors": 4_990_000_000,
            "text_encoder/model-00002-of-00002.safetensors": 4_530_000_000,
            "text_encoder/model.safetensors.index.json": 19_900,
            "tokenizer/added_tokens.json": 2_590,
            "tokenizer/special_tokens_map.json": 2_540,
            "tokenizer/spiece.model": 792_000,
            "tokenizer/tokenizer_config.json": 20_600,
            "transformer/config.json": 758,
            "transformer/diffusion_pytorch_model.safetensors": 3_390_000_000,
            "vae/config.json": 879,
            "vae/diffusion_pytorch_model.safetensors": 862_000_000,
        },
        "exact_sizes": [
            ".gitignore", "model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
            "transformer/config.json", "vae/config.json",
        ],
        "inferred": [],
        "class_names": {
            "_class_name": "CogVideoXPipeline",
            "_diffusers_version": "0.30.0.dev0",
            "scheduler": ["diffusers", "CogVideoXDDIMScheduler"],
            "text_encoder": ["transformers", "T5EncoderModel"],
            "tokenizer": ["transformers", "T5Tokenizer"],
            "transformer": ["diffusers", "CogVideoXTransformer3DModel"],
            "vae": ["diffusers", "AutoencoderKLCogVideoX"],
        },
        "note": (
            "No fp16 variants: the transformer is one fp16 safetensors file (3.39 GB), the T5 v1.1 XXL text "
            "encoder two fp16 shards with their index (9.52 GB), the VAE fp32 (862 MB since #13; 431 MB fp16 "
            "before). The tokenizer has spiece.model and NO tokenizer.json: transformers then needs sentencepiece "
            "and protobuf to build it. model_index.json from a verified duplicate of this repo (411 Bytes, as here)."
        ),
    },
    "latent-consistency/lcm-lora-sdv1-5": {
        "source": "https://huggingface.co/latent-consistency/lcm-lora-sdv1-5/tree/main; read via search 2026-11-25",
        "confirmed": True,
        "files": {
            ".gitattributes": 1_520,
            "README.md": 7_210,
            "image.png": 390_000,
            "pytorch_lora_weights.safetensors": 134_621_556,
        },
        "exact_sizes": ["pytorch_lora_weights.safetensors"],
        "inferred": [],
        "class_names": {},
        "note": "LoRA weights only (load_lora_weights); no config.json. Weight size exact (several manifests, sha256 8f90d840...).",
    },
    "ByteDance/AnimateDiff-Lightning": {
        "source": "https://huggingface.co/ByteDance/AnimateDiff-Lightning/tree/main (+ other revisions); read via search 2026-11-25",
        "confirmed": True,
        "files": {
            ".gitattributes": 1_600,
            "LICENSE.md": 14_300,
            "README.md": 6_550,
            "animatediff_lightning_1step_comfyui.safetensors": 909_000_000,
            "animatediff_lightning_1step_diffusers.safetensors": 908_000_000,
            "animatediff_lightning_2step_comfyui.safetensors": 909_000_000,
            "animatediff_lightning_2step_diffusers.safetensors": 908_000_000,
            "animatediff_lightning_4step_comfyui.safetensors": 909_000_000,
            "animatediff_lightning_4step_diffusers.safetensors": 908_000_000,
            "animatediff_lightning_8step_comfyui.safetensors": 909_000_000,
            "animatediff_lightning_8step_diffusers.safetensors": 908_000_000,
            "animatediff_lightning_report.pdf": 9_190_000,
            "animatediff_lightning_samples_t2v.mp4": 1_400_000,
            "animatediff_lightning_samples_v2v.mp4": 2_000_000,
            "comfyui/animatediff_lightning_workflow.json": 10_000,
            "comfyui/animatediff_lightning_v2v_openpose_workflow.json": 30_000,
        },
        "exact_sizes": [],
        # listings were cut off after the t2v sample; the rest is from memory
        "inferred": [
            "animatediff_lightning_samples_v2v.mp4",
            "comfyui/animatediff_lightning_workflow.json",
            "comfyui/animatediff_lightning_v2v_openpose_workflow.json",
        ],
        "class_names": {},
        "note": (
            "Bare state-dicts for diffusers MotionAdapter (load_state_dict), no config.json. Repo "
            "total shown as 7.28 GB. comfyui/ folder confirmed, its file names inferred."
        ),
    },
    "madebyollin/taesd": {
        "source": "https://huggingface.co/madebyollin/taesd/tree/931366c (12 commits; latest revision found); read via search 2026-11-25",
        "confirmed": True,
        "files": {
            ".gitattributes": 1_520,
            "README.md": 1_250,
            "config.json": 551,
            "diffusion_pytorch_model.bin": 9_830_000,
            "diffusion_pytorch_model.safetensors": 9_793_292,
            "taesd_decoder.safetensors": 4_900_000,
            "taesd_encoder.safetensors": 4_900_000,
        },
        "exact_sizes": ["config.json", "diffusion_pytorch_model.safetensors"],
        "inferred": [],
        "class_names": {"_class_name": "AutoencoderTiny"},
        "note": (
            "safetensors size exact from a third-party manifest of .../resolve/main/... "
            "(sha256 db169d69...). Tree page for 'main' itself not found; 931366c was the newest "
            "revision seen. _class_name from knowledge."
        ),
    },
}

"""Single files as ComfyUI users have them: a transformer file (prefixed, original names, any float dtype or
fp8 scaled), `umt5_xxl_*` text encoders, `wan_2.1_vae` / `wan2.2_vae`, `clip_vision_h`, an A14B pair, and a
ComfyUI models folder; each loads to the same outputs as the diffusers folder layout of the same weights."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_image
from safetensors.torch import save_file
from test_encoders import UMT5_TO_WAN_T5
from test_loading import DIFFUSERS_TO_ORIGINAL
from test_vae import _to_original as _vae_to_original

import yingxi
from yingxi.errors import InputError, ModelNotFoundError
from yingxi.models.loading import read_state_dict, rename_keys
from yingxi.models.wan.vae import WanVAEConfig
from yingxi.models.wan.vae_loading import PRESETS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "wan"))
from tiny import build_tiny_pipeline, tiny_dit_config, tiny_transformer  # noqa: E402

# Detection reads heads as width // 128 (as ComfyUI); CLIP heads as width // 80 (open-clip ViT-H): the tiny
# parts here keep those head widths so their files are told apart as real ones are.
CLIP_DIM = 80
PROMPT = "a cat walks on the beach at sunset"
FP32 = 1e-5  # same weights through two loaders; CPU kernels may round differently by a few ulps


def _tiny_parts(kind: str, seed: int = 0):
    from diffusers import WanTransformer3DModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    pipe = build_tiny_pipeline(kind, seed)
    cfg = dict(tiny_dit_config(kind), num_attention_heads=1, attention_head_dim=128)
    if cfg["image_dim"] is not None:
        cfg.update(image_dim=CLIP_DIM, added_kv_proj_dim=128)
    dits = []
    for i in range(2 if kind.startswith("a14b") else 1):
        torch.manual_seed(seed + i)
        dit = WanTransformer3DModel(**cfg).eval()
        ref = tiny_transformer("t2v", seed + i)  # borrow its perturbation helper's effect: move off init
        with torch.no_grad():
            for p in dit.parameters():
                p.add_(0.02 * torch.randn(p.shape))
        del ref
        dits.append(dit)
    pipe.register_modules(transformer=dits[0])
    if len(dits) > 1:
        pipe.register_modules(transformer_2=dits[1])
    if kind in ("i2v", "flf2v"):
        clip_cfg = CLIPVisionConfig(
            hidden_size=CLIP_DIM, projection_dim=16, num_hidden_layers=3, num_attention_heads=1,
            intermediate_size=32, image_size=32, patch_size=8, hidden_act="gelu",
        )  # fmt: skip
        torch.manual_seed(seed + 9)
        pipe.register_modules(image_encoder=CLIPVisionModelWithProjection(clip_cfg).eval())
    return pipe


def _write_files(pipe, kind: str, out: Path, *, dit_dtype=torch.float32, names: dict | None = None) -> dict:
    """The parts of `pipe` as ComfyUI's single files; returns {part: path}."""
    names = {
        "model": "wan2.1_t2v_1.3B_fp16.safetensors",
        "model_2": "wan2.2_t2v_low_noise_14B_fp16.safetensors",
        "text_encoder": "umt5_xxl_fp16.safetensors",
        "vae": "wan_2.1_vae.safetensors",
        "image_encoder": "clip_vision_h.safetensors",
        **(names or {}),
    }
    folders = {"model": "diffusion_models", "model_2": "diffusion_models", "text_encoder": "text_encoders",
               "vae": "vae", "image_encoder": "clip_vision"}  # fmt: skip
    paths = {}

    def put(part: str, state: dict) -> None:
        path = out / "models" / folders[part] / names[part]
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
        paths[part] = path

    for part, dit in (("model", pipe.transformer), ("model_2", getattr(pipe, "transformer_2", None))):
        if dit is not None:
            sd = rename_keys(dit.state_dict(), DIFFUSERS_TO_ORIGINAL)
            put(part, {f"model.diffusion_model.{k}": v.to(dit_dtype) for k, v in sd.items()})
    te = {k: v for k, v in pipe.text_encoder.state_dict().items() if k != "encoder.embed_tokens.weight"}
    put("text_encoder", te)
    vae_cfg = WanVAEConfig.from_diffusers(dict(pipe.vae.config))
    put("vae", {_vae_to_original(k, vae_cfg): v for k, v in pipe.vae.state_dict().items()})
    if getattr(pipe, "image_encoder", None) is not None:
        put("image_encoder", pipe.image_encoder.state_dict())
    pipe.tokenizer.save_pretrained(out / "models" / "text_encoders" / "tokenizer")
    return paths


@pytest.fixture(autouse=True)
def tiny_vae_preset(monkeypatch):
    """A real wan_2.1_vae file is the preset architecture; the tiny one stands in for it (as in test_load)."""
    from tiny import tiny_vae

    monkeypatch.setitem(PRESETS, "2.1", WanVAEConfig.from_diffusers(dict(tiny_vae("t2v").config)))
    monkeypatch.setitem(PRESETS, "2.2", WanVAEConfig.from_diffusers(dict(tiny_vae("ti2v").config)))


@pytest.fixture(scope="module")
def t2v(tmp_path_factory):
    root = tmp_path_factory.mktemp("single-t2v")
    pipe = _tiny_parts("t2v")
    pipe.save_pretrained(root / "folder", safe_serialization=True)
    return root, _write_files(pipe, "t2v", root / "comfy")


def _run(pipe, **kw):
    g = torch.Generator().manual_seed(0)
    z, side = (48, 2) if pipe.variant.vae == "2.2" else (16, 4)  # 32 px over the VAE's 16x or 8x stride
    latents = torch.randn(1, z, 2, side, side, generator=g)
    return pipe(PROMPT, width=32, height=32, num_frames=5, num_inference_steps=2, guidance_scale=3.0, shift=3.0,
                latents=latents, **kw)  # fmt: skip


def test_t2v_files_give_the_frames_of_the_folder(t2v):
    root, files = t2v
    ref = yingxi.load_pipeline(root / "folder")
    ours = yingxi.load_pipeline(files["model"], vae=files["vae"], text_encoder=files["text_encoder"])
    assert ours.variant.name == "wan2.1_t2v_1.3B_fp16" and ours.variant.tasks == ("t2v",)
    a, b = _run(ref), _run(ours)
    assert a.shape == b.shape == (5, 32, 32, 3) and a.std() > 1.0
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # uint8 rounding of fp32-equal outputs
    emb_ref = ref.components.text_encoder.encode(PROMPT)
    assert (ours.components.text_encoder.encode(PROMPT) - emb_ref).abs().max().item() <= FP32


def test_comfy_root_finds_parts_by_name_and_suggests_the_closest(t2v, monkeypatch):
    root, files = t2v
    pipe = yingxi.load_pipeline("wan2.1_t2v_1.3B_fp16", comfy_root=root / "comfy")  # no extension
    assert pipe.components.vae is not None and pipe.components.text_encoder is not None
    monkeypatch.setenv("YINGXI_COMFY_ROOT", str(root / "comfy"))
    pipe = yingxi.load_pipeline("wan2.1_t2v_1.3B_fp16.safetensors")
    assert pipe.components.text_encoder is not None
    with pytest.raises(InputError, match=r'did you mean "wan2\.1_t2v_1\.3B_fp16\.safetensors"') as info:
        yingxi.load_pipeline("wan2.1_t2v_1.3B_fp61")
    assert info.value.field == "model"
    with pytest.raises(InputError, match=r'did you mean "wan_2\.1_vae\.safetensors"'):
        yingxi.load_pipeline("wan2.1_t2v_1.3B_fp16", vae="wan_2.1_vea")


def test_a_transformer_file_alone_says_what_is_missing(t2v):
    _root, files = t2v
    with pytest.raises(ModelNotFoundError, match=r"--vae FILE \(ComfyUI: wan_2\.1_vae\.safetensors\)"):
        yingxi.load_pipeline(files["model"])
    with pytest.raises(InputError, match=r"--model-variant: only for a model given as single files"):
        yingxi.load_pipeline("wan2.1-t2v-1.3b", variant="wan2.1-t2v-1.3b")


def test_fp16_file_and_fp8_scaled_text_encoder(tmp_path, t2v):
    root, files = t2v
    ref = yingxi.load_pipeline(root / "folder")
    sd = read_state_dict(files["model"])
    save_file({k: v.half() for k, v in sd.items()}, str(tmp_path / "wan2.1_t2v_1.3B_fp16.safetensors"))
    te = read_state_dict(files["text_encoder"])
    scaled, dequant = {"scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn)}, {}
    for k, v in te.items():
        if k.endswith(".weight") and v.ndim == 2 and k != "shared.weight":
            scale = v.abs().max().float() / 448.0
            q = (v / scale).to(torch.float8_e4m3fn)
            scaled[k], scaled[k.removesuffix(".weight") + ".scale_weight"] = q, scale.reshape(1)
            dequant[k] = q.float() * scale
        else:
            scaled[k] = dequant[k] = v
    save_file(scaled, str(tmp_path / "umt5_xxl_fp8_e4m3fn_scaled.safetensors"))
    (tmp_path / "tokenizer").symlink_to(files["text_encoder"].parent / "tokenizer")
    pipe = yingxi.load_pipeline(
        tmp_path / "wan2.1_t2v_1.3B_fp16.safetensors", vae=files["vae"],
        text_encoder=tmp_path / "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
    )  # fmt: skip
    # The transformer: fp16-rounded weights, computed in fp32: equal to the fp16-rounded reference.
    dit_ref = ref.components.transformer
    x, t, text = torch.randn(1, 16, 2, 4, 4), torch.tensor([500.0]), torch.randn(1, 8, 32)
    with torch.no_grad():
        for p in dit_ref.parameters():
            p.copy_(p.half().float())
        assert (pipe.components.transformer(x, t, text) - dit_ref(x, t, text)).abs().max().item() <= FP32
    # The fp8 encoder equals the dequantized weights (ComfyUI's weight * scale_weight) in fp32.
    from transformers import UMT5EncoderModel

    exact = UMT5EncoderModel(ref.components.text_encoder.model.config).eval()
    exact.load_state_dict({**dequant, "encoder.embed_tokens.weight": dequant["shared.weight"]})
    ref.components.text_encoder.model = exact
    got = pipe.components.text_encoder.encode(PROMPT)
    assert (got - ref.components.text_encoder.encode(PROMPT)).abs().max().item() <= FP32


def test_wan_original_t5_pth_loads_as_the_text_encoder(tmp_path, t2v):
    root, files = t2v
    ref = yingxi.load_pipeline(root / "folder")
    te = rename_keys(read_state_dict(files["text_encoder"]), UMT5_TO_WAN_T5)
    torch.save(te, tmp_path / "models_t5_umt5-xxl-enc-bf16.pth")
    with pytest.raises(ModelNotFoundError, match=r"no UMT5 tokenizer found; give one with --tokenizer DIR"):
        yingxi.load_pipeline(files["model"], vae=files["vae"], text_encoder=tmp_path / "models_t5_umt5-xxl-enc-bf16.pth")  # fmt: skip
    pipe = yingxi.load_pipeline(
        files["model"], vae=files["vae"], text_encoder=tmp_path / "models_t5_umt5-xxl-enc-bf16.pth",
        tokenizer=files["text_encoder"].parent / "tokenizer",
    )  # fmt: skip
    got = pipe.components.text_encoder.encode(PROMPT)
    assert (got - ref.components.text_encoder.encode(PROMPT)).abs().max().item() <= FP32


def test_i2v_with_clip_vision_h_and_the_480p_720p_choice(tmp_path):
    pipe_ref = _tiny_parts("i2v")
    pipe_ref.save_pretrained(tmp_path / "folder", safe_serialization=True)
    files = _write_files(pipe_ref, "i2v", tmp_path / "comfy", names={"model": "my_i2v_model.safetensors"})
    ref = yingxi.load_pipeline(tmp_path / "folder")
    with pytest.raises(InputError, match=r"could be wan2\.1-i2v-14b-480p or wan2\.1-i2v-14b-720p .*"
                       r"--model-variant wan2\.1-i2v-14b-480p") as info:  # fmt: skip
        yingxi.load_pipeline(files["model"], comfy_root=tmp_path / "comfy")
    assert info.value.field == "model_variant"
    ours = yingxi.load_pipeline(files["model"], comfy_root=tmp_path / "comfy", variant="wan2.1-i2v-14b-720p")
    assert ours.variant.shift == 5.0 and ours.variant.needs_image_encoder  # the 720p model's defaults
    image = random_image(48, 40, seed=1)
    a = ours.components.image_encoder.encode(image)
    b = ref.components.image_encoder.encode(image)
    assert a.shape == b.shape and (a - b).abs().max().item() <= FP32
    frames_a, frames_b = _run(ref, image=image), _run(ours, image=image)
    assert np.abs(frames_a.astype(int) - frames_b.astype(int)).max() <= 1


def test_a14b_pair_by_name_and_order(tmp_path):
    pipe_ref = _tiny_parts("a14b-t2v")
    pipe_ref.save_pretrained(tmp_path / "folder", safe_serialization=True)
    names = {"model": "wan2.2_t2v_high_noise_14B_fp16.safetensors"}
    files = _write_files(pipe_ref, "a14b-t2v", tmp_path / "comfy", names=names)
    ref = yingxi.load_pipeline(tmp_path / "folder")
    ours = yingxi.load_pipeline(files["model"], model_2=files["model_2"], comfy_root=tmp_path / "comfy")
    assert ours.variant.two_experts and ours.components.transformer_2 is not None
    a, b = _run(ref), _run(ours)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    with pytest.raises(InputError, match="give the high-noise file as --model"):
        yingxi.load_pipeline(files["model_2"], model_2=files["model"], comfy_root=tmp_path / "comfy")
    with pytest.raises(InputError, match="--model HIGH_NOISE_FILE --model-2 LOW_NOISE_FILE"):
        yingxi.load_pipeline(files["model"], comfy_root=tmp_path / "comfy")


def test_cli_generates_from_a_comfy_models_folder(t2v, tmp_path, capsys):
    from tests.e2e.helpers import decode
    from yingxi.cli import main

    root, _files = t2v
    out = tmp_path / "film.mp4"
    code = main(["generate", "A kite over the sea.", "--backend", "wan", "--model", "wan2.1_t2v_1.3B_fp16",
                 "--comfy-root", str(root / "comfy"), "--size", "32x32", "--duration", "1", "--steps", "2",
                 "--device", "cpu", "-o", str(out)])  # fmt: skip
    assert code == 0 and out.is_file()
    assert "(17 frames" in capsys.readouterr().err  # 1 s at Wan 2.1's 16 fps -> 4k+1 = 17 frames shot
    frames, fps, _audio, _rate = decode(out)
    assert frames.shape == (26, 32, 32, 3) and fps == 24 and frames.std() > 1  # the film's 24 fps edit
    assert main(["generate", "x", "--model-2", "low.safetensors", "-o", str(tmp_path / "a.mp4")]) == 2
    assert main(["generate", "x", "--backend", "wan", "--model", "wan2.1_t2v_1.3B_fp61", "--comfy-root",
                 str(root / "comfy"), "-o", str(tmp_path / "b.mp4")]) == 2  # fmt: skip
    assert not (tmp_path / "b.mp4").exists()


def test_tokenizer_embedded_in_a_comfy_text_encoder_file(tmp_path, t2v):
    """ComfyUI's umt5 files may carry their SentencePiece model as `spiece_model`; ComfyUI tokenizes with it
    directly (pieces + </s>): so do we, and the embeddings follow from those ids."""
    import io

    import sentencepiece as spm

    root, files = t2v
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter([PROMPT, "dance monkey"] * 20), model_writer=buf,
                                   vocab_size=20, model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   minloglevel=2)  # fmt: skip
    te = read_state_dict(files["text_encoder"])
    te["spiece_model"] = torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)
    save_file(te, str(tmp_path / "umt5_xxl_fp16.safetensors"))  # no tokenizer folder beside it
    pipe = yingxi.load_pipeline(
        files["model"], vae=files["vae"], text_encoder=tmp_path / "umt5_xxl_fp16.safetensors"
    )
    got = pipe.components.text_encoder.encode(PROMPT)  # (1, 512, 32)
    pieces = spm.SentencePieceProcessor(model_proto=buf.getvalue()).encode(PROMPT) + [1]
    ids = torch.zeros(1, 512, dtype=torch.long)
    ids[0, : len(pieces)] = torch.tensor(pieces)
    mask = (torch.arange(512) < len(pieces)).long()[None]
    ref = yingxi.load_pipeline(root / "folder").components.text_encoder.model
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask).last_hidden_state * mask[..., None]
    assert got.shape == (1, 512, 32) and (got - want).abs().max().item() <= FP32
    assert got[0, len(pieces) :].abs().max().item() == 0.0


def test_generator_knows_a_files_capabilities_before_loading(t2v):
    from yingxi.backends.wan import WanGenerator

    _root, files = t2v
    gen = WanGenerator(str(files["model"]), files={"vae": str(files["vae"]), "text_encoder": None})
    assert gen.capabilities.conditionings == frozenset({"t2v"}) and gen._pipe is None
    assert gen.name == "wan:wan2.1_t2v_1.3B_fp16"
    with pytest.raises(ModelNotFoundError, match="--vae FILE"):
        WanGenerator(str(files["model"]))


def test_a_file_too_big_for_the_device_is_refused_before_reading(t2v, monkeypatch):
    from yingxi.models.wan import loading as wan_loading
    from yingxi.pipelines.wan import load

    _root, files = t2v
    monkeypatch.setattr(load, "_device_memory", lambda device: 1000)
    monkeypatch.setattr(wan_loading, "read_state_dict", lambda *a, **k: pytest.fail("weights were read"))
    with pytest.raises(
        InputError, match=r"take 1\.7\d MiB on the device in float32 .*more than the 0\.00 MiB"
    ):
        yingxi.load_pipeline(files["model"], vae=files["vae"])


def test_server_settings_carry_the_files_to_the_wan_backend(t2v):
    from yingxi.server.settings import ServerSettings
    from yingxi.server.worker import door_backend

    _root, files = t2v
    settings = ServerSettings(
        backend="wan", model=str(files["model"]), model_files={"vae": str(files["vae"])}
    )
    again = ServerSettings.from_dict(settings.to_dict())  # as a worker process receives them
    assert again.model_files == {"vae": str(files["vae"])}
    assert door_backend(again).capabilities.conditionings == frozenset({"t2v"})
    with pytest.raises(ValueError, match='unknown model file part "vea"'):
        ServerSettings(backend="wan", model=str(files["model"]), model_files={"vea": "x"})


def test_a_gguf_transformer_file_runs_in_the_pipeline_quantized(tmp_path, t2v):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "wan"))
    from gguf_files import write_wan_gguf

    from yingxi.models.quant import QuantLinear

    root, files = t2v
    sd = rename_keys(
        yingxi.load_pipeline(root / "folder").components.transformer.state_dict(), DIFFUSERS_TO_ORIGINAL
    )
    write_wan_gguf(
        tmp_path / "wan2.1-t2v-tiny-Q8_0.gguf", {k: v.float().numpy() for k, v in sd.items()}, "Q8_0"
    )
    pipe = yingxi.load_pipeline(tmp_path / "wan2.1-t2v-tiny-Q8_0.gguf", comfy_root=root / "comfy")
    quant = [m for m in pipe.components.transformer.modules() if isinstance(m, QuantLinear)]
    assert quant and all(m.qtype == "Q8_0" for m in quant)
    frames = _run(pipe)
    assert frames.shape == (5, 32, 32, 3) and frames.std() > 1.0


def test_ti2v_5b_files_with_the_wan22_vae(tmp_path):
    pipe_ref = _tiny_parts("ti2v")
    pipe_ref.save_pretrained(tmp_path / "folder", safe_serialization=True)
    names = {"model": "wan2.2_ti2v_5B_fp16.safetensors", "vae": "wan2.2_vae.safetensors"}
    _write_files(pipe_ref, "ti2v", tmp_path / "comfy", names=names)
    ref = yingxi.load_pipeline(tmp_path / "folder")
    ours = yingxi.load_pipeline("wan2.2_ti2v_5B_fp16", comfy_root=tmp_path / "comfy")  # the VAE by its name
    assert ours.variant.expand_timesteps and ours.variant.vae == "2.2" and ours.size_multiple == 32
    image = random_image(32, 32, seed=2)
    for kw in ({}, {"image": image}):  # text-to-video and image-to-video, one model
        a, b = _run(ref, **kw), _run(ours, **kw)
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1

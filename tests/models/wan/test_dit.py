"""Our WanDiT against diffusers' WanTransformer3DModel with the same tiny random weights (CPU)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
import torch
from diffusers import WanTransformer3DModel
from tiny import IMAGE_DIM, IMAGE_TOKENS, TEXT_DIM, save_tiny_wan

from yingxi.errors import InputError
from yingxi.models.wan.config import CLIP_TOKENS, VARIANTS, get_variant
from yingxi.models.wan.dit import KEEP_FP32, Modulation, WanDiT, rope_tables
from yingxi.models.wan.loading import load_transformer, load_transformer_pair

ROOT = Path(__file__).resolve().parents[3]
FP32_TOL = 1e-5  # fp32, same maths in the same order: observed 0.0; allow reordering noise only

B, F, H, W = 2, 3, 8, 12  # latent video; tokens L = 3 * 4 * 6 = 72 with patch (1, 2, 2)
L = F * (H // 2) * (W // 2)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("tiny_wan")
    return {k: save_tiny_wan(base / k, k) for k in ("t2v", "i2v", "flf2v", "ti2v", "a14b-i2v")}


def inputs(in_channels: int, *, image: str | None = None, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, in_channels, F, H, W, generator=g)
    text = torch.randn(B, 512, TEXT_DIM, generator=g)  # diffusers' I2V attention assumes 512 text tokens
    text[:, 20:] = 0  # zero padding past the prompt, as the text encoder returns it
    img = None
    if image == "i2v":
        img = torch.randn(B, IMAGE_TOKENS, IMAGE_DIM, generator=g)
    elif image == "flf2v":  # first and last frame stacked in the batch, as diffusers' pipeline passes them
        img = torch.randn(2 * B, IMAGE_TOKENS, IMAGE_DIM, generator=g)
    return x, text, img


def reference(folder: Path, sub: str = "transformer", **kw) -> WanTransformer3DModel:
    return WanTransformer3DModel.from_pretrained(folder / sub, **kw).eval()


def run_both(ref, ours, x, t, text, img):
    with torch.no_grad():
        want = ref(x, t, text, img, return_dict=False)[0]
        got = ours(x, t, text, img)
    return want, got


@pytest.mark.parametrize(
    "kind,image", [("t2v", None), ("i2v", "i2v"), ("flf2v", "flf2v"), ("a14b-i2v", None)]
)
def test_matches_diffusers_fp32(folders, kind, image):
    ours = load_transformer(folders[kind], dtype="fp32")
    ref = reference(folders[kind])
    x, text, img = inputs(ours.config.in_channels, image=image)
    t = torch.tensor([999.0, 312.5])
    want, got = run_both(ref, ours, x, t, text, img)
    assert got.shape == want.shape == (B, ours.config.out_channels, F, H, W)
    assert (got - want).abs().max().item() <= FP32_TOL
    assert want.abs().max().item() > 0.1  # a real signal, not two zero tensors


def test_ti2v_per_token_timesteps(folders):
    """Wan 2.2 TI2V-5B: timestep (B, L); first-frame tokens (the given image) held at t = 0."""
    ours = load_transformer(folders["ti2v"], dtype="fp32")
    ref = reference(folders["ti2v"])
    x, text, _ = inputs(48)
    mask = torch.ones(B, F, H // 2, W // 2)
    mask[:, 0] = 0
    t = mask.flatten(1) * torch.tensor([[900.0], [150.0]])  # (B, L)
    assert t.shape == (B, L)
    want, got = run_both(ref, ours, x, t, text, None)
    assert got.shape == (B, 48, F, H, W)
    assert (got - want).abs().max().item() <= FP32_TOL
    # a constant per-token timestep is the same as the scalar one
    with torch.no_grad():
        flat = ours(x, torch.full((B, L), 500.0), text)
        scalar = ours(x, torch.tensor([500.0, 500.0]), text)
    assert (flat - scalar).abs().max().item() <= FP32_TOL


def test_a14b_experts_match_diffusers(tmp_path):
    folder = save_tiny_wan(tmp_path / "a14b", "a14b-t2v")
    high, low = load_transformer_pair(folder, dtype="fp32")
    assert low is not None
    x, text, _ = inputs(16)
    t = torch.tensor([950.0, 100.0])
    for ours, sub in ((high, "transformer"), (low, "transformer_2")):
        want, got = run_both(reference(folder, sub), ours, x, t, text, None)
        assert (got - want).abs().max().item() <= FP32_TOL
    with torch.no_grad():  # two different experts, not one loaded twice
        assert (high(x, t, text) - low(x, t, text)).abs().max().item() > 1e-3


def test_flf2v_accepts_side_by_side_image_tokens(folders):
    ours = load_transformer(folders["flf2v"], dtype="fp32")
    x, text, img = inputs(36, image="flf2v")  # (2B, 17, E)
    t = torch.tensor([700.0, 20.0])
    with torch.no_grad():
        stacked = ours(x, t, text, img)
        side_by_side = ours(x, t, text, img.reshape(B, 2 * IMAGE_TOKENS, IMAGE_DIM))
    assert torch.equal(stacked, side_by_side)


def test_image_tokens_change_the_output(folders):
    ours = load_transformer(folders["i2v"], dtype="fp32")
    x, text, img = inputs(36, image="i2v")
    t = torch.tensor([500.0, 500.0])
    with torch.no_grad():
        a = ours(x, t, text, img)
        b = ours(x, t, text, torch.randn_like(img))  # (a constant shift would vanish in LayerNorm)
    assert (a - b).abs().max().item() > 1e-4


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_matches_diffusers(folders, dtype):
    """Both load with fp32 norms/modulation/time MLP; bf16 rounding differs only by op order.

    Tolerance: max abs error <= 2% of the output's max magnitude (bf16 has ~3 significant digits).
    """
    ours = load_transformer(folders["i2v"], dtype=dtype)
    ref = reference(folders["i2v"], torch_dtype=dtype)
    for name, p in ours.named_parameters():
        kept = any(part in KEEP_FP32 for part in name.split("."))
        assert p.dtype == (torch.float32 if kept else dtype), name
    ref_dtypes = {n: p.dtype for n, p in ref.named_parameters()}
    assert {n: p.dtype for n, p in ours.named_parameters()} == ref_dtypes
    x, text, img = inputs(36, image="i2v")
    t = torch.tensor([800.0, 60.0])
    want, got = run_both(ref, ours, x.to(dtype), t, text.to(dtype), img.to(dtype))
    assert got.dtype == dtype
    scale = want.float().abs().max().item()
    assert (got.float() - want.float()).abs().max().item() <= 0.02 * scale


def test_rope_bands_follow_reference_split():
    from yingxi.models.wan.config import WanDiTConfig

    cfg = WanDiTConfig(attention_head_dim=128)
    assert cfg.rope_dims == (44, 42, 42)  # h = w = 2 * (128 // 6)
    cos, sin = rope_tables(cfg, 2, 3, 4, torch.device("cpu"))
    assert cos.shape == sin.shape == (24, 64)
    assert torch.allclose(cos**2 + sin**2, torch.ones_like(cos), atol=1e-6)
    # token (t=1, h=0, w=0) rotates only the time band
    assert torch.equal(cos[12, 22:], torch.ones(42)) and not torch.equal(cos[12, :22], torch.ones(22))


def test_rope_tables_are_built_once_per_latent_grid(folders, monkeypatch):
    import yingxi.models.wan.dit as dit

    built = []

    def counting(cfg, f, h, w, device):
        built.append((f, h, w))
        return rope_tables(cfg, f, h, w, device)

    monkeypatch.setattr(dit, "rope_tables", counting)
    ours = load_transformer(folders["t2v"], dtype="fp32")
    x, text, _ = inputs(ours.config.in_channels)
    with torch.no_grad():
        first = ours(x, torch.tensor([999.0, 999.0]), text)
        for t in (700.0, 300.0):  # the steps of one clip, conditional and unconditional passes alike
            ours(x, torch.tensor([t, t]), text)
            ours(x, torch.tensor([t, t]), torch.zeros_like(text))
        again = ours(x, torch.tensor([999.0, 999.0]), text)
        ours(x[:, :, :1], torch.tensor([5.0, 5.0]), text)  # a new grid builds its own tables
    assert built == [(F, H // 2, W // 2), (1, H // 2, W // 2)]
    assert torch.equal(first, again)


def test_modulation_named_fields():
    m = Modulation(shift=torch.tensor(1.0), scale=torch.tensor(0.5), gate=torch.tensor(2.0))
    assert m.apply(torch.tensor(2.0)).item() == 2.0 * 1.5 + 1.0
    assert m._fields == ("shift", "scale", "gate")


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_runs_its_default_size_on_meta(name):
    """Full-size configs, no weights: the registry's default size and length fit each transformer."""
    v = get_variant(name)
    stride = 16 if v.vae == "2.2" else 8
    width, height = v.default_size
    latent = (1, v.dit.in_channels, (v.num_frames - 1) // 4 + 1, height // stride, width // stride)
    with torch.device("meta"):
        image = None
        if v.dit.image_dim is not None:
            image = torch.empty(2 if "flf2v" in v.tasks else 1, CLIP_TOKENS, v.dit.image_dim)
        model = WanDiT(v.dit)
        out = model(torch.empty(latent), torch.empty(1), torch.empty(1, 512, v.dit.text_dim), image)
    assert out.shape == (1, v.dit.out_channels, *latent[2:])


def test_bench_script_runs_tiny(monkeypatch, capsys):
    """bench/wan_dit_parity.py is meant for a GPU; its --tiny mode must still work on CPU."""
    script = ROOT / "bench" / "wan_dit_parity.py"
    monkeypatch.setattr(
        sys,
        "argv",
        [str(script), "--tiny", "--device", "cpu", "--dtype", "fp32", "--repeats", "1", "--blocks"],
    )
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("|")}
    assert "ours" in rows and "diffusers" in rows
    assert float(rows["ours"].split("|")[2]) > 0  # a measured step time in ms
    rel = float(out.split("relative error:")[1].split()[0])
    assert rel < 1e-5
    # the whole UniPC loop, ours against diffusers' scheduler, each model driving itself (fp32: same maths)
    loop = float(out.split("final latents relative error")[1].split()[0])
    assert "UniPC, 4 steps" in out and loop < 1e-5
    assert "| ours, offload blocks |" in out and "output equal to resident: True" in out


def test_bad_inputs_raise_typed_errors(folders):
    ours = load_transformer(folders["t2v"], dtype="fp32")
    x, text, _ = inputs(16)
    t = torch.tensor([10.0, 20.0])
    with pytest.raises(InputError, match="need 16 channels"):
        ours(x[:, :8], t, text)
    with pytest.raises(InputError, match="divisible by the patch"):
        ours(x[..., :7], t, text)
    with pytest.raises(InputError, match="no image branch") as err:
        ours(x, t, text, torch.zeros(B, IMAGE_TOKENS, IMAGE_DIM))
    assert err.value.field == "encoder_hidden_states_image"


def test_short_prompt_embeddings_are_zero_padded_to_512_as_wan_does(folders):
    """Wan's DiT pads each context with zeros to text_len=512 (wan/modules/model.py, WanModel.forward);
    a caller's (B, 20, D) embeddings must give what the padded (B, 512, D) ones give. Unpadded, diffusers'
    transformer (which does not pad) gives another answer: the softmax spreads over fewer keys."""
    ours = load_transformer(folders["t2v"] / "transformer", dtype="fp32")
    ref = reference(folders["t2v"])
    x, text, _ = inputs(16)
    short = text[:, :20]  # the prompt's tokens only
    t = torch.tensor([500.0, 500.0])
    with torch.no_grad():
        padded, unpadded = ours(x, t, text), ours(x, t, short)
        ref_padded = ref(x, t, text, return_dict=False)[0]
        ref_short = ref(x, t, short, return_dict=False)[0]
    assert (unpadded - padded).abs().max().item() == 0.0
    assert (padded - ref_padded).abs().max().item() < FP32_TOL
    assert (ref_short - ref_padded).abs().max().item() > 1e-3  # what the padding fixes

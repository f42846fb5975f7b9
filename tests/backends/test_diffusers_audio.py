"""A reference audio the picture follows, on tiny random LTX-2 pipelines (backends/diffusers_audio.py): the
clip's log-mel as LTX-2's audio processor makes it, held clean at timestep 0 in every transformer call (as
Lightricks' a2v pipeline freezes it), the picture changed by it, and the clip itself as the shot's sound."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.backends.tiny_ltx2 import save_tiny_ltx2
from tests.models.wan.tiny import save_tiny_wan
from yingxi.backends.base import ClipRequest, Conditioning
from yingxi.backends.diffusers import DiffusersGenerator
from yingxi.backends.diffusers_audio import MEL_FLOOR, N_FFT, log_mel, reference_latents
from yingxi.errors import CapabilityError, InputError, RenderError

FAST = dict(stg_scale=0.0, modality_scale=1.0, max_sequence_length=16)
RATE = 48_000


def tone(hz: float, seconds: float = 0.5, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate), dtype=np.float32) / rate
    mono = (0.4 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return np.stack([mono, mono], axis=1)  # (S, 2)


def item(samples: np.ndarray, rate: int = RATE) -> Conditioning:
    return Conditioning("audio", samples, name="bell", sample_rate=rate)


def request(**kw) -> ClipRequest:
    base = dict(prompt="a drum beats while the band plays", width=32, height=32, num_frames=9, fps=25.0,
                seed=7, steps=2, guidance=1.0)  # fmt: skip
    return ClipRequest(**{**base, **kw})


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("a2v")
    made = {kind: save_tiny_ltx2(root / kind, kind) for kind in ("t2v", "condition")}
    made["wan"] = save_tiny_wan(root / "wan", "t2v")
    return made


def test_log_mel_is_the_magnitude_stft_through_slaney_mel_filters():
    """Frame by frame against numpy's own FFT of the centred, reflect-padded, hann-windowed signal (the
    filter bank is transformers', which matches torchaudio's Slaney mel): within 1e-4 in log units."""
    from transformers.audio_utils import mel_filter_bank

    rng = np.random.default_rng(0)
    samples = (0.2 * rng.standard_normal((3200, 1))).astype(np.float32)  # 0.2 s at 16 kHz
    mel = log_mel(samples, 16000, sample_rate=16000, hop=160, mel_bins=64)
    assert mel.shape == (1, 3200 // 160 + 1, 64) and mel.dtype == np.float32
    filters = mel_filter_bank(N_FFT // 2 + 1, 64, 0.0, 8000.0, 16000, norm="slaney", mel_scale="slaney")
    padded = np.pad(samples[:, 0].astype(np.float64), N_FFT // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic hann
    for t in (0, 7, 20):
        spectrum = np.abs(np.fft.rfft(window * padded[t * 160 : t * 160 + N_FFT]))
        want = np.log(np.maximum(spectrum @ filters, MEL_FLOOR))
        np.testing.assert_allclose(mel[0, t], want, atol=1e-4)


def test_log_mel_of_a_tone_peaks_in_the_tones_band_and_is_resampled_first():
    from transformers.audio_utils import hertz_to_mel, mel_to_hertz

    mel = log_mel(tone(1000.0, 0.4), RATE, sample_rate=16000, hop=160, mel_bins=64)  # 48 kHz in
    assert mel.shape == (2, round(0.4 * 16000) // 160 + 1, 64)  # frames of the 16 kHz signal
    edges = mel_to_hertz(
        np.linspace(hertz_to_mel(0.0, "slaney"), hertz_to_mel(8000.0, "slaney"), 66), "slaney"
    )
    centre = int(np.argmin(np.abs(edges[1:-1] - 1000.0)))  # the filter centred nearest 1 kHz
    peaks = mel[0, 2:-2].argmax(axis=1)
    assert np.all(np.abs(peaks - centre) <= 1), (peaks, centre)


def frozen_calls(pipe) -> tuple[list, object]:
    """Every transformer call's audio stream and timesteps, as the transformer saw them (after our hook)."""
    calls: list[dict] = []

    def spy(module, args, kwargs, output):
        calls.append({k: kwargs[k].detach().clone() for k in ("audio_hidden_states", "audio_timestep",
                                                            "audio_sigma", "timestep") if kwargs.get(k) is not None})  # fmt: skip

    return calls, pipe.transformer.register_forward_hook(spy, with_kwargs=True)


def encoded_clip(pipe, samples: np.ndarray, length: int) -> torch.Tensor:
    """The clip as the audio VAE's posterior mean (1, C, L, M') for `length` latent frames, computed apart:
    padded to a latent frame more than asked (the causal encoder's edge), log-mel, encode, cut."""
    vae = pipe.audio_vae
    c = vae.config
    wanted = int(np.ceil((length + 1) * c.mel_hop_length * 4 / c.sample_rate * RATE))  # 4: LTX-2's time ratio
    padded = np.pad(samples[:wanted], ((0, max(0, wanted - len(samples))), (0, 0)))
    mel = log_mel(padded, RATE, sample_rate=c.sample_rate, hop=c.mel_hop_length, mel_bins=c.mel_bins)
    with torch.no_grad():
        return vae.encode(torch.from_numpy(mel)[None]).latent_dist.mode()[:, :, :length]


def test_every_transformer_call_sees_the_clip_clean_at_timestep_0(folders):
    gen = DiffusersGenerator(str(folders["t2v"]), call=FAST)
    bell = tone(660.0)
    r = request(conditioning=(item(bell),), guidance=3.0)
    calls, handle = frozen_calls(gen.pipeline)
    try:
        clip = gen.generate(r)
    finally:
        handle.remove()
    assert len(calls) >= 2  # 2 steps (guided: more passes a step, as the class runs them)
    vae = gen.pipeline.audio_vae
    assert not torch.all(vae.latents_mean == 0) and not torch.all(vae.latents_std == 1)  # normalising shows
    first = calls[0]["audio_hidden_states"]  # (B, L, C * M')
    # undo the pipeline's packing and normalisation by hand: the VAE's mean of the clip, frame for frame
    c_latent = vae.config.latent_channels
    unpacked = (first[:1] * vae.latents_std + vae.latents_mean).unflatten(2, (c_latent, -1)).transpose(1, 2)
    want = encoded_clip(gen.pipeline, bell, first.shape[1])
    assert unpacked.shape == want.shape and torch.allclose(unpacked, want, atol=1e-5)
    for call in calls:
        audio = call["audio_hidden_states"]
        assert all(torch.equal(row, first[0]) for row in audio)  # each sample of the batch, every call
        assert torch.all(call["audio_timestep"] == 0) and torch.all(call["audio_sigma"] == 0)
        assert torch.all(call["timestep"] > 0)  # the picture still denoises
    # the shot's sound is the clip it followed, cut at the shot (as LTX-2's a2v returns the input audio)
    n = round(9 / 25 * RATE)
    assert clip.sample_rate == RATE and np.array_equal(clip.audio, bell[:n])
    # without the item, the audio stream is noise that changes from step to step
    calls, handle = frozen_calls(gen.pipeline)
    try:
        gen.generate(request(guidance=3.0))
    finally:
        handle.remove()
    assert not torch.equal(calls[0]["audio_hidden_states"], calls[1]["audio_hidden_states"])
    assert "audio_timestep" not in calls[0]  # the stock call: the sound shares the picture's timestep


def test_the_latents_keep_the_clips_time(folders):
    """A clip silent for its first half and ringing after: the early latent frames are silence's, the late
    ones are not (the causal encoder looks back, never ahead), so the sound is not shifted or squeezed."""
    pipe = DiffusersGenerator(str(folders["t2v"]), call=FAST).pipeline
    silence = np.zeros((RATE, 2), np.float32)
    late = silence.copy()
    late[RATE // 2 :] = tone(880.0, 0.5)
    shape = (26, pipe.transformer.config.audio_in_channels)  # 1 s at 25 latent frames a second (+1)
    quiet = reference_latents(pipe, silence, RATE, shape, "cpu", torch.float32)
    ringing = reference_latents(pipe, late, RATE, shape, "cpu", torch.float32)
    differs = (quiet - ringing).abs().amax(dim=2)[0]  # (26,): per latent frame
    assert torch.all(differs[:11] < 1e-6) and torch.all(differs[14:] > 1e-4), differs
    with pytest.raises(RenderError, match="sound stream is"):
        reference_latents(pipe, late, RATE, (26, shape[1] + 1), "cpu", torch.float32)


def test_offloaded_audio_vae_encodes_on_the_execution_device(folders):
    """Under model/sequential offload the VAE's parameters sit elsewhere (meta, here): the clip is encoded
    on the transformer's device, with the same latents as without offload."""
    from accelerate import cpu_offload

    gen = DiffusersGenerator(str(folders["t2v"]), call=FAST)
    bell = tone(660.0)
    shape = (9, gen.pipeline.transformer.config.audio_in_channels)
    before = reference_latents(gen.pipeline, bell, RATE, shape, "cpu", torch.float32)
    cpu_offload(gen.pipeline.audio_vae, execution_device=torch.device("cpu"))
    assert next(gen.pipeline.audio_vae.parameters()).device.type == "meta"
    after = reference_latents(gen.pipeline, bell, RATE, shape, "cpu", torch.float32)
    assert torch.allclose(before, after, atol=1e-6)


def test_the_picture_follows_the_sound(folders):
    """Same seed and prompt: the clip changes the frames; the same clip gives the same frames again."""
    for kind in ("t2v", "condition"):
        gen = DiffusersGenerator(str(folders[kind]), call=FAST)
        low, high = (
            gen.generate(request(conditioning=(item(tone(220.0)),))),
            gen.generate(request(conditioning=(item(tone(3000.0)),))),
        )
        plain = gen.generate(request())
        again = gen.generate(request(conditioning=(item(tone(220.0)),)))
        assert np.array_equal(low.frames, again.frames), kind
        assert not np.array_equal(low.frames, high.frames), kind
        assert not np.array_equal(low.frames, plain.frames), kind
        assert plain.audio is None  # a shot that neither asked for sound nor followed one has none
    # a clip shorter than the shot: its latents are padded with silence's, and the shot's sound is the clip
    # as it is (the editor lays it, silence after)
    short = gen.generate(request(conditioning=(item(tone(220.0, 0.1)),)))
    assert len(short.audio) == round(0.1 * RATE)


def test_refusals_name_the_item(folders):
    gen = DiffusersGenerator(str(folders["t2v"]), call=FAST)
    two = request(conditioning=(item(tone(220.0)), item(tone(330.0))))
    with pytest.raises(InputError, match="one audio clip") as e:
        gen.check(two)
    assert e.value.field == "conditioning[1]"
    with pytest.raises(InputError, match="float32"):
        gen.check(request(conditioning=(item(tone(220.0).astype(np.float64)),)))
    with pytest.raises(InputError, match="frame 0 and strength 1"):
        gen.check(request(conditioning=(Conditioning("audio", tone(220.0), sample_rate=RATE, strength=0.5),)))
    wan = DiffusersGenerator(str(folders["wan"]))
    assert "audio" not in wan.capabilities.conditioning_kinds
    with pytest.raises(CapabilityError, match="cannot follow a reference audio") as e:
        wan.check(ClipRequest(prompt="x", width=32, height=32, num_frames=5, fps=16.0, seed=1, steps=2,
                              conditioning=(item(tone(220.0)),)))  # fmt: skip
    assert e.value.field == "conditioning[0]" and wan._pipe is None  # refused before loading weights

"""A reference audio the picture follows, on LTX-2 through diffusers: Lightricks' audio-to-video.

LTX-2 denoises picture and sound in one transformer, each stream attending to the other. Its own a2v pipeline
(Lightricks/LTX-2 `ltx_pipelines/a2vid_two_stage.py`) encodes the given clip with the audio VAE and keeps it
frozen: clean latents at timestep 0 while the video denoises, and the film keeps the original clip as its
sound. diffusers (0.42) has no such pipeline, but its LTX-2 transformer takes the audio's own timestep, so a
forward pre-hook on the transformer does the same inside the stock pipeline: every call sees the clip's clean
latents with audio_timestep = audio_sigma = 0, whatever the pipeline's noisy audio stream holds.

The clip becomes the audio VAE's input as LTX-2's audio processor makes it: mono-per-channel at the VAE's
rate, a magnitude mel spectrogram (hann window of N_FFT, its hop, Slaney mel scale and norm, 0 Hz to
Nyquist) and log(max(mel, 1e-5)), computed with transformers' audio_utils.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from yingxi.errors import RenderError
from yingxi.media.speech import resample_mono

__all__ = ["MEL_FLOOR", "N_FFT", "follows_audio", "hold_audio", "log_mel", "reference_latents"]

N_FFT = 1024  # LTX-2's audio processor: n_fft = win_length = 1024 (its VAE config keeps only rate and hop)
MEL_FLOOR = 1e-5  # log(clamp(mel, 1e-5))


def follows_audio(transformer_forward) -> bool:
    """Whether a transformer's forward takes the sound's own timestep (LTX-2's): the clip can be held clean."""
    import inspect

    try:
        names = inspect.signature(transformer_forward).parameters
    except (TypeError, ValueError):
        return False
    return {"audio_hidden_states", "audio_timestep"} <= set(names)


def log_mel(samples: np.ndarray, rate: int, *, sample_rate: int, hop: int, mel_bins: int) -> np.ndarray:
    """float32 (C, T, mel_bins): the log-mel of float32 (S, C) samples at `rate`, resampled to `sample_rate`;
    T = S' // hop + 1 frames (centred, reflect-padded)."""
    from transformers.audio_utils import mel_filter_bank, spectrogram, window_function

    filters = mel_filter_bank(num_frequency_bins=N_FFT // 2 + 1, num_mel_filters=mel_bins, min_frequency=0.0,
                              max_frequency=sample_rate / 2, sampling_rate=sample_rate, norm="slaney",
                              mel_scale="slaney")  # fmt: skip  # (N_FFT // 2 + 1, mel_bins)
    window = window_function(N_FFT, "hann")
    channels = []
    for c in range(samples.shape[1]):
        mono = resample_mono(samples[:, c], rate, sample_rate)
        if len(mono) <= N_FFT // 2:  # reflect padding needs more samples than half a window
            mono = np.pad(mono, (0, N_FFT // 2 + 1 - len(mono)))
        mel = spectrogram(mono, window, frame_length=N_FFT, hop_length=hop, fft_length=N_FFT, power=1.0,
                          center=True, pad_mode="reflect", mel_filters=filters, mel_floor=MEL_FLOOR)  # fmt: skip
        channels.append(np.log(mel).T)  # (T, mel_bins)
    return np.stack(channels).astype(np.float32)


def reference_latents(pipe, samples: np.ndarray, rate: int, shape: tuple[int, int], device, dtype):
    """The clip as the transformer's clean audio stream of `shape` (length, features): packed, normalised
    latents (1, length, C * M') from the posterior's mean of the audio VAE, encoded on `device` (the
    transformer's: under model or sequential offload the VAE's own parameters sit on the CPU or the meta
    device). A clip shorter than the shot is padded with silence, one longer is cut; an encoding that does
    not come out at the pipeline's own latent rate is a RenderError, never a clip squeezed in time."""
    import torch

    length, features = shape
    vae = pipe.audio_vae
    cfg = vae.config
    channels = int(cfg.in_channels)
    stereo = samples if samples.shape[1] >= channels else np.repeat(samples[:, :1], channels, axis=1)
    hop_seconds = cfg.mel_hop_length * vae.temporal_compression_ratio / cfg.sample_rate  # one latent frame
    wanted = int(np.ceil((length + 1) * hop_seconds * rate))  # a frame more: the causal encoder's edge
    stereo = np.pad(stereo[:wanted, :channels], ((0, max(0, wanted - len(stereo))), (0, 0)))
    mel = log_mel(stereo, rate, sample_rate=cfg.sample_rate, hop=cfg.mel_hop_length, mel_bins=cfg.mel_bins)
    with torch.no_grad():
        x = torch.from_numpy(mel)[None].to(device, vae.dtype)  # (1, C, T, mel_bins)
        latents = vae.encode(x).latent_dist.mode()  # (1, C_latent, T', M')
        packed = pipe._pack_audio_latents(latents)  # (1, T', C_latent * M')
        packed = pipe._normalize_audio_latents(packed, vae.latents_mean, vae.latents_std)
    if not length <= packed.shape[1] <= length + 3 or packed.shape[2] != features:
        raise RenderError(f"the audio VAE encodes {len(stereo) / rate:.2f} s of the reference audio to "
                          f"{tuple(packed.shape[1:])} latents, but the transformer's sound stream is "
                          f"({length}, {features}): its encoder does not compress time by the "
                          f"{vae.temporal_compression_ratio}x the pipeline assumes")  # fmt: skip
    return packed[:, :length].to(device, dtype)


@contextmanager
def hold_audio(pipe, samples: np.ndarray, rate: int) -> Iterator[None]:
    """While it is open, every call of pipe.transformer sees the clip's clean latents as its sound, at
    timestep 0 (frozen, as LTX-2's a2v holds it)."""
    cache: dict = {}

    def hook(module, args, kwargs):
        audio = kwargs["audio_hidden_states"]  # (B, L, D): B is 2 under classifier-free guidance
        key = (audio.shape[1:], audio.device, audio.dtype)
        if key not in cache:
            cache.clear()
            cache[key] = reference_latents(
                pipe, samples, rate, tuple(audio.shape[1:]), audio.device, audio.dtype
            )
        clean = cache[key].expand(audio.shape[0], -1, -1)
        zero = kwargs["timestep"].new_zeros(audio.shape[0])  # (B,): one timestep for the whole sound
        kwargs = {**kwargs, "audio_hidden_states": clean, "audio_timestep": zero, "audio_sigma": zero}
        return args, kwargs

    handle = pipe.transformer.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()

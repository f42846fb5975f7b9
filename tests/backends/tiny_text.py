"""Tiny tokenizers for the diffusers pipelines' text encoders, built offline (no hub download).

`qwen_tokenizer(texts)`: a byte-level BPE `Qwen2Tokenizer` trained here on `texts` (the pipeline's own prompt
template and a few prompts, so the template is a few dozen tokens as with the real vocabulary), with Qwen's
chat markers as special tokens and a ChatML chat template. `clip_tokenizer()`: a `CLIPTokenizer` over the
byte alphabet (every word spelt by letters), CLIP's start/end tokens at 0 and 1.
"""

from __future__ import annotations

SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PROMPTS = (
    "a cat walks on the beach at sunset",
    "the camera pans left over a quiet city at night",
    'a shop sign reads "OPEN" in the rain',
    "low quality, blurry, static",
)


def qwen_tokenizer(texts: tuple[str, ...] | list[str], vocab_size: int = 400):
    """A Qwen2Tokenizer whose BPE merges are learnt from `texts` (plus PROMPTS); pad = eos = <|endoftext|> (0)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    bpe.train_from_iterator([*texts, *PROMPTS], trainer)
    model = json_model(bpe)
    tok = Qwen2Tokenizer(vocab=model["vocab"], merges=[tuple(m) if isinstance(m, list) else tuple(m.split(" "))
                                                        for m in model["merges"]], chat_template=CHATML)  # fmt: skip
    tok.add_special_tokens({"additional_special_tokens": list(SPECIALS[1:])})
    return tok


def json_model(tok) -> dict:
    import json

    return json.loads(tok.to_str())["model"]


def clip_tokenizer():
    """A CLIPTokenizer spelling words by bytes: <|startoftext|> 0, <|endoftext|> 1 (eos and pad)."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    alphabet = sorted(set(bytes_to_unicode().values()))
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        vocab.update({c + suffix: len(vocab) + i for i, c in enumerate(alphabet)})
    return CLIPTokenizer(vocab=vocab, merges=[])

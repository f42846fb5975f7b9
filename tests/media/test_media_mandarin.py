"""Chinese is spoken as Mandarin (pinyin through espeak-ng's cmn-latn-pinyin voice), not as English
letter names; Japanese kanji, which espeak-ng cannot read, are left silent instead of "Chinese letter"."""

from __future__ import annotations

import subprocess

import pytest

from yingxi.media.speech import phonemes, speakable_text, synthesize_speech, to_pinyin, unreadable_kanji

RATE = 48000
LINE_20 = "今年的黄河冰封千里我们又一起过年了真好啊"  # 20 characters


def seconds_spoken(text: str, voice: str) -> float:
    from yingxi.editor.dialogue import trim_silence

    return len(trim_silence(synthesize_speech(text, voice, sample_rate=RATE))) / RATE


def raw_phonemes(text: str, voice: str) -> str:
    out = subprocess.run(["espeak-ng", "-q", "-x", "-v", voice], input=text.encode(), capture_output=True)
    return out.stdout.decode()


def test_the_cmn_voice_reads_characters_as_english_and_ours_does_not():
    # What espeak-ng 1.51 does with the cmn voice on its own: each character's pinyin in English.
    assert "(en)" in raw_phonemes("新年快乐", "cmn")
    for voice in ("cmn", "zh", "cmn+m3", "cmn-latn-pinyin+f3"):
        ours = phonemes("新年快乐，老朋友！", voice)
        assert "(en)" not in ours and ours.strip()
        # Mandarin tone contours (55 for xin1, 35 for nian2, 51 for kuai4) in the transcription.
        assert "55" in ours and "35" in ours and "51" in ours


def test_pinyin_is_word_aware_and_keeps_pauses():
    assert to_pinyin("新年快乐，老朋友！") == "xin1 nian2 kuai4 le4, lao3 peng2 you3!"
    assert to_pinyin("我们去银行。") == "wo3 men5 qu4 yin2 hang2."  # 行 in 银行 is hang2, not xing2
    assert speakable_text("新年快乐", "zh+m3") == ("xin1 nian2 kuai4 le4", "cmn-latn-pinyin+m3")
    assert speakable_text("Happy new year", "cmn") == ("Happy new year", "cmn")  # no characters: as is


def test_a_twenty_character_line_takes_as_long_as_a_person_reading_it():
    assert len(LINE_20) == 20
    spoken = seconds_spoken(LINE_20, "cmn+m3")
    pinyin = seconds_spoken(to_pinyin(LINE_20), "cmn-latn-pinyin+m3")
    assert spoken == pytest.approx(pinyin, rel=0.25)
    # A person reads about four characters a second: 5-6 s (the English letter names took 8.8 s).
    assert 3.75 < spoken < 6.5


def test_japanese_kanji_are_left_silent_not_read_as_chinese_letter():
    line = "あけましておめでとう、新年です。"
    assert "(en)" in raw_phonemes(line, "ja")  # espeak-ng says "Chinese letter" in English for 新年
    assert unreadable_kanji(line, "ja+m3") == ["新年"] and unreadable_kanji(line, "cmn") == []
    ours = phonemes(line, "ja")
    assert "(en)" not in ours and "edet'ou" in ours
    kana_only = seconds_spoken("あけましておめでとう、です。", "ja")
    assert seconds_spoken(line, "ja") == pytest.approx(kana_only, abs=0.5)

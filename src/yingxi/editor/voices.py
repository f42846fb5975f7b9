"""Reading a character's description for the voice it implies: gender and age words, English and Chinese
("the same man at twenty", "一位老先生"), mapped onto espeak-ng's voice variants."""

from __future__ import annotations

import re
from dataclasses import dataclass

# English words match whole words; Chinese ones (no spaces between words) match anywhere in the text.
MALE_WORDS = ("man", "men", "boy", "boys", "gentleman", "guy", "father", "dad", "grandfather", "grandpa",
              "husband", "son", "brother", "uncle", "king", "prince", "monk", "mr",
              "sir", "male", "fisherman", "farmer's son", "lad", "grandson", "nephew", "widower")  # fmt: skip
FEMALE_WORDS = ("woman", "women", "girl", "girls", "lady", "mother", "mom", "mum", "grandmother", "grandma",
                "wife", "daughter", "sister", "aunt", "queen", "princess", "nun",
                "mrs", "ms", "miss", "female", "granddaughter", "niece", "widow")  # fmt: skip
MALE_ZH = ("男", "先生", "爷爷", "爷", "父亲", "爸", "老头", "大爷", "哥", "弟", "叔", "伯", "儿子", "丈夫",
           "小伙", "公公", "老汉", "师傅", "和尚", "少爷", "孙子")  # fmt: skip
FEMALE_ZH = ("女", "女士", "奶奶", "母亲", "妈", "姐", "妹", "阿姨", "姑娘", "婆", "太太", "妻子", "小姐", "媳妇", "娘", "姨", "孙女")  # fmt: skip
# Pronouns count only where no noun says it ("his mother" is a woman).
MALE_PRONOUNS, FEMALE_PRONOUNS = (
    ("he", "him", "his", "himself", "他"),
    ("she", "her", "hers", "herself", "她"),
)
OLD_WORDS = ("old", "older", "elderly", "aged", "ageing", "aging", "grey-haired", "gray-haired", "white-haired",
             "grandfather", "grandpa", "grandmother", "grandma", "senior", "ancient", "widow", "widower")  # fmt: skip
YOUNG_WORDS = ("young", "younger", "youth", "youthful", "teen", "teenage", "teenager", "adolescent", "lad",
               "student")  # fmt: skip
CHILD_WORDS = ("boy", "girl", "child", "kid", "little", "toddler", "baby", "schoolboy", "schoolgirl")
OLD_ZH = ("老", "爷爷", "奶奶", "大爷", "大妈", "公公", "婆婆", "年迈", "白发", "老汉")
YOUNG_ZH = ("年轻", "青年", "少年", "少女", "小伙", "姑娘", "小", "学生")
CHILD_ZH = ("孩", "童", "小男孩", "小女孩", "娃")
NUMBER_WORDS = {"ten": 10, "twelve": 12, "fifteen": 15, "sixteen": 16, "eighteen": 18, "twenty": 20,
                "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
                "ninety": 90}  # fmt: skip
_AGE_RE = re.compile(
    r"\b(?:at|aged|age)\s+(\d{1,3}|[a-z]+)\b|\b(\d{1,3}|[a-z]+)[- ]year[- ]old\b|\b(\d{1,3})s\b|(\d{1,3})\s*岁"
)
_ZH_AGE_RE = re.compile(r"([一二三四五六七八九十]+)岁")
_ZH_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
# espeak-ng variants by (gender, age), in the order they are given out; each list measured (median F0 of
# "happy new year my old friend" in en-us): m3 106, m5 105, m1 95, m7 108, m2 101, m6 103, m4 95, m8 86,
# grandpa 108 (shaky), f3 180, f4 178, f2 198, f1 180, f5 206, grandma 203 (shaky) Hz.
VARIANTS_BY = {
    ("male", None): ("m3", "m5", "m1", "m7", "m2", "m6", "m4", "m8"),
    ("male", "young"): ("m7", "m2", "m6", "m3", "m5"),
    ("male", "old"): ("grandpa", "m4", "m8", "m1"),
    ("male", "child"): ("f5", "f2"),
    ("female", None): ("f3", "f4", "f2", "f1", "f5"),
    ("female", "young"): ("f5", "f2", "f4", "f3"),
    ("female", "old"): ("grandma", "f1", "f3"),
    ("female", "child"): ("f5", "f2"),
    (None, "old"): ("grandpa", "grandma"),
    (None, "child"): ("f5", "f2"),
}


@dataclass(frozen=True)
class Described:
    gender: str | None  # "male" | "female" | None
    age: str | None  # "child" | "young" | "old" | None
    words: str  # the words it was read from, e.g. "man, at twenty"

    @property
    def variants(self) -> tuple[str, ...]:
        """espeak-ng variants that fit, best first; empty when the description says neither."""
        return VARIANTS_BY.get((self.gender, self.age)) or VARIANTS_BY.get((self.gender, None)) or ()


def _first(text: str, english: tuple[str, ...], chinese: tuple[str, ...]) -> tuple[int, str] | None:
    """(position, word) of the earliest of the words in text, or None."""
    hits = [(m.start(), m.group(0)) for w in english for m in re.finditer(rf"\b{re.escape(w)}\b", text)]
    hits += [(text.find(w), w) for w in chinese if w in text]
    return min(hits, key=lambda h: (h[0], -len(h[1]))) if hits else None


def _age_number(text: str) -> tuple[int, str] | None:
    for m in _AGE_RE.finditer(text):
        word = next(g for g in m.groups() if g)
        years = int(word) if word.isdigit() else NUMBER_WORDS.get(word)
        if years is not None:
            return years, m.group(0)
    m = _ZH_AGE_RE.search(text)
    if m:
        tens, _, units = m.group(1).partition("十")
        if "十" in m.group(1):
            years = _ZH_DIGITS.get(tens, 1) * 10 + _ZH_DIGITS.get(units, 0)
        else:
            years = _ZH_DIGITS.get(tens, 0)
        return years, m.group(0)
    return None


def describe(description: str) -> Described:
    """Gender and age read from a description; the earliest gendered word wins ("a woman and her son")."""
    text = " ".join(description.lower().split())
    words: list[str] = []
    gender = None
    male, female = _first(text, MALE_WORDS, MALE_ZH), _first(text, FEMALE_WORDS, FEMALE_ZH)
    if not (male or female):
        male, female = (
            _first(text, MALE_PRONOUNS[:4], MALE_PRONOUNS[4:]),
            _first(text, FEMALE_PRONOUNS[:4], FEMALE_PRONOUNS[4:]),
        )
    if male or female:
        pick = min((h for h in (male, female) if h), key=lambda h: h[0])
        gender = "male" if pick is male else "female"
        words.append(pick[1])
    age = None
    number = _age_number(text)
    if number is not None:
        years, said = number
        age = "child" if years <= 12 else "young" if years <= 30 else "old" if years >= 60 else None
        words.append(said)
    if age is None:
        found = {
            name: _first(text, en, zh)
            for name, en, zh in (("child", CHILD_WORDS, CHILD_ZH), ("old", OLD_WORDS, OLD_ZH),
                                 ("young", YOUNG_WORDS, YOUNG_ZH))
        }  # fmt: skip
        found = {k: v for k, v in found.items() if v}
        if found:
            age = min(found, key=lambda k: found[k][0])
            if found[age][1] not in words:
                words.append(found[age][1])
    return Described(gender, age, ", ".join(words))

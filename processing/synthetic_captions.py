"""The caption grammar of the synthetic corpus: a finite, regular language with synonyms and
word-order variation, so that a captioner can learn it and `eval/semantic_accuracy.py` can parse
it back into events, counts, order and overlap.

A caption is built from one clause per event, joined by a relation template:

- clause, countable event: `[a|a single] [loud|quiet] <noun> <verb> [twice|...]` or
  `<two|three> [loud|quiet] <plural noun> <plural verb>`
- clause, continuous event: `[loud|quiet] <noun> <verb> [and fades in|...]`; ticking also carries
  its rate (`a clock ticks slowly`, `fast ticking is heard`)
- sequence: `A, then B`, `A before B`, `after A, B`, `B after A`, `first A, then B, and finally C`
- overlap with a continuous background event: `F while B`, `while B, F`, `F as B`,
  `F with <B as a noun phrase> in the background`, `F over <B as a noun phrase>`

Every choice is weighted so that each concept has one dominant phrasing (learnable, and CIDEr-D
rewards it) plus a few rarer synonyms (the five references of a clip differ).
The keyword tables at the bottom are what the parser uses; they are derived from the same
lexicon, so the grammar and the parser cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .synthetic_events import CONTINUOUS_TYPES, COUNTABLE_TYPES, EVENT_TYPES

# (text, weight) pairs; weights need not sum to one.
Choices = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Frame:
    """One way of naming an event: a subject noun phrase and the verbs that go with it.

    `determiner` is "a" (indefinite article, fixed up to "an" before a vowel), "the", or "" (mass
    noun or pronoun). `adjective_ok` says whether a loudness adjective may precede the noun;
    otherwise loudness becomes an adverb at the verb's `{adv}` slot (or after the verb).
    `count_forms` lists how a count may be said: "adverb" (`sounds twice`) and/or "numeral"
    (`two beeps sound`, needs `plural` and `plural_verbs`). `np_ok` allows the bare noun phrase in
    `with ... in the background` / `over ...`. `{rate}` in subject or verbs is filled with the
    ticking rate word.
    """

    subject: str
    determiner: str
    verbs: Choices
    weight: float
    plural: str | None = None
    plural_verbs: Choices = ()
    adjective_ok: bool = True
    count_forms: tuple[str, ...] = ("adverb",)
    np_ok: bool = False


_SOUND_VERBS: Choices = (("sounds", 0.6), ("is heard", 0.25), ("goes off", 0.15))
_SOUND_VERBS_PL: Choices = (("sound", 0.6), ("are heard", 0.25), ("go off", 0.15))


def _beep_frames(adjectives: Choices) -> tuple[Frame, ...]:
    return tuple(
        Frame(f"{adj} beep", "a", _SOUND_VERBS, w, plural=f"{adj} beeps", plural_verbs=_SOUND_VERBS_PL,
              count_forms=("adverb", "numeral"))
        for adj, w in adjectives
    )


def _siren_frames(direction: str) -> tuple[Frame, ...]:
    up = direction == "rising"
    motion = (("rises{adv} in pitch", 0.6), ("goes up{adv} in pitch", 0.25), ("wails{adv} upward", 0.15)) if up else (
        ("falls{adv} in pitch", 0.6), ("goes down{adv} in pitch", 0.25), ("wails{adv} downward", 0.15))
    motion_pl = tuple((v.replace("rises", "rise").replace("goes", "go").replace("falls", "fall")
                       .replace("wails", "wail"), w) for v, w in motion)
    adjective = "rising" if up else "falling"
    return (
        Frame("siren", "a", motion, 0.7, plural="sirens", plural_verbs=motion_pl, count_forms=("adverb", "numeral")),
        Frame(f"{adjective} siren", "a", (("wails", 0.6), ("sounds", 0.4)), 0.3, plural=f"{adjective} sirens",
              plural_verbs=(("wail", 0.6), ("sound", 0.4)), count_forms=("adverb", "numeral")),
    )


FRAMES: dict[str, tuple[Frame, ...]] = {
    "high_beep": _beep_frames((("high pitched", 0.6), ("high", 0.25), ("shrill", 0.15))),
    "low_beep": _beep_frames((("low pitched", 0.6), ("low", 0.25), ("deep", 0.15))),
    "rising_siren": _siren_frames("rising"),
    "falling_siren": _siren_frames("falling"),
    "hiss": (
        Frame("rain", "", (("falls", 0.6), ("pours down", 0.25), ("patters", 0.15)), 0.55, np_ok=True),
        Frame("steady hiss", "a", (("is heard", 0.6), ("continues", 0.4)), 0.25, np_ok=True),
        Frame("sound of rain", "the", (("is heard", 0.6), ("continues", 0.4)), 0.1, np_ok=True),
        Frame("static", "", (("hisses", 0.6), ("crackles", 0.4)), 0.1, np_ok=True),
    ),
    "ticking": (
        Frame("clock", "a", (("ticks{adv} {rate}", 1.0),), 0.5),
        Frame("{rate} ticking", "", (("is heard", 0.6), ("continues", 0.25), ("can be heard", 0.15)), 0.5, np_ok=True),
    ),
    "knocking": (
        Frame("someone", "", (("knocks{adv} on a door", 0.7), ("knocks{adv} on the door", 0.3)), 0.65,
              adjective_ok=False),
        Frame("knock", "a", (("is heard", 0.6), ("sounds", 0.4)), 0.35, plural="knocks",
              plural_verbs=(("are heard", 0.6), ("sound", 0.4)), count_forms=("numeral",)),
    ),
    "engine_hum": (
        Frame("engine", "a", (("hums", 0.6), ("rumbles", 0.25), ("idles", 0.15)), 0.6),
        Frame("hum of an engine", "the", (("is heard", 0.6), ("continues", 0.25), ("drones on", 0.15)), 0.25, np_ok=True),
        Frame("motor", "a", (("hums", 0.6), ("drones", 0.4)), 0.15),
    ),
    "bell": (
        Frame("bell", "a", (("rings", 0.7), ("chimes", 0.2), ("tolls", 0.1)), 0.75, plural="bells",
              plural_verbs=(("ring", 0.7), ("chime", 0.2), ("toll", 0.1)), count_forms=("adverb", "numeral")),
        Frame("chime", "a", (("rings", 0.6), ("sounds", 0.4)), 0.25, plural="chimes",
              plural_verbs=(("ring", 0.6), ("sound", 0.4)), count_forms=("adverb", "numeral")),
    ),
    "bird_chirp": (
        Frame("bird", "a", (("chirps", 0.7), ("tweets", 0.2), ("calls", 0.1)), 0.75),
        Frame("chirp", "a", (("is heard", 0.6), ("sounds", 0.4)), 0.25, plural="chirps",
              plural_verbs=(("are heard", 0.6), ("sound", 0.4)), count_forms=("numeral",)),
    ),
}

COUNT_ADVERBS: dict[int, Choices] = {
    1: (("", 0.6), ("once", 0.4)),
    2: (("twice", 0.85), ("two times", 0.15)),
    3: (("three times", 0.85), ("thrice", 0.15)),
}
COUNT_NUMERALS: dict[int, Choices] = {1: (("a single", 1.0),), 2: (("two", 1.0),), 3: (("three", 1.0),)}
LOUDNESS_ADJECTIVES: dict[str, Choices] = {"loud": (("loud", 1.0),), "quiet": (("quiet", 0.7), ("faint", 0.2), ("soft", 0.1))}
LOUDNESS_ADVERBS: dict[str, Choices] = {"loud": (("loudly", 1.0),), "quiet": (("quietly", 0.7), ("faintly", 0.2), ("softly", 0.1))}
FADE_PHRASES: dict[str, Choices] = {
    "in": (("and fades in", 0.6), ("and gradually grows louder", 0.25), ("and slowly gets louder", 0.15)),
    "out": (("and fades out", 0.6), ("and fades away", 0.25), ("and gradually dies down", 0.15)),
}
FADE_VERBS: dict[str, Choices] = {"in": (("fades in", 1.0),), "out": (("fades out", 0.6), ("fades away", 0.4))}
RATE_ADVERBS: dict[str, Choices] = {"slow": (("slowly", 0.7), ("at a slow pace", 0.3)),
                                     "fast": (("rapidly", 0.5), ("quickly", 0.3), ("fast", 0.2))}
RATE_ADJECTIVES: dict[str, Choices] = {"slow": (("slow", 1.0),), "fast": (("fast", 0.5), ("rapid", 0.3), ("quick", 0.2))}

SEQUENCE_TEMPLATES: dict[int, Choices] = {
    2: (("{0}, then {1}", 0.55), ("{0}, and then {1}", 0.15), ("{0} before {1}", 0.08), ("after {0}, {1}", 0.08),
        ("{1} after {0}", 0.07), ("first {0}, then {1}", 0.07)),
    3: (("{0}, then {1}, then {2}", 0.5), ("{0}, then {1}, and finally {2}", 0.25),
        ("first {0}, then {1}, and then {2}", 0.15), ("after {0}, {1}, then {2}", 0.1)),
}
# Foreground sequences inside an overlap template keep text order = time order.
FOREGROUND_TEMPLATES: dict[int, Choices] = {1: (("{0}", 1.0),), 2: (("{0}, then {1}", 0.7), ("{0} and then {1}", 0.3))}
BACKGROUND_CLAUSE_TEMPLATES: Choices = (("{fg} while {bg}", 0.55), ("while {bg}, {fg}", 0.2), ("{fg} as {bg}", 0.25))
BACKGROUND_PHRASE_TEMPLATES: Choices = (("{fg} with {bg} in the background", 0.6), ("{fg} over {bg}", 0.4))


def _pick(rng: np.random.Generator, choices: Choices) -> str:
    weights = np.array([w for _, w in choices], dtype=np.float64)
    return choices[int(rng.choice(len(choices), p=weights / weights.sum()))][0]


def _pick_frame(rng: np.random.Generator, frames: tuple[Frame, ...]) -> Frame:
    weights = np.array([f.weight for f in frames], dtype=np.float64)
    return frames[int(rng.choice(len(frames), p=weights / weights.sum()))]


def _with_article(words: str) -> str:
    return ("an " if words[:1] in "aeiou" else "a ") + words


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def _noun_phrase(frame: Frame, event: dict, rng, *, numeral: str | None = None, plural: bool = False,
                 force_adjective: bool = False) -> tuple[str, bool]:
    """Returns the subject and whether loudness went into it as an adjective.

    `numeral` ("a single", "two") replaces the determiner; `plural` picks the plural noun.
    """
    noun = frame.plural if plural else frame.subject
    if "{rate}" in noun:
        noun = noun.replace("{rate}", _pick(rng, RATE_ADJECTIVES[event["rate"]]))
    adjective = ""
    if event["loudness"] != "normal" and frame.adjective_ok and (force_adjective or rng.random() < 0.7):
        adjective = _pick(rng, LOUDNESS_ADJECTIVES[event["loudness"]])
    head = _join(adjective, noun)
    if numeral is not None:
        return _join(numeral, head), bool(adjective)
    if frame.determiner == "a":
        return _with_article(head), bool(adjective)
    return _join(frame.determiner, head), bool(adjective)


def _verb_phrase(verb: str, event: dict, rng, adverb_needed: bool) -> str:
    adverb = _pick(rng, LOUDNESS_ADVERBS[event["loudness"]]) if adverb_needed else ""
    if "{rate}" in verb:
        rate = _pick(rng, RATE_ADVERBS[event["rate"]])
        # "ticks loudly and rapidly" rather than "ticks loudly rapidly".
        verb = verb.replace("{adv}", "").replace("{rate}", f"{adverb} and {rate}" if adverb else rate)
        adverb = ""
    if "{adv}" in verb:
        return verb.replace("{adv}", f" {adverb}" if adverb else "")
    return _join(verb, adverb)


def realize_clause(event: dict, rng: np.random.Generator) -> str:
    """One clause (subject + verb + count / fade) describing `event` (a ground-truth event dict)."""
    frame = _pick_frame(rng, FRAMES[event["type"]])
    loud = event["loudness"] != "normal"
    if event["type"] in COUNTABLE_TYPES:
        count = int(event["count"])
        form = frame.count_forms[int(rng.integers(len(frame.count_forms)))]
        if form == "numeral":
            numeral = _pick(rng, COUNT_NUMERALS[count])
            subject, used_adj = _noun_phrase(frame, event, rng, numeral=numeral, plural=count > 1)
            verbs = frame.plural_verbs if count > 1 else frame.verbs
            return _join(subject, _verb_phrase(_pick(rng, verbs), event, rng, loud and not used_adj))
        subject, used_adj = _noun_phrase(frame, event, rng)
        verb = _verb_phrase(_pick(rng, frame.verbs), event, rng, loud and not used_adj)
        return _join(subject, verb, _pick(rng, COUNT_ADVERBS[count]))
    subject, used_adj = _noun_phrase(frame, event, rng)
    fade = event.get("fade", "none")
    if fade != "none" and "{rate}" not in _join(*(v for v, _ in frame.verbs)) and rng.random() < 0.3:
        # "rain fades in": the fade replaces the verb (not for ticking, whose verb carries the rate).
        return _join(subject, _verb_phrase(_pick(rng, FADE_VERBS[fade]), event, rng, loud and not used_adj))
    verb = _verb_phrase(_pick(rng, frame.verbs), event, rng, loud and not used_adj)
    return _join(subject, verb, _pick(rng, FADE_PHRASES[fade]) if fade != "none" else "")


def realize_noun_phrase(event: dict, rng: np.random.Generator) -> str | None:
    """A bare noun phrase for a continuous background event (`the hum of an engine`), or None
    when the event cannot be named without a verb (it fades, or no frame allows it)."""
    if event.get("fade", "none") != "none":
        return None
    frames = tuple(f for f in FRAMES[event["type"]] if f.np_ok)
    if not frames:
        return None
    frame = _pick_frame(rng, frames)
    if event["loudness"] != "normal" and not frame.adjective_ok:
        return None
    # Without a verb, loudness can only be said as an adjective.
    subject, _ = _noun_phrase(frame, event, rng, force_adjective=True)
    return subject


def realize_caption(events: list[dict], layout: str, rng: np.random.Generator) -> str:
    """One Clotho-style caption (capitalised, full stop) for a scene.

    `events` are ground-truth event dicts in time order (keys `type`, `count`, `loudness`, `fade`,
    `rate`, `background`); `layout` is "single", "sequence" or "background".
    """
    if layout == "background":
        background = next(e for e in events if e["background"])
        foreground = [e for e in events if not e["background"]]
        fg = _pick(rng, FOREGROUND_TEMPLATES[len(foreground)]).format(*(realize_clause(e, rng) for e in foreground))
        phrase = realize_noun_phrase(background, rng) if rng.random() < 0.25 else None
        if phrase is not None:
            text = _pick(rng, BACKGROUND_PHRASE_TEMPLATES).format(fg=fg, bg=phrase)
        else:
            text = _pick(rng, BACKGROUND_CLAUSE_TEMPLATES).format(fg=fg, bg=realize_clause(background, rng))
    elif len(events) == 1:
        text = realize_clause(events[0], rng)
    else:
        text = _pick(rng, SEQUENCE_TEMPLATES[len(events)]).format(*(realize_clause(e, rng) for e in events))
    return text[0].upper() + text[1:] + "."


def realize_captions(events: list[dict], layout: str, rng: np.random.Generator, num_captions: int = 5,
                     max_attempts: int = 400) -> list[str]:
    """`num_captions` pairwise different captions of one scene."""
    captions: list[str] = []
    for _ in range(max_attempts):
        caption = realize_caption(events, layout, rng)
        if caption not in captions:
            captions.append(caption)
            if len(captions) == num_captions:
                return captions
    raise ValueError(
        f"could only realise {len(captions)} distinct captions out of {num_captions} for events "
        f"{[e['type'] for e in events]} (layout {layout!r}): the grammar is too small for this scene"
    )


# ----------------------------------------------------------------------------- parser vocabulary
# Words that name each event type. Beeps and sirens are split by their pitch / direction words.
TYPE_KEYWORDS: dict[str, frozenset[str]] = {
    "beep": frozenset({"beep", "beeps", "beeping", "bleep", "bleeps", "tone", "tones", "pip", "pips"}),
    "siren": frozenset({"siren", "sirens"}),
    "hiss": frozenset({"rain", "raining", "hiss", "hisses", "hissing", "static", "drizzle"}),
    "ticking": frozenset({"tick", "ticks", "ticking", "clock", "clocks", "tock"}),
    "knocking": frozenset({"knock", "knocks", "knocking", "knocked", "door"}),
    "engine_hum": frozenset({"engine", "engines", "motor", "motors", "hum", "hums", "humming", "rumble",
                             "rumbles", "rumbling", "drone", "drones", "droning", "idles", "idling"}),
    "bell": frozenset({"bell", "bells", "chime", "chimes", "chiming", "tolls", "tolling", "gong"}),
    "bird_chirp": frozenset({"bird", "birds", "chirp", "chirps", "chirping", "tweet", "tweets", "tweeting"}),
}
HIGH_WORDS = frozenset({"high", "shrill", "sharp", "piercing"})
LOW_WORDS = frozenset({"low", "deep"})
RISING_WORDS = frozenset({"rises", "rise", "rising", "up", "upward", "upwards", "ascending"})
FALLING_WORDS = frozenset({"falls", "fall", "falling", "down", "downward", "downwards", "descending"})
LOUD_WORDS = frozenset({"loud", "loudly"})
QUIET_WORDS = frozenset({"quiet", "quietly", "faint", "faintly", "soft", "softly"})
SLOW_WORDS = frozenset({"slow", "slowly"})
FAST_WORDS = frozenset({"fast", "rapid", "rapidly", "quick", "quickly"})
COUNT_WORDS = {"once": 1, "single": 1, "one": 1, "twice": 2, "two": 2, "thrice": 3, "three": 3, "four": 4,
               "five": 5}
FADE_IN_WORDS = frozenset({"louder"})
FADE_OUT_WORDS = frozenset({"quieter", "dies", "away"})
# Connectives that start a new clause; those in BACKGROUND_CONNECTIVES mark the clause they
# introduce as the background that overlaps everything else.
CLAUSE_CONNECTIVES = frozenset({"then", "before", "after", "afterwards", "while", "as", "with", "over", "finally",
                                "first", "meanwhile", "followed"})
BACKGROUND_CONNECTIVES = frozenset({"while", "as", "with", "over", "meanwhile"})

assert set(FRAMES) == set(EVENT_TYPES), "every event type needs caption frames"
assert CONTINUOUS_TYPES | COUNTABLE_TYPES == set(EVENT_TYPES)

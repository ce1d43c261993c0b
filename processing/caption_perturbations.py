"""Compositional hard negatives: edits of an English caption that describe a different scene.

Contrastive audio-text models trained with in-batch negatives learn which sound events a caption names, but
barely how many times, in which order or in which direction they happen, because a random other caption of the
batch almost never differs from the right one in only that. Compositional CLAP work (CompA-CLAP, Ghosh et al.
2024) adds such captions as explicit negatives. This module makes them with generic English rules, so that they
apply to AudioCaps / Clotho captions as well as to the synthetic corpus (no corpus labels are read):

- `count`: a count expression gets another value: adverbs (`once`, `twice`, `thrice`, `three times`, `3 times`,
  `several times`, `repeatedly`) and numerals before a noun (`a single bell rings` <-> `two bells ring`, `three
  dogs` -> `two dogs`), with the noun and the verb after it re-inflected so that the edit stays grammatical (a
  grammar slip would let the text tower reject the negative without listening);
- `order`: two adjacent clauses joined by a sequence connective (`then`, `and then`, `followed by`, `after that`,
  `finally`, `afterwards`, `later`, `before`, `after`; a leading `first` / `after A,` stays in place) trade
  places. Connectives of overlap (`while`, `as`, `meanwhile`, `with`) and plain `and` are never split: swapping
  simultaneous events describes the same scene;
- `antonym`: one direction / loudness / pitch / speed word or phrase is flipped (`rises` <-> `falls`, `loud` <->
  `quiet` / `faint` / `soft`, `high` <-> `low`, `fades in` <-> `fades out`, `slowly` <-> `quickly`, ...).

Each editor returns every single-site edit of a caption (deterministic, in text order); `perturb_caption` samples
from them with a seeded generator (up to `per_kind` of each kind and, with `max_perturbations`, a cap on the total
filled from kinds drawn at random among those that apply) and drops edits that equal the caption or one of its
other references. A
caption that no rule applies to gets no perturbation. The rules are heuristics without a part-of-speech tagger:
they miss captions that leave a count implicit (`a dog barks` gets no count edit) and can misplace an
elliptical clause (`a car revs and then accelerates away` swaps into `accelerates away and then a car revs`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

PERTURBATION_KINDS = ("count", "order", "antonym")

# ------------------------------------------------------------------------------------------- tokens


class _Token:
    """A word, number or punctuation mark of a caption with its character span (lower case and word-ness computed
    once: the count rules read them many times per token)."""

    __slots__ = ("text", "start", "end", "lower", "is_word")

    def __init__(self, text: str, start: int, end: int):
        self.text, self.start, self.end = text, start, end
        self.lower = text.lower()
        self.is_word = text.isalpha()


_TOKEN_PATTERN = re.compile(r"[A-Za-z]+|\d+|[^\sA-Za-z\d]")


def _tokens(text: str) -> list[_Token]:
    return [_Token(m.group(), m.start(), m.end()) for m in _TOKEN_PATTERN.finditer(text)]


def _apply(text: str, replacements: Sequence[tuple[int, int, str]]) -> str:
    """`text` with each `(start, end, new)` span replaced (spans must not overlap)."""
    for start, end, new in sorted(replacements, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _same_case(new: str, old: str) -> str:
    """`new` capitalised like `old` (a sentence-initial word stays capitalised after the edit)."""
    if old[:1].isupper() and new:
        return new[0].upper() + new[1:]
    return new


_NOT_WORD_PATTERN = re.compile(r"[^\w']+")


@lru_cache(maxsize=8192)
def _normalized(text: str) -> str:
    # The same key as `modeling_llm_aac.clap_scoring.normalize_caption` (kept local: this module imports no torch).
    # Cached: every edit is keyed by `_unique` and again by `perturb_caption`'s reference check.
    return " ".join(_NOT_WORD_PATTERN.sub(" ", text.lower()).replace("'", "").split())


# Words that are never the head noun or the verb of a counted phrase: where the scan for them stops.
_FUNCTION_WORDS = frozenset("""
a an the this that these those its their his her our your my some any each every no another other
and or but nor so yet of in on at to from with without by for as while then than into onto over under near
behind through across along around during until till since after before about against between among beneath
beside above below up down off out away again also too together nearby outside inside here there now far
overhead alone simultaneously continuously repeatedly briefly once twice thrice times time
is are was were be been being has have had do does did can could will would may might must shall should
""".split())

# ------------------------------------------------------------------------------------- inflection

_IRREGULAR_PLURALS = {"bus": "buses", "man": "men", "woman": "women", "child": "children", "person": "people", "mouse": "mice",
                      "goose": "geese", "foot": "feet", "tooth": "teeth", "policeman": "policemen",
                      "fireman": "firemen"}
_IRREGULAR_SINGULARS = {plural: singular for singular, plural in _IRREGULAR_PLURALS.items()}
_INVARIANT_NOUNS = frozenset({"sheep", "deer", "fish", "aircraft", "series", "species"})
# Base-form verbs that end like a gerund or a plural: "three bells ring", "two cars pass".
_ING_VERBS = frozenset({"ring", "sing", "bring", "swing", "sting", "cling", "fling", "spring", "wring", "sling"})
_SINGULAR_AUXILIARIES = {"is": "are", "was": "were", "has": "have", "does": "do"}
_PLURAL_AUXILIARIES = {plural: singular for singular, plural in _SINGULAR_AUXILIARIES.items()}


def _add_s(word: str, es_endings: tuple[str, ...]) -> str:
    """English -s suffix (plural nouns and third-person verbs share it): -es after `es_endings`, consonant + y -> -ies."""
    lower = word.lower()
    if lower.endswith(es_endings):
        return word + "es"
    if len(lower) > 1 and lower.endswith("y") and lower[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _pluralize_noun(word: str) -> str:
    lower = word.lower()
    if lower in _IRREGULAR_PLURALS:
        return _same_case(_IRREGULAR_PLURALS[lower], word)
    if lower in _INVARIANT_NOUNS:
        return word
    return _add_s(word, ("s", "x", "z", "ch", "sh"))


def _singularize_noun(word: str) -> str:
    lower = word.lower()
    if lower in _IRREGULAR_SINGULARS:
        return _same_case(_IRREGULAR_SINGULARS[lower], word)
    if lower in _INVARIANT_NOUNS:
        return word
    if lower.endswith("ies") and len(lower) > 4:
        return word[:-3] + "y"
    if lower.endswith(("sses", "xes", "zzes", "ches", "shes")):
        return word[:-2]
    return word[:-1] if lower.endswith("s") else word


def _looks_plural_noun(word: str) -> bool:
    lower = word.lower()
    if lower in _IRREGULAR_SINGULARS or lower in _INVARIANT_NOUNS:
        return True
    return lower.endswith("s") and not lower.endswith(("ss", "us", "is")) and lower not in _FUNCTION_WORDS


def _third_person(verb: str) -> str:
    """`bark` -> `barks`, `pass` -> `passes`, `fly` -> `flies`, `go` -> `goes` (plural -> singular subject)."""
    lower = verb.lower()
    if lower in _PLURAL_AUXILIARIES:
        return _same_case(_PLURAL_AUXILIARIES[lower], verb)
    return _add_s(verb, ("s", "x", "z", "ch", "sh", "o"))


def _base_form(verb: str) -> str:
    """`barks` -> `bark`, `passes` -> `pass`, `flies` -> `fly`, `dies` -> `die`, `rises` -> `rise`."""
    lower = verb.lower()
    if lower in _SINGULAR_AUXILIARIES:
        return _same_case(_SINGULAR_AUXILIARIES[lower], verb)
    if lower.endswith("ies"):
        return verb[:-1] if len(lower) <= 4 else verb[:-3] + "y"
    if lower.endswith(("sses", "xes", "zzes", "ches", "shes", "oes")):
        return verb[:-2]
    return verb[:-1]


def _looks_singular_verb(word: str) -> bool:
    lower = word.lower()
    if lower in _SINGULAR_AUXILIARIES:
        return True
    return (word.isalpha() and lower.endswith("s") and not lower.endswith(("ss", "us", "is"))
            and lower not in _FUNCTION_WORDS)


def _looks_plural_verb(word: str) -> bool:
    lower = word.lower()
    if lower in _PLURAL_AUXILIARIES:
        return True
    if lower in _ING_VERBS or (lower.endswith("ss") and lower not in _FUNCTION_WORDS):
        return True
    return (word.isalpha() and lower not in _FUNCTION_WORDS and not lower.endswith(("s", "ing", "ed", "ly"))
            and len(lower) > 1)


# ----------------------------------------------------------------------------------------- counts

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                "twelve")
_WORD_NUMBERS = {word: value for value, word in enumerate(NUMBER_WORDS) if value}
_COUNT_ADVERBS = {"once": 1, "twice": 2, "thrice": 3}
# "<word> times" without a number: edited to "once" (a single occurrence is a different scene).
_VAGUE_REPEATS = frozenset({"several", "many", "multiple", "numerous", "few", "countless"})
# Around "once": the conjunction / idioms ("once the door opens", "all at once", "once again"), not a count.
_NOT_COUNT_AFTER_ONCE = frozenset({"again", "more", "upon", "the", "a", "an", "it", "they", "he", "she", "we",
                                   "you", "this", "that", "in", "everything", "all"})
# Around "one": the pronoun ("one of", "one by one", "the one", "no one"), not a numeral.
_NOT_COUNT_AFTER_ONE = frozenset({"of", "after", "by", "another", "more", "at", "and", "or", "to", "is", "was"})
_NOT_COUNT_BEFORE_ONE = frozenset({"the", "no", "every", "this", "that", "which", "each", "any", "some", "another",
                                   "little", "last", "first", "next", "same", "such", "big", "small"})
_NOUN_WINDOW = 4  # words between a numeral and its noun ("two quiet low pitched beeps"): adjectives


def _other_counts(count: int | None) -> list[int]:
    """Counts a perturbation may say instead of `count`: 1-3 and the neighbours (None: a vague repetition)."""
    if count is None:
        return [1]
    return sorted(({1, 2, 3} | {count - 1, count + 1}) - {count, 0})


def _number_text(value: int, digits: bool) -> str:
    return str(value) if digits or value >= len(NUMBER_WORDS) else NUMBER_WORDS[value]


def _repetition_text(value: int, digits: bool, adverb: bool) -> str:
    """How often, in the style of the original: `once` / `twice` (adverbs) or `two times` / `2 times`."""
    if value == 1:
        return "once"
    if value == 2 and adverb:
        return "twice"
    return f"{_number_text(value, digits)} times"


def _number_value(token: _Token) -> int | None:
    if token.lower in _WORD_NUMBERS:
        return _WORD_NUMBERS[token.lower]
    if token.text.isdigit() and 0 < int(token.text) < 100:
        return int(token.text)
    return None


def _word(tokens: list[_Token], index: int) -> str | None:
    return tokens[index].lower if 0 <= index < len(tokens) else None


def _singular_noun_index(tokens: list[_Token], start: int) -> int | None:
    """The head noun after a singular numeral: the first word (within `_NOUN_WINDOW`) followed by a verb in the
    third person, a function word, punctuation or the end (`a single loud bell | rings`)."""
    for index in range(start, min(start + _NOUN_WINDOW, len(tokens))):
        token = tokens[index]
        if not token.is_word or token.lower in _FUNCTION_WORDS:
            return None
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if (following is None or not following.is_word or following.lower in _FUNCTION_WORDS
                or _looks_singular_verb(following.text)):
            return index
    return None


def _plural_noun_index(tokens: list[_Token], start: int) -> int | None:
    """The head noun after a plural numeral: the first plural-looking word within `_NOUN_WINDOW`."""
    for index in range(start, min(start + _NOUN_WINDOW, len(tokens))):
        token = tokens[index]
        if not token.is_word or token.lower in _FUNCTION_WORDS:
            return None
        if _looks_plural_noun(token.text):
            return index
    return None


def _numeral_edits(tokens: list[_Token], first: int, last: int, count: int, digits: bool) -> list[list]:
    """Edits of a numeral before a noun (tokens `first..last`, e.g. "a single" or "three"): other counts, with the
    noun and the verb right after it switched between singular and plural when the count crosses one."""
    numeral = (tokens[first].start, tokens[last].end)
    if count == 1:
        noun_index = _singular_noun_index(tokens, last + 1)
    else:
        noun_index = _plural_noun_index(tokens, last + 1)
    if noun_index is None:
        return []
    noun = tokens[noun_index]
    verb = tokens[noun_index + 1] if noun_index + 1 < len(tokens) else None
    edits = []
    for value in _other_counts(count):
        new_numeral = ("1" if digits else "a single") if value == 1 else _number_text(value, digits)
        replacements = [(*numeral, _same_case(new_numeral, tokens[first].text))]
        if (count == 1) != (value == 1):
            if value == 1:
                replacements.append((noun.start, noun.end, _singularize_noun(noun.text)))
                if verb is not None and _looks_plural_verb(verb.text):
                    replacements.append((verb.start, verb.end, _third_person(verb.text)))
            else:
                replacements.append((noun.start, noun.end, _pluralize_noun(noun.text)))
                if verb is not None and _looks_singular_verb(verb.text):
                    replacements.append((verb.start, verb.end, _base_form(verb.text)))
        edits.append(replacements)
    return edits


def count_edits(caption: str) -> list[str]:
    """Every caption with one count expression changed (see the module docstring), in text order."""
    tokens = _tokens(caption)
    edits: list[list] = []
    index = 0
    while index < len(tokens):
        token, word = tokens[index], tokens[index].lower
        following, previous = _word(tokens, index + 1), _word(tokens, index - 1)
        value = _number_value(token)
        consumed = 1
        if word in _COUNT_ADVERBS and not (word == "once" and (previous == "at" or following in _NOT_COUNT_AFTER_ONCE)):
            span = (token.start, token.end)
            edits += [[(*span, _same_case(_repetition_text(v, False, True), token.text))]
                      for v in _other_counts(_COUNT_ADVERBS[word])]
        elif value is not None and following in ("times", "time"):
            span = (token.start, tokens[index + 1].end)
            edits += [[(*span, _same_case(_repetition_text(v, token.text.isdigit(), False), token.text))]
                      for v in _other_counts(value)]
            consumed = 2
        elif word in _VAGUE_REPEATS and following == "times":
            first = index - 1 if word == "few" and previous == "a" else index
            edits.append([(tokens[first].start, tokens[index + 1].end, _same_case("once", tokens[first].text))])
            consumed = 2
        elif word == "repeatedly":
            edits.append([(token.start, token.end, "once")])
        elif word == "a" and following == "single":
            edits += _numeral_edits(tokens, index, index + 1, 1, digits=False)
            consumed = 2
        elif value is not None and following not in (None, "-", ":", "%", "of") and not (
                value == 1 and (following in _NOT_COUNT_AFTER_ONE or previous in _NOT_COUNT_BEFORE_ONE)):
            edits += _numeral_edits(tokens, index, index, value, digits=token.text.isdigit())
        index += consumed
    return _unique(_apply(caption, replacements) for replacements in edits)


# ------------------------------------------------------------------------------------------ order

# A sequence connective between two clauses, with the punctuation and spaces around it. Overlap connectives
# ("while", "as", "meanwhile", "with") and plain "and" are deliberately absent.
_SEQUENCE_CONNECTIVE = re.compile(
    r"\s*[,;.]?\s*\b(?:(?P<adverb>shortly|soon|immediately|quickly|just|right|briefly)\s+)?"
    r"(?P<word>and\s+then|then|followed\s+by|after\s+that|and\s+finally|finally|and\s+afterwards?|afterwards?|"
    r"subsequently|and\s+later|later|before|after)\b,?\s*",
    re.IGNORECASE,
)
# Words before "then" that make it no connective ("now and then", "since then", "by then", "until then").
_NOT_SEQUENCE_BEFORE_THEN = re.compile(r"\b(?:now\s+and|since|until|till|by|from|even)\s*$", re.IGNORECASE)
# What follows "after" / "before" when it is a time expression, not a clause ("after a while", "before that").
_TIME_EXPRESSION = re.compile(
    r"(?:(?:a|an|the|some|several|a few|few)\s+)?(?:(?:short|long|brief|few)\s+)?"
    r"(?:while|moment|moments|pause|second|seconds|minute|minutes|time|bit|silence|delay|beat)\b"
    r"|(?:that|this|it|which|them|him|her|each|every|one|another|dark|dawn|dusk)\b",
    re.IGNORECASE,
)
# A caption that opens with "first ..." keeps it first; "after A, B" / "before A, B" keep the subordinator first.
_LEADING_FIRST = re.compile(r"^\s*(?:at\s+first|first(?:\s+of\s+all)?|initially|to\s+begin\s+with)\b,?\s*", re.IGNORECASE)
_LEADING_SUBORDINATOR = re.compile(r"^\s*(?:after|before)\s+", re.IGNORECASE)
_TRAILING_PUNCTUATION = re.compile(r"[\s.!?]*$")


def _is_connective(text: str, match: re.Match) -> bool:
    word = " ".join(match.group("word").lower().split())
    if word in ("then", "and then"):
        # "just then" is simultaneous; "now and then", "since then", "by then" are no sequence.
        before = text[:match.start()] + (" and" if word == "and then" else "")
        return (match.group("adverb") or "").lower() != "just" and not _NOT_SEQUENCE_BEFORE_THEN.search(before)
    if word in ("before", "after"):
        return not _TIME_EXPRESSION.match(text, match.end())
    return True


def _has_words(text: str) -> bool:
    return any(c.isalpha() for c in text)


def _clauses(body: str) -> tuple[str, list[str], list[str]]:
    """(prefix kept in place, clauses, separators between them) of a caption body without final punctuation."""
    prefix = ""
    leading = _LEADING_FIRST.match(body)
    subordinate = _LEADING_SUBORDINATOR.match(body) if leading is None else None
    if leading is not None:
        prefix, body = body[:leading.end()], body[leading.end():]
    boundaries: list[tuple[int, int]] = []
    if subordinate is not None:
        # "After A, B": A ends at the first comma, unless A is a time expression ("after a while, ...").
        comma = body.find(",", subordinate.end())
        if comma > 0 and not _TIME_EXPRESSION.match(body, subordinate.end()):
            prefix, body = body[:subordinate.end()], body[subordinate.end():]
            comma -= len(prefix)
            end = comma + 1
            while end < len(body) and body[end] == " ":
                end += 1
            boundaries.append((comma, end))
    for match in _SEQUENCE_CONNECTIVE.finditer(body):
        if boundaries and match.start() < boundaries[-1][1]:
            continue
        if _is_connective(body, match):
            boundaries.append((match.start(), match.end()))
    # Keep a boundary only when words lie on both sides of it (no empty clause from a leading "then").
    kept: list[tuple[int, int]] = []
    for position, (start, end) in enumerate(boundaries):
        left_start = kept[-1][1] if kept else 0
        right_end = boundaries[position + 1][0] if position + 1 < len(boundaries) else len(body)
        if _has_words(body[left_start:start]) and _has_words(body[end:right_end]):
            kept.append((start, end))
    clauses, separators, cursor = [], [], 0
    for start, end in kept:
        clauses.append(body[cursor:start])
        separators.append(body[start:end])
        cursor = end
    clauses.append(body[cursor:])
    return prefix, clauses, separators


def _lower_first(clause: str) -> str:
    """A clause that leaves the start of the sentence loses its capital ("A dog" -> "a dog"; "I" and acronyms
    such as "TV" keep theirs)."""
    match = re.match(r"\s*([A-Za-z]+)", clause)
    if match is None:
        return clause
    word = match.group(1)
    if word == "I" or not word[0].isupper() or (len(word) > 1 and not word[1:].islower()):
        return clause
    return clause[:match.start(1)] + word[0].lower() + clause[match.start(1) + 1:]


def order_swaps(caption: str) -> list[str]:
    """Every caption with two adjacent clauses of a sequence swapped (see the module docstring), in text order."""
    trailing = _TRAILING_PUNCTUATION.search(caption)
    body, ending = caption[:trailing.start()], caption[trailing.start():]
    prefix, clauses, separators = _clauses(body)
    capitalized = bool(body[:1].isupper())
    swapped = []
    for first in range(len(clauses) - 1):
        if _normalized(clauses[first]) == _normalized(clauses[first + 1]):
            continue
        order = list(clauses)
        order[first], order[first + 1] = order[first + 1], order[first]
        order = [_lower_first(c) if i > 0 or prefix else c for i, c in enumerate(order)]
        if not prefix and capitalized:
            order[0] = order[0][:1].upper() + order[0][1:]
        text = prefix + "".join(c + s for c, s in zip(order, separators + [""])) + ending
        swapped.append(text)
    return _unique(swapped)


# ---------------------------------------------------------------------------------------- antonyms

# Phrases first (their words are not flipped again one by one), then single words. One-way entries flip a word
# whose antonym has several spellings ("faint" -> "loud", "loud" -> "quiet").
ANTONYM_PHRASES: dict[str, str] = {
    "fades in": "fades out", "fades out": "fades in", "fades away": "fades in", "fade in": "fade out",
    "fade out": "fade in", "fading in": "fading out", "fading out": "fading in", "faded in": "faded out",
    "faded out": "faded in", "goes up": "goes down", "goes down": "goes up", "go up": "go down",
    "go down": "go up", "going up": "going down", "going down": "going up", "speeds up": "slows down",
    "slows down": "speeds up", "speeding up": "slowing down", "slowing down": "speeding up",
    "dies down": "builds up", "builds up": "dies down", "gets closer": "moves away", "moves away": "gets closer",
}
ANTONYM_WORDS: dict[str, str] = {
    "rises": "falls", "falls": "rises", "rise": "fall", "fall": "rise", "rising": "falling", "falling": "rising",
    "rose": "fell", "fell": "rose", "increases": "decreases", "decreases": "increases", "increasing": "decreasing",
    "decreasing": "increasing", "upward": "downward", "downward": "upward", "upwards": "downwards",
    "downwards": "upwards", "ascending": "descending", "descending": "ascending",
    "loud": "quiet", "quiet": "loud", "faint": "loud", "soft": "loud", "loudly": "quietly", "quietly": "loudly",
    "faintly": "loudly", "softly": "loudly", "louder": "quieter", "quieter": "louder", "softer": "louder",
    "fainter": "louder", "high": "low", "low": "high", "higher": "lower", "lower": "higher", "deep": "high",
    "shrill": "deep", "fast": "slow", "slow": "fast", "faster": "slower", "slower": "faster", "quickly": "slowly",
    "rapidly": "slowly", "slowly": "quickly", "rapid": "slow", "quick": "slow", "approaching": "receding",
    "receding": "approaching", "approaches": "recedes", "recedes": "approaches",
}
_ANTONYM_PHRASE_PATTERN = re.compile(
    r"\b(?:" + "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in sorted(ANTONYM_PHRASES, key=len, reverse=True))
    + r")\b", re.IGNORECASE)
_ANTONYM_WORD_PATTERN = re.compile(r"\b(?:" + "|".join(sorted(ANTONYM_WORDS, key=len, reverse=True)) + r")\b",
                                   re.IGNORECASE)


def antonym_flips(caption: str) -> list[str]:
    """Every caption with one direction / loudness / pitch / speed word or phrase flipped, in text order."""
    sites: list[tuple[int, int, str]] = []
    for match in _ANTONYM_PHRASE_PATTERN.finditer(caption):
        key = " ".join(match.group().lower().split())
        sites.append((match.start(), match.end(), _same_case(ANTONYM_PHRASES[key], match.group())))
    for match in _ANTONYM_WORD_PATTERN.finditer(caption):
        if any(start <= match.start() < end for start, end, _ in sites):
            continue
        sites.append((match.start(), match.end(), _same_case(ANTONYM_WORDS[match.group().lower()], match.group())))
    return _unique(_apply(caption, [site]) for site in sorted(sites))


# ------------------------------------------------------------------------------------------- API

PERTURBATION_EDITORS: dict[str, Callable[[str], list[str]]] = {
    "count": count_edits, "order": order_swaps, "antonym": antonym_flips,
}


@dataclass(frozen=True)
class CaptionPerturbation:
    """A perturbed caption and the rule that made it (`count`, `order` or `antonym`)."""

    text: str
    kind: str


def _unique(texts: Iterable[str]) -> list[str]:
    seen, unique = set(), []
    for text in texts:
        key = _normalized(text)
        if key not in seen:
            seen.add(key)
            unique.append(text)
    return unique


def parse_perturbation_kinds(kinds: str | Sequence[str] | None) -> tuple[str, ...]:
    """`"count,order"` or `["count", "order"]` -> `("count", "order")` (in `PERTURBATION_KINDS` order, no
    repeats); `""`, `"none"` or None -> `()`. Raises ValueError naming an unknown kind."""
    if kinds is None:
        return ()
    if not isinstance(kinds, (str, list, tuple)):
        raise TypeError(f"hard-negative kinds must be a comma-separated string or a list, got {kinds!r}")
    items = kinds.split(",") if isinstance(kinds, str) else list(kinds)
    names = [str(item).strip().lower() for item in items if str(item).strip()]
    if names == ["none"]:
        return ()
    unknown = [name for name in names if name not in PERTURBATION_KINDS]
    if unknown:
        raise ValueError(f"unknown hard-negative kind(s) {unknown}; choose from {list(PERTURBATION_KINDS)} "
                         "(comma-separated), or 'none'")
    return tuple(kind for kind in PERTURBATION_KINDS if kind in names)


def perturb_caption(caption: str, kinds: str | Sequence[str] = PERTURBATION_KINDS, *, per_kind: int = 1,
                    max_perturbations: int | None = None, rng=0,
                    exclude: Iterable[str] = ()) -> list[CaptionPerturbation]:
    """Up to `per_kind` perturbations of `caption` for each of `kinds`, at most `max_perturbations` in all, kinds
    in `PERTURBATION_KINDS` order.

    Args:
        caption: an English caption.
        kinds: which editors run (`"count,order"`, a list of names, or all three).
        per_kind: how many of each editor's edits are kept, drawn without replacement (all when fewer exist).
        max_perturbations: a cap on the total (None: no cap). When it can bind (`max_perturbations < len(kinds) *
            per_kind`) the kinds are visited in a random order, kinds without an edit for this caption skipped,
            each giving up to `per_kind` edits until the cap is reached: with `per_kind=1` the caption gets
            `min(max_perturbations, applicable kinds)` perturbations of distinct kinds drawn uniformly among the
            kinds that apply to it, and editors after the last one needed do not run. A cap that cannot bind
            changes nothing, not even the draws: the result equals the uncapped one for the same `rng`.
        rng: a `numpy.random.Generator` or a seed for one; the same seed gives the same perturbations.
        exclude: captions that must not come out (the clip's other references: a perturbation that equals
            one of them would be a false negative), compared case- and punctuation-insensitively.
    """
    import numpy as np

    if not isinstance(caption, str):
        raise TypeError(f"caption must be a string, got {type(caption).__name__}: {caption!r}")
    if isinstance(per_kind, bool) or not isinstance(per_kind, int) or per_kind < 1:
        raise ValueError(f"per_kind must be a positive integer, got {per_kind!r}")
    if max_perturbations is not None and (isinstance(max_perturbations, bool) or not isinstance(max_perturbations, int)
                                          or max_perturbations < 1):
        raise ValueError(f"max_perturbations must be a positive integer or None, got {max_perturbations!r}")
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    forbidden = {_normalized(caption)} | {_normalized(text) for text in exclude}
    kinds = parse_perturbation_kinds(kinds)
    remaining = len(kinds) * per_kind if max_perturbations is None else min(max_perturbations, len(kinds) * per_kind)
    visit = kinds
    if remaining < len(kinds) * per_kind:
        visit = [kinds[i] for i in generator.permutation(len(kinds))]
    chosen: dict[str, list[str]] = {}
    for kind in visit:
        if remaining == 0:
            break
        candidates = [text for text in PERTURBATION_EDITORS[kind](caption) if _normalized(text) not in forbidden]
        keep = min(per_kind, remaining)
        if len(candidates) > keep:
            picked = sorted(generator.choice(len(candidates), size=keep, replace=False).tolist())
            candidates = [candidates[i] for i in picked]
        chosen[kind] = candidates
        remaining -= len(candidates)
        forbidden |= {_normalized(text) for text in candidates}
    return [CaptionPerturbation(text, kind) for kind in kinds for text in chosen.get(kind, ())]


__all__ = [
    "ANTONYM_PHRASES",
    "ANTONYM_WORDS",
    "CaptionPerturbation",
    "PERTURBATION_EDITORS",
    "PERTURBATION_KINDS",
    "antonym_flips",
    "count_edits",
    "order_swaps",
    "parse_perturbation_kinds",
    "perturb_caption",
]

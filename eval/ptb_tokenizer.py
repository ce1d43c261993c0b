"""aac-metrics' caption preprocessing (Stanford PTB tokenizer + punctuation removal) without Java.

aac-metrics' `preprocess_mono_sents` writes the captions, one per line, to a file, runs
`edu.stanford.nlp.process.PTBTokenizer -preserveLines -lowerCase` from Stanford CoreNLP 3.4.1 on it,
drops the tokens listed in `aac_metrics.utils.tokenization.PTB_PUNCTUATIONS` and joins the rest
with single spaces. `ptb_tokenize_python` gives the same strings in pure Python, so that scores
computed where Java is missing stay comparable with published ones.

The Java tokenizer is a JFlex scanner: at each position the rule whose pattern (trailing context
included) matches the longest text wins, the earlier rule on ties, and the rule's action decides
the token text (quotes become `` '' ` ', brackets -LRB- -RSB- ..., dashes --, "cannot" becomes
"can" "not", an abbreviation that ends a sentence is followed by an extra "."). Trailing context
may look across the line break into the next caption, which is why the captions are scanned as
one text, exactly like the file Java reads. The rules below restate the scanner's behaviour for
the characters listed in `SUPPORTED_CHARACTERS`; every rule that needs another character (SGML
tags, HTML entities, other scripts, superscripts, ...) is left out, and `python_tokenizer_problem`
refuses texts containing such characters instead of tokenising them differently.

aac-metrics' punctuation filter compares the lower-cased tokens with upper-case bracket names, so
"-lrb-", "-rrb-", "-lsb-", ... stay in its output (and in this one), while quotes, dashes and
sentence punctuation go. tests/eval/test_ptb_tokenizer.py compares this module with the Java tool
on the synthetic corpus's captions and on hand-written hard cases.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import regex

# Characters whose handling by the Java tokenizer is restated here. ASCII without "<" and ">"
# (SGML tags, e-mail brackets, "<<" marks), Latin-1 and Latin Extended-A letters, and the
# typographic characters common in English captions.
_TYPOGRAPHIC = (
    "\u00a0"  # no-break space
    "\u2018\u2019\u201c\u201d"  # curly quotes
    "\u00ab\u00bb"  # guillemets
    "\u2013\u2014"  # en / em dash
    "\u2026"  # ellipsis
    "\u00b0\u00b4"  # degree sign, acute accent (sometimes typed as an apostrophe)
    "\u00bc\u00bd\u00be"  # vulgar fractions 1/4 1/2 3/4
    "\u00a2\u00a3\u20ac"  # cent, pound, euro signs
)
SUPPORTED_CHARACTERS: frozenset[str] = frozenset(
    [chr(code) for code in range(0x20, 0x7F) if chr(code) not in "<>"]
    + [chr(code) for code in range(0xC0, 0x180) if code not in (0xD7, 0xF7)]
    + list(_TYPOGRAPHIC)
)
_UNSUPPORTED = regex.compile("[^" + "".join(regex.escape(char) for char in sorted(SUPPORTED_CHARACTERS)) + "]")
# "&name;" and "&#123;" are read as SGML character entities by the Java tokenizer.
_ENTITY = regex.compile(r"&(?:[A-Za-z]+|#[0-9]+);")

# aac-metrics' PTB_PUNCTUATIONS (aac_metrics.utils.tokenization, 0.5.4), compared with the
# lower-cased tokens: the bracket names never match, so "-lrb-" and the like are kept.
PTB_PUNCTUATIONS: tuple[str, ...] = (
    "''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";",
)

_NEWLINE_TOKEN = "\n"


def python_tokenizer_problem(texts: Sequence[str]) -> str | None:
    """Why `ptb_tokenize_python(texts)` could differ from the Java tokenizer, or None when it cannot.

    Names the first text that contains a character outside `SUPPORTED_CHARACTERS` (line breaks and
    tabs included: collapse whitespace first, e.g. with `caption_metrics.sanitize_caption`) or an
    SGML character entity such as "&amp;".
    """
    for index, text in enumerate(_checked_texts(texts)):
        unsupported = _UNSUPPORTED.search(text)
        if unsupported is not None:
            char = unsupported.group()
            return (
                f"text {index} ({text!r}) contains {char!r} (U+{ord(char):04X} {unicodedata.name(char, 'unnamed')}), "
                "which the Python PTB tokenizer does not reproduce (it covers printable ASCII except < and >, Latin "
                "letters, curly quotes, dashes, the ellipsis and a few symbols; line breaks and tabs must be "
                "collapsed first)"
            )
        entity = _ENTITY.search(text)
        if entity is not None:
            return (
                f"text {index} ({text!r}) contains the character entity {entity.group()!r}, which the Java "
                "tokenizer decodes and the Python PTB tokenizer does not"
            )
    return None


def ptb_tokenize_python(texts: Sequence[str]) -> list[str]:
    """Lower-case, PTB-tokenise and strip punctuation like aac-metrics' `preprocess_mono_sents`, without Java.

    Equal to `aac_metrics.utils.tokenization.preprocess_mono_sents(texts)` run with the Stanford
    CoreNLP 3.4.1 tokenizer for every input that `python_tokenizer_problem` accepts. Like that
    function, the texts are tokenised as one text: whether a one-letter acronym such as "I." ending
    a caption keeps its period depends on how the next caption starts.

    Raises:
        TypeError: `texts` is not a sequence of strings.
        ValueError: a text contains something the re-implementation does not cover (the message
            is `python_tokenizer_problem`'s).
    """
    texts = _checked_texts(texts)
    problem = python_tokenizer_problem(texts)
    if problem is not None:
        raise ValueError(f"cannot PTB-tokenise without Java: {problem}")
    if not texts:
        return []
    tokens = _scan("\n".join(texts))
    lines: list[list[str]] = [[]]
    for token in tokens:
        if token == _NEWLINE_TOKEN:
            lines.append([])
        else:
            lines[-1].append(token)
    if len(lines) != len(texts):  # a token never spans a line break, so this cannot happen
        raise AssertionError(f"PTB tokenizer produced {len(lines)} lines for {len(texts)} texts")
    # aac-metrics reads the Java output line by line: right-strip, split on single spaces, drop punctuation.
    punctuation = set(PTB_PUNCTUATIONS)
    return [
        " ".join(word for word in " ".join(line).rstrip().split(" ") if word not in punctuation) for line in lines
    ]


def _checked_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {index} is {type(text).__name__} ({text!r}), expected a string")
    return list(texts)


# --------------------------------------------------------------------------------------------
# The scanner. Patterns are `regex` POSIX patterns (leftmost-longest, like JFlex); the token's
# own text is group "tok", anything after it is trailing context that counts towards the match
# length but is scanned again. JFlex's %caseless makes literal letters match both cases but
# leaves character classes alone, hence `_ci` for literals and explicit classes elsewhere.


# JFlex's case-insensitive literals also accept letters whose upper or lower case is the literal's:
# long s (upper case "S"), dotless i (upper case "I") and dotted capital I (lower case "i").
_CASE_VARIANTS = {"s": "\u017f", "i": "\u0131\u0130"}


def _ci(literal: str) -> str:
    """A case-insensitive regex for an ASCII literal, matching like a JFlex %caseless literal."""
    return "".join(
        f"[{ch.lower()}{ch.upper()}{_CASE_VARIANTS.get(ch.lower(), '')}]" if ch.isalpha() else regex.escape(ch)
        for ch in literal
    )


def _ci_words(words: str) -> list[str]:
    """Case-insensitive regexes for "a|b|c"; a leading "[X]" keeps that first letter's case, as in the Java grammar."""
    return [word[:3] + _ci(word[3:]) if word.startswith("[") else _ci(word) for word in words.split("|")]


def _any(*alternatives: str) -> str:
    return "(?:" + "|".join(alternatives) + ")"


_LETTER = r"A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u017f"
LETTER = f"[{_LETTER}]"
LETTER_OR_DIGIT = f"[{_LETTER}0-9]"
UPPERCASE = "[" + "".join(
    ch for ch in sorted(SUPPORTED_CHARACTERS) if unicodedata.category(ch) == "Lu"
) + "]"
SPACE = r"[ \u00a0]"
SPACE_OR_NEWLINE = r"[ \u00a0\n]"
APOS = r"['\u2019]"
APOS_ETC = r"['\u2019`\u2018]"  # also the marks found inside words, rightly or wrongly
INSENTENCE_PUNCT = "[,;:]"
NOT_LETTER = "[^A-Za-z]"

WORD = f"{LETTER}{LETTER_OR_DIGIT}*(?:[.!?]{LETTER}{LETTER_OR_DIGIT}*)*"
REDUCED_AUX = f"{APOS}(?:[msdMSD]|{_ci('re')}|{_ci('ve')}|{_ci('ll')})"
N_T_STEM = "[A-Za-z]*[A-MO-Za-mo-z]"  # a word that can take n't: it cannot end in n
N_T = _ci("n") + APOS_ETC + _ci("t")
APOSTROPHE_WORD = "(?:" + "|".join([
    f"{APOS}{_ci('n')}{APOS}?",
    f"[lLdDjJ]{APOS}",
    _ci("dunkin") + APOS,
    _ci("somethin") + APOS,
    _ci("ol") + APOS,
    APOS + _ci("em"),
    f"[A-HJ-XZn]{APOS_ETC}{LETTER}{{2}}{LETTER}*",
    f"{APOS}[2-9]0{_ci('s')}",
    f"{APOS}{_ci('til')}{_ci('l')}?",
    f"{LETTER}+[aeiouyAEIOUY]{APOS_ETC}[aeiouA-Z]{LETTER}*",
    APOS + _ci("cause"),
    _ci("cont'd") + r"\.?",
    _ci("'twas"), _ci("nor'easter"), _ci("c'mon"), _ci("e'er"), _ci("s'mores"), _ci("ev'ry"), _ci("li'l"),
    _ci("nat'l"),
    _ci("o") + APOS_ETC + _ci("o"),
]) + ")"
# The Java classes also exclude tab, CR, form feed, "<" and ">", none of which reaches the scanner here.
FULL_URL = _ci("http") + _ci("s") + "?://" + r'[^ \n"|(){}]+[^ \n"|.!?(){},\-]'
LIKELY_URL = (
    "(?:(?:" + _ci("www") + r'\.(?:[^ \n"|.!?(){},]+\.)+[a-zA-Z]{2,4})'
    # ",-_" in the Java class is a range (U+002C-U+005F): no digits, upper case or "-" "." "/" "@".
    + r"|(?:(?:[^ \n\"`'|.!?(){}\x2c-\x5f$]+\.)+" + _any(*_ci_words("com|net|org|edu")) + "))"
    + r'(?:/[^ \n"|()]+[^ \n"|.!?(){},\-])?'
)
EMAIL = r'[a-zA-Z0-9][^ \n"|()\u00a0{}]*@(?:[^ \n"|(){}.\u00a0]+\.)*(?:[^ \n"|(){}.\u00a0]+)'
TWITTER = f"(?:@[a-zA-Z_][a-zA-Z_0-9]*|#{LETTER}+)"
DATE = r"[0-9]{1,2}[\-/][0-9]{1,2}[\-/][0-9]{2,4}"
NUMBER = r"[\-+]?(?:[0-9]+|[0-9]*(?:[.:,][0-9]+)+)"
FRACTION = r"(?:[0-9]{1,4}[\- \u00a0])?[0-9]{1,4}\\?/[0-9]{1,4}"
THING3 = r"[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\?/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}"
TREEBANK_SPECIAL = (
    "(?:-" + _any(*_ci_words("RRB|LRB|RCB|LCB|RSB|LSB")) + "-|" + _ci("C.D.s") + "|" + _ci("pro-") + "|"
    + _ci("anti-") + "|" + _ci("S&P-500") + "|" + _ci("S&Ls") + "|" + _ci("Cap") + APOS + _ci("n") + "|" + _ci("c") + APOS
    + _ci("est") + ")"
)
ACRO_SPECIAL = (
    _any(*_ci_words("Canada|Sino|Korean|EU|Japan|non")) + _ci("-U.S") + "|" + _ci("U.S.-")
    + _any(*_ci_words("U.K|U.S.S.R"))
)
ACRO = f"(?:[A-Za-z](?:\\.[A-Za-z])*|{ACRO_SPECIAL})"
ACRO2 = f"(?:[A-Za-z](?:\\.[A-Za-z])+|{ACRO_SPECIAL})"
# Capitalised words after which "X.Y." ends a sentence (first letter case-sensitive).
SENTENCE_STARTERS = "|".join(
    f"[{word[0]}]{_ci(word[1:])}" for word in (
        "About According Additionally After An A As At But Earlier He Her Here However If In It Last Many More "
        "Mr. Ms. Now Once One Other Our She Since So Some Such That The Their Then There These They This We "
        "When While What Yet You"
    ).split()
)
# Abbreviations usually followed by lower case: months, days, states, companies, numbers, titles.
# Pty / Pte / Ptys / Ppty ...: the y / e is case-sensitive in the Java grammar.
ABBREV1 = _any(*_ci_words(
    "Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|Mon|Tue|Tues|Wed|Thu|Thurs|Fri"
    "|Ala|Ariz|[A]z|[A]rk|Calif|Colo|Conn|Ct|Dak|[D]el|Fla|Ga|[I]ll|Ind|Kan|Kans|Ky|[L]a|[M]ass|Md|Mich|Minn"
    "|[M]iss|Mo|Mont|Neb|Nev|Okla|[O]re|[P]a|Penn|Tenn|[T]ex|Va|Vt|[W]ash|Wis|Wisc|Wyo"
    "|Inc|Co|Cos|Corp|Ltd|Plc|Rt|Bancorp|Bhd|Assn|Univ|Intl|Sys|tel|est|ext|sq"
    "|Jr|Sr|Bros|Ed.D|Ph.D|Blvd|Rd|Esq|etc|al|seq|Bldg"
), _ci("p") + _ci("p") + "?" + _ci("t") + "[ye]" + _ci("s") + "?") + r"\."
# Titles and other abbreviations usually followed by upper case ("M[ft]g": lower-case f / t only).
ABBREV4 = _any(*_ci_words(
    "Mr|Mrs|Ms|[M]iss|Dr|Drs|Prof|Profs|Sen|Sens|Rep|Reps|Atty|Attys|Lt|Col|Gen|Messrs|Gov|Govs|Adm|Rev|Maj"
    "|Sgt|Cpl|Pvt|Capt|St|Ste|Ave|Pres|Lieut|Hon|Brig|Cmdr|Comdr|Pfc|Spc|Supt|Supts|Det|Mt|Ft|Adj|Adv|Asst"
    "|Assoc|Ens|Insp|Mlle|Mme|Msgr|Sfc|vs|Alex|Wm|Jos|Cie|a.k.a|cf|TREAS|Ph|Invt|Elec|Natl|Dept"
), _ci("m") + "[ft]" + _ci("g"), ACRO)
# Abbreviations recognised only before a number.
ABBREV3 = _any(*_ci_words("ca|fig|figs|prop|no|nos|art|bldg|pp|op")) + r"\."
FILENAME = f"{LETTER_OR_DIGIT}+(?:\\.{LETTER_OR_DIGIT}+)*\\." + _any(*_ci_words(
    "bat|bmp|c|class|cgi|cpp|dll|doc|docx|exe|gif|gz|h|htm|html|jar|java|jpeg|jpg|mov|mp3|pdf|php|pl|png|ppt"
    "|ps|py|sql|tar|txt|wav|x|xml|zip"
))
PHONE = (
    r"(?:\([0-9]{2,3}\)[ \u00a0]?|(?:\+\+?)?(?:[0-9]{2,4}[\- \u00a0])?[0-9]{2,4}[\- \u00a0])[0-9]{3,4}[\- \u00a0]?"
    r"[0-9]{3,5}|(?:(?:\+\+?)?[0-9]{2,4}\.)?[0-9]{2,4}\.[0-9]{3,4}\.[0-9]{3,5}"
)
SMILEY = r"[:;=][\-o*']?[()DPdpO\\{@|\[\]]"
ASIAN_SMILEY = (
    r"[\-^x=~']_[\-^x=~']|\([\-^x=~'][_.]?[\-^x=~']\)|\([\^x=~']-[\^x=~'`]\)"
)
HTHING = f"[A-Za-z0-9][A-Za-z0-9.,]*(?:-(?:[A-Za-z0-9]+|{ACRO2}\\.))+"
_THING_PART = f"(?:[dDoOlL]{APOS_ETC}{LETTER_OR_DIGIT})?{LETTER_OR_DIGIT}+"
THING = f"{_THING_PART}(?:[\\-_]{_THING_PART})*"
THINGA = "[A-Z]+(?:[+&][A-Z]+)+"
QUOTES = f"(?:{APOS}|''|[`\u2018\u2019\u201c\u201d\u00ab\u00bb]{{1,2}})"
LDOTS = r"\.{3,5}|(?:\.[ \u00a0]){2,4}\.|\u2026"
MISC_SYMBOL = r"[+%&~^|\\\u00b0\u00b4]"


# --- token text transformations (the scanner's actions) ---

def _latex_quotes(text: str, probably_left: bool) -> str:
    if probably_left:
        text = text.replace("'", "`").replace('"', "``")
    else:
        text = text.replace('"', "''")
    for chars, replacement in (("\u2018", "`"), ("\u2019", "'"), ("\u201c\u00ab", "``"), ("\u201d\u00bb", "''")):
        for char in chars:
            text = text.replace(char, replacement)
    return text


def _left_quote(text: str) -> str:
    return _latex_quotes(text, True)


def _right_quote(text: str) -> str:
    return _latex_quotes(text, False)


def _with_nbsp_and_brackets(text: str) -> str:
    return text.replace(" ", "\u00a0").replace("(", "-LRB-").replace(")", "-RRB-")


def _with_brackets(text: str) -> str:
    return text.replace("(", "-LRB-").replace(")", "-RRB-")


def _hyphens(text: str) -> str:
    return "--" if 3 <= len(text) <= 4 else text


_BRACKETS = {"(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-"}
_FRACTIONS = {"\u00bc": "1/4", "\u00bd": "1/2", "\u00be": "3/4"}
_CURRENCIES = {"\u00a2": "cents", "\u00a3": "#", "\u20ac": "$"}

# How the scanner continues after a match of `tok` (the token's own text).
_EMIT = "emit"  # emit transform(tok), continue after it
_DROP = "drop"  # emit nothing (white space)
_NEWLINE = "newline"
_KEEP_FINAL_PERIOD = "period"  # emit tok, scan its final "." again (abbreviation ending a sentence)
_ACRONYM = "acronym"  # "I." -> "I" then "."; "U.S." -> "U.S." then "."


@dataclass(frozen=True)
class _Rule:
    name: str
    pattern: regex.Pattern
    kind: str = _EMIT
    transform: Callable[[str], str] | None = None
    pushback: int = 0  # characters of tok given back to the input ("cannot" -> "can" + "not")


def _rule(name: str, token: str, context: str = "", kind: str = _EMIT,
          transform: Callable[[str], str] | None = None, pushback: int = 0) -> _Rule:
    pattern = regex.compile(f"(?P<tok>{token})(?:{context})", flags=regex.POSIX)
    return _Rule(name, pattern, kind, transform, pushback)


@functools.lru_cache(maxsize=1)
def _rules() -> tuple[_Rule, ...]:
    """The scanner's rules in priority order (the earlier wins among equally long matches)."""
    return (
        _rule("c++", _ci("c++")),
        _rule("c#", _any(_ci("c"), _ci("f")) + "#"),
        _rule("cannot", _ci("cannot"), pushback=3),
        _rule("'twas", _ci("'twas"), pushback=3),
        _rule("'tis", _ci("'tis"), pushback=2),
        _rule("gonna", _any(*_ci_words("gonna|gotta|lemme|gimme|wanna")), pushback=2),
        _rule("dash", "[\u2013\u2014]", transform=lambda _: "--"),
        _rule("word before 's", WORD, REDUCED_AUX),
        _rule("word before n't", N_T_STEM, N_T),
        _rule("word", WORD),
        _rule("apostrophe word", APOSTROPHE_WORD),
        _rule("y'", _ci("y") + APOS, LETTER),
        _rule("url", FULL_URL),
        _rule("likely url", LIKELY_URL),
        _rule("email", EMAIL),
        _rule("twitter", TWITTER),
        _rule("'s", REDUCED_AUX, NOT_LETTER, transform=_right_quote),
        _rule("n't", N_T, NOT_LETTER, transform=_right_quote),
        _rule("date", DATE),
        _rule("number", NUMBER),
        _rule("fraction", FRACTION, transform=lambda text: text.replace(" ", "\u00a0")),
        _rule("fraction character", "[\u00bc\u00bd\u00be]", transform=_FRACTIONS.__getitem__),
        _rule("treebank special", TREEBANK_SPECIAL),
        _rule("thing3", THING3),
        _rule("dollar", r"[A-Z]*\$|#"),
        _rule("currency", "[\u00a2\u00a3\u20ac]", transform=_CURRENCIES.__getitem__),
        _rule("acronym ending a sentence", ACRO + r"\.", f"{SPACE_OR_NEWLINE}+(?:{SENTENCE_STARTERS}){SPACE_OR_NEWLINE}",
              kind=_ACRONYM),
        _rule("abbreviation before a number", ABBREV3, f"{SPACE_OR_NEWLINE}?[0-9]"),
        _rule("pty. ltd.", _any(_ci("pt") + "[eyEY]", _ci("co")) + r"\.", f"{SPACE}{_any(*_ci_words('ltd|lim'))}"),
        _rule("abbreviation ending a sentence", ABBREV1, f"{SPACE_OR_NEWLINE}(?:{SPACE_OR_NEWLINE}|{UPPERCASE})",
              kind=_KEEP_FINAL_PERIOD),
        _rule("abbreviation", ABBREV1, r"[\s\S][\s\S]"),
        _rule("abbreviation at the end", ABBREV1, kind=_KEEP_FINAL_PERIOD),
        _rule("title abbreviation", ABBREV4 + r"\."),
        _rule("title abbreviation without period", ABBREV4, SPACE),
        _rule("acronym without period", ACRO, SPACE_OR_NEWLINE),
        _rule("'90", f"{APOS}[0-9][0-9]", SPACE_OR_NEWLINE),
        _rule("file name", FILENAME, f"{SPACE_OR_NEWLINE}|[.?!,]"),
        _rule("word.", WORD + r"\.", INSENTENCE_PUNCT),
        _rule("phone", PHONE, transform=_with_nbsp_and_brackets),
        _rule("opening double quote", '"', "[A-Za-z0-9$]", transform=_left_quote),
        _rule("double quote", '"', transform=_right_quote),
        _rule("smiley", SMILEY, "[^A-Za-z0-9]", transform=_with_brackets),
        _rule("asian smiley", ASIAN_SMILEY, transform=_with_brackets),
        _rule("bracket", r"[()\[\]{}]", transform=_BRACKETS.__getitem__),
        _rule("hyphens", r"-+", transform=_hyphens),
        _rule("ellipsis", LDOTS, transform=lambda _: "..."),
        _rule("marks", "@+|#+|_+"),
        _rule("asterisks", r"\*+|(?:\\\*){1,3}"),
        _rule("in-sentence punctuation", INSENTENCE_PUNCT),
        _rule("?!", "[?!]+"),
        _rule("period", r"\."),
        _rule("=", "="),
        _rule("slash", "/"),
        _rule("hyphenated.", HTHING + r"\.", INSENTENCE_PUNCT),
        _rule("hyphenated", HTHING),
        _rule("thing.", THING + r"\.", INSENTENCE_PUNCT),
        _rule("thing", THING),
        _rule("thinga.", THINGA + r"\.", INSENTENCE_PUNCT),
        _rule("thinga", THINGA),
        _rule("opening single quote", "'", r"[A-Za-z][^ \n\u00a0]", transform=_left_quote),
        _rule("'s at the end", REDUCED_AUX, transform=_right_quote),
        _rule("n't at the end", N_T, transform=_right_quote),
        _rule("quotes", QUOTES, transform=_right_quote),
        _rule("symbol", MISC_SYMBOL),
        _rule("space", r"[ \u00a0]+", kind=_DROP),
        _rule("newline", r"\n", kind=_NEWLINE),
    )


# Letters without the ones that JFlex's case-insensitive literals treat as "s" or "i".
# Not followed by a no-break space: URL patterns read across it ("rain\u00a0dog.com" is one token).
_PLAIN_WORD = regex.compile(r"[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u012f\u0132-\u017e]+(?=[ \n]|$)")
# Whole words the scanner splits ("cannot" -> "can" "not", "gonna" -> "gon" "na").
_SPLIT_WORDS = frozenset({"cannot", "gonna", "gotta", "lemme", "gimme", "wanna"})


# The text a rule's viability is judged on: a run of letters and digits and the two characters after it.
_PREFIX = regex.compile(r"[A-Za-z0-9\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u017f]*[\s\S]{1,2}")
_VIABLE_CACHE: dict[str, tuple[_Rule, ...]] = {}


def _viable_rules(prefix: str) -> tuple[_Rule, ...]:
    """The rules that can match at a position where the text starts with `prefix`, in priority order.

    A rule is left out only when no text starting with `prefix` can begin with one of its matches:
    no match within `prefix`, and `prefix` is not the beginning of a longer one.
    """
    rules = _VIABLE_CACHE.get(prefix)
    if rules is None:
        rules = tuple(rule for rule in _rules() if rule.pattern.match(prefix, partial=True) is not None)
        if len(_VIABLE_CACHE) >= 200_000:  # distinct words of a caption corpus stay far below this
            _VIABLE_CACHE.clear()
        _VIABLE_CACHE[prefix] = rules
    return rules


def _scan(text: str) -> list[str]:
    """Lower-cased tokens of `text`, with `_NEWLINE_TOKEN` for each line break."""
    tokens: list[str] = []
    position = 0
    while position < len(text):
        plain = _PLAIN_WORD.match(text, position)
        if plain is not None and plain.group().lower() not in _SPLIT_WORDS:
            # Shortcut for the common case, same result as the rules: a run of letters up to a space,
            # a line break or the end is one token (WORD, or an equal token from an acronym / title
            # rule whose trailing context is that space); no rule reaches past the space without a
            # ".", digit or apostrophe in the run.
            tokens.append(plain.group().lower())
            position = plain.end()
            continue
        best: regex.Match | None = None
        best_rule: _Rule | None = None
        for rule in _viable_rules(_PREFIX.match(text, position).group()):
            match = rule.pattern.match(text, position)
            if match is not None and match.end() > position and (best is None or match.end() > best.end()):
                best, best_rule = match, rule
        if best is None:
            # The Java tokenizer drops a character no rule matches ("Untokenizable" warning).
            position += 1
            continue
        token = best.group("tok")
        if best_rule.pushback:
            token = token[: -best_rule.pushback]
        if best_rule.kind == _DROP:
            position += len(token)
            continue
        if best_rule.kind == _NEWLINE:
            tokens.append(_NEWLINE_TOKEN)
            position += len(token)
            continue
        if best_rule.kind == _ACRONYM and len(token) == 2:
            token = token[0]
            position += 1
        elif best_rule.kind in (_ACRONYM, _KEEP_FINAL_PERIOD):
            position += len(token) - 1
        else:
            position += len(token)
        if best_rule.transform is not None:
            token = best_rule.transform(token)
        tokens.append(token.lower())
    return tokens

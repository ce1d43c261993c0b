"""The pure-Python PTB tokenizer against aac-metrics' preprocessing with the Stanford (Java) tool.

The expected strings in `FIXED` were produced once by `aac_metrics.utils.tokenization.preprocess_mono_sents`
with Stanford CoreNLP 3.4.1 on Java 17; the Java test re-checks thousands of captions in one tokenizer run.
"""

import random

import pytest

from llm_aac.eval.ptb_tokenizer import (
    PTB_PUNCTUATIONS,
    SUPPORTED_CHARACTERS,
    ptb_tokenize_python,
    python_tokenizer_problem,
)
from java_marks import requires_java_tools


# (caption, what aac-metrics' preprocessing with the Java tokenizer returns), tokenised as one batch.
FIXED = [
    ("A dog barks, and then a car passes by.", "a dog barks and then a car passes by"),
    ("The dog's bark echoes; the dogs' barking stops.", "the dog 's bark echoes the dogs barking stops"),
    ("Don't stop, DON'T stop, can't, won't, isn't.", "do n't stop do n't stop ca n't wo n't is n't"),
    ("I'm sure it's fine; they're here and we'll see.", "i 'm sure it 's fine they 're here and we 'll see"),
    ("The clock strikes twelve o'clock.", "the clock strikes twelve o'clock"),
    ("rock 'n' roll, y'all, 'cause 'til the '90s", "rock 'n' roll y' all 'cause 'til the '90s"),
    ("I cannot hear it, gonna wanna", "i can not hear it gon na wan na"),
    ("'Twas loud, 'tis quiet", "'t was loud 't is quiet"),
    ('Someone says "hello" twice.', "someone says hello twice"),
    ("A man says 'go' and leaves.", "a man says go and leaves"),
    ("\u201cCurly\u201d quotes, \u2018single\u2019 ones and it\u2019s", "curly quotes single ones and it 's"),
    ("A high-pitched, well-known x-ray beep", "a high-pitched well-known x-ray beep"),
    ("a - b -- c --- d ----- e", "a b c d ----- e"),
    ("em\u2014dash and en\u2013dash", "em dash and en dash"),
    ("3.5 seconds, 1,000 birds at 10:30", "3.5 seconds 1,000 birds at 10:30"),
    ("1 1/2 cups and 3/4 inch", "1\u00a01/2 cups and 3/4 inch"),
    ("50% louder for $5 or \u00a35 or \u20ac5", "50 % louder for $ 5 or # 5 or $ 5"),
    ("#1 hit, No. 5 and fig. 3", "# 1 hit no. 5 and fig. 3"),
    ("(555) 123-4567", "-lrb-555-rrb-\u00a0123-4567"),
    ("Really?! Stop!!! wait... ok \u2026", "really ?! stop !!! wait ok"),
    ("a bell (loudly) rings [music] {noise}", "a bell -lrb- loudly -rrb- rings -lsb- music -rsb- -lcb- noise -rcb-"),
    (":) and ;-) and ^_^", ":-rrb- and ;--rrb- and ^_^"),
    ("and/or, AT&T, rock & roll, A+B", "and/or at&t rock & roll a+b"),
    ("a*b and x = y and ~ ^ | \\ _", "a * b and x = y and ~ ^ | \\ _"),
    ("@user #tag c++ C#", "@user #tag c++ c#"),
    ("www.example.com foo@bar.com file.wav", "www.example.com foo@bar.com file.wav"),
    ("  multiple   spaces  ", "multiple spaces"),
    ("", ""),
    ("a\u00a0b", "a b"),
    ("caf\u00e9 na\u00efve r\u00e9sum\u00e9 CAF\u00c9 stra\u00dfe \u0152uvre", "caf\u00e9 na\u00efve r\u00e9sum\u00e9 caf\u00e9 stra\u00dfe \u0153uvre"),
    ("Mr. Smith and Dr. Who, etc. and cats", "mr. smith and dr. who etc. and cats"),
    ("at 5 a.m. in the U.S. army", "at 5 a.m. in the u.s. army"),
    ("e.g. birds, i.e. dogs, cats vs. dogs", "e.g. birds i.e. dogs cats vs. dogs"),
    ("turned 90\u00b0 and \u00bd cup", "turned 90 \u00b0 and 1/2 cup"),
    ("don\u00b4t", "don \u00b4 t"),
    ("A baby cries while a woman's voice says 'shh'.", "a baby cries while a woman 's voice says shh"),
    # A one-letter acronym ends a sentence when the next line starts with "The", "It", ...
    ("Plan I.", "plan i"),
    ("The end", "the end"),
]

# Caption-like strings that exercise the tokenizer's special cases (compared with Java below).
TRICKY = [
    # apostrophes, possessives, contractions
    "The dog's bark echoes.", "The dogs' barking stops.", "James's car starts.", "James' car starts.",
    "Don't stop, DON'T stop, don't.", "It can't be, won't be, isn't it?", "I'm sure it's fine; they're here.",
    "We'll see, you've heard, she'd know.", "ain't nobody", "The clock strikes twelve o'clock.",
    "rock 'n' roll and rock'n'roll", "y'all hear that", "'cause it rains", "'til dawn", "'90s music plays",
    "tell 'em", "an ol' man", "c'mon, li'l one", "I cannot hear it", "Cannot.", "gonna, wanna, gotta",
    "'Twas loud, 'tis quiet", "a man's voice and a woman's laugh", "the kids' toys rattle",
    # quotes
    'Someone says "hello" twice.', "A man says 'go' and leaves.", 'A "beep" sound, then "boop".',
    "\u201cCurly\u201d quotes and \u2018single\u2019 ones", "it\u2019s a dog\u2019s life", "don\u2019t",
    "\u00abguillemets\u00bb around words", '"quoted at the start', 'ends with a quote"', "''double single''",
    "``latex quotes''", "`backtick`",
    # hyphens and dashes
    "A high-pitched, well-known x-ray beep", "a - b", "a -- b", "a --- b", "a ---- b", "-----",
    "e-mail and co-op", "pro- and anti-war", "-5 degrees", "a T-shirt rustles", "50-50 chance",
    "em\u2014dash and en\u2013dash", "a \u2013 b \u2014 c", "well--known",
    # numbers
    "3.5 seconds", "1,000 birds", "at 10:30 pm", "1/2 a second", "3/4 inch", "1 1/2 cups", "1-1/2 cups",
    "on 12/25/2020", "on 2020-01-01", "50% louder", "$5 and US$5", "\u00a35 and \u20ac5 and 5\u00a2",
    "#1 hit", "No. 5 and no. 5", "fig. 3", "ca. 1900", "call 555-1234", "(555) 123-4567", "+3 and -3",
    "+44 20 7946 0958", "version 3.5.2", "1st, 2nd and 3rd", "turned 90\u00b0", "\u00bd \u00bc \u00be cup",
    "24/7", "2 x 4", "100 m/s",
    # sentence punctuation
    "Hello, world.", "Wait; what: no!", "Really?!", "Stop!!!", "What??", "wait... ok", "wait \u2026 ok",
    "ends with dots...", ". . .", "a.b and a,b and a;b", "trailing period.", "trailing comma,",
    "spaced out !", ", leading comma", "two.  Sentences here.", "a dog barks.Then silence",
    # brackets and emoticons
    "a bell (loudly) rings", "[music] plays", "{noise} continues", "(laughs)", "f(x) and g[y]",
    ":) and ;-) and :D", "^_^ and (^_^) and -_-",
    # slashes, ampersands, symbols, web-like tokens
    "and/or", "dog/cat noises", "AT&T and R&B", "rock & roll", "A+B", "S&P 500", "a/b/c", "w/o sound",
    "a*b and ** and *", "x = y", "~ ^ | \\ _", "__init__", "@user and #tag", "c++ and C# and f#",
    "www.example.com", "http://example.com/a/b", "foo@bar.com", "a file.wav plays", "dog.com",
    "sound \u00b4s", "don\u00b4t", "rain\u00a0dog.com",
    # white space
    "  leading spaces", "trailing spaces   ", "multiple   spaces  here", "", " ", "a\u00a0b", "a \u00a0 b",
    # accented words
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9", "Zo\u00eb and se\u00f1or", "a fa\u00e7ade", "\u00c5ngstr\u00f6m",
    "\u0152uvre", "stra\u00dfe", "CAF\u00c9", "\u00c9COLE", "\u0130stanbul", "'90\u017f and \u0131nc. and 't\u0131s",
    # abbreviations and acronyms
    "Mr. Smith speaks.", "Dr. Who", "birds, dogs, etc. and cats", "birds, dogs, etc.", "in the U.S. The end",
    "the U.S. army", "at 5 a.m. and 6 p.m.", "e.g. birds", "i.e. dogs", "cats vs. dogs", "St. Paul",
    "Acme Inc. makes noise", "Co. Ltd.", "approx. 5", "Jan. 5", "a Ph.D. student", "Plan I. The end",
    "U.S.A.", "A.B.C. News", "the end etc.", "Pty. Ltd. company", "Plan A.", "It rains", "Plan B.", "",
    "the end etc.", "The next line",
    # caption-like sentences
    "A dog barks, and then a car passes by.", "Birds chirp (loudly) in the trees; a man speaks.",
    "Rain falls on a tin roof -- heavy rain.", 'Someone says: "Let\'s go!"',
    "A baby cries while a woman's voice says 'shh'.", "A train's horn blows 3 times...",
    "Water drips\u2014drip, drip, drip.", "Footsteps on a wooden floor; a door creaks open.",
    "A MAN SHOUTS LOUDLY!", "Wind blows & leaves rustle.", "An engine revs up/down repeatedly.",
    "Two people talk in the background, one laughs.", "The crowd cheers: \u201cgoal!\u201d",
]

# Pieces glued at random into further test strings.
FRAGMENTS = (
    "dog dogs The U.S. I. a.m. etc. Inc. Co. ltd Mr. St. Jan. fig. ca. no. vs. don't can't won't I'm it's "
    "he'll we've they're dog's dogs' o'clock rock'n'roll y'all 'em 'til 'cause '90s '90 cannot gonna 'twas 'tis "
    "c'mon li'l ol' 3.5 1,000 10:30 1/2 1-1/2 12/25/2020 50% $5 US$ # #1 #tag @user c++ C# -5 +3 555-1234 "
    "(555) 123-4567 well-known x-ray pro- anti- -LRB- http://a.b/c www.example.com dog.com foo@bar.com "
    "file.wav café naïve Zoë Œuvre İstanbul straße ſ ı , . ; : ! ? !! ... .. . . . - -- --- ---- ( ) [ ] { } / "
    "\\ & * = + % ~ ^ | _ @ ` ' '' \" \u2018 \u2019 \u201c \u201d \u00ab \u00bb \u2013 \u2014 \u2026 \u00b0 \u00b4 "
    "\u00bd \u00a3 \u20ac \u00a2 :) ;-) :D ^_^ (^_^) AT&T A+B S&P-500 Ph.D. e.g."
).split(" ")


def fragment_mixes(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        pieces = []
        for _ in range(rng.randint(0, 10)):
            piece = rng.choice(FRAGMENTS)
            pieces.append(piece.upper() if rng.random() < 0.1 else piece.capitalize() if rng.random() < 0.1 else piece)
            pieces.append(rng.choice([" ", " ", " ", "", "  ", "\u00a0"]))
        texts.append("".join(pieces))
    return texts


def synthetic_captions(clips_per_split: int) -> list[str]:
    from llm_aac.processing.synthetic import SPLITS, generate_clip

    return [
        caption
        for split in SPLITS
        for index in range(clips_per_split)
        for caption in generate_clip(0, index, split, with_audio=False)["captions"]
    ]


def test_fixed_examples_equal_the_java_tool_output():
    texts = [text for text, _ in FIXED]
    assert ptb_tokenize_python(texts) == [expected for _, expected in FIXED]


def test_a_caption_depends_on_how_the_next_one_starts():
    assert ptb_tokenize_python(["Plan I.", "The end"]) == ["plan i", "the end"]
    assert ptb_tokenize_python(["Plan I.", "the end"]) == ["plan i.", "the end"]
    assert ptb_tokenize_python(["Plan I."]) == ["plan i."]


def test_empty_input_and_blank_lines():
    assert ptb_tokenize_python([]) == []
    assert ptb_tokenize_python(["", " ", ". , ;"]) == ["", "", ""]


def test_punctuation_list_is_aac_metrics_own():
    from aac_metrics.utils.tokenization import PTB_PUNCTUATIONS as aac_punctuations

    assert tuple(aac_punctuations) == PTB_PUNCTUATIONS


@pytest.mark.parametrize(
    "text, message",
    [
        ("a <b> tag", "'<' (U+003C LESS-THAN SIGN)"),
        ("a -> b", "'>' (U+003E GREATER-THAN SIGN)"),
        ("two\nlines", "U+000A"),
        ("a\ttab", "U+0009"),
        ("a dog \U0001f415 barks", "U+1F415 DOG"),
        ("\u6c34 drips", "U+6C34"),
        ("10 m\u00b2", "U+00B2 SUPERSCRIPT TWO"),
        ("rock &amp; roll", "character entity '&amp;'"),
        ("it&#39;s", "character entity '&#39;'"),
    ],
)
def test_refused_texts_are_named(text, message):
    problem = python_tokenizer_problem(["fine", text])
    assert problem is not None and problem.startswith("text 1 (") and message in problem
    with pytest.raises(ValueError, match="cannot PTB-tokenise without Java: text 1"):
        ptb_tokenize_python(["fine", text])


def test_supported_texts_are_accepted():
    assert python_tokenizer_problem([text for text, _ in FIXED] + TRICKY) is None
    assert python_tokenizer_problem(["".join(sorted(SUPPORTED_CHARACTERS))]) is None
    assert python_tokenizer_problem(["rock & roll; AT&T"]) is None


@pytest.mark.parametrize("texts, message", [("a dog", "texts must be a list of strings, got str"),
                                            (["a dog", None], "text 1 is NoneType"),
                                            ([b"bytes"], "text 0 is bytes")])
def test_wrong_types(texts, message):
    with pytest.raises(TypeError, match=message):
        ptb_tokenize_python(texts)
    with pytest.raises(TypeError, match=message):
        python_tokenizer_problem(texts)


@pytest.fixture(scope="module")
def java_tokenizer(tmp_path_factory):
    from llm_aac.eval.java_tools import detect_java, prepare_java_tool_cache

    java = detect_java()
    files = prepare_java_tool_cache(tmp_path_factory.mktemp("aac_cache"))
    if java.problem or files.ptb_tokenizer_problem:
        pytest.skip(f"the Java PTB tokenizer cannot run: {java.problem or files.ptb_tokenizer_problem}")
    return java, files.cache_path


@requires_java_tools
def test_equals_the_java_tool_on_thousands_of_captions(java_tokenizer):
    from aac_metrics.utils.tokenization import preprocess_mono_sents

    from llm_aac.eval.java_tools import lifted_java_version_check

    java, cache_path = java_tokenizer
    texts = synthetic_captions(200) + TRICKY + [text for text, _ in FIXED] + fragment_mixes(1500)
    assert python_tokenizer_problem(texts) is None
    with lifted_java_version_check(java):
        expected = preprocess_mono_sents(texts, cache_path=cache_path, java_path=java.path)
    got = ptb_tokenize_python(texts)
    differences = [(text, want, have) for text, want, have in zip(texts, expected, got) if want != have]
    assert len(texts) > 5000 and len(got) == len(expected)
    assert not differences, f"{len(differences)} of {len(texts)} differ from Java, e.g. {differences[:5]}"

"""What a web account's password must be: long enough, and not one an attacker tries first.

Length alone let ``password123456`` through. As NCSC and NIST SP 800-63B advise, a new
password is also checked against a deny list rather than against composition rules: it may
not be built on the account's name, be one character or piece repeated, be a run along the
alphabet, the digits or a keyboard row, or be, once lower-cased and stripped of the digits and
symbols people add around it (and of the usual letter-for-symbol swaps), one of the most
common passwords or a word an attacker guesses first here. The reason is said; the password,
never.
"""

from __future__ import annotations

import re

from broker.errors import UsageError

MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 takes any length; a cap stops a megabyte "password" costing CPU

#: Shorter names turn up inside ordinary passphrases by chance ("ann" in "planning").
_NAME_AT_LEAST = 4
#: From this many characters (separators left out: kimward) a name is looked for anywhere; a
#: shorter one ("ward" in "forward", k.ward in "awkward") only as words of the password or
#: most of its letters.
_NAME_ANYWHERE = 6

#: The most common passwords of breach corpora (lower-cased, trailing digits and symbols
#: dropped), and what an attacker tries first against a safeguarding partnership's staff.
COMMON_PASSWORDS = frozenset({
    "password", "pass", "passwd", "qwerty", "qwertyuiop", "asdfgh", "asdfghjkl",
    "zxcvbnm", "azerty", "letmein", "welcome", "welcomeback", "iloveyou", "admin",
    "administrator", "root", "login", "football", "monkey", "dragon", "sunshine", "princess",
    "baseball", "master", "shadow", "superman", "batman", "trustno", "starwars", "whatever",
    "freedom", "hello", "helloworld", "michael", "jennifer", "jessica", "charlie", "daniel",
    "thomas", "hunter", "ashley", "bailey", "soccer", "hockey", "killer", "pepper", "ginger",
    "cheese", "chocolate", "cookie", "flower", "summer", "winter", "spring", "autumn",
    "january", "february", "march", "april", "june", "july", "august", "september",
    "october", "november", "december", "monday", "friday", "liverpool", "arsenal", "chelsea",
    "manchester", "united", "london", "england", "secret", "changeme", "default", "guest",
    "test", "testing", "access", "computer", "internet", "mustang", "harley", "jordan",
    "maggie", "buster", "tigger", "robert", "matthew", "andrew", "joshua", "lovely",
    "abc", "qazwsx", "zaq", "trustme", "blink", "solo", "loveme", "mypassword",
    "newpassword", "letmeinnow", "opensesame",
    # Local: the service, its organisations and its work.
    "safeguarding", "safeguard", "children", "childrens", "child", "accord", "council",
    "police", "nhs", "sandwell", "westmidlands", "birmingham", "social", "socialcare",
    "socialworker", "earlyhelp", "family", "families", "school", "education", "health",
    "hospital", "officer", "governance",
})  # fmt: skip

#: Runs a keyboard or an alphabet gives for free; each also read backwards and round again.
_RUNS = (
    "0123456789",
    "abcdefghijklmnopqrstuvwxyz",
    "qwertyuiopasdfghjklzxcvbnm",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    "!@#$%^&*()",
)
#: The swaps people make for the composition rules of old (p@ssw0rd).
_SWAPS = str.maketrans("@43105$7!", "aaeiossti")
#: The digits and symbols people put around a word (!Password2026, 2026password!!).
_AROUND = re.compile(r"^[\W\d_]+|[\W\d_]+$")
#: A word so short that what is around it is most of the password (1234567890ab).
_SHORTEST_WORD = 4
#: Past this a password is a passphrase: splitting it into runs would cost for nothing.
_RUNS_CHECKED_UP_TO = 64
_REPEATED = re.compile(r"(.+?)\1+", re.DOTALL)
#: A password's words for the name rule: runs of letters and runs of digits (ward2024!: ward, 2024).
_WORDS = re.compile(r"[^\W\d_]+|\d+")


def _made_of_runs(text: str) -> bool:
    """Whether ``text`` is two or more keyboard or alphabet runs of three or more typed one
    after another (zxcvbnmasdfg: the bottom row, then the middle)."""
    if len(text) > _RUNS_CHECKED_UP_TO:
        return False
    ends = {0}  # where a split into runs can end so far
    for end in range(3, len(text) + 1):
        if any(end - start >= 3 and _is_run(text[start:end]) for start in ends):
            ends.add(end)
    return len(text) in ends


def _is_run(text: str) -> bool:
    for run in _RUNS:
        for way in (run, run[::-1]):
            if text in way * (len(text) // len(way) + 2):
                return True
    return False


def _holds_name(password: str, name: str) -> bool:
    """Whether the password is built on the name, as it is typed or with the usual
    letter-for-symbol swaps (k1mw4rd): :func:`_built_on`. A name with separators (kim.ward,
    s_patel) is looked for whole and, part by part, each part of four letters or more as a
    name of its own: the surname alone was never looked for (``ward2024!!xx``,
    ``PatelRocks2024``; review r46e 1)."""
    pieces = [p for p in re.split(r"[\W_]+", name.lower()) if p]
    if len("".join(pieces)) < _NAME_AT_LEAST:
        return False
    names = [pieces]
    if len(pieces) > 1:
        names += [[p] for p in pieces if len(re.sub(r"\d", "", p)) >= _NAME_AT_LEAST]
    for text in {password, password.translate(_SWAPS)}:
        lower, words = text.lower(), _words(text)
        if any(_built_on(lower, words, each) for each in names):
            return True
    return False


def _built_on(lower: str, words: list[str], pieces: list[str]) -> bool:
    """Whether the password (``lower``, and its ``words``) is built on the name made of
    ``pieces`` (its parts between separators): a name of 6 characters or more (separators
    left out) anywhere in it (kimwardisthebest); the name as whole words of it, as it is or
    run together ("Kim Ward", ward2024 for ward), a separated one cut where its separators
    are (s.hall is "S Hall" or "SHall", not "shall"); the name, repeated or not, making up
    half its letters or more (wardy2024!!, wardwardward2024xx); or what is left of its
    letters without the name too short to be a word of its own, or a common password
    (mywardpassword1). Found anywhere inside a word, a short name refused good passphrases by
    chance ("ward" in "a forward march to the sea", "shall" in "we shall overcome" for
    s.hall), so a short one is looked for only so (reviews r46a 4, r46e 2)."""
    compact = "".join(pieces)
    if len(compact) >= _NAME_ANYWHERE and compact in re.sub(r"[\W_]", "", lower):
        return True
    # The digits and symbols around the name are padding: its share of the letters counts.
    name_letters, letters = (re.sub(r"[\W\d_]", "", t) for t in (compact, lower))
    if len(name_letters) >= _NAME_AT_LEAST and name_letters in letters:
        repeated = max(len(run) for run in re.findall(f"(?:{re.escape(name_letters)})+", letters))
        rest = letters.replace(name_letters, "")
        if 2 * repeated >= len(letters) or len(rest) < _SHORTEST_WORD or rest in COMMON_PASSWORDS:
            return True
    return _named_by_words(words, pieces)


def _words(text: str) -> list[str]:
    """The password's words, lower-cased: runs of letters and of digits, a run of letters
    cut where its case changes as a word's does (WardIsTheBest: ward, is, the, best; KIMWard:
    kim, ward). Lower-cased first, ``WardIsTheBest2024`` was one word (review r46e 1)."""
    words = []
    for run in _WORDS.findall(text):
        start = 0
        for i in range(1, len(run)):
            before, here, after = run[i - 1], run[i], run[i + 1 : i + 2]
            if here.isupper() and (before.islower() or (before.isupper() and after.islower())):
                words.append(run[start:i].lower())
                start = i
        words.append(run[start:].lower())
    return words


def _named_by_words(words: list[str], pieces: list[str]) -> bool:
    """Whether words of the password, one after another, spell the name (run together), a
    word ending wherever one of the name's ``pieces`` does."""
    compact = "".join(pieces)
    cuts, at = set(), 0
    for piece in pieces[:-1]:
        at += len(piece)
        cuts.add(at)
    for start in range(len(words)):
        joined, ends = "", set()
        for word in words[start:]:
            joined += word
            ends.add(len(joined))
            if not compact.startswith(joined):
                break
            if joined == compact:
                if cuts <= ends:
                    return True
                break
    return False


def password_problem(password: str, name: str | None = None) -> str | None:
    """Why ``password`` is refused for the account ``name`` (None: it is not); the reason
    only, never any of the password."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        return f"{MIN_PASSWORD} to {MAX_PASSWORD} characters"
    try:
        password.encode("utf-8")  # stdin's bytes that are not UTF-8 arrive as lone surrogates
    except UnicodeEncodeError:
        return "not UTF-8 text"
    return _guessable(password, name)


def _guessable(password: str, name: str | None) -> str | None:
    """Why the password is among those an attacker tries first, if it is: the name is looked
    for in it as typed (its case cuts words), the rest lower-cased."""
    lower = password.lower()
    if name is not None and _holds_name(password, name):
        return "it contains the account name: choose one that does not"
    if _REPEATED.fullmatch(lower):
        return "one character or piece repeated is easily guessed: choose another"
    return _run_or_word(lower)


def _run_or_word(lower: str) -> str | None:
    run = "a run along the keyboard, the alphabet or the digits is easily guessed"
    if _is_run(lower):
        return run
    word = _AROUND.sub("", lower)
    if word.translate(_SWAPS) in COMMON_PASSWORDS:
        return "too common (among the passwords tried first): choose a longer, less usual one"
    if _made_of_runs(lower):
        return run
    if len(word) < _SHORTEST_WORD:
        return "mostly digits or symbols around a short word is easily guessed: choose another"
    return None


def check_password(password: str, name: str | None = None) -> str:
    """``password``, or ``UsageError`` saying in one line why it is refused for ``name``."""
    if (problem := password_problem(password, name)) is not None:
        raise UsageError(f"password: {problem}")
    return password

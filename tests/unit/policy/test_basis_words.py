"""A lawful basis in words: every code a bundle may use has them, one not known is shown as
written, and nothing given is dropped."""

from __future__ import annotations

import pytest

from broker.policy import ARTICLE6_BASES, BASIS_LABELS, SPECIAL_BASES, LawfulBasis, basis_words


def test_every_code_a_bundle_may_use_has_words_of_its_own() -> None:
    """The codes ``accord policy check`` accepts, each article's: none falls back to its code."""
    assert set(BASIS_LABELS) == set(LawfulBasis.model_fields)
    allowed = {"article6": ARTICLE6_BASES, "article9": SPECIAL_BASES, "article10": SPECIAL_BASES}
    for article, codes in allowed.items():
        assert set(BASIS_LABELS[article]) == set(codes), article
        for code in codes:
            words = BASIS_LABELS[article][code]
            assert words != code, (article, code)
            assert "Art" in words or "DPA 2018" in words, (article, code)  # it cites its law


def test_a_basis_reads_as_words_with_each_article_in_order() -> None:
    basis = {"article10": "safeguarding_children", "article6": "public_task",
             "article9": "explicit_consent"}  # fmt: skip
    assert basis_words(basis) == (
        "Art 6: public task, Art 6(1)(e); Art 9: explicit consent, Art 9(2)(a); "
        "Art 10: safeguarding of children and of individuals at risk, DPA 2018 Sch 1 para 18 "
        "as para 36 extends it"
    )
    assert basis_words({"article6": "legal_obligation"}, sep="\n") == (
        "Art 6: legal obligation, Art 6(1)(c)"
    )


def test_each_condition_cites_the_provision_that_gives_it() -> None:
    """Para 18 is Art 9(2)(g) (a Sch 1 Part 2 condition, s10(3)); para 29 is plain consent."""
    art9, art10 = BASIS_LABELS["article9"], BASIS_LABELS["article10"]
    assert art9["safeguarding_children"] == (
        "safeguarding of children and of individuals at risk, Art 9(2)(g), DPA 2018 Sch 1 para 18"
    )
    assert art9["explicit_consent"] == "explicit consent, Art 9(2)(a)"
    assert art10["explicit_consent"] == "consent, DPA 2018 Sch 1 para 29"
    assert art10["vital_interests"] == "vital interests, DPA 2018 Sch 1 para 30"


# The sender's (a competent authority's) Part 3 disclosure: the recipient's own basis is the
# Art 6 one beside it, so nothing here says "outside UK GDPR". Sch 8 is for sensitive
# processing (s35(8)), which offence data is not: article10's words cite s35 alone.
SENDERS_SPECIAL = (
    "disclosed by a competent authority as law enforcement processing, "
    "DPA 2018 Part 3 (s35; Sch 8 for sensitive processing)"
)
SENDERS_OFFENCE = (
    "disclosed by a competent authority as law enforcement processing, DPA 2018 Part 3 (s35)"
)


def test_law_enforcement_is_worded_as_the_senders_disclosure_citing_its_own_provision() -> None:
    """Not "outside UK GDPR" beside an Art 6 basis; Sch 8 only under article9."""
    assert BASIS_LABELS["article9"]["law_enforcement"] == SENDERS_SPECIAL
    assert BASIS_LABELS["article10"]["law_enforcement"] == SENDERS_OFFENCE
    for article in ("article9", "article10"):
        assert "outside UK GDPR" not in BASIS_LABELS[article]["law_enforcement"]


@pytest.mark.parametrize(
    ("basis", "words"),
    [
        ({"article6": "public_task", "article10": "law_enforcement"},
         f"Art 6: public task, Art 6(1)(e); {SENDERS_OFFENCE}"),
        ({"article6": "public_task", "article9": "law_enforcement"},
         f"Art 6: public task, Art 6(1)(e); {SENDERS_SPECIAL}"),
        # Both: said once, in article9's words (they cite s35 too).
        ({"article6": "public_task", "article9": "law_enforcement",
          "article10": "law_enforcement"},
         f"Art 6: public task, Art 6(1)(e); {SENDERS_SPECIAL}"),
        ({"article9": "health_or_social_care", "article10": "law_enforcement"},
         f"Art 9: health or social care, Art 9(2)(h), DPA 2018 Sch 1 para 2; {SENDERS_OFFENCE}"),
    ],
)  # fmt: skip
def test_law_enforcement_is_not_read_as_an_article_9_or_10_condition(
    basis: dict[str, str], words: str
) -> None:
    """The sender's Part 3 disclosure: no "Art 9:"/"Art 10:" heading, said once."""
    assert basis_words(basis) == words


@pytest.mark.parametrize(
    ("basis", "words"),
    [
        # A code a later broker decided under: as written, never dropped or reworded.
        ({"article6": "public_task", "article9": "new_condition"},
         "Art 6: public task, Art 6(1)(e); Art 9: new_condition"),
        # A key no article here has: after the known ones, as written.
        ({"article6": "consent", "article_x": "code_y"},
         "Art 6: consent, Art 6(1)(a); article_x: code_y"),
        ({"article6": "public_task", "article9": None, "article10": ""},
         "Art 6: public task, Art 6(1)(e)"),
    ],
)  # fmt: skip
def test_a_code_or_key_not_known_is_shown_as_written(basis: dict[str, object], words: str) -> None:
    assert basis_words(basis) == words


@pytest.mark.parametrize("basis", [None, {}, {"article9": None}, "public_task"])
def test_no_basis_has_no_words(basis: object) -> None:
    assert basis_words(basis) is None

"""The shipped translations are complete and honest: every template in the code has a
translation in every shipped language, none fuzzy, with the source's placeholders and HTML
tags; the compiled catalogs match their sources; and the check itself can fail."""

from __future__ import annotations

import gettext
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog

from bot.texts import DOMAIN, LOCALE_DIR, N_, chat, errors, languages, t
from bot.texts.catalogs import TRANSLATED, po_path, problems, read_catalog, template_catalog


@pytest.fixture(scope="module")
def template() -> Catalog:
    return template_catalog()


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_template_is_translated_in_every_shipped_language(
    language: str, template: Catalog
) -> None:
    found = problems(language, template=template)
    assert not found, "run `python3 -m bot.texts.catalogs update`, translate, then " \
        "`compile` (see README):\n" + "\n".join(found)


@pytest.mark.parametrize("language", TRANSLATED)
def test_compiled_catalog_matches_its_source(language: str) -> None:
    """`pip install .` ships the .mo: it must say what the .po says."""
    mo = po_path(language).with_suffix(".mo")
    with mo.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    for message in read_catalog(language):
        if message.id and message.string and not message.fuzzy:
            assert compiled.gettext(str(message.id)) == message.string, message.id


def test_the_shipped_files_are_where_the_lookup_reads_them() -> None:
    for language in TRANSLATED:
        assert gettext.find(DOMAIN, LOCALE_DIR, [language]) is not None, language
    assert t(chat.DONE, "de") == "Erledigt."


def test_extraction_finds_templates_of_every_module(template: Catalog) -> None:
    ids = {m.id for m in template}
    for module in (chat, errors, languages):
        for name, value in vars(module).items():
            if name.isupper() and isinstance(value, str):
                assert value in ids, f"{module.__name__}.{name} is not extracted"
    assert set(languages.STATUS_WORDS.values()) <= ids


def test_a_new_module_is_extracted_without_registration(tmp_path: Path) -> None:
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "brand_new.py").write_text(
        'from bot.texts import N_\nHELLO = N_("Hello {name}")\n', encoding="utf-8"
    )
    found = template_catalog(tmp_path)
    assert [m.id for m in found if m.id] == ["Hello {name}"]


def _one(msgid: str, msgstr: str, *, fuzzy: bool = False) -> tuple[Catalog, Catalog]:
    source = Catalog(fuzzy=False)
    source.add(msgid, None, [("bot/texts/x.py", 1)])
    shipped = Catalog(locale="de", fuzzy=False)
    shipped.add(msgid, msgstr, flags=["fuzzy"] if fuzzy else [])
    return shipped, source


@pytest.mark.parametrize(
    ("msgid", "msgstr", "fuzzy", "complaint"),
    [
        ("Hello {name}", "", False, "missing translation of 'Hello {name}' (bot/texts/x.py:1)"),
        ("Hello {name}", "Hallo {name}", True, "fuzzy"),
        ("Hello {name}", "Hallo {nom}", False, "placeholders ['nom'] differ"),
        ("Hello {name}", "Hallo", False, "placeholders [] differ"),
        ("<b>Hi</b>", "Hallo", False, "HTML tags differ"),
        ("Save &amp; go", "Sichern & los", False, "a bare '<' or '&'"),
        ("Hello {name}", "Hallo {name}", False, None),
        ("Save &amp; go", "Sichern &amp; los", False, None),
        ("Save &amp; go", "Sichern und los", False, None),
    ],
)
def test_the_check_names_what_is_wrong(
    msgid: str, msgstr: str, fuzzy: bool, complaint: str | None
) -> None:
    shipped, source = _one(msgid, msgstr, fuzzy=fuzzy)
    found = problems("de", shipped, source)
    if complaint is None:
        assert found == []
    else:
        assert len(found) == 1 and complaint in found[0], found


def test_a_template_not_in_the_catalog_is_reported() -> None:
    source = Catalog(fuzzy=False)
    source.add(N_("A sentence nobody translated yet"), None, [("bot/texts/new.py", 7)])
    found = problems("fr", Catalog(locale="fr", fuzzy=False), source)
    assert found == [
        "fr: missing translation of 'A sentence nobody translated yet' (bot/texts/new.py:7)"
    ]

"""Keeping the gettext catalogs in step with the templates (a developer's tool, needs Babel).

    python3 -m bot.texts.catalogs update    # extract every N_() in bot/, merge into each .po
    python3 -m bot.texts.catalogs compile   # .po → .mo (committed, so `pip install .` works)
    python3 -m bot.texts.catalogs check     # what is missing, fuzzy or has wrong placeholders

Extraction scans every Python module under ``bot/`` for ``N_("…")``, so a new module in
``bot/texts`` needs no registration. The fast tests run the same check.
"""

from __future__ import annotations

import io
import re
import string
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from bot.texts import DEFAULT_LANGUAGE, DOMAIN, LOCALE_DIR, SHIPPED

SOURCE_DIR = Path(__file__).resolve().parent.parent  # bot/
PROJECT = "owntracks-cert-bot"
TRANSLATED = sorted(SHIPPED - {DEFAULT_LANGUAGE})
_TAG = re.compile(r"</?[a-z][a-z-]*>")
_ENTITY = re.compile(r"&(?:[a-z]+|#[0-9]+);")


def template_catalog(source_dir: Path = SOURCE_DIR) -> Catalog:
    """Every ``N_()`` template under ``bot/``, with where it is defined."""
    catalog = Catalog(project=PROJECT, fuzzy=False)
    found = extract_from_dir(
        str(source_dir), method_map=[("**.py", "python")], keywords={"N_": None},
        comment_tags=("TRANSLATORS:",), strip_comment_tags=True,
    )
    for filename, lineno, message, comments, _context in found:
        if isinstance(message, str) and message:
            catalog.add(message, None, [(f"bot/{filename}", lineno)], auto_comments=comments)
    return catalog


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(language: str) -> Catalog:
    path = po_path(language)
    if not path.exists():
        return Catalog(locale=language, project=PROJECT, fuzzy=False)
    with path.open("rb") as handle:
        return read_po(handle, locale=language)


def write_catalog(catalog: Catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=100, omit_header=False, sort_output=False)
    path.write_bytes(buffer.getvalue())


def update() -> None:
    """Merge the current templates into every shipped catalog; new ones arrive untranslated."""
    template = template_catalog()
    write_catalog(template, LOCALE_DIR / f"{DOMAIN}.pot")
    for language in TRANSLATED:
        catalog = read_catalog(language)
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        write_catalog(catalog, po_path(language))


def compile_all() -> None:
    for language in TRANSLATED:
        buffer = io.BytesIO()
        write_mo(buffer, read_catalog(language))
        po_path(language).with_suffix(".mo").write_bytes(buffer.getvalue())


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def tags(text: str) -> list[str]:
    return sorted(_TAG.findall(text))


def bare_markup(text: str) -> bool:
    """Whether ``text`` has a ``<`` or ``&`` that is not part of a tag or an entity."""
    rest = _ENTITY.sub("", _TAG.sub("", text))
    return "<" in rest or "&" in rest


def problems(
    language: str, catalog: Catalog | None = None, template: Catalog | None = None
) -> list[str]:
    """Everything that keeps ``language`` (its shipped catalog unless ``catalog`` is given)
    from being complete against ``template`` (the templates in the code), one line each."""
    catalog = catalog if catalog is not None else read_catalog(language)
    found: list[str] = []
    for source in template if template is not None else template_catalog():
        msgid = source.id
        if not isinstance(msgid, str) or not msgid:
            continue
        where = ", ".join(f"{f}:{n}" for f, n in source.locations)
        short = msgid[:60].replace("\n", "\\n")
        entry = catalog.get(msgid)
        if entry is None or not entry.string:
            found.append(f"{language}: missing translation of {short!r} ({where})")
            continue
        if entry.fuzzy:
            found.append(f"{language}: fuzzy translation of {short!r} ({where})")
        text = str(entry.string)
        if placeholders(text) != placeholders(msgid):
            found.append(
                f"{language}: placeholders {sorted(placeholders(text))} differ from the "
                f"source's {sorted(placeholders(msgid))} in {short!r} ({where})"
            )
        if tags(text) != tags(msgid):
            found.append(f"{language}: HTML tags differ from the source's in {short!r} ({where})")
        if bare_markup(text) != bare_markup(msgid):
            found.append(
                f"{language}: a bare '<' or '&' (write &lt; or &amp;) in {short!r} ({where})"
            )
    return found


def main(argv: list[str] | None = None) -> int:
    command = (argv if argv is not None else sys.argv[1:] or ["check"])[0]
    if command == "update":
        update()
    elif command == "compile":
        compile_all()
    elif command == "check":
        lines = [line for language in TRANSLATED for line in problems(language)]
        print("\n".join(lines) or "every catalog is complete")
        return 1 if lines else 0
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The Telegram room shows text only through bot.texts.t and never reaches storage itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bot.telegram.render import error_text, render_error
from bot.texts import chat

TELEGRAM_ROOM = Path(__file__).resolve().parents[1] / "bot" / "telegram"


class TemplatedError(Exception):
    """Shaped like bot.core.errors.UserError: an English text plus its template and params."""

    def __init__(self, template: str, **params: object) -> None:
        super().__init__(template.format(**params))
        self.template = template
        self.params = params


@pytest.mark.parametrize(
    ("exc", "html", "plain"),
    [
        (
            TemplatedError("Nobody called '{target}' is known.", target="<b>x</b> & y"),
            "Nobody called '&lt;b&gt;x&lt;/b&gt; &amp; y' is known.",
            "Nobody called '<b>x</b> & y' is known.",
        ),
        (  # the template's own markup stays markup; only the params are escaped
            TemplatedError("Use <code>{name}</code>.", name="a<b"),
            "Use <code>a&lt;b</code>.",
            "Use <code>a<b</code>.",
        ),
        (  # braces in a param are text, not placeholders
            TemplatedError("Bad id '{value}'.", value="{0}{x}"),
            "Bad id '{0}{x}'.",
            "Bad id '{0}{x}'.",
        ),
        (ValueError("plain <error> & {braces}"), "plain &lt;error&gt; &amp; {braces}",
         "plain <error> & {braces}"),
    ],
)
def test_errors_render_their_template_with_escaped_params(
    exc: Exception, html: str, plain: str
) -> None:
    assert render_error(exc) == html
    assert error_text(exc) == plain


def _sources() -> list[Path]:
    return sorted(TELEGRAM_ROOM.rglob("*.py"))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(TELEGRAM_ROOM)))
def test_the_telegram_room_never_imports_storage(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = [
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
        for alias in node.names
    ] + [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported if name.split(".")[0] == "storage"]


def test_every_chat_sentence_is_shown_somewhere() -> None:
    """An unused template is a sentence nobody can see (or a typo in the name using it)."""
    code = "\n".join(p.read_text() for p in _sources())
    templates = [
        name for name, value in vars(chat).items() if name.isupper() and isinstance(value, str)
    ]
    assert templates
    assert [name for name in templates if f"chat.{name}" not in code] == []

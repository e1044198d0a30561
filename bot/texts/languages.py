"""Sentences about the chat language itself, and the status words shown in admin listings."""

from __future__ import annotations

from bot.texts import N_

LANGUAGE_ASK = N_("Which language should I use? (Now: {language})")
LANGUAGE_SET = N_("From now on I write to you in English.")  # TRANSLATORS: name your language
LANGUAGE_UNKNOWN = N_("I don't speak '{value}'. Pick one of the buttons.")
HELP_LANGUAGE = N_("/language – choose the language I write in")
COMMAND_LANGUAGE = N_("choose the language I write in")

# A person's status, as admins see it in /users and on a request already decided.
STATUS_WORDS = {
    "pending": N_("pending"),
    "approved": N_("approved"),
    "denied": N_("denied"),
    "revoked": N_("revoked"),
}

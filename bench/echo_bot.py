"""A bare python-telegram-bot bot: the floor the framework sets for the chat benchmarks.

It answers /getcert the way the real bot's delivery starts (a document, then a separate
"Passphrase for ..." text, two sequential Bot API calls) and /start with one text, with no
database, no crypto and no throttling, under the same settings (concurrent updates, long
polling, the same allowed updates). Run as ``python -m bench.echo_bot`` with BENCH_TOKEN,
BENCH_API_URL and BENCH_FILE_URL set.
"""

from __future__ import annotations

import logging
import os

from telegram import InputFile, Update
from telegram.constants import ParseMode
from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes

FILE_BYTES = b"\x30\x82" + bytes(3200)  # about the size of a legacy PKCS#12 for RSA 2048


async def getcert(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    chat = update.effective_chat
    if chat is None:
        return
    device = (context.args or ["phone"])[0]
    filename = f"echo-{device}.otrp"
    await context.bot.send_document(chat.id, InputFile(FILE_BYTES, filename=filename),
                                    caption="Your certificate", parse_mode=ParseMode.HTML)
    await context.bot.send_message(chat.id, f"Passphrase for <code>{filename}</code>:",
                                   parse_mode=ParseMode.HTML)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.effective_message is not None:
        await update.effective_message.reply_html("Hello", disable_web_page_preview=True)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = (
        ApplicationBuilder()
        .token(os.environ["BENCH_TOKEN"])
        .base_url(os.environ["BENCH_API_URL"])
        .base_file_url(os.environ["BENCH_FILE_URL"])
        .concurrent_updates(True)
        .build()
    )
    app.add_handler(CommandHandler("getcert", getcert))
    app.add_handler(CommandHandler("start", start))
    app.run_polling(allowed_updates=["message", "callback_query"], close_loop=True)


if __name__ == "__main__":
    main()

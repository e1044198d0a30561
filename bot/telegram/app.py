"""The one place that builds the Telegram Application: handlers, jobs, start-up, shutdown."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from typing import Any

from telegram import Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.config import Settings
from bot.core.results import CrlReport
from bot.core.service import Service
from bot.telegram.api_request import api_request
from bot.telegram.callbacks import (
    LanguageChoice,
    PinConfirm,
    PlatformChoice,
    RenewCertificate,
    RequestAnswer,
    RevokeAsk,
    RevokeConfirm,
    RotationMove,
)
from bot.telegram.handlers import (
    admin,
    approvals,
    language,
    lifecycle,
    people,
    rotation,
    trust,
)
from bot.telegram.handlers.common import (
    Runtime,
    answer_query,
    claim_update,
    on_error,
    throttle_updates,
)
from bot.telegram.handlers.delivery import delete_due_messages, with_retry
from bot.telegram.limiter import SendLimiter
from bot.telegram.polling import TolerantUpdatesRequest
from bot.telegram.render import esc
from bot.texts import chat, languages, set_default_language, speaking, t
from bot.texts import lifecycle as lifecycle_texts
from bot.wiring import build_lifecycle, open_service

log = logging.getLogger(__name__)

PUBLIC_COMMANDS = [
    ("start", chat.COMMAND_START),
    ("request", chat.COMMAND_REQUEST),
    ("getcert", chat.COMMAND_GETCERT),
    ("mycerts", lifecycle_texts.COMMAND_MYCERTS),
    ("help", chat.COMMAND_HELP),
    ("language", languages.COMMAND_LANGUAGE),
]


def build_application(settings: Settings) -> Application[Any, Any, Any, Any, Any, Any]:
    token = settings.require_bot()
    set_default_language(settings.default_language)
    stack = AsyncExitStack()

    async def post_init(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        service = await stack.enter_async_context(
            open_service(settings, create_ca=True, key_pool=True)
        )
        app.bot_data["runtime"] = Runtime(
            service=service,
            mqtt_host=settings.mqtt_host,
            mqtt_port=settings.mqtt_port,
            secret_ttl=settings.secret_ttl_seconds,
        )
        language.install(app.bot_data, service, PUBLIC_COMMANDS)
        service.crl_alert = lambda report, when: tell_admins_if_crl_failed(
            app, service, report, when
        )
        service.limit_alert = lambda person: trust.tell_admins_limit(
            app.bot, service.policy.admin_ids, person, service.policy.max_issues_per_day,
            app.bot_data[language.KEY].of,
        )
        leftovers = await service.revoke_unfinished_deliveries()
        if leftovers:
            log.warning("revoked %d certificate(s) whose delivery a crash cut off", leftovers)
        report = await service.refresh_crl()
        await tell_admins_if_crl_failed(app, service, report, chat.CRL_AT_START_UP)
        me = app.bot
        log.info(
            "started as @%s; admins %s; data dir %s; CA %s; CRL %s; broker %s:%s",
            me.username, sorted(settings.admin_ids), settings.data_dir,
            " + ".join(service.crl.authorities.fingerprints), settings.effective_crl_path,
            settings.mqtt_host or "(unset)", settings.mqtt_port,
        )
        await language.register_commands(app.bot, PUBLIC_COMMANDS)
        jobs = app.job_queue
        assert jobs is not None
        sweep = max(1, min(30, settings.secret_ttl_seconds // 4))
        jobs.run_repeating(delete_due_messages, interval=sweep, first=0, name="delete-secrets")
        every = settings.crl_refresh_seconds
        jobs.run_repeating(refresh_crl_job, interval=every, first=every, name="refresh-crl")
        jobs.run_repeating(trust.sweep_undelivered_job, interval=60, first=60, name="sweep")
        app.bot_data["lifecycle"] = build_lifecycle(settings, service)
        jobs.run_repeating(lifecycle.lifecycle_job, interval=settings.lifecycle_check_seconds,
                           first=1, name="lifecycle")
        check = settings.lifecycle_check_seconds
        jobs.run_repeating(rotation.rotation_check_job, interval=check, first=1, name="rotation")

    async def post_shutdown(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        await stack.aclose()

    builder = ApplicationBuilder()
    if settings.telegram_sends_per_second:
        builder = builder.rate_limiter(SendLimiter(settings.telegram_sends_per_second))
    app = (
        builder
        .token(token)
        .base_url(settings.telegram_api_url)
        .base_file_url(settings.telegram_file_url)
        .concurrent_updates(True)
        .get_updates_request(TolerantUpdatesRequest())
        .request(api_request(settings.telegram_timeout_seconds))
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .build()
    )
    register_handlers(app)
    return app


def register_handlers(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    # The throttle first: a flood must not cost a database write per message.
    app.add_handler(TypeHandler(Update, language.adopt_language), group=-3)
    app.add_handler(TypeHandler(Update, throttle_updates), group=-2)
    app.add_handler(TypeHandler(Update, claim_update), group=-1)
    for name, callback in [
        ("start", people.start),
        ("help", people.help_command),
        ("request", people.request_access),
        ("getcert", people.getcert),
        ("approve", approvals.approve),
        ("deny", approvals.deny),
        ("revoke", admin.revoke),
        ("repin", admin.repin),
        ("pending", admin.pending),
        ("users", admin.users),
        ("language", language.language_command),
        ("mycerts", lifecycle.mycerts),
        ("renew", lifecycle.renew),
        ("expiring", lifecycle.expiring),
        ("rotation", rotation.rotation_command),
    ]:
        app.add_handler(CommandHandler(name, callback))
    app.add_handler(
        CallbackQueryHandler(people.platform_button, pattern=f"^r?{PlatformChoice.PREFIX}:")
    )
    app.add_handler(
        CallbackQueryHandler(approvals.request_button, pattern=f"^{RequestAnswer.PREFIX}:")
    )
    app.add_handler(
        CallbackQueryHandler(language.language_button, pattern=f"^{LanguageChoice.PREFIX}:")
    )
    app.add_handler(
        CallbackQueryHandler(trust.confirm_button, pattern=f"^{PinConfirm.PREFIX}:")
    )
    app.add_handler(CallbackQueryHandler(
        lifecycle.renew_pressed, pattern=f"^{RenewCertificate.PREFIX}:"))
    app.add_handler(CallbackQueryHandler(
        lifecycle.revoke_pressed, pattern=f"^({RevokeAsk.PREFIX}|{RevokeConfirm.PREFIX}):"))
    app.add_handler(
        CallbackQueryHandler(rotation.move_button, pattern=f"^{RotationMove.PREFIX}:")
    )
    app.add_handler(CallbackQueryHandler(stale_button))
    app.add_handler(MessageHandler(filters.COMMAND, people.unknown_command))
    app.add_handler(
        MessageHandler(filters.ChatType.PRIVATE & filters.Document.ALL, admin.document_received)
    )
    app.add_handler(
        MessageHandler(filters.ChatType.PRIVATE & ~filters.COMMAND, people.help_command)
    )
    app.add_error_handler(on_error)


async def stale_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A button from an older version of the bot, or forged data."""
    if update.callback_query is not None:
        await answer_query(update.callback_query, t(chat.BUTTON_STALE))


async def refresh_crl_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """An expired CRL locks every phone out: rewrite it long before nextUpdate."""
    rt = context.application.bot_data["runtime"]
    assert isinstance(rt, Runtime)
    report = await rt.service.refresh_crl()
    await tell_admins_if_crl_failed(context.application, rt.service, report, chat.CRL_SCHEDULED)


async def tell_admins_if_crl_failed(
    app: Application[Any, Any, Any, Any, Any, Any], service: Service, report: CrlReport, when: str
) -> None:
    """A log line nobody reads does not stop the CRL from expiring: tell every admin."""
    if report.written and (report.reload is None or report.reload.ok):
        return

    def describe() -> str:
        if not report.written:
            return admin.crl_error(report)
        assert report.reload is not None
        return t(chat.CRL_WRITTEN_RELOAD_FAILED, detail=report.reload.detail)

    with speaking("en"):  # the operator's log stays in English
        log.error("%s CRL refresh failed: %s", when, describe())
    for admin_id in sorted(service.policy.admin_ids):
        with speaking(await app.bot_data[language.KEY].of(admin_id)):  # each admin's own
            text = t(chat.CRL_PROBLEM, when=t(when), detail=esc(describe()[:500]))
        try:
            await with_retry(
                lambda a=admin_id, said=text: app.bot.send_message(  # type: ignore[misc]
                    a, said, parse_mode=ParseMode.HTML
                ),
                "CRL alert",
            )
        except TelegramError as exc:
            log.warning("could not alert admin %s about the CRL: %s", admin_id, type(exc).__name__)

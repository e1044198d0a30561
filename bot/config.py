"""Settings from ``OTCERT_*`` environment variables (and ``./.env``), validated once at start.

The names and defaults are the public interface in ``shared/INTERFACE.md``; extra knobs
(key type, limits) are additions with safe defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pki.keys import ClientKeyType


class ConfigError(Exception):
    """A setting is missing or unusable; the message tells the operator what to fix."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OTCERT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,
    )

    bot_token: SecretStr | None = None
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    data_dir: Path = Path("./data")
    ca_key_passphrase: SecretStr | None = None
    ca_key_passphrase_file: Path | None = None
    telegram_api_url: str = "https://api.telegram.org/bot"
    telegram_file_url: str = "https://api.telegram.org/file/bot"
    crl_path: Path | None = None
    broker_reload_command: str | None = None
    mqtt_host: str | None = None
    mqtt_port: int = Field(default=8883, ge=1, le=65535)
    broker_kick: Literal["off", "dynsec"] = "off"
    broker_admin_cn: str = "otcert-admin"
    broker_admin_host: str | None = None
    broker_admin_port: int | None = Field(default=None, ge=1, le=65535)
    broker_ca_file: Path | None = None
    ca_bundle_path: Path | None = None
    cert_days: int = Field(default=365, ge=1, le=3650)
    secret_ttl_seconds: int = Field(default=900, ge=10, le=86400)
    renew_reminder_days: Annotated[tuple[int, ...], NoDecode] = (30, 7, 1)
    infra_reminder_days: Annotated[tuple[int, ...], NoDecode] = (60, 30, 7, 1)
    lifecycle_check_seconds: int = Field(default=3600, ge=1, le=7 * 86400)

    # Additions beyond INTERFACE.md.
    key_type: ClientKeyType = "rsa2048"
    pkcs12_profile: Literal["legacy", "modern"] = "legacy"
    max_devices: int = Field(default=3, ge=1, le=50)
    issue_cooldown_seconds: int = Field(default=30, ge=0, le=86400)
    crl_days: int = Field(default=30, ge=2, le=365)
    key_pool_size: int = Field(default=64, ge=0, le=256)
    signing_workers: int = Field(default=1, ge=0, le=16)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Rewrite the CRL this often; well inside crl_days, so a missed run or two is harmless.
    crl_refresh_seconds: int = Field(default=6 * 3600, ge=5, le=7 * 86400)
    # Connect/read/write timeout of each Bot API call (uploads get four times as long).
    telegram_timeout_seconds: float = Field(default=10.0, ge=0.5, le=120.0)
    # Chat language for people whose Telegram language is not shipped (INTERFACE.md).
    default_language: str = "en"
    # Issue 14 (INTERFACE.md): a daily cap per person; what phones are sent to trust.
    max_issues_per_day: int = Field(default=5, ge=1, le=1000)
    phone_ca: str = "bot"
    # Most messages the bot starts sending in one second (Telegram's flood limit is ~30);
    # 0 turns the limiter off (a local Bot API server, or a bot with paid higher limits).
    telegram_sends_per_second: int = Field(default=30, ge=0, le=1000)

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_admin_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",")]
            try:
                return frozenset(int(p) for p in parts if p)
            except ValueError:
                raise ValueError(
                    "OTCERT_ADMIN_IDS must be comma-separated numeric Telegram user ids"
                ) from None
        return value

    @field_validator("renew_reminder_days", "infra_reminder_days", mode="before")
    @classmethod
    def _split_days(cls, value: object) -> object:
        """``30,7,1``: whole days, 1 to 3650, each once, largest first."""
        if isinstance(value, str):
            try:
                value = [int(p) for p in value.replace(";", ",").split(",") if p.strip()]
            except ValueError:
                raise ValueError("must be comma-separated whole numbers of days") from None
        if isinstance(value, list | tuple | set | frozenset):
            days = sorted({int(v) for v in value}, reverse=True)
            if not days or any(not 1 <= d <= 3650 for d in days):
                raise ValueError("needs at least one number of days, each from 1 to 3650")
            return tuple(days)
        return value

    @field_validator("broker_reload_command", "mqtt_host", "broker_admin_host", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _crl_refreshed_before_it_expires(self) -> Settings:
        if self.crl_refresh_seconds * 2 > self.crl_days * 86400:
            raise ValueError(
                "OTCERT_CRL_REFRESH_SECONDS must be at most half of OTCERT_CRL_DAYS, so the "
                "CRL is rewritten long before its nextUpdate"
            )
        return self

    @field_validator("default_language")
    @classmethod
    def _shipped_language(cls, value: str) -> str:
        from bot.texts import SHIPPED

        code = value.strip().lower()
        if code not in SHIPPED:
            raise ValueError(
                f"OTCERT_DEFAULT_LANGUAGE must be one of {', '.join(sorted(SHIPPED))}"
            )
        return code

    @model_validator(mode="after")
    def _admin_cn_is_a_name(self) -> Settings:
        from pki.names import InvalidName, validate_username

        try:
            self.broker_admin_cn = validate_username(self.broker_admin_cn)
        except InvalidName as exc:
            raise ValueError(f"OTCERT_BROKER_ADMIN_CN: {exc}") from None
        return self

    @field_validator("phone_ca")
    @classmethod
    def _phone_ca_value(cls, value: str) -> str:
        value = value.strip() or "bot"
        if value not in ("bot", "none") and not Path(value).is_file():
            raise ValueError("must be 'bot', 'none' or the path of a PEM file that exists")
        return value

    # Derived values: one place that knows the defaults that depend on other settings.
    @property
    def effective_crl_path(self) -> Path:
        return self.crl_path if self.crl_path is not None else self.data_dir / "crl.pem"

    @property
    def effective_ca_bundle_path(self) -> Path:
        """Mosquitto's ``cafile``: every CA whose clients the broker accepts."""
        return self.ca_bundle_path if self.ca_bundle_path is not None else (
            self.data_dir / "ca-bundle.pem"
        )

    @property
    def ca_cert_path(self) -> Path:
        return self.data_dir / "ca.crt"

    @property
    def ca_key_path(self) -> Path:
        return self.data_dir / "ca.key"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "otcert.sqlite3"

    @property
    def admin_host(self) -> str | None:
        return self.broker_admin_host or self.mqtt_host

    @property
    def admin_port(self) -> int:
        return self.broker_admin_port or self.mqtt_port

    def ca_passphrase(self) -> bytes | None:
        """The CA key passphrase from the variable or the file; never logged."""
        if self.ca_key_passphrase is not None and self.ca_key_passphrase.get_secret_value():
            return self.ca_key_passphrase.get_secret_value().encode()
        if self.ca_key_passphrase_file is not None:
            try:
                text = self.ca_key_passphrase_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"Cannot read OTCERT_CA_KEY_PASSPHRASE_FILE ({exc.strerror})."
                ) from None
            if not text:
                raise ConfigError("OTCERT_CA_KEY_PASSPHRASE_FILE is empty.")
            return text.encode()
        return None

    def require_bot(self) -> str:
        """Check what ``run`` needs and return the token."""
        if self.bot_token is None or not self.bot_token.get_secret_value().strip():
            raise ConfigError("OTCERT_BOT_TOKEN is not set: get a token from @BotFather.")
        if not self.admin_ids:
            raise ConfigError(
                "OTCERT_ADMIN_IDS is not set: list the Telegram user ids of the admins "
                "(comma-separated); without admins nobody can approve requests."
            )
        if self.broker_kick == "dynsec" and self.broker_reload_command is None:
            from bot.texts import t
            from bot.texts.trust import KICK_WITHOUT_RELOAD_COMMAND

            raise ConfigError(t(KICK_WITHOUT_RELOAD_COMMAND))
        return self.bot_token.get_secret_value().strip()


def load_settings() -> Settings:
    """Read settings, turning pydantic's validation errors into one readable ConfigError."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "OTCERT_" + "_".join(str(p) for p in err["loc"]).upper()
            lines.append(f"{name}: {err['msg']}")
        raise ConfigError("Invalid settings:\n  " + "\n  ".join(lines)) from None

"""One settings object for the whole application (env prefix ``RISKDESK_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_db_url() -> str:
    return f"sqlite:///{Path.cwd() / 'riskdesk.db'}"


class Settings(BaseSettings):
    """Application settings, read from the environment (``RISKDESK_*``) or a ``.env`` file."""

    model_config = SettingsConfigDict(env_prefix="RISKDESK_", env_file=".env", extra="ignore")

    database_url: str = Field(default_factory=_default_db_url)
    secret_key: str = Field(
        default="",
        description="Signs web session cookies; generated and stored in the database when empty.",
    )
    base_currency: str = "EUR"
    default_language: str = "en"
    cookie_secure: bool = False
    nats_url: str = "nats://127.0.0.1:4222"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_from: str = "riskdesk@localhost"
    import_batch_size: int = 5000
    import_max_upload_mb: int = Field(
        default=50, ge=1, description="Largest file accepted by POST /api/v1/imports/{kind}."
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached)."""
    return Settings()

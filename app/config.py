"""Settings read from environment variables (pydantic-settings).

Top-level names are plain (``DATABASE_URL``, ``LOG_LEVEL``, ``HOST``, ``PORT``...);
nested groups use ``__`` as delimiter, e.g. ``AUTH__JWT_SECRET``, ``ORG__TIME_ZONE``,
``DB__STATEMENT_TIMEOUT_MS``. A ``.env`` file in the working directory is read too.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "dev-only-secret-change-me-0123456789abcdef"


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class DatabaseSettings(BaseModel):
    """Connection pool and timeouts (``DB__*``)."""

    # One worker: its connections stay open. Overflow connections are closed on return, so
    # a sustained load above pool_size would reconnect on a share of requests.
    pool_size: int = Field(default=20, ge=1, le=200)
    max_overflow: int = Field(default=0, ge=0, le=200)
    pool_timeout_s: float = Field(default=5.0, gt=0, description="Wait for a pooled connection.")
    pool_recycle_s: int = Field(
        default=1800, ge=-1, description="Reconnect pooled connections older than this; -1: never."
    )
    connect_timeout_s: float = Field(default=5.0, gt=0)
    statement_timeout_ms: int = Field(default=15_000, ge=0, description="0 disables it.")


class AuthSettings(BaseModel):
    """Bearer-token verification (``AUTH__*``)."""

    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwks_url: str | None = Field(
        default=None, description="Identity provider's JWKS; set, it replaces the HS256 secret."
    )
    jwks_cache_s: int = Field(default=300, ge=0, description="How long JWKS keys are kept.")
    jwks_timeout_s: float = Field(default=3.0, gt=0)
    issuer: str = "ams"
    audience: str = "ams-api"
    leeway_s: int = Field(default=30, ge=0, le=600)
    dev_token_ttl_s: int = Field(default=12 * 3600, ge=60)


class OrganisationSettings(BaseModel):
    """Calendar conventions of the organisation (``ORG__*``)."""

    time_zone: str = "UTC"
    fiscal_year_start_month: int = Field(default=1, ge=1, le=12)
    currency: str = Field(
        default="EUR", pattern=r"^[A-Z]{3}$", description="Default currency of team roll-ups."
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value


class RulesSettings(BaseModel):
    """The rules module (``RULES__*``)."""

    schedule_interval_s: int = Field(
        default=3600, ge=0, description="Seconds between scheduled runs; 0 turns it off."
    )
    statement_timeout_ms: int = Field(default=300_000, ge=0)


class Settings(BaseSettings):
    """All configuration of the service; see README's configuration table."""

    model_config = SettingsConfigDict(
        env_nested_delimiter="__", env_file=".env", extra="ignore", case_sensitive=False
    )

    environment: Environment = Environment.development
    database_url: str | None = Field(
        default=None, description="postgresql://user:pass@host:port/db; unset = embedded Postgres"
    )
    embedded_data_dir: Path = Path(".data/postgres")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "INFO"
    log_json: bool = True
    db: DatabaseSettings = DatabaseSettings()
    auth: AuthSettings = AuthSettings()
    org: OrganisationSettings = OrganisationSettings()
    rules: RulesSettings = RulesSettings()

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        if (
            self.environment == Environment.production
            and self.auth.jwks_url is None
            and self.auth.jwt_secret.get_secret_value() == DEV_JWT_SECRET
        ):
            raise ValueError("AUTH__JWT_SECRET must be set (or AUTH__JWKS_URL) in production")
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def async_database_url(url: str) -> str:
    """Turn ``postgresql://`` / ``postgres://`` into the asyncpg driver URL SQLAlchemy needs."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must start with postgresql://")

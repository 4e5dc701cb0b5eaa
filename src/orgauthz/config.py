"""Typed configuration, read once at start-up from ``ORGAUTHZ_*`` variables and CLI flags."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every option of ``orgauthz serve``, from ``ORGAUTHZ_<NAME>``; docs/operations.md lists them all
    (``make generate`` writes that table from the fields' defaults and descriptions)."""

    model_config = SettingsConfigDict(env_prefix="ORGAUTHZ_", extra="ignore")

    listen: str = Field(
        "127.0.0.1:50051", description="gRPC listen address: host:port, or unix:/path/to/orgauthz.sock (a Unix socket)"
    )
    socket_mode: str = Field(
        "660", pattern=r"^[0-7]{3}$", description="File mode of a Unix socket listener (octal): who may connect"
    )
    metrics_listen: str = Field("127.0.0.1:9464", description="Prometheus endpoint, host:port; empty disables it")
    database_url: str = Field("sqlite:///orgauthz.db", description="SQLAlchemy URL: sqlite:///file or postgresql://...")
    redis_url: str = Field("", description="redis://host:port/db; empty: no shared cache")
    policy_dir: Path | None = Field(
        None,
        description="Directory with model.conf, scopes.yaml and roles.yaml; empty: the policies installed with "
        "the package (the checkout's policies/ in an editable install)",
    )
    log_format: str = Field(
        "text", pattern="^(text|json)$", description="Log lines as text or json (one JSON object per line)"
    )
    log_level: str = Field("INFO", description="Python logging level (DEBUG, INFO, WARNING, ERROR)")
    cache_max_entries: int = Field(
        1_000_000, ge=1, description="In-process decision cache size, in decisions (about 260-390 bytes each)"
    )
    key_cache_max_entries: int = Field(
        100_000,
        ge=1,
        description="Resolved API keys kept in memory for Authenticate; the oldest tenth is dropped when full",
    )
    max_loaded_orgs: int = Field(
        2000, ge=1, description="Organizations kept loaded in memory; the least recently used are evicted"
    )
    gc_freeze: bool = Field(
        True,
        description="After start-up and each organization load, take long-lived objects out of the "
        "garbage collector's full passes (gc.freeze): a full pass over a million loaded grants "
        "otherwise stalls every call for 50-100 ms",
    )
    poll_interval_s: float = Field(
        0.5,
        gt=0,
        le=60,
        description="Change feed polling interval, seconds (the fallback when a pub/sub nudge is lost)",
    )
    feed_reload_after: int = Field(
        10_000,
        ge=1,
        description="Revisions behind after which a replica re-reads the index instead of replaying changes",
    )
    redis_cache_ttl_s: int = Field(
        600,
        ge=1,
        le=7 * 24 * 3600,
        description="Lifetime of an organization revision's decisions in Redis, seconds, from the first one "
        "written (later writes never extend it)",
    )
    redis_cache_max_fields_per_revision: int = Field(
        100_000,
        ge=1,
        description="Decisions one organization revision's Redis hash holds at most; "
        "once it is full, new ones are not written (the engine still answers them)",
    )
    redis_cache_max_fields: int = Field(
        1_000_000,
        ge=1,
        description="Decisions this replica has in Redis at most (it adds no more than this within one TTL)",
    )
    redis_lookup: str = Field(
        "unloaded",
        pattern="^(unloaded|always)$",
        description="When the Redis tier is asked: for organizations not loaded here "
        "(unloaded, measured faster) or on every in-process miss (always); see docs/consistency.md",
    )
    redis_timeout_s: float = Field(0.25, gt=0, le=10, description="Redis connect and command timeout, seconds")
    min_revision_wait_s: float = Field(
        2.0,
        ge=0,
        le=30,
        description="How long a read waits for min_revision, or a Check on a starting replica for its "
        "catch-up, before UNAVAILABLE; seconds",
    )
    workers: str = Field(
        "1",
        pattern=r"^(auto|[1-9][0-9]{0,2})$",
        description="Worker processes serving the one listening address (SO_REUSEPORT), each with its own "
        "engine and caches; auto: one per core this process may run on. More than 1 needs a TCP address",
    )
    worker_sync_timeout_s: float = Field(
        2.0,
        gt=0,
        le=30,
        description="With workers: how long a write waits for every other worker to apply it before it "
        "returns anyway (a worker that has not applied it then waits for it before deciding); seconds",
    )
    max_message_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Largest accepted request, bytes")
    auth_token: str = Field("", description="Shared secret callers send as 'authorization: Bearer <token>'")
    insecure_dev: bool = Field(False, description="Accept unauthenticated callers (development only)")
    tls_cert: Path | None = Field(None, description="Server certificate (PEM) for TLS")
    tls_key: Path | None = Field(None, description="Server private key (PEM) for TLS")
    tls_client_ca: Path | None = Field(None, description="CA (PEM) for client certificates: enables mTLS")
    ext_authz: bool = Field(
        False,
        description="Also serve Envoy's external authorization (envoy.service.auth.v3.Authorization/Check) "
        "on the gRPC listener; needs the envoy extra (pip install 'orgauthz[envoy]'); docs/envoy.md",
    )
    ext_authz_routes: Path | None = Field(
        None,
        description="Route table of the external authorization (method + path -> workspace, scope, object); "
        "empty: routes.yaml in the policy directory",
    )
    ext_authz_subject_header: str = Field(
        "",
        pattern=r"^[a-z0-9-]*$",
        description="Request header a proxy sets to the subject (user:<id>), read only when callers "
        "authenticate (auth_token or mTLS, never with insecure_dev); empty: the subject comes from a "
        "pnb_/pnu_ bearer key only",
    )
    invitation_ttl_s: int = Field(7 * 24 * 3600, ge=60, description="Invitation expiry, seconds (R5)")
    # Invitation email (R9): with smtp_host set, invitations go out through the outbox.
    secret_key: str = Field("", description="Seals queued invitation email at rest; required with smtp_host")
    smtp_host: str = Field("", description="SMTP server for invitation email; empty: tokens are returned")
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP port (587 with STARTTLS, 465 with SSL)")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS")
    smtp_ssl: bool = Field(False, description="Connect to SMTP over TLS from the start (SMTPS)")
    smtp_username: str = Field("", description="SMTP login; empty: no authentication")
    smtp_password: str = Field("", description="SMTP password")
    smtp_sender: str = Field("orgauthz@localhost", description="From address of invitation email")
    accept_url_template: str = Field(
        "https://app.example/invitations/accept?token={token}",
        description="Accept link in invitation email; {token} is replaced by the token",
    )
    outbox_poll_interval_s: float = Field(
        1.0, gt=0, le=60, description="How often the mail sender looks for due mail, seconds"
    )
    outbox_retry_base_s: float = Field(
        2.0, gt=0, le=3600, description="First retry delay of a failed mail, seconds (doubles after each failure)"
    )
    outbox_retry_max_s: float = Field(600.0, gt=0, le=86400, description="Longest delay between mail retries, seconds")
    migrate: bool = Field(True, description="Apply database migrations at start-up")

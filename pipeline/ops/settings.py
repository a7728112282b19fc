"""Settings from ``RAPPORT_*`` environment variables (or a ``.env`` file)."""
from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.core.rules import Rules
from pipeline.ops.security import KafkaSecurity, Mechanism, Protocol

log = logging.getLogger(__name__)


class Settings(BaseSettings, Rules):
    """Runtime settings: the core ``Rules`` plus where and how to run."""

    model_config = SettingsConfigDict(env_prefix="RAPPORT_", env_file=".env", extra="ignore", frozen=True)

    kafka_bootstrap: str | None = Field(None, description="host:port of a Kafka cluster; unset = the embedded broker.")
    broker_port: int = Field(19092, description="Port of the embedded broker on 127.0.0.1.")
    pii_key: SecretStr | None = Field(None, description="Secret for HMAC of personal data; generated locally when unset.")
    state_dir: Path = Field(Path(".rapport"), description="Local files: development PII key.")
    metrics_port: int = 9108
    metrics_host: str = "127.0.0.1"
    web_enabled: bool = Field(False, description="Faust's web server (its own status pages); off unless asked for.")
    web_host: str = Field("127.0.0.1", description="Where Faust's web server binds, when enabled.")
    web_port: int = 6066
    app_id: str = "rapport"
    topic_prefix: str = Field("", description="Prefix on every topic name (a namespace, e.g. for replays).")
    partitions: int = Field(4, ge=1, description="Partitions of topics this project creates.")
    replication_factor: int = Field(1, ge=1)
    topic_min_insync_replicas: int | None = Field(None, ge=1, description=(
        "min.insync.replicas of replicated topics; default: the replication factor minus one (2 of 3)."))
    batch_size: int = Field(1000, ge=1)
    batch_within_s: float = Field(0.02, gt=0, description="Longest a stage waits to fill a batch (latency at low load; "
                                                        "under load batches fill first).")
    idle_partition_s: float = Field(10.0, gt=0, description=(
        "Live: a partition without events this long stops holding the event-time order back until it delivers "
        "again (the end of a backfill; a reader that is gone). Keep it above a rebalance."))
    progress_interval_s: float = Field(0.5, gt=0, description="Live: how often a quiet ingest says its partitions are read to their end.")
    idle_advance_s: float = Field(5.0, ge=0, description="Live traffic: with all input silent this long, the wall clock moves the watermark (0 = never; a backfill's never moves).")
    model_checkpoint_s: float = Field(30.0, ge=0, description="Model checkpoints to the state changelog at most this often (0 = every batch).")
    fetch_max_wait_ms: int = Field(20, ge=1, description="Longest a consumer fetch waits for data (latency floor per stage).")
    kafka_security_protocol: Protocol = Field("PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.")
    kafka_sasl_mechanism: Mechanism = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_sasl_password_file: Path | None = Field(None, description="File holding the SASL password (a mounted secret).")
    kafka_ssl_ca_location: Path | None = Field(None, description="CA bundle for the brokers' certificates.")
    kafka_ssl_certificate_location: Path | None = Field(None, description="Client certificate (mutual TLS).")
    kafka_ssl_key_location: Path | None = None
    log_format: Literal["text", "json"] = Field("text", description="json: one JSON object per log line.")
    lag_interval_s: float = Field(10.0, gt=0, description="How often a worker reports the consumer lag of its partitions.")
    session_timeout_s: float = 6.0
    heartbeat_interval_s: float = 1.0

    @model_validator(mode="after")
    def _security_complete(self) -> "Settings":
        self.kafka_security  # noqa: B018 - raises on incomplete SASL/TLS settings, at start rather than on connect
        return self

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.broker_port}"

    @property
    def kafka_security(self) -> KafkaSecurity:
        return KafkaSecurity(
            protocol=self.kafka_security_protocol, sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username, sasl_password=self.kafka_sasl_password,
            sasl_password_file=self.kafka_sasl_password_file, ssl_ca_location=self.kafka_ssl_ca_location,
            ssl_certificate_location=self.kafka_ssl_certificate_location, ssl_key_location=self.kafka_ssl_key_location)

    def kafka_client(self) -> dict[str, str]:
        """Connection settings of every confluent-kafka client: the bootstrap servers and the security settings."""
        return {"bootstrap.servers": self.bootstrap, **self.kafka_security.confluent()}

    @property
    def min_insync_replicas(self) -> int:
        return self.topic_min_insync_replicas or max(1, self.replication_factor - 1)

    @property
    def embedded(self) -> bool:
        return self.kafka_bootstrap is None

    def pii_secret(self) -> bytes:
        """The HMAC key; a random development key is created under ``state_dir`` when none is set."""
        if self.pii_key is not None:
            return self.pii_key.get_secret_value().encode()
        path = self.state_dir / "pii.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        log.warning("RAPPORT_PII_KEY is unset: using the development key in %s (hashes differ from production)", path)
        return path.read_text().strip().encode()

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

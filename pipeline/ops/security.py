"""Kafka connection security for both clients: confluent-kafka (producers, state, admin) and Faust
(aiokafka, the consumer group), from one set of settings.

Secrets come from the environment or from files (a mounted Kubernetes Secret): ``RAPPORT_KAFKA_SASL_PASSWORD``
or ``RAPPORT_KAFKA_SASL_PASSWORD_FILE``.

>>> cfg = KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="rapport",
...                     sasl_password="s3cret")
>>> sorted(cfg.confluent())
['sasl.mechanism', 'sasl.password', 'sasl.username', 'security.protocol']
>>> KafkaSecurity().confluent()
{}
"""
from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

import faust
from pydantic import BaseModel, SecretStr, model_validator

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSecurity(BaseModel):
    protocol: Protocol = "PLAINTEXT"
    sasl_mechanism: Mechanism = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = None
    ssl_ca_location: Path | None = None  # CA bundle to verify the brokers (default: the system's)
    ssl_certificate_location: Path | None = None  # client certificate (mutual TLS)
    ssl_key_location: Path | None = None

    @model_validator(mode="after")
    def _complete(self) -> "KafkaSecurity":
        if self.sasl and not (self.sasl_username and (self.sasl_password or self.sasl_password_file)):
            raise ValueError(f"security protocol {self.protocol} needs RAPPORT_KAFKA_SASL_USERNAME and "
                             "RAPPORT_KAFKA_SASL_PASSWORD (or RAPPORT_KAFKA_SASL_PASSWORD_FILE)")
        if bool(self.ssl_certificate_location) != bool(self.ssl_key_location):
            raise ValueError("a client certificate needs its key, and the other way round")
        return self

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL")

    @property
    def tls(self) -> bool:
        return self.protocol.endswith("SSL")

    def password(self) -> str:
        if self.sasl_password is not None:
            return self.sasl_password.get_secret_value()
        assert self.sasl_password_file is not None
        return self.sasl_password_file.read_text().strip()

    def confluent(self) -> dict[str, str]:
        """librdkafka settings (nothing for PLAINTEXT)."""
        if self.protocol == "PLAINTEXT":
            return {}
        out = {"security.protocol": self.protocol}
        if self.sasl:
            out |= {"sasl.mechanism": self.sasl_mechanism, "sasl.username": self.sasl_username or "",
                    "sasl.password": self.password()}
        if self.tls:
            if self.ssl_ca_location:
                out["ssl.ca.location"] = str(self.ssl_ca_location)
            if self.ssl_certificate_location:
                out["ssl.certificate.location"] = str(self.ssl_certificate_location)
                out["ssl.key.location"] = str(self.ssl_key_location)
        return out

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ssl_ca_location) if self.ssl_ca_location else None)
        if self.ssl_certificate_location:
            context.load_cert_chain(str(self.ssl_certificate_location), str(self.ssl_key_location))
        return context

    def faust(self) -> faust.SASLCredentials | faust.SSLCredentials | None:
        """Faust's ``broker_credentials`` (None for PLAINTEXT)."""
        if self.sasl:
            return faust.SASLCredentials(username=self.sasl_username, password=self.password(),
                                         mechanism=self.sasl_mechanism,
                                         ssl_context=self.ssl_context() if self.tls else None)
        if self.tls:
            return faust.SSLCredentials(self.ssl_context())
        return None

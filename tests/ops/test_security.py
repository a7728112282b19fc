"""SASL/TLS settings reach both Kafka clients; secrets come from the environment or a file."""
import ast
from pathlib import Path

import faust
import pytest
from pydantic import ValidationError

from pipeline.ops.settings import Settings


def test_sasl_ssl_reaches_confluent_and_faust_with_the_password_from_a_file(tmp_path, monkeypatch):
    secret = tmp_path / "password"
    secret.write_text("from-a-secret\n")
    monkeypatch.setenv("RAPPORT_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("RAPPORT_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("RAPPORT_KAFKA_SASL_USERNAME", "rapport")
    monkeypatch.setenv("RAPPORT_KAFKA_SASL_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("RAPPORT_KAFKA_BOOTSTRAP", "kafka-1:9093,kafka-2:9093")
    s = Settings()
    assert s.kafka_client() == {
        "bootstrap.servers": "kafka-1:9093,kafka-2:9093", "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "rapport", "sasl.password": "from-a-secret"}
    creds = s.kafka_security.faust()
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password, str(creds.protocol.value)) == ("rapport", "from-a-secret", "SASL_SSL")
    assert "from-a-secret" not in repr(s)  # a secret is never printed with the settings


def test_tls_alone_and_plaintext():
    tls = Settings(kafka_security_protocol="SSL", kafka_ssl_ca_location="/etc/ssl/certs/ca-certificates.crt")
    assert tls.kafka_client()["ssl.ca.location"] == "/etc/ssl/certs/ca-certificates.crt"
    assert isinstance(tls.kafka_security.faust(), faust.SSLCredentials)
    assert Settings().kafka_client() == {"bootstrap.servers": "127.0.0.1:19092"}
    assert Settings().kafka_security.faust() is None


def test_incomplete_security_settings_stop_at_start_with_the_missing_names():
    with pytest.raises(ValidationError, match="RAPPORT_KAFKA_SASL_USERNAME"):
        Settings(kafka_security_protocol="SASL_PLAINTEXT")
    with pytest.raises(ValidationError, match="client certificate needs its key"):
        Settings(kafka_security_protocol="SSL", kafka_ssl_certificate_location="/tmp/cert.pem")


def test_every_kafka_client_of_the_product_connects_through_the_security_settings():
    """No client of the worker or the CLI builds its own connection settings (it would skip SASL/TLS)."""
    allowed = {"pipeline/drivers/kafka_io.py",  # client_config: the one place
               "pipeline/ops/settings.py",  # Settings.kafka_client()
               "pipeline/drivers/bench_live.py", "pipeline/drivers/chaos.py"}  # the embedded broker only
    offenders = []
    for path in Path("pipeline").rglob("*.py"):
        if str(path) in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value == "bootstrap.servers":
                offenders.append(str(path))
    assert offenders == []

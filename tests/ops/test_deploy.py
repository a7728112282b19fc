"""The deployment artefacts, checked offline by the real tools where there is one.

* ``docker-compose.yml``: Debian's ``docker-compose config`` (v1.29) validates and resolves it; the
  checks below read the resolved file (anchors merged, variables interpolated).
* ``deploy/k8s``: every core object against the Kubernetes OpenAPI schemas that ``kubernetes-validate``
  ships in its wheel (strict: unknown fields fail), for a pinned old and new version. The KEDA
  ``ScaledObject`` is a CRD the tool has no schema for: its fields are checked here instead.
* ``deploy/prometheus.yml``: ``promtool check config``; every dashboard query parses (``promtool check
  rules`` on them as recording rules) and names only series the worker exports.

Nothing is started: no Docker engine, no cluster, no Grafana.
"""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "rapport.json"
PROMETHEUS = ROOT / "deploy" / "prometheus.yml"
DUMMY_KEY = "dummy-pii-key-for-config-only"
#: Kubernetes versions the manifests must validate against (both ship inside kubernetes-validate 1.37.0).
K8S_VERSIONS = ("1.30.0", "1.37.0")
METRIC = re.compile(r"rapport_[a-z0-9_]+")


# --------------------------------------------------------------------------------------------------
# docker-compose.yml


def _compose(*args: str, key: str | None = DUMMY_KEY) -> subprocess.CompletedProcess[str]:
    """``docker-compose -f docker-compose.yml <args>`` with only ``key`` as RAPPORT_PII_KEY (an empty env
    file stands for a developer's ``.env``, which docker-compose would read too)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose (Debian's package) is not installed: the compose file cannot be checked")
    env = {k: v for k, v in os.environ.items() if k not in ("RAPPORT_PII_KEY", "COMPOSE_FILE", "COMPOSE_PROFILES")}
    if key is not None:
        env["RAPPORT_PII_KEY"] = key
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.env"
        empty.touch()
        return subprocess.run([binary, "--env-file", str(empty), "-f", str(COMPOSE), *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def compose() -> dict:
    """The compose file as docker-compose resolves it."""
    done = _compose("config")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def _services(compose: dict, command: str) -> dict[str, dict]:
    return {name: s for name, s in compose["services"].items() if (s.get("command") or [None])[0] == command}


def _kafka(compose: dict) -> dict[str, dict]:
    return {name: s for name, s in compose["services"].items() if s.get("image", "").startswith("apache/kafka:")}


def test_compose_config_is_valid():
    done = _compose("config", "-q")
    assert done.returncode == 0, done.stderr


def test_compose_requires_the_pii_key():
    done = _compose("config", "-q", key=None)
    assert done.returncode != 0 and "RAPPORT_PII_KEY" in done.stderr


def test_kafka_is_three_kraft_nodes_with_replication_3_and_min_isr_2(compose):
    kafka = _kafka(compose)
    assert len(kafka) == 3
    envs = {name: {k: str(v) for k, v in s["environment"].items()} for name, s in kafka.items()}
    for name, s in kafka.items():
        assert s["image"] == "apache/kafka:3.9.0"
        assert s.get("healthcheck", {}).get("test"), name
    voters = {e["KAFKA_CONTROLLER_QUORUM_VOTERS"] for e in envs.values()}
    assert len(voters) == 1, "every node must list the same quorum"
    quorum = dict(v.split("@") for v in voters.pop().split(","))
    assert sorted(quorum) == sorted(e["KAFKA_NODE_ID"] for e in envs.values())
    assert {hostport.split(":")[0] for hostport in quorum.values()} == set(kafka)
    assert len({e["CLUSTER_ID"] for e in envs.values()}) == 1, "one CLUSTER_ID for the whole cluster"
    for e in envs.values():
        assert set(e["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
        assert e["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert e["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert e["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert e["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3"
        assert e["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert e["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_topics_are_created_first_with_replication_3_and_min_isr_2(compose):
    (name, topics), = _services(compose, "topics").items()
    assert topics["image"] == "rapport:0.1.0" and topics["build"]["dockerfile"] == "deploy/Dockerfile"
    env = topics["environment"]
    assert sorted(env["RAPPORT_KAFKA_BOOTSTRAP"].split(",")) == sorted(f"{k}:9092" for k in _kafka(compose))
    assert env["RAPPORT_REPLICATION_FACTOR"] == "3"
    assert env["RAPPORT_TOPIC_MIN_INSYNC_REPLICAS"] == "2"
    assert int(env["RAPPORT_PARTITIONS"]) >= 3
    assert "RAPPORT_PII_KEY" not in env, "creating topics needs no secret"
    assert topics["depends_on"] == {k: {"condition": "service_healthy"} for k in _kafka(compose)}


def test_two_or_more_workers_with_readiness_healthchecks(compose):
    workers = _services(compose, "worker")
    assert len(workers) >= 2
    host_ports = set()
    for name, w in workers.items():
        env = w["environment"]
        assert env["RAPPORT_PII_KEY"] == DUMMY_KEY, "the key comes from the environment"
        assert env["RAPPORT_METRICS_HOST"] == "0.0.0.0"
        assert env["RAPPORT_KAFKA_BOOTSTRAP"] == _services(compose, "topics")["topics"]["environment"][
            "RAPPORT_KAFKA_BOOTSTRAP"]
        assert w["depends_on"] == {"topics": {"condition": "service_completed_successfully"}}
        check = " ".join(w["healthcheck"]["test"])
        assert "/readyz" in check and ":9108" in check and "curl" not in check
        ports = [_port(p) for p in w["ports"]]
        assert [target for _, _, target in ports] == ["9108"], name
        host_ports.update(published for _, published, _ in ports)
    assert len(host_ports) == len(workers), "each worker publishes its metrics on its own host port"


def test_generator_is_a_demo_profile(compose):
    (name, generator), = _services(compose, "generate").items()
    assert generator["profiles"] == ["demo"]
    assert generator["command"] == ["generate", "--to-kafka", "--rate", "50"]


def _port(entry: str | dict) -> tuple[str, str, str]:
    """(host ip, published port, container port) of a resolved ``ports`` entry."""
    if isinstance(entry, dict):
        return entry.get("host_ip", ""), str(entry.get("published", "")), str(entry["target"])
    parts = entry.split("/")[0].split(":")
    return ("", *parts) if len(parts) == 2 else tuple(parts) if len(parts) == 3 else ("", "", parts[0])


def test_published_ports_bind_loopback_only(compose):
    published = [(name, _port(p)) for name, s in compose["services"].items() for p in s.get("ports", [])]
    assert published
    for name, (ip, _, _) in published:
        assert ip == "127.0.0.1", f"{name} publishes a port on every interface"


def test_prometheus_scrapes_every_worker_and_loads_the_alerts(compose):
    prom = compose["services"]["prometheus"]
    assert prom["image"] == "prom/prometheus:v2.55.1"
    mounts = _mounts(prom)
    assert mounts["/etc/prometheus/prometheus.yml"] == PROMETHEUS
    assert mounts["/etc/prometheus/alerts.yml"] == ROOT / "deploy" / "alerts.yml"
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert "/etc/prometheus/alerts.yml" in config["rule_files"]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "rapport"]  # the alerts use job="rapport"
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {f"{w}:9108" for w in _services(compose, "worker")}


def test_prometheus_config_passes_promtool():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    done = subprocess.run([promtool, "check", "config", "--syntax-only", str(PROMETHEUS)], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


def _mounts(service: dict) -> dict[str, Path | str]:
    """Container path -> host path (bind mounts) or volume name."""
    out = {}
    for v in service.get("volumes", []):
        if isinstance(v, dict):
            source, target = v["source"], v["target"]
        else:
            source, target = v.split(":")[:2]
        out[target] = Path(source) if source.startswith("/") else source
    return out


# --------------------------------------------------------------------------------------------------
# Grafana: provisioning and the dashboard


def _provisioning(kind: str) -> dict:
    (path,) = (GRAFANA / "provisioning" / kind).glob("*.yml")
    return yaml.safe_load(path.read_text())


def test_grafana_provisions_prometheus_and_the_dashboard(compose):
    grafana = compose["services"]["grafana"]
    assert grafana["image"].startswith("grafana/grafana:")
    mounts = _mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == GRAFANA / "provisioning"

    (source,) = _provisioning("datasources")["datasources"]
    assert source["type"] == "prometheus" and source["access"] == "proxy"
    host, port = source["url"].removeprefix("http://").split(":")
    assert host in compose["services"] and port == "9090"
    assert any(_port(p)[2] == port for p in compose["services"][host]["ports"])

    (provider,) = _provisioning("dashboards")["providers"]
    assert provider["type"] == "file"
    folder = mounts[provider["options"]["path"]]
    assert folder == DASHBOARD.parent and DASHBOARD.exists()
    home = grafana["environment"].get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert folder / Path(home).relative_to(provider["options"]["path"]) == DASHBOARD

    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["datasource"]["current"]["value"] == source["uid"]


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for p in dashboard["panels"]:
        if p["type"] == "row":
            out.extend(p.get("panels", []))
        else:
            out.append(p)
    return out


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


@pytest.fixture(scope="module")
def exported() -> set[str]:
    from pipeline.ops.metrics import Metrics

    return Metrics().series_names()


def test_dashboard_has_ten_or_more_panels_each_querying_exported_metrics(dashboard, exported):
    panels = _panels(dashboard)
    assert len(panels) >= 10
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"]), "panel ids are unique"
    for p in panels:
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"], p["title"]
        named = set()
        for t in p["targets"]:
            names = set(METRIC.findall(t["expr"]))
            assert names, f"{p['title']}: {t['expr']} names no Rapport metric"
            assert names <= exported, f"{p['title']}: not exported: {sorted(names - exported)}"
            named |= names
        assert named
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
    for v in dashboard["templating"]["list"]:
        if v["type"] == "query":
            assert set(METRIC.findall(v["definition"])) <= exported


def test_dashboard_covers_what_an_sre_reads_first(dashboard):
    queried = {m for p in _panels(dashboard) for t in p["targets"] for m in METRIC.findall(t["expr"])}
    families = {re.sub(r"_(total|bucket|count|sum)$", "", m) for m in queried}
    wanted = {
        "rapport_consumer_lag_records", "rapport_event_latency_seconds", "rapport_records", "rapport_events",
        "rapport_ordered_events", "rapport_outbound_records", "rapport_triggers", "rapport_dlq_records",
        "rapport_processing_errors", "rapport_rebalances", "rapport_restore_seconds", "rapport_customers",
        "rapport_identifiers", "rapport_state_bytes", "rapport_watermark_delay_seconds", "rapport_batch_seconds",
        "rapport_model_prequential", "rapport_model_drifts", "rapport_ready",
    }
    assert wanted <= families, sorted(wanted - families)
    latency = " ".join(t["expr"] for p in _panels(dashboard) for t in p["targets"]
                       if "rapport_event_latency_seconds" in t["expr"])
    for quantile in ("0.5", "0.99"):
        for since in ("occurred", "arrival"):
            assert re.search(rf"histogram_quantile\({quantile},[^\n]*since=\"{since}\"", latency), (quantile, since)


def test_dashboard_queries_parse_as_promql(dashboard, tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    rules = []
    for p in _panels(dashboard):
        for t in p["targets"]:
            expr = t["expr"].replace("$__rate_interval", "1m").replace("$instance", ".*")
            assert "$" not in expr, expr
            rules.append({"record": f"dashboard:panel{p['id']}:{t['refId'].lower()}", "expr": expr})
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


# --------------------------------------------------------------------------------------------------
# Kubernetes


def _load(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict]:
    """(kind, name) -> object, of every manifest `kubectl apply -f deploy/k8s/` applies."""
    out = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in _load(path):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in out, key
            out[key] = doc
    return out


def test_kubernetes_validate_ships_the_pinned_schemas():
    from kubernetes_validate import utils

    shipped = utils.all_versions()
    assert set(K8S_VERSIONS) <= set(shipped), shipped


def test_core_objects_pass_kubernetes_validate_strict(manifests):
    from kubernetes_validate import utils

    docs = list(manifests.values()) + _load(K8S / "examples" / "secrets.yaml")
    unchecked = []
    for doc in docs:
        for version in K8S_VERSIONS:
            try:
                utils.validate(doc, version, strict=True)
            except utils.SchemaNotFoundError:
                unchecked.append((doc["apiVersion"], doc["kind"]))
            except utils.ValidationError as e:
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} (Kubernetes {version}): "
                            f"{'.'.join(map(str, e.path))}: {e.message}")
    assert set(unchecked) == {("keda.sh/v1alpha1", "ScaledObject")}, "only the KEDA CRD goes unchecked"


def test_strict_validation_catches_a_misspelt_field(manifests):
    from kubernetes_validate import utils

    broken = copy.deepcopy(manifests[("Deployment", "rapport-worker")])
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["livenesProbe"] = container.pop("livenessProbe")
    with pytest.raises(utils.ValidationError):
        utils.validate(broken, K8S_VERSIONS[-1], strict=True)


def _config(manifests) -> dict[str, str]:
    return manifests[("ConfigMap", "rapport-config")]["data"]


def test_configmap(manifests):
    data = _config(manifests)
    assert all(isinstance(v, str) for v in data.values())
    assert data["RAPPORT_LOG_FORMAT"] == "json"
    assert data["RAPPORT_REPLICATION_FACTOR"] == "3" and data["RAPPORT_TOPIC_MIN_INSYNC_REPLICAS"] == "2"
    assert data["RAPPORT_METRICS_HOST"] == "0.0.0.0"
    assert not any(re.search(r"KEY|PASSWORD(?!_FILE)|SECRET", k) for k in data), "secrets do not go in a ConfigMap"


def _uncommented_kafka_security() -> dict[str, str]:
    """The SASL/SSL block of the ConfigMap, commented out in the file, as it reads once uncommented."""
    lines = [line.strip()[2:] for line in (K8S / "10-config.yaml").read_text().splitlines()
             if line.strip().startswith("# RAPPORT_KAFKA_")]
    return yaml.safe_load("\n".join(lines))


def test_sasl_ssl_settings_read_the_password_and_ca_from_the_secret_volume(manifests):
    security = _uncommented_kafka_security()
    assert set(security) == {"RAPPORT_KAFKA_SECURITY_PROTOCOL", "RAPPORT_KAFKA_SASL_MECHANISM",
                             "RAPPORT_KAFKA_SASL_USERNAME", "RAPPORT_KAFKA_SASL_PASSWORD_FILE",
                             "RAPPORT_KAFKA_SSL_CA_LOCATION"}
    for kind, name in (("Deployment", "rapport-worker"), ("Job", "rapport-topics")):
        pod = manifests[(kind, name)]["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = pod["containers"]
        secret_dirs = {m["mountPath"] for m in container["volumeMounts"]
                       if "secret" in volumes[m["name"]] and m.get("readOnly")}
        for key in ("RAPPORT_KAFKA_SASL_PASSWORD_FILE", "RAPPORT_KAFKA_SSL_CA_LOCATION"):
            assert str(Path(security[key]).parent) in secret_dirs, (name, key)


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    """Settings as a process with exactly ``env`` reads them (``Settings`` ignores unknown variables: a
    misspelt one would go unnoticed, so every name must be a field)."""
    from pipeline.ops.settings import Settings

    unknown = {k for k in env if k.startswith("RAPPORT_") and k.removeprefix("RAPPORT_").lower()
               not in Settings.model_fields}
    assert not unknown, f"not Rapport settings: {sorted(unknown)}"
    for k in [k for k in os.environ if k.startswith("RAPPORT_")]:
        monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, str(v))
    return Settings(_env_file=None)


def test_the_environment_given_to_rapport_is_valid_settings(compose, manifests, monkeypatch):
    for name, service in compose["services"].items():
        if service.get("image", "").startswith("rapport:"):
            _settings_from(service["environment"], monkeypatch)
    data = _config(manifests)
    s = _settings_from({**data, "RAPPORT_PII_KEY": "x"}, monkeypatch)
    assert s.log_format == "json" and s.metrics_port == 9108
    secured = _settings_from({**data, **_uncommented_kafka_security(), "RAPPORT_PII_KEY": "x"}, monkeypatch)
    assert secured.kafka_security.sasl and secured.kafka_security.tls


def _pod_is_hardened(pod: dict, state_dir: str) -> None:
    assert pod["automountServiceAccountToken"] is False
    ctx = pod["securityContext"]
    assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == 10001
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][kind]), (c["name"], kind)
        mounts = {m["mountPath"]: volumes[m["name"]] for m in c["volumeMounts"]}
        assert "emptyDir" in mounts[state_dir], "RAPPORT_STATE_DIR must be writable"
        assert "emptyDir" in mounts["/tmp"]
        assert c["envFrom"] == [{"configMapRef": {"name": "rapport-config"}}]
        for e in c.get("env", []):
            assert "value" not in e or not re.search("KEY|PASSWORD|SECRET", e["name"]), e["name"]


def test_worker_deployment(manifests):
    deployment = manifests[("Deployment", "rapport-worker")]
    pod = deployment["spec"]["template"]["spec"]
    _pod_is_hardened(pod, _config(manifests)["RAPPORT_STATE_DIR"])
    assert deployment["spec"]["replicas"] >= 2
    assert 30 <= pod["terminationGracePeriodSeconds"] <= 120
    (worker,) = pod["containers"]
    assert worker["args"] == ["worker"]
    assert {"name": "metrics", "containerPort": 9108, "protocol": "TCP"} in worker["ports"]
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert worker["startupProbe"]["httpGet"]["path"] == "/healthz"
    (pii,) = [e for e in worker["env"] if e["name"] == "RAPPORT_PII_KEY"]
    assert pii["valueFrom"]["secretKeyRef"] == {"name": "rapport-secrets", "key": "pii-key"}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9108"
    assert manifests[("ServiceAccount", pod["serviceAccountName"])]["automountServiceAccountToken"] is False


def test_topics_job(manifests):
    job = manifests[("Job", "rapport-topics")]
    pod = job["spec"]["template"]["spec"]
    _pod_is_hardened(pod, _config(manifests)["RAPPORT_STATE_DIR"])
    assert pod["restartPolicy"] in ("OnFailure", "Never")
    assert pod["containers"][0]["args"] == ["topics"]


def test_metrics_service_and_disruption_budget(manifests):
    labels = manifests[("Deployment", "rapport-worker")]["spec"]["template"]["metadata"]["labels"]
    service = manifests[("Service", "rapport-worker-metrics")]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9108, "targetPort": "metrics", "protocol": "TCP"}]
    assert service["spec"]["publishNotReadyAddresses"] is True, "a worker that is restoring is still scraped"
    annotations = service["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "9108"
    pdb = manifests[("PodDisruptionBudget", "rapport-worker")]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable") == 1


def test_keda_scales_on_consumer_lag_between_2_and_the_partitions(manifests):
    from pipeline.ops.settings import Settings
    from pipeline.ops.topics import CUSTOMERS_TOPIC
    from schemas.inbound import INBOUND

    scaled = manifests[("ScaledObject", "rapport-worker")]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    target = spec["scaleTargetRef"]
    assert (target.get("kind", "Deployment"), target["name"]) in manifests
    assert spec["minReplicaCount"] == 2
    data = _config(manifests)
    assert spec["maxReplicaCount"] == int(data["RAPPORT_PARTITIONS"])
    assert spec["triggers"]
    topics = set()
    for trigger in spec["triggers"]:
        assert trigger["type"] == "kafka"
        meta = trigger["metadata"]
        assert all(isinstance(v, str) for v in meta.values()), "KEDA trigger metadata are strings"
        assert meta["consumerGroup"] == Settings.model_fields["app_id"].default == "rapport"
        assert meta["bootstrapServers"] == data["RAPPORT_KAFKA_BOOTSTRAP"]
        assert int(meta["lagThreshold"]) > 0
        assert meta.get("allowIdleConsumers", "false") == "false"
        topics.add(meta["topic"])
    assert topics == set(INBOUND) | {CUSTOMERS_TOPIC}


def test_every_object_is_in_the_rapport_namespace(manifests):
    assert ("Namespace", "rapport") in manifests
    for (kind, name), doc in manifests.items():
        if kind != "Namespace":
            assert doc["metadata"]["namespace"] == "rapport", (kind, name)


def test_no_secret_value_in_the_manifests(manifests):
    assert not [key for key in manifests if key[0] == "Secret"], "Secrets are created apart, never applied from here"
    template = {d["metadata"]["name"]: d for d in _load(K8S / "examples" / "secrets.yaml")}
    assert template["rapport-secrets"]["stringData"]["pii-key"] == "REPLACE_ME"
    assert template["rapport-kafka"]["stringData"]["sasl-password"] == "REPLACE_ME"
    for path in K8S.rglob("*.yaml"):
        assert not re.search(r"\b[0-9a-f]{32,}\b", path.read_text()), f"{path} holds what looks like a key"

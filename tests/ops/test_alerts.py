"""The alert rules as Prometheus reads them: `promtool check rules` and `promtool test rules` (Debian's
`prometheus` package brings promtool), every alert unit-tested firing and silent, every metric it
queries exported by the worker, and every alert's runbook section present in docs/runbook.md."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from pipeline.ops.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "alerts.test.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
METRIC = re.compile(r"\brapport_[a-z_]+")
SEVERITIES = {"critical", "warning"}
PARTS = ("**What it means.**", "**Look first.**", "**What to do.**")


def alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
            if "alert" in rule]


def rule_tests() -> dict:
    return yaml.safe_load(RULE_TESTS.read_text())


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_sections() -> dict[str, str]:
    """``##`` sections of the runbook by anchor, with their text."""
    sections: dict[str, str] = {}
    anchor = None
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("## "):
            anchor = github_anchor(line[3:])
            assert anchor not in sections, f"two sections with the anchor #{anchor}"
            sections[anchor] = ""
        elif anchor is not None:
            sections[anchor] += line + "\n"
    return sections


def promtool(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip("promtool is not on PATH (Debian: apt-get install prometheus); the rules are not checked")
    return subprocess.run([exe, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_promtool_checks_the_rules():
    done = promtool("check", "rules", str(RULES.relative_to(ROOT)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in done.stdout, done.stdout


def test_promtool_unit_tests_pass():
    done = promtool("test", "rules", str(RULE_TESTS.relative_to(ROOT)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout, done.stdout


def test_the_unit_tests_read_the_rules_file():
    assert [(RULE_TESTS.parent / f).resolve() for f in rule_tests()["rule_files"]] == [RULES.resolve()]


def test_every_alert_has_a_unit_test_where_it_fires_and_one_where_it_does_not():
    fired: dict[str, list[dict]] = {}
    silent: set[str] = set()
    for case in rule_tests()["tests"]:
        for check in case.get("alert_rule_test", []):
            expected = check.get("exp_alerts") or []
            if expected:
                fired.setdefault(check["alertname"], []).extend(expected)
            else:
                silent.add(check["alertname"])
    for rule in alerts():
        name = rule["alert"]
        assert name in fired, f"no unit test makes {name} fire"
        assert name in silent, f"no unit test checks that {name} stays silent"
        for alert in fired[name]:  # expected with the rule's own labels
            labels = alert.get("exp_labels", {})
            assert labels.get("severity") == rule["labels"]["severity"], (name, labels)
            annotations = alert.get("exp_annotations")
            if annotations:
                assert annotations.get("runbook_url") == rule["annotations"]["runbook_url"], name


def test_every_alert_has_for_severity_summary_description_and_runbook_url():
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names)), "two alerts with one name"
    for rule in alerts():
        name = rule["alert"]
        assert "for" in rule, f"{name}: no for:"
        assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity not one of {SEVERITIES}"
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert annotations.get(key, "").strip(), f"{name}: no {key} annotation"


def test_the_alerts_the_issue_asks_for_are_there():
    names = {rule["alert"] for rule in alerts()}
    assert {"RapportConsumerLagGrowing", "RapportDeadLettersRising", "RapportProcessingErrors",
            "RapportWatermarkStalled", "RapportNoTriggers", "RapportWorkerDown", "RapportRestoreSlow",
            "RapportBatchesSlow", "RapportWorkerNotReady"} <= names
    down = next(rule for rule in alerts() if rule["alert"] == "RapportWorkerDown")
    assert 'up{job="rapport"}' in down["expr"]


def test_every_metric_the_rules_and_their_tests_name_is_exported_by_the_worker():
    exported = Metrics().series_names()
    queried = {name for rule in alerts() for name in METRIC.findall(rule["expr"])}
    assert queried, "no rapport_ metric in the rules?"
    assert not queried - exported, f"not exported by the worker: {sorted(queried - exported)}"
    fed = {METRIC.match(series["series"]).group() for case in rule_tests()["tests"]
           for series in case.get("input_series", []) if METRIC.match(series["series"])}
    assert not fed - exported, f"the unit tests feed series the worker does not export: {sorted(fed - exported)}"


def test_every_bucket_bound_a_rule_names_is_a_bucket_of_the_histogram():
    """``le`` is matched as a string: prometheus_client writes bounds as floats (``le="60.0"``)."""
    metrics = Metrics()
    metrics.restored("global", 1.0)
    metrics.batch("global", 1, 0.01)
    exposition = generate_latest(metrics.registry).decode()
    for rule in alerts():
        for name, op, bound in re.findall(r'(rapport_[a-z_]+_bucket)\{[^}]*?le\s*(=~|=)\s*"([^"]+)"', rule["expr"]):
            pattern = bound.replace("\\\\", "\\") if op == "=~" else re.escape(bound)
            found = re.findall(rf'^{name}\{{[^}}]*le="([^"]+)"', exposition, re.M)
            assert found, f"{rule['alert']}: {name} has no bucket in a fresh worker's exposition"
            assert any(re.fullmatch(pattern, le) for le in found), (
                f"{rule['alert']}: le {op} {bound!r} matches none of {name}'s buckets {sorted(set(found))}")


def test_every_alert_links_to_its_own_section_of_the_runbook():
    sections = runbook_sections()
    for rule in alerts():
        name = rule["alert"]
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path.endswith("docs/runbook.md"), f"{name}: runbook_url {url} is not docs/runbook.md"
        assert anchor == name.lower(), f"{name}: runbook_url anchor #{anchor}, expected #{name.lower()}"
        assert anchor in sections, f"{name}: no '## {name}' section in docs/runbook.md"
        for part in PARTS:
            assert part in sections[anchor], f"runbook section {name} has no {part}"
    alert_sections = {a for a in sections if a.startswith("rapport")}
    assert alert_sections == {rule["alert"].lower() for rule in alerts()}, "runbook sections for alerts that do not exist"

"""The monitoring pack (monitoring/): the alert rules pass promtool's checks and their unit tests,
the dashboard is well formed, and everything there names metrics and labels the server has."""

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.metrics import MetricWrapperBase

from tests.conftest import REPO, StartServer
from voice_rtc import metrics

MONITORING = REPO / "monitoring"
RULES = MONITORING / "prometheus" / "alerts.yml"
RULE_TESTS = MONITORING / "prometheus" / "alerts.test.yml"
DASHBOARD = MONITORING / "grafana" / "voice-rtc.json"
README = MONITORING / "README.md"
# Everything that names voice_rtc_* metrics: queries, annotations, test input, advice.
REFERENCING = [RULES, RULE_TESTS, DASHBOARD, README]

METRIC_NAME = re.compile(r"\bvoice_rtc_[a-z0-9_]*[a-z0-9]\b")
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
# Labels Prometheus attaches to every scraped series.
TARGET_LABELS = {"job", "instance"}


def promtool(*args: str, cwd: Path = REPO) -> str:
    """Run promtool; fail with its output unless it succeeds."""
    executable = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(executable).exists():
        pytest.fail("promtool not found: install Debian's prometheus package (scripts/test does)")
    result = subprocess.run(
        [executable, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def alert_blocks() -> dict[str, str]:
    """Each alerting rule's text in alerts.yml, by alert name (no YAML parser in the venv)."""
    parts = re.split(r"^\s*- alert: ", RULES.read_text(), flags=re.MULTILINE)[1:]
    return {part.split("\n", 1)[0].strip(): part for part in parts}


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def dashboard_queries() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel["targets"]]


def test_alert_rules_are_valid() -> None:
    output = promtool("check", "rules", str(RULES))
    assert f"SUCCESS: {len(alert_blocks())} rules found" in output, output


def test_alert_rules_pass_their_unit_tests() -> None:
    output = promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert "SUCCESS" in output, output


def test_every_alert_is_tested_firing_and_quiet() -> None:
    """Each rule has `for:`, a severity and annotations; alerts.test.yml expects it to fire at
    some point and to be quiet at another (pending, or on healthy input)."""
    tests = RULE_TESTS.read_text()
    blocks = alert_blocks()
    assert len(blocks) >= 6, blocks.keys()
    for name, block in blocks.items():
        assert re.search(r"^\s+for: \d+[smh]$", block, re.MULTILINE), f"{name}: no `for:`"
        assert re.search(r"severity: (critical|warning)$", block, re.MULTILINE), name
        assert "summary:" in block and "description:" in block, f"{name}: annotations"
        fires = re.search(rf"alertname: {name}\n\s+exp_alerts:\n\s+- exp_labels:", tests)
        quiet = re.search(rf"alertname: {name}\n\s+exp_alerts: \[\]", tests)
        assert fires, f"{name}: no test where it fires"
        assert quiet, f"{name}: no test where it stays quiet"
    # promtool expects nothing of an alert that does not exist: a misspelt name passes vacuously.
    tested = set(re.findall(r"alertname: (\S+)", tests))
    assert tested <= blocks.keys(), f"tests name alerts alerts.yml lacks: {tested - blocks.keys()}"


def test_dashboard_is_well_formed() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 36 and board["uid"] and board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"job", "instance"} <= variables.keys()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        xs, ys = range(pos["x"], pos["x"] + pos["w"]), range(pos["y"], pos["y"] + pos["h"])
        area = {(x, y) for x in xs for y in ys}
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
    for panel in panels():
        title = panel.get("title")
        assert title, f"panel {panel['id']} has no title"
        assert panel.get("description"), f"{title}: no description"
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{title}: no unit"
        assert panel["datasource"]["uid"] == "${datasource}", f"{title}: fixed data source"
        assert panel.get("targets"), f"{title}: no query"
        for target in panel["targets"]:
            expr = target["expr"]
            assert expr.strip() and target["datasource"]["uid"] == "${datasource}"
            # Every series selected is filtered by the Job and Instance variables.
            assert not re.search(r"\b(voice_rtc_\w+|up)\b(?!\{)", expr), f"{title}: {expr}"
            for selector in re.findall(r"\{([^}]*)\}", expr):
                assert 'job=~"$job"' in selector, f"{title}: ignores $job: {expr}"
                assert 'instance=~"$instance"' in selector, f"{title}: ignores $instance: {expr}"


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    """promtool parses each query (Grafana's variables filled in) as a recording rule."""
    grafana_variables = {"$__rate_interval": "5m", "$job": ".*", "$instance": ".*"}
    rules = []
    for i, expr in enumerate(dashboard_queries()):
        for variable, value in grafana_variables.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"an unknown Grafana variable in {expr}"
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))  # YAML
    output = promtool("check", "rules", str(path))
    assert f"SUCCESS: {len(rules)} rules found" in output, output


def declared_labels() -> dict[str, set[str]]:
    """Label names of each voice_rtc_* series name, from voice_rtc/metrics.py."""
    labels: dict[str, set[str]] = {}
    for metric in vars(metrics).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        names = set(metric._labelnames)
        for family in metric.describe():
            suffixes = {
                "counter": ("_total",),
                "histogram": ("", "_bucket", "_count", "_sum"),  # "": the family, in prose
            }.get(family.type, ("",))
            for suffix in suffixes:
                labels[family.name + suffix] = names | ({"le"} if suffix == "_bucket" else set())
    # What is counted in plain ints and exported at scrape time: its series, as exported.
    for family in metrics.MediaCollector().collect():
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


def test_queries_use_only_labels_the_metrics_have() -> None:
    """`metric{label=...}` and `by (label)` name labels metrics.py declares (or job, instance)."""
    declared = declared_labels()
    selector = re.compile(r"\b(voice_rtc_\w+)\{([^}]*)\}")
    grouping = re.compile(r"\bby \(([\w, ]*)\) \((?:\w+\()?(voice_rtc_\w+)")
    uses: list[tuple[str, set[str], str]] = []
    for path in REFERENCING:
        text = path.read_text()
        for match in selector.finditer(text):
            names = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", match[2]))
            uses.append((match[1], names, path.name))
        for match in grouping.finditer(text):
            uses.append((match[2], {n.strip() for n in match[1].split(",")}, path.name))
    assert len(uses) > 20, uses
    for name, names, where in uses:
        assert name in declared, f"{where}: {name} is not in voice_rtc/metrics.py"
        unknown = names - declared[name] - TARGET_LABELS
        assert not unknown, f"{where}: {name} has no label {unknown}"


async def test_every_metric_named_exists_on_a_running_server(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server()
    async with http.get(server.url + "metrics") as response:
        assert response.status == 200
        exposition = await response.text()
    # Labelled metrics with no sample yet appear only as `# HELP` / `# TYPE` lines.
    families = dict(re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.MULTILINE))
    assert families.get("voice_rtc_errors_total") == "counter", exposition

    def exposed(name: str) -> bool:
        if name in families:
            return True
        base, _, suffix = name.rpartition("_")
        return f"_{suffix}" in HISTOGRAM_SUFFIXES and families.get(base) == "histogram"

    for path in REFERENCING:
        named = set(METRIC_NAME.findall(path.read_text()))
        assert named, f"{path.name} names no voice_rtc_* metric"
        missing = sorted(name for name in named if not exposed(name))
        assert not missing, f"{path.relative_to(REPO)} names metrics the server lacks: {missing}"

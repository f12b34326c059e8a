"""``deploy/``: what can be checked without Docker or a systemd host — the YAML parses, every
file it mounts or builds from exists, the pieces point at each other (ports, paths), the
service's config is valid (and refuses to expose the page without its token), and the systemd
unit uses only keys systemd knows (``systemd-analyze verify``)."""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from candlekeeper.config import ConfigValidationError, load_config

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"


def _yaml(name: str) -> dict[str, object]:
    data = yaml.safe_load((DEPLOY / name).read_text())
    assert isinstance(data, dict)
    return data


def test_compose_file_parses_and_references_only_existing_files() -> None:
    compose = _yaml("docker-compose.yml")
    services = compose["services"]
    assert isinstance(services, dict)
    assert set(services) == {"candlekeeper", "postgres", "nats", "prometheus", "grafana"}
    build = services["candlekeeper"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert (context / build["dockerfile"]).is_file()
    for line in (context / build["dockerfile"]).read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (context / source).exists(), source
    named = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name}: {source}"
            else:
                assert source in named, f"{name}: undeclared volume {source}"
        for dep in service.get("depends_on", []):
            assert dep in services
    assert "-js" in services["nats"]["command"]
    # the service gets its secrets from the environment, never from a file in the repository
    env = services["candlekeeper"]["environment"]
    assert env["CANDLEKEEPER__OBSERVABILITY__HTTP__TOKEN"].startswith("${")
    assert env["PGPASSWORD"].startswith("${")
    stop = services["candlekeeper"]["stop_grace_period"]
    assert int(stop.rstrip("s")) > load_config(
        DEPLOY / "config.yaml", env={"CANDLEKEEPER__OBSERVABILITY__HTTP__TOKEN": "t"}
    ).shutdown.drain_timeout_s


def test_prometheus_scrapes_the_port_the_service_serves() -> None:
    config = load_config(DEPLOY / "config.yaml",
                         env={"CANDLEKEEPER__OBSERVABILITY__HTTP__TOKEN": "t"})
    scrape = _yaml("prometheus.yml")["scrape_configs"]
    assert isinstance(scrape, list)
    targets = [t for job in scrape for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"candlekeeper:{config.observability.http.port}"]
    assert scrape[0]["metrics_path"] == "/metrics"


def test_deploy_config_is_valid_and_needs_the_token_to_expose_the_page() -> None:
    config = load_config(DEPLOY / "config.yaml",
                         env={"CANDLEKEEPER__OBSERVABILITY__HTTP__TOKEN": "secret-1"})
    assert config.sinks.postgres.enabled and config.sinks.nats.enabled
    assert config.observability.http.host == "0.0.0.0"
    assert "secret-1" not in (DEPLOY / "config.yaml").read_text()
    with pytest.raises(ConfigValidationError, match="token"):
        load_config(DEPLOY / "config.yaml", env={})


def test_grafana_provisioning_points_at_the_board_and_prometheus() -> None:
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
    boards = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/candlekeeper.yml").read_text())
    folder = boards["providers"][0]["options"]["path"]
    grafana = _yaml("docker-compose.yml")["services"]["grafana"]  # type: ignore[index]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    board_mount = mounts["./grafana/candlekeeper.json"]
    assert board_mount.startswith(folder + "/")
    assert json.loads((DEPLOY / "grafana/candlekeeper.json").read_text())["panels"]


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(DEPLOY / "candlekeeper.service")
    return parser


def test_systemd_unit_stops_gracefully_and_is_hardened() -> None:
    unit = _unit()
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    svc = unit["Service"]
    drain = load_config(DEPLOY / "config.yaml",
                        env={"CANDLEKEEPER__OBSERVABILITY__HTTP__TOKEN": "t"}
                        ).shutdown.drain_timeout_s
    assert svc["Type"] in ("simple", "exec", "notify")
    assert svc["Restart"] == "on-failure"
    assert svc["KillSignal"] == "SIGTERM" and int(svc["TimeoutStopSec"]) > drain
    assert svc["User"] == "candlekeeper" and svc["NoNewPrivileges"] == "yes"
    assert svc["ProtectSystem"] == "strict" and svc["StateDirectory"] == "candlekeeper"
    # under ProtectSystem=strict only the state directory is writable: the SQLite file is there
    assert "CANDLEKEEPER__SINKS__SQLITE__PATH=/var/lib/candlekeeper/" in svc["Environment"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_unit_has_only_known_keys(tmp_path: Path) -> None:
    """systemd itself judges the keys: ``verify`` names every unknown one. The executable is
    swapped for /bin/true (it is not installed here); nothing else changes."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is needed (Debian package systemd)", pytrace=False)
    text = (DEPLOY / "candlekeeper.service").read_text()
    copy = tmp_path / "candlekeeper.service"
    copy.write_text(text.replace("/opt/candlekeeper/bin/candlekeeper", "/bin/true"))
    done = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "Unknown" not in done.stderr and "Invalid" not in done.stderr, done.stderr
    assert done.stderr.strip() == "", done.stderr
    # and the check does catch a wrong key
    copy.write_text(text.replace("/opt/candlekeeper/bin/candlekeeper", "/bin/true")
                    .replace("Restart=on-failure", "Restart=on-failure\nRestartt=always"))
    done = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert "Unknown key 'Restartt'" in done.stderr

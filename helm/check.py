"""Offline check of the Helm chart helm/musubi (run through helm/check.sh).

For each value set (the chart's defaults, then every helm/examples/*.yaml):
  1. `helm lint --strict` with Helm's own library (helm-python-sdk); any warning or error fails;
  2. `helm template` with the same library, then every rendered manifest is validated against
     the Kubernetes JSON schemas bundled in kubernetes-validate (strict: unknown fields fail);
  3. the chart's promises are checked on the rendered objects (non-root, read-only root,
     probes, migration hook, no Secret rendered, /metrics kept off the Ingress, …).
No network and no cluster are used. Exits 1 on any failure.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import yaml

KUBE_VERSION = "1.30.0"
RELEASE = "musubi"
NAMESPACE = "musubi"
HERE = Path(__file__).resolve().parent
CHART = HERE / "musubi"
# The chart's defaults, then every example (ha-values.yaml, single-values.yaml, …).
VALUE_SETS: list[tuple[str, Path | None]] = [("default", None)] + [
    (p.stem.removesuffix("-values"), p) for p in sorted((HERE / "examples").glob("*.yaml"))
]
SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}
SECRET_VARS = {
    "DATABASE_URL",
    "REDIS_URL",
    "MUSUBI_S3_ACCESS_KEY_ID",
    "MUSUBI_S3_SECRET_ACCESS_KEY",
    "MUSUBI_SMTP_URL",
    "MUSUBI_VAPID_PRIVATE_KEY",
}


def lint(label: str, values: dict[str, Any] | None) -> list[str]:
    report = helm.lint(
        CHART,
        values,
        strict=True,
        namespace=NAMESPACE,
        kube_version=f"v{KUBE_VERSION}",
    )
    problems: list[str] = []
    for message in report.get("messages") or []:
        severity = int(message.get("severity", 0))
        line = f"{SEVERITY.get(severity, severity)} {message.get('path', '')}: {message.get('error', '')}"
        if severity >= 2:
            problems.append(f"[{label}] lint: {line}")
        else:
            print(f"  lint {line}")
    for error in report.get("errors") or []:
        if not any(str(error) in p for p in problems):  # most repeat a message
            problems.append(f"[{label}] lint: {error}")
    return problems


def render(values: dict[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[tuple[str, dict[str, Any]]] = []
    for template in sorted(rendered):
        if not template.endswith((".yaml", ".yml")):
            continue  # NOTES.txt, helpers
        for document in yaml.safe_load_all(rendered[template]):
            if document:
                objects.append((template, document))
    return objects


def validate(label: str, objects: list[tuple[str, dict[str, Any]]]) -> list[str]:
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for template, obj in objects:
        name = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
        key = (str(obj.get("kind")), str((obj.get("metadata") or {}).get("name")))
        if key in seen:
            problems.append(f"[{label}] {template}: {name} is rendered twice")
        seen.add(key)
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            problems.append(f"[{label}] {template}: {name} is invalid at {path or '(root)'}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            problems.append(f"[{label}] {template}: {name}: {e.message}")
    return problems


def containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod_spec.get("containers") or []) + list(pod_spec.get("initContainers") or [])


def promises(label: str, objects: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """What the chart promises operators, checked on the rendered objects."""
    problems: list[str] = []

    def need(condition: bool, what: str) -> None:
        if not condition:
            problems.append(f"[{label}] {what}")

    by_kind: dict[str, list[dict[str, Any]]] = {}
    for _, obj in objects:
        by_kind.setdefault(str(obj.get("kind")), []).append(obj)

    need("Secret" not in by_kind, "the chart must not render a Secret (secrets come from existingSecret)")
    configmaps = by_kind.get("ConfigMap", [])
    need(len(configmaps) == 1, "exactly one ConfigMap")
    config = configmaps[0].get("data", {}) if configmaps else {}
    need(config.get("MUSUBI_MIGRATE_ON_START") == "false", "replicas must not migrate on start")
    need(str(config.get("MUSUBI_LISTEN", "")).startswith("0.0.0.0:"), "MUSUBI_LISTEN must listen on all addresses")
    need(not SECRET_VARS & set(config), "no secret setting in the ConfigMap")

    pods: list[tuple[str, dict[str, Any]]] = []
    for kind in ("Deployment", "Job"):
        for obj in by_kind.get(kind, []):
            pods.append((f"{kind}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]))
    need(len(by_kind.get("Deployment", [])) == 1, "exactly one Deployment")
    for where, spec in pods:
        pod_sc = spec.get("securityContext") or {}
        need(pod_sc.get("runAsNonRoot") is True, f"{where}: pod runAsNonRoot")
        need((pod_sc.get("seccompProfile") or {}).get("type") == "RuntimeDefault", f"{where}: seccomp RuntimeDefault")
        need(spec.get("automountServiceAccountToken") is False, f"{where}: no service account token")
        mounts_tmp = False
        for c in containers(spec):
            sc = c.get("securityContext") or {}
            cname = f"{where} container {c.get('name')}"
            need(sc.get("readOnlyRootFilesystem") is True, f"{cname}: read-only root filesystem")
            need(sc.get("allowPrivilegeEscalation") is False, f"{cname}: no privilege escalation")
            need("ALL" in ((sc.get("capabilities") or {}).get("drop") or []), f"{cname}: drop ALL capabilities")
            need(bool(c.get("command")) and str(c["command"][0]).startswith("/"), f"{cname}: exec-form command (no shell in the image)")
            need("limits" in (c.get("resources") or {}), f"{cname}: resource limits")
            for env in c.get("env") or []:
                need(
                    not (env.get("name") in SECRET_VARS and "value" in env),
                    f"{cname}: {env.get('name')} must come from a Secret",
                )
            mounts_tmp = mounts_tmp or any(m.get("mountPath") == "/tmp" for m in c.get("volumeMounts") or [])
        need(mounts_tmp, f"{where}: a writable /tmp (uploads stream to temporary files)")

    for deploy in by_kind.get("Deployment", []):
        c = deploy["spec"]["template"]["spec"]["containers"][0]
        need(c.get("args") == ["serve"], "the Deployment runs `musubi serve`")
        need((c.get("readinessProbe") or {}).get("httpGet", {}).get("path") == "/readyz", "readiness probe on /readyz")
        need((c.get("livenessProbe") or {}).get("httpGet", {}).get("path") == "/healthz", "liveness probe on /healthz")

    jobs = by_kind.get("Job", [])
    need(len(jobs) == 1, "one migration Job")
    for job in jobs:
        hooks = (job["metadata"].get("annotations") or {}).get("helm.sh/hook", "")
        need(set(hooks.split(",")) == {"pre-install", "pre-upgrade"}, "the migration Job is a pre-install,pre-upgrade hook")
        need(job["spec"]["template"]["spec"]["containers"][0].get("args") == ["migrate"], "the Job runs `musubi migrate`")

    for ingress in by_kind.get("Ingress", []):
        app_service = by_kind["Deployment"][0]["metadata"]["name"]
        for rule in ingress["spec"].get("rules") or []:
            paths = (rule.get("http") or {}).get("paths") or []
            metrics = [p for p in paths if p.get("path") == "/metrics" and p.get("pathType") == "Exact"]
            need(bool(metrics), "the Ingress has an Exact /metrics rule")
            need(
                all(p["backend"]["service"]["name"] != app_service for p in metrics),
                "the Ingress never routes /metrics to Musubi",
            )
    return problems


def main() -> int:
    print(f"helm-python-sdk {helm.__version__} (Helm {helm.helm_sdk_version()}), "
          f"kubernetes-validate {kubernetes_validate.__version__}, schemas of Kubernetes {KUBE_VERSION} (strict)")
    failures: list[str] = []
    summary: list[str] = []
    for label, path in VALUE_SETS:
        values = yaml.safe_load(path.read_text()) if path else None
        shown = path.relative_to(HERE.parent).as_posix() if path else "chart defaults"
        print(f"== {label} ({shown})")
        problems = lint(label, values)
        try:
            objects = render(values)
        except helm.HelmError as e:
            problems.append(f"[{label}] template: {e}")
            objects = []
        if objects:
            problems += validate(label, objects)
            problems += promises(label, objects)
        kinds = ", ".join(sorted(f"{o['kind']}" for _, o in objects))
        print(f"  rendered: {kinds or 'nothing'}")
        for p in problems:
            print(f"  FAIL {p}")
        failures += problems
        ok = not problems
        summary.append(f"{label}: {len(objects)} manifests validated" if ok
                       else f"{label}: {len(problems)} problem(s) in {len(objects)} manifests")
    print("\n".join(summary))
    if failures:
        print(f"helm check: FAILED ({len(failures)} problem(s))")
        return 1
    print("helm check: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())

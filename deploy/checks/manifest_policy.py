"""House rules for the rendered manifests that a schema cannot express.

Run by scripts/check-deploy.sh with the venv's Python (PyYAML comes with
kubernetes-validate):

    python manifest_policy.py RENDERED.yaml SECRET_TEMPLATE.yaml

Prints one line per broken rule and exits 1 if there is any.
"""

import sys

import yaml

ROLES = ("gateway", "router", "presence")
# preStop pause + drain must end this much before the kubelet's SIGKILL.
KILL_MARGIN_MS = 2_000


def main(rendered_path: str, secret_template_path: str) -> int:
    with open(rendered_path, encoding="utf-8") as f:
        objects = [o for o in yaml.safe_load_all(f) if o]
    with open(secret_template_path, encoding="utf-8") as f:
        template = yaml.safe_load(f)

    by_kind: dict[str, dict[str, dict]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj

    problems: list[str] = []
    deployments = by_kind.get("Deployment", {})
    config_maps = by_kind.get("ConfigMap", {})
    secrets = by_kind.get("Secret", {})
    hpas = by_kind.get("HorizontalPodAutoscaler", {})
    pdbs = by_kind.get("PodDisruptionBudget", {})

    for role in ROLES:
        name = f"switchboard-{role}"
        deployment = deployments.get(name)
        if deployment is None:
            problems.append(f"no Deployment {name}")
            continue
        problems += [f"{name}: {p}" for p in check_deployment(deployment, role)]
        problems += [f"{name}: {p}" for p in check_references(deployment, config_maps, secrets, template)]
        if role == "gateway":
            problems += [f"{name}: {p}" for p in check_drain(deployment, config_maps)]
        if not any(h["spec"]["scaleTargetRef"]["name"] == name for h in hpas.values()):
            problems.append(f"{name}: no HorizontalPodAutoscaler targets it")
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        if not any(selects(p["spec"]["selector"], labels) for p in pdbs.values()):
            problems.append(f"{name}: no PodDisruptionBudget selects its pods")

    gateway_hpa = hpas.get("switchboard-gateway")
    if gateway_hpa is not None:
        down = gateway_hpa["spec"].get("behavior", {}).get("scaleDown", {})
        if down.get("stabilizationWindowSeconds", 0) < 300:
            problems.append("switchboard-gateway HPA: scale-down must be slow (every removal forces reconnects)")

    policies = by_kind.get("NetworkPolicy", {})
    if not any(
        p["spec"]["podSelector"] == {} and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        for p in policies.values()
    ):
        problems.append("no default-deny NetworkPolicy for ingress and egress")

    for problem in problems:
        print(f"  policy: {problem}")
    return 1 if problems else 0


def check_deployment(deployment: dict, role: str) -> list[str]:
    problems = []
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    if "replicas" in spec:
        problems.append("sets replicas; the HPA owns the count")
    rolling = spec.get("strategy", {}).get("rollingUpdate", {})
    if rolling.get("maxUnavailable") != 0 or rolling.get("maxSurge") != 1:
        problems.append("rolling update must be maxUnavailable 0 / maxSurge 1")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("mounts a service account token")
    pod_security = pod.get("securityContext", {})
    if pod_security.get("runAsNonRoot") is not True:
        problems.append("runAsNonRoot is not set")
    if pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append("seccomp profile is not RuntimeDefault")
    if not pod.get("topologySpreadConstraints") and not pod.get("affinity", {}).get("podAntiAffinity"):
        problems.append("no topology spread or pod anti-affinity")
    for container in pod["containers"]:
        where = f"container {container['name']}"
        if container.get("args") != [role]:
            problems.append(f"{where}: args must be [{role}]")
        security = container.get("securityContext", {})
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: root filesystem is writable")
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: privilege escalation allowed")
        if security.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{where}: capabilities not dropped")
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in resources.get(kind, {}):
                    problems.append(f"{where}: no {resource} {kind[:-1]}")
        probes = (("startupProbe", "liveness"), ("readinessProbe", ""), ("livenessProbe", "liveness"))
        for probe, service in probes:
            grpc = container.get(probe, {}).get("grpc")
            if grpc is None or grpc.get("service", "") != service:
                problems.append(f"{where}: {probe} must be a grpc probe of service {service!r}")
        image = container.get("image", "")
        if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]:
            problems.append(f"{where}: image {image!r} is not pinned to a tag")
    return problems


def check_references(deployment: dict, config_maps: dict, secrets: dict, template: dict) -> list[str]:
    """Every referenced ConfigMap exists; every Secret key exists in the Secret
    (dev renders one) or else in the production template."""
    problems = []
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        for source in container.get("envFrom", []):
            name = source.get("configMapRef", {}).get("name")
            if name and name not in config_maps:
                problems.append(f"ConfigMap {name} is referenced but not rendered")
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if not ref:
                continue
            secret = secrets.get(ref["name"])
            keys = set((secret or {}).get("data", {})) | set((secret or {}).get("stringData", {}))
            if secret is None:
                keys = set(template.get("stringData", {}))
            if ref["key"] not in keys:
                problems.append(f"secret key {ref['key']} (for {env['name']}) is in neither the Secret nor the template")
    return problems


def check_drain(deployment: dict, config_maps: dict) -> list[str]:
    """The gateway's bounded drain must finish before the kubelet kills it."""
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    drain_ms = None
    # Later sources win, and `env` wins over `envFrom`, as in the kubelet.
    for source in container.get("envFrom", []):
        data = config_maps.get(source.get("configMapRef", {}).get("name"), {}).get("data", {})
        if "SB_DRAIN_GRACE_MS" in data:
            drain_ms = int(data["SB_DRAIN_GRACE_MS"])
    for env in container.get("env", []):
        if env["name"] == "SB_DRAIN_GRACE_MS" and "value" in env:
            drain_ms = int(env["value"])
    if drain_ms is None:
        return ["SB_DRAIN_GRACE_MS is not set (its default is not tied to terminationGracePeriodSeconds)"]
    pause_ms = 1000 * container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace_ms = 1000 * pod.get("terminationGracePeriodSeconds", 30)
    if pause_ms + drain_ms + KILL_MARGIN_MS > grace_ms:
        return [f"preStop {pause_ms} ms + drain {drain_ms} ms does not fit in terminationGracePeriodSeconds ({grace_ms} ms)"]
    return []


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))

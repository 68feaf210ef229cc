"""Checks the Gateway API example (deploy/examples/gateway-api.yaml) against
the rendered manifests, since the Gateway API CRDs' schemas are not available
offline. Run by scripts/check-deploy.sh with the venv's Python:

    python gateway_api.py EXAMPLE.yaml RENDERED.yaml

What it holds the example to: standard v1 kinds; TLS terminated on the
listener with a certificate; the route attached to that listener; every
backend a Service port of the rendered manifests that speaks cleartext
HTTP/2 (appProtocol kubernetes.io/h2c); no request or backend timeout (a
Subscribe lives as long as its client). Prints one line per broken rule and
exits 1 if there is any.
"""

import sys

import yaml

API = "gateway.networking.k8s.io/v1"


def main(example_path: str, rendered_path: str) -> int:
    with open(example_path, encoding="utf-8") as f:
        example = [o for o in yaml.safe_load_all(f) if o]
    with open(rendered_path, encoding="utf-8") as f:
        rendered = [o for o in yaml.safe_load_all(f) if o]
    services = {o["metadata"]["name"]: o for o in rendered if o["kind"] == "Service"}
    problems: list[str] = []

    gateways = {o["metadata"]["name"]: o for o in example if o["kind"] == "Gateway"}
    routes = [o for o in example if o["kind"] == "HTTPRoute"]
    for obj in example:
        if obj.get("apiVersion") != API:
            problems.append(f"{obj['kind']} {obj['metadata']['name']}: apiVersion is not {API}")
        if obj["kind"] not in ("Gateway", "HTTPRoute"):
            problems.append(f"unexpected kind {obj['kind']}")
    if not gateways or not routes:
        problems.append("the example needs a Gateway and an HTTPRoute")

    listeners = {}
    for name, gateway in gateways.items():
        for listener in gateway["spec"].get("listeners", []):
            listeners[(name, listener["name"])] = listener
            tls = listener.get("tls", {})
            if listener.get("protocol") != "HTTPS" or tls.get("mode") != "Terminate":
                problems.append(f"Gateway {name}/{listener['name']}: must terminate TLS (HTTPS, mode Terminate)")
            if not tls.get("certificateRefs"):
                problems.append(f"Gateway {name}/{listener['name']}: no certificateRefs")

    for route in routes:
        name = route["metadata"]["name"]
        for parent in route["spec"].get("parentRefs", []):
            if (parent["name"], parent.get("sectionName")) not in listeners:
                problems.append(f"HTTPRoute {name}: parentRef {parent['name']}/{parent.get('sectionName')} is no listener of the example")
        for rule in route["spec"].get("rules", []):
            timeouts = rule.get("timeouts", {})
            for key in ("request", "backendRequest"):
                if timeouts.get(key) != "0s":
                    problems.append(f"HTTPRoute {name}: timeouts.{key} must be 0s (streams outlive any request timeout)")
            for backend in rule.get("backendRefs", []):
                service = services.get(backend["name"])
                if service is None:
                    problems.append(f"HTTPRoute {name}: backend {backend['name']} is no Service of the manifests")
                    continue
                port = next((p for p in service["spec"]["ports"] if p["port"] == backend.get("port")), None)
                if port is None:
                    problems.append(f"HTTPRoute {name}: Service {backend['name']} has no port {backend.get('port')}")
                elif port.get("appProtocol") != "kubernetes.io/h2c":
                    problems.append(f"HTTPRoute {name}: port {port['port']} of {backend['name']} is not cleartext HTTP/2 (appProtocol kubernetes.io/h2c)")

    for problem in problems:
        print(f"  gateway-api: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))

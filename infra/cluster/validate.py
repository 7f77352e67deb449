#!/usr/bin/env python3
"""Offline checks of the cluster files under infra/cluster/.

- custom resources (Cilium, Tailscale) against the CRD JSON schemas in schemas/;
- every other manifest kind must be one `kubernetes-validate` knows (infra/check.sh runs
  `kubernetes-validate --strict` on the files that `--list-manifests` prints);
- the Helm values and Talos patches hold what the mesh needs (unique cluster ids,
  WireGuard without node encryption, disjoint pod CIDRs, KubeSpan off, legacy host routing
  where Talos forwards kube-dns to the host, home nodes on the tailnet with their tailnet
  address as InternalIP, the tailnet policy opening the mesh ports between node tags, ...);
- cross-file consistency (names referenced in one file exist in another);
- no real secrets: Secrets carry REPLACE_WITH_... placeholders only.

Usage: validate.py [--list-manifests]
Prints one line per check and a final `cluster: N passed, M failed`; exits 1 on failure.
"""

from __future__ import annotations

import ipaddress
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent
K8S_VERSION = "1.33.0"

CRD_SCHEMAS = {
    ("cilium.io/v2", "CiliumNetworkPolicy"): "ciliumnetworkpolicy_v2.json",
    ("tailscale.com/v1alpha1", "Connector"): "connector_v1alpha1.json",
    ("tailscale.com/v1alpha1", "ProxyClass"): "proxyclass_v1alpha1.json",
}

# Files that are not Kubernetes manifests, by their role.
CILIUM_VALUES = {"home": "cilium/values-home.yaml", "cloud": "cilium/values-cloud.yaml"}
OPERATOR_VALUES = {"home": "tailscale/operator-values-home.yaml", "cloud": "tailscale/operator-values-cloud.yaml"}
TALOS_PATCHES = {
    "kubespan": "talos/kubespan-off.yaml",
    "cilium": "talos/cilium.yaml",
    "node_ip": "talos/node-ip-tailnet.yaml",
}
# Talos documents that are not machine config patches: the Image Factory schematic and the
# Tailscale extension's service config (an example with a placeholder key).
TALOS_SCHEMATIC = "talos/schematic.yaml"
TALOS_TAILSCALE = "talos/tailscale-extension.example.yaml"
NOT_MANIFESTS = (
    set(CILIUM_VALUES.values())
    | set(OPERATOR_VALUES.values())
    | set(TALOS_PATCHES.values())
    | {TALOS_SCHEMATIC, TALOS_TAILSCALE}
)
TAILNET_POLICY = "tailscale/tailnet-policy.example.hujson"

# Tags of the nodes on the tailnet. Home: the Talos Tailscale extension's --advertise-tags
# (checked below). Cloud: the Spot nodes' default tag, stack config nodeTailscaleTags in
# infra/azure/src/config.ts.
HOME_NODE_TAG = "tag:home"
CLOUD_NODE_TAG = "tag:burst"
# What Cilium Cluster Mesh needs between any two nodes (Cilium's system requirements, firewall
# rules): VXLAN, WireGuard (encryption.type wireguard), health checks, ICMP; and the agents'
# connection to the other cluster's clustermesh-apiserver.
MESH_NODE_PORTS = {("udp", 8472), ("udp", 51871), ("tcp", 4240)}
CLUSTERMESH_APISERVER_PORT = ("tcp", 2379)

# Address ranges the pod CIDRs must stay clear of.
AZURE_VNET = ipaddress.ip_network("10.1.0.0/16")
TAILNET = ipaddress.ip_network("100.64.0.0/10")

# CRD schemas carry Go (RE2) patterns; the few that Python's `re` cannot compile are
# translated to an equivalent: \PC ("not a Unicode control/format/unassigned character")
# becomes "no C0/C1 control character", which is what it guards against in a log value.
GO_PATTERNS = {r"^\PC*$": r"^[^\x00-\x1f\x7f-\x9f]*$"}

TIERS = {"critical", "stateful"}
PLACEHOLDER = re.compile(r"^REPLACE_WITH_[A-Z0-9_]+$")
REAL_LOOKING_SECRET = re.compile(r"tskey-[a-z]+-[A-Za-z0-9]{8,}|-----BEGIN [A-Z ]*PRIVATE KEY-----")


class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, name: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
            self.failed += 1
            print(f"not ok - {name}: {type(e).__name__}: {e}")
        else:
            self.passed += 1
            print(f"ok - {name}")


def rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


def yaml_files() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.yaml") if "schemas" not in p.parts)


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def load_one(relpath: str) -> dict[str, Any]:
    docs = load_docs(ROOT / relpath)
    assert len(docs) == 1, f"{relpath}: expected one YAML document, found {len(docs)}"
    return docs[0]


def get(d: dict[str, Any], dotted: str) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        assert isinstance(cur, dict) and part in cur, f"missing {dotted}"
        cur = cur[part]
    return cur


def get_opt(d: dict[str, Any], dotted: str, default: Any = None) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def talos_forwards_kube_dns() -> bool:
    """Talos >= 1.8 forwards kube-dns to the host DNS unless a patch switches it off."""
    for p in TALOS_PATCHES.values():
        if get_opt(load_one(p), "machine.features.hostDNS.forwardKubeDNSToHost") is False:
            return False
    return True


def manifest_files() -> list[Path]:
    return [p for p in yaml_files() if rel(p) not in NOT_MANIFESTS]


def all_manifests() -> list[tuple[str, dict[str, Any]]]:
    return [(rel(p), d) for p in manifest_files() for d in load_docs(p)]


def translate_patterns(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (GO_PATTERNS.get(v, v) if k == "pattern" and isinstance(v, str) else translate_patterns(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [translate_patterns(x) for x in node]
    return node


def check_manifest_kinds(r: Report) -> None:
    schemas: dict[tuple[str, str], Any] = {}
    for key, fname in CRD_SCHEMAS.items():
        schemas[key] = translate_patterns(json.loads((ROOT / "schemas" / fname).read_text()))
    for path, doc in all_manifests():
        api, kind = doc.get("apiVersion"), doc.get("kind")
        name = f"{path}: {kind} {doc.get('metadata', {}).get('name')}"
        if (api, kind) in schemas:
            schema = schemas[(api, kind)]

            def crd(doc: dict[str, Any] = doc, schema: Any = schema) -> None:
                cls = jsonschema.validators.validator_for(schema)
                cls.check_schema(schema)
                errors = sorted(cls(schema).iter_errors(doc), key=lambda e: list(e.path))
                assert not errors, "; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5])

            r.check(f"{name} matches its CRD schema", crd)
        else:

            def builtin(doc: dict[str, Any] = doc) -> None:
                try:
                    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
                except kubernetes_validate.SchemaNotFoundError as e:
                    raise AssertionError(f"no schema for {api} {kind}: add its CRD schema to schemas/") from e

            r.check(f"{name} is a Kubernetes {K8S_VERSION} kind (strict)", builtin)


def check_cilium(r: Report) -> None:
    values = {side: load_one(p) for side, p in CILIUM_VALUES.items()}
    for side, v in values.items():
        f = CILIUM_VALUES[side]

        def mesh(v: dict[str, Any] = v, side: str = side) -> None:
            assert get(v, "cluster.name") == side, "cluster.name"
            cid = get(v, "cluster.id")
            assert isinstance(cid, int) and 1 <= cid <= 255, f"cluster.id {cid} must be 1..255"
            assert get(v, "clustermesh.useAPIServer") is True, "clustermesh.useAPIServer"
            svc = get(v, "clustermesh.apiserver.service")
            assert svc.get("type") == "LoadBalancer" and svc.get("loadBalancerClass") == "tailscale", \
                "the mesh API server is exposed on the tailnet only (LoadBalancer, class tailscale)"

        def encryption(v: dict[str, Any] = v) -> None:
            assert get(v, "encryption.enabled") is True
            assert get(v, "encryption.type") == "wireguard"
            assert get(v, "encryption.nodeEncryption") is False

        def datapath(v: dict[str, Any] = v) -> None:
            assert get(v, "bpf.masquerade") is True, "bpf.masquerade"
            assert get(v, "kubeProxyReplacement") is True, "kubeProxyReplacement (needed by bpf masquerade here)"
            assert get(v, "ipam.mode") == "cluster-pool"

        r.check(f"{f}: cluster name/id and mesh API server", mesh)
        r.check(f"{f}: WireGuard encryption, nodeEncryption false", encryption)
        r.check(f"{f}: bpf masquerade with kube-proxy replacement", datapath)

    def talos_dns() -> None:
        # The home cluster runs Talos (talos/*.yaml). With kube-dns forwarded to the host
        # (Talos >= 1.8 default), kubeProxyReplacement and bpf.masquerade, Cilium's eBPF host
        # routing breaks pod DNS: Cilium's Talos guide requires bpf.hostLegacyRouting=true
        # (cilium/cilium#36852, siderolabs/talos#10002).
        v = values["home"]
        needs = talos_forwards_kube_dns() and v.get("kubeProxyReplacement") is True and get_opt(v, "bpf.masquerade") is True
        if needs:
            assert get_opt(v, "bpf.hostLegacyRouting") is True, (
                "bpf.hostLegacyRouting must be true: Talos forwards kube-dns to the host DNS, and with "
                "kubeProxyReplacement + bpf.masquerade pods lose DNS otherwise"
            )

    r.check(f"{CILIUM_VALUES['home']}: legacy host routing for Talos' host DNS forwarding", talos_dns)

    def distinct() -> None:
        ids = [get(v, "cluster.id") for v in values.values()]
        assert len(set(ids)) == len(ids), f"cluster ids must differ: {ids}"
        nets = []
        for side, v in values.items():
            for c in get(v, "ipam.operator.clusterPoolIPv4PodCIDRList"):
                nets.append((side, ipaddress.ip_network(c)))
        for i, (sa, a) in enumerate(nets):
            assert not a.overlaps(AZURE_VNET), f"{sa} pod CIDR {a} overlaps the Azure VNet {AZURE_VNET}"
            assert not a.overlaps(TAILNET), f"{sa} pod CIDR {a} overlaps the tailnet {TAILNET}"
            for sb, b in nets[i + 1:]:
                assert not a.overlaps(b), f"pod CIDRs overlap: {sa} {a} / {sb} {b}"

    r.check("cilium: cluster ids differ; pod CIDRs disjoint (each other, Azure VNet, tailnet)", distinct)


def check_talos(r: Report) -> None:
    def kubespan() -> None:
        assert get(load_one(TALOS_PATCHES["kubespan"]), "machine.network.kubespan.enabled") is False

    def cni() -> None:
        p = load_one(TALOS_PATCHES["cilium"])
        assert get(p, "cluster.network.cni.name") == "none"
        assert get(p, "cluster.proxy.disabled") is True

    def node_ip() -> None:
        subnets = get(load_one(TALOS_PATCHES["node_ip"]), "machine.kubelet.nodeIP.validSubnets")
        assert subnets, "validSubnets must not be empty"
        for c in subnets:
            assert ipaddress.ip_network(c).subnet_of(TAILNET), f"{c}: the InternalIP must be the node's tailnet address ({TAILNET})"

    def schematic() -> None:
        exts = get(load_one(TALOS_SCHEMATIC), "customization.systemExtensions.officialExtensions")
        assert "siderolabs/tailscale" in exts, "the Tailscale system extension"

    def tailscale_extension() -> None:
        d = load_one(TALOS_TAILSCALE)
        assert (d.get("apiVersion"), d.get("kind"), d.get("name")) == ("v1alpha1", "ExtensionServiceConfig", "tailscale")
        env = dict(e.split("=", 1) for e in d.get("environment", []))
        assert PLACEHOLDER.match(env.get("TS_AUTHKEY", "")), "TS_AUTHKEY must be a REPLACE_WITH_... placeholder"
        args = env.get("TS_EXTRA_ARGS", "").split()
        assert f"--advertise-tags={HOME_NODE_TAG}" in args, f"home nodes advertise {HOME_NODE_TAG}"
        assert "--accept-routes" not in args, "home nodes must not take the route to their own LAN from the subnet router"
        assert env.get("TS_ACCEPT_DNS") == "false", "Talos keeps its own resolvers (TS_ACCEPT_DNS=false)"
        assert env.get("TS_USERSPACE", "false") == "false", "kernel networking: the node needs a tailscale0 interface with its address"

    r.check(f"{TALOS_PATCHES['kubespan']}: Talos KubeSpan (its WireGuard) disabled", kubespan)
    r.check(f"{TALOS_PATCHES['cilium']}: no built-in CNI, no kube-proxy", cni)
    r.check(f"{TALOS_PATCHES['node_ip']}: InternalIP is the node's tailnet address", node_ip)
    r.check(f"{TALOS_SCHEMATIC}: Tailscale system extension", schematic)
    r.check(f"{TALOS_TAILSCALE}: joins the tailnet as {HOME_NODE_TAG}, placeholder key only", tailscale_extension)


def load_hujson(relpath: str) -> Any:
    """HuJSON as written here: JSON plus full-line // comments."""
    text = "\n".join(line for line in (ROOT / relpath).read_text().splitlines() if not line.lstrip().startswith("//"))
    return json.loads(text)


def policy_allows(policy: dict[str, Any], src: str, dst: str, proto: str, port: int | None) -> bool:
    """Whether an ACL entry accepts src → dst on proto/port (tags only, as the example uses them)."""
    for acl in policy.get("acls", []):
        if acl.get("action") != "accept" or src not in acl.get("src", []):
            continue
        if acl.get("proto", proto) != proto:
            continue
        for d in acl.get("dst", []):
            host, _, ports = d.rpartition(":")
            if host != dst:
                continue
            if ports == "*" or port is None or str(port) in ports.split(","):
                return True
    return False


def check_tailnet(r: Report) -> None:
    policy = load_hujson(TAILNET_POLICY)

    def mesh_ports() -> None:
        nodes = [HOME_NODE_TAG, CLOUD_NODE_TAG]
        for a in nodes:
            for b in nodes:
                for proto, port in sorted(MESH_NODE_PORTS):
                    assert policy_allows(policy, a, b, proto, port), f"{a} → {b} {proto}/{port}"
                assert policy_allows(policy, a, b, "icmp", None), f"{a} → {b} icmp (Cilium health)"

    def apiserver() -> None:
        proxy_tags = {get(v, "proxyConfig.defaultTags") for v in map(load_one, OPERATOR_VALUES.values())}
        proto, port = CLUSTERMESH_APISERVER_PORT
        for tag in proxy_tags:
            for node in (HOME_NODE_TAG, CLOUD_NODE_TAG):
                assert policy_allows(policy, node, tag, proto, port), f"{node} → {tag} {proto}/{port} (clustermesh-apiserver)"

    def tags_owned() -> None:
        owners = policy.get("tagOwners", {})
        used = {HOME_NODE_TAG, CLOUD_NODE_TAG}
        for v in map(load_one, OPERATOR_VALUES.values()):
            used |= set(get(v, "operatorConfig.defaultTags")) | {get(v, "proxyConfig.defaultTags")}
        for _, d in all_manifests():
            if d.get("kind") == "Connector":
                used |= set(d["spec"].get("tags", []))
        missing = sorted(used - set(owners))
        assert not missing, f"tags without an owner in the tailnet policy: {missing}"
        for v in map(load_one, OPERATOR_VALUES.values()):
            op = get(v, "operatorConfig.defaultTags")
            assert set(op) & set(owners.get(get(v, "proxyConfig.defaultTags"), [])), "the operator's tag must own its proxies' tag"

    r.check(f"{TAILNET_POLICY}: mesh ports between every pair of node tags", mesh_ports)
    r.check(f"{TAILNET_POLICY}: nodes reach the clustermesh-apiserver proxies", apiserver)
    def routes_approved() -> None:
        approvers = get_opt(policy, "autoApprovers.routes", {}) or {}
        for path, d in all_manifests():
            if d.get("kind") != "Connector":
                continue
            for route in get_opt(d, "spec.subnetRouter.advertiseRoutes", []) or []:
                assert set(d["spec"].get("tags", [])) & set(approvers.get(route, [])), f"{path}: route {route} is not auto-approved for its tags"

    r.check(f"{TAILNET_POLICY}: every tag the cluster files use has an owner", tags_owned)
    r.check(f"{TAILNET_POLICY}: the subnet router's routes are auto-approved", routes_approved)


def check_tailscale(r: Report) -> None:
    values = {side: load_one(p) for side, p in OPERATOR_VALUES.items()}

    def no_inline_oauth() -> None:
        for side, v in values.items():
            assert not v.get("oauth"), f"{side}: OAuth credentials belong in the operator-oauth Secret, not values"

    def hostnames() -> None:
        names = [get(v, "operatorConfig.hostname") for v in values.values()]
        assert len(set(names)) == len(names), f"operator hostnames must differ: {names}"

    def proxy_class_exists() -> None:
        classes = {d["metadata"]["name"] for _, d in all_manifests() if d.get("kind") == "ProxyClass"}
        wanted = {get(v, "proxyConfig.defaultProxyClass") for v in values.values()}
        for v in map(load_one, CILIUM_VALUES.values()):
            wanted.add(get(v, "clustermesh.apiserver.service.annotations")["tailscale.com/proxy-class"])
        assert wanted <= classes, f"ProxyClass missing: {sorted(wanted - classes)}"

    r.check("tailscale operator values: no OAuth secrets inline", no_inline_oauth)
    r.check("tailscale operator values: distinct operator hostnames", hostnames)
    r.check("tailscale: every ProxyClass referenced exists", proxy_class_exists)


def check_secrets(r: Report) -> None:
    def placeholders_only() -> None:
        for path, d in all_manifests():
            if d.get("kind") != "Secret" or d.get("type") == "kubernetes.io/service-account-token":
                continue
            assert "data" not in d, f"{path}: Secret with data (use stringData placeholders)"
            for k, v in (d.get("stringData") or {}).items():
                assert PLACEHOLDER.match(str(v)), f"{path}: {k} is not a REPLACE_WITH_... placeholder"

    def nothing_real() -> None:
        for p in yaml_files():
            m = REAL_LOOKING_SECRET.search(p.read_text())
            assert m is None, f"{rel(p)} contains something that looks like a real secret: {m.group(0)[:12]}..."

    r.check("Secrets hold placeholders only", placeholders_only)
    r.check("no real-looking keys in any cluster file", nothing_real)


def check_migration(r: Report) -> None:
    workloads = [(p, d) for p, d in all_manifests() if d.get("kind") in ("Deployment", "StatefulSet")]

    def labels() -> None:
        for path, d in workloads:
            meta = d["metadata"]
            tier = meta.get("labels", {}).get("hybrid-burst.io/tier")
            if tier is None:
                continue
            assert tier in TIERS, f"{path}: tier {tier!r} not in {sorted(TIERS)}"
            n = meta.get("annotations", {}).get("hybrid-burst.io/cloud-replicas")
            assert isinstance(n, str) and re.fullmatch(r"[0-9]+", n), f"{path}: cloud-replicas must be a quoted integer"
            assert d["spec"].get("replicas") == 0, f"{path}: the cloud copy waits at 0 replicas"

    def critical_example() -> None:
        assert any(
            d["kind"] == "Deployment"
            and d["metadata"].get("labels", {}).get("hybrid-burst.io/tier") == "critical"
            and d["metadata"].get("annotations", {}).get("hybrid-burst.io/cloud-replicas") == "2"
            for _, d in workloads
        ), "an example critical Deployment with cloud-replicas \"2\""

    def global_services() -> None:
        pods = [d["spec"]["template"]["metadata"]["labels"] for _, d in workloads]
        found = 0
        for path, d in all_manifests():
            ann = d.get("metadata", {}).get("annotations", {}) or {}
            if d.get("kind") != "Service" or "service.cilium.io/global" not in ann:
                continue
            found += 1
            assert ann["service.cilium.io/global"] == "true", f"{path}: global must be the string \"true\""
            assert ann.get("service.cilium.io/affinity") in ("local", "remote", "none"), f"{path}: affinity"
            sel = d["spec"]["selector"]
            assert any(sel.items() <= p.items() for p in pods), f"{path}: selector {sel} matches no example workload"
        assert found, "an example global Service"

    def policy_clusters() -> None:
        names = {get(v, "cluster.name") for v in map(load_one, CILIUM_VALUES.values())}
        cnps = [d for _, d in all_manifests() if d.get("kind") == "CiliumNetworkPolicy"]
        assert any(d["metadata"]["name"] == "burst-apps" for d in cnps), "the burst cluster's CiliumNetworkPolicy"
        text = json.dumps(cnps)
        used = set(re.findall(r'"io\.cilium\.k8s\.policy\.cluster": "([^"]+)"', text))
        assert used and used <= names, f"policy names clusters {sorted(used)}, values define {sorted(names)}"

    def rbac_narrow() -> None:
        for path, d in all_manifests():
            if d.get("kind") not in ("ClusterRole", "Role"):
                continue
            for rule in d.get("rules", []):
                for field in ("verbs", "resources", "apiGroups", "nonResourceURLs"):
                    assert "*" not in rule.get(field, []), f"{path}: wildcard in {field}"
                assert "secrets" not in rule.get("resources", []), f"{path}: no access to secrets"
                assert not {"delete", "deletecollection", "create"} & set(rule.get("verbs", [])), f"{path}: read/scale only"

    r.check("migration labels/annotations on workloads", labels)
    r.check("example critical Deployment (cloud-replicas \"2\")", critical_example)
    r.check("global Services: annotations and selectors", global_services)
    r.check("CiliumNetworkPolicy for the burst cluster names real clusters", policy_clusters)
    r.check("RBAC for probe and migrator: no wildcards, no secrets, no create/delete", rbac_narrow)


def main(argv: list[str]) -> int:
    if argv[1:] == ["--list-manifests"]:
        for p in manifest_files():
            print(p)
        return 0
    r = Report()
    check_manifest_kinds(r)
    check_cilium(r)
    check_talos(r)
    check_tailnet(r)
    check_tailscale(r)
    check_secrets(r)
    check_migration(r)
    print(f"cluster: {r.passed} passed, {r.failed} failed")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Properties of injection over generated pod templates: removal gives back the input exactly,
injecting twice changes nothing, and the shape is a sidecar's."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshctl.inject import sidecar
from meshctl.inject.settings import make_config

CFG = make_config({"hub": "docker.io/istio", "tag": "1.24.0"})
CFG_CLASSIC = make_config({"hub": "docker.io/istio", "tag": "1.24.0", "global": {"nativeSidecar": False}})

names = st.sampled_from(["app", "web", "worker", "istio-proxy", "istio-init", "cache"])
port_names = st.sampled_from(["http", "grpc", "metrics"])
ports = st.lists(st.builds(lambda n, p: {"name": n, "containerPort": p}, port_names, st.integers(1, 65535)),
                 max_size=2, unique_by=lambda p: p["name"])
port_ref = st.one_of(st.integers(1, 65535), port_names)
probe = st.one_of(
    st.builds(lambda p, path: {"httpGet": {"path": path, "port": p}}, port_ref, st.sampled_from(["/", "/ready"])),
    st.builds(lambda p: {"tcpSocket": {"port": p}, "periodSeconds": 5}, port_ref),
    st.builds(lambda p: {"grpc": {"port": p}}, st.integers(1, 65535)),
    st.builds(lambda: {"exec": {"command": ["true"]}}),
)


def _container(name, image, prts, ready, live, env):
    c = {"name": name, "image": image}
    if prts:
        c["ports"] = prts
    if ready:
        c["readinessProbe"] = ready
    if live:
        c["livenessProbe"] = live
    if env:
        c["env"] = [{"name": "X", "value": env}]
    return c


init_names = st.sampled_from(["setup", "migrate", "istio-init"])  # a user's istio-proxy is a regular container
container = st.builds(_container, names, st.sampled_from(["example/a:1", "auto"]), ports,
                      st.none() | probe, st.none() | probe, st.none() | st.text(max_size=5))
annotations = st.dictionaries(
    st.sampled_from(["prometheus.io/scrape", "prometheus.io/port", "prometheus.io/path", "team",
                     "sidecar.istio.io/proxyCPU", "kubectl.kubernetes.io/default-container",
                     "sidecar.istio.io/nativeSidecar"]),
    st.sampled_from(["true", "false", "9090", "/metrics", "100m", "app"]), max_size=3)
labels = st.dictionaries(st.sampled_from(["app", "version", "security.istio.io/tlsMode", "istio.io/rev"]),
                         st.sampled_from(["web", "v1", "istio", "canary"]), max_size=3)


def _deployment(conts, inits, ann, lbl, volumes):
    meta = {}
    if lbl:
        meta["labels"] = lbl
    if ann:
        meta["annotations"] = ann
    spec = {"containers": conts}
    if inits:
        spec["initContainers"] = inits
    if volumes:
        spec["volumes"] = [{"name": "data", "emptyDir": {}}]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "gen", "namespace": "ns"},
            "spec": {"selector": {"matchLabels": {"app": "gen"}}, "template": {"metadata": meta, "spec": spec}}}


def _valid(ann):
    # keep to annotation values injection accepts; invalid ones are refused (tested elsewhere)
    if ann.get("prometheus.io/port") not in (None, "9090"):
        return False
    if ann.get("sidecar.istio.io/proxyCPU") not in (None, "100m"):
        return False
    return True


deployments = st.builds(
    _deployment,
    st.lists(container, min_size=1, max_size=3, unique_by=lambda c: c["name"]),
    st.lists(st.builds(_container, init_names, st.just("example/i:1"), ports, st.none(), st.none(), st.none()),
             max_size=2, unique_by=lambda c: c["name"]),
    annotations.filter(_valid), labels, st.booleans(),
).filter(lambda d: not ({c["name"] for c in d["spec"]["template"]["spec"]["containers"]}
                        & {c["name"] for c in d["spec"]["template"]["spec"].get("initContainers", [])}))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deployments, st.booleans())
def test_remove_restores_and_injecting_again_changes_nothing(doc, classic):
    cfg = CFG_CLASSIC if classic else CFG
    renderer = sidecar.Renderer()
    once = sidecar.inject_workload(doc, cfg, renderer)
    assert once is not doc
    holder = sidecar.pod_template(once)[0]
    spec = holder["spec"]
    all_names = [c["name"] for c in spec.get("containers", []) + spec.get("initContainers", [])]
    assert all_names.count("istio-proxy") == 1
    assert "sidecar.istio.io/status" in holder["metadata"]["annotations"]
    assert sidecar.inject_workload(once, cfg, sidecar.Renderer()) == once
    assert sidecar.remove_workload(once) == doc

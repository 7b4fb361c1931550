"""Sidecar injection as a pure function: the pod shape Istio's template gives for the same settings."""
from __future__ import annotations

import json

import pytest

from meshctl.errors import InputError
from meshctl.inject import sidecar
from meshctl.inject.settings import make_config

VALUES = {"hub": "docker.io/istio", "tag": "1.24.0", "global": {"imagePullPolicy": "IfNotPresent"}}


def deployment(name="web", annotations=None, labels=None, containers=None, **spec):
    pod_spec = {"containers": containers or [{"name": "app", "image": "example/app:1",
                                              "ports": [{"name": "http", "containerPort": 8080}]}]}
    pod_spec.update(spec)
    meta = {"labels": labels or {"app": name}}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"app": name}}, "template": {"metadata": meta, "spec": pod_spec}}}


def inject(doc, values=None, **kw):
    return sidecar.inject(doc, {**VALUES, **(values or {})}, **kw)


def pod(doc):
    t = doc["spec"]["template"]
    return t["metadata"], t["spec"]


def names(items):
    return [i["name"] for i in items or []]


def container(spec, name):
    return next(c for c in (spec.get("containers") or []) + (spec.get("initContainers") or []) if c["name"] == name)


def env(c):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env") or []}


def test_native_sidecar_is_the_default():
    meta, spec = pod(inject(deployment()))
    assert names(spec["initContainers"]) == ["istio-init", "istio-proxy"]
    assert names(spec["containers"]) == ["app"]
    proxy = container(spec, "istio-proxy")
    assert proxy["restartPolicy"] == "Always"
    assert proxy["image"] == "docker.io/istio/proxyv2:1.24.0"
    assert proxy["ports"] == [{"containerPort": 15090, "protocol": "TCP", "name": "http-envoy-prom"}]
    assert proxy["lifecycle"]["preStop"]["exec"]["command"][-2:] == ["POST", "drain"]
    assert names(spec["volumes"]) == ["workload-socket", "credential-socket", "workload-certs", "istio-envoy",
                                      "istio-data", "istio-podinfo", "istio-token", "istiod-ca-cert", "istio-ca-crl"]
    status = json.loads(meta["annotations"]["sidecar.istio.io/status"])
    assert status == {"initContainers": ["istio-init", "istio-proxy"], "containers": None,
                      "volumes": names(spec["volumes"]), "imagePullSecrets": None, "revision": "default"}
    assert meta["labels"]["security.istio.io/tlsMode"] == "istio"
    assert meta["labels"]["service.istio.io/canonical-name"] == "web"
    assert meta["labels"]["service.istio.io/canonical-revision"] == "latest"
    assert meta["annotations"]["kubectl.kubernetes.io/default-container"] == "app"


def test_classic_sidecar_when_native_is_off():
    _, spec = pod(sidecar.inject(deployment(), VALUES | {"global": {"nativeSidecar": False}}))
    assert names(spec["initContainers"]) == ["istio-init"]
    assert names(spec["containers"]) == ["app", "istio-proxy"]
    proxy = container(spec, "istio-proxy")
    assert "restartPolicy" not in proxy and "lifecycle" not in proxy


def test_native_sidecar_annotation_opts_out():
    _, spec = pod(inject(deployment(annotations={"sidecar.istio.io/nativeSidecar": "false"})))
    assert names(spec["containers"]) == ["app", "istio-proxy"]


def test_iptables_arguments_and_privileges_of_istio_init():
    _, spec = pod(inject(deployment()))
    init = container(spec, "istio-init")
    assert init["args"] == ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT",
                            "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020",
                            "--log_output_level=default:info"]
    assert init["securityContext"]["capabilities"] == {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}
    assert init["securityContext"]["runAsUser"] == 0


@pytest.mark.parametrize("values", [{"components": {"cni": {"enabled": True}}}, {"pilot": {"cni": {"enabled": True}}}])
def test_cni_replaces_istio_init_with_a_validation_container(values):
    meta, spec = pod(inject(deployment(), values))
    assert names(spec["initContainers"]) == ["istio-validation", "istio-proxy"]
    validation = container(spec, "istio-validation")
    assert validation["args"][-2:] == ["--run-validation", "--skip-rule-apply"]
    assert validation["securityContext"]["runAsUser"] == 1337
    assert "add" not in validation["securityContext"]["capabilities"]
    assert meta["annotations"]["sidecar.istio.io/interceptionMode"] == "REDIRECT"
    assert meta["annotations"]["traffic.sidecar.istio.io/excludeInboundPorts"] == "15020"


def test_probes_are_rewritten_to_the_agent_and_kept_in_the_environment():
    app = {"name": "app", "image": "a", "ports": [{"name": "http", "containerPort": 8080}],
           "readinessProbe": {"httpGet": {"path": "/ready", "port": "http", "scheme": "HTTPS"}, "timeoutSeconds": 2},
           "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 5},
           "startupProbe": {"grpc": {"port": 9000}}}
    _, spec = pod(inject(deployment(containers=[app])))
    got = container(spec, "app")
    assert got["readinessProbe"] == {"httpGet": {"path": "/app-health/app/readyz", "port": 15020, "scheme": "HTTP"},
                                     "timeoutSeconds": 2}
    assert got["livenessProbe"] == {"httpGet": {"path": "/app-health/app/livez", "port": 15020}, "periodSeconds": 5}
    assert got["startupProbe"] == {"httpGet": {"path": "/app-health/app/startupz", "port": 15020}}
    probers = json.loads(env(container(spec, "istio-proxy"))["ISTIO_KUBE_APP_PROBERS"])
    assert probers == {
        "/app-health/app/readyz": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTPS"}, "timeoutSeconds": 2},
        "/app-health/app/livez": {"tcpSocket": {"port": 8080}},
        "/app-health/app/startupz": {"grpc": {"port": 9000}},
    }


def test_probe_rewrite_can_be_turned_off_per_pod():
    app = {"name": "app", "image": "a", "readinessProbe": {"httpGet": {"path": "/r", "port": 80}}}
    _, spec = pod(inject(deployment(containers=[app], annotations={"sidecar.istio.io/rewriteAppHTTPProbers": "false"})))
    assert container(spec, "app")["readinessProbe"] == app["readinessProbe"]
    assert "ISTIO_KUBE_APP_PROBERS" not in env(container(spec, "istio-proxy"))


def test_prometheus_annotations_point_at_the_agent_and_keep_the_original():
    meta, spec = pod(inject(deployment(annotations={"prometheus.io/scrape": "true", "prometheus.io/port": "9090",
                                                    "prometheus.io/path": "/metrics"})))
    assert {k: v for k, v in meta["annotations"].items() if k.startswith("prometheus.io/")} == {
        "prometheus.io/port": "15020", "prometheus.io/path": "/stats/prometheus", "prometheus.io/scrape": "true"}
    assert json.loads(env(container(spec, "istio-proxy"))["ISTIO_PROMETHEUS_ANNOTATIONS"]) == {
        "scrape": "true", "path": "/metrics", "port": "9090"}


def test_resource_log_and_image_annotations():
    ann = {"sidecar.istio.io/proxyCPU": "200m", "sidecar.istio.io/proxyMemory": "256Mi",
           "sidecar.istio.io/proxyCPULimit": "1", "sidecar.istio.io/proxyMemoryLimit": "1Gi",
           "sidecar.istio.io/proxyImage": "registry.example.com/proxy:dev", "sidecar.istio.io/logLevel": "debug"}
    _, spec = pod(inject(deployment(annotations=ann)))
    proxy = container(spec, "istio-proxy")
    assert proxy["resources"] == {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    assert container(spec, "istio-init")["resources"] == proxy["resources"]
    assert proxy["image"] == "registry.example.com/proxy:dev"
    assert "--proxyLogLevel=debug" in proxy["args"]


@pytest.mark.parametrize("proxy_image, expected", [
    ("registry.example.com/proxy:dev", "registry.example.com/proxy:dev"),
    ("distroless-proxy", "docker.io/istio/distroless-proxy:1.24.0"),
])
def test_init_container_runs_the_proxy_image_of_the_values(proxy_image, expected):
    # global.proxy_init.image keeps its default (a bare name), so istio-init runs the proxy image
    _, spec = pod(inject(deployment(), {"global": {"proxy": {"image": proxy_image}}}))
    assert container(spec, "istio-proxy")["image"] == expected
    assert container(spec, "istio-init")["image"] == expected


def test_init_image_with_a_registry_path_is_used_as_given():
    values = {"global": {"proxy": {"image": "registry.example.com/proxy:dev"},
                         "proxy_init": {"image": "registry.example.com/init:7"}}}
    _, spec = pod(inject(deployment(), values))
    assert container(spec, "istio-init")["image"] == "registry.example.com/init:7"


def test_traffic_annotations_reach_the_iptables_arguments():
    ann = {"traffic.sidecar.istio.io/includeOutboundIPRanges": "10.0.0.0/8",
           "traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.1.0.0/16,10.2.0.0/16",
           "traffic.sidecar.istio.io/includeInboundPorts": "8080",
           "traffic.sidecar.istio.io/excludeInboundPorts": "9000",
           "traffic.sidecar.istio.io/excludeOutboundPorts": "5432"}
    _, spec = pod(inject(deployment(annotations=ann)))
    args = container(spec, "istio-init")["args"]
    pairs = dict(zip(args[1::2], args[2::2]))
    assert pairs["-i"] == "10.0.0.0/8" and pairs["-x"] == "10.1.0.0/16,10.2.0.0/16"
    assert pairs["-b"] == "8080" and pairs["-d"] == "15090,15021,9000,15020" and pairs["-o"] == "5432"


def test_stats_inclusion_annotations_reach_the_agent_through_pod_info():
    ann = {"sidecar.istio.io/statsInclusionPrefixes": "cluster.outbound", "sidecar.istio.io/statsInclusionRegexps": ".*"}
    meta, spec = pod(inject(deployment(annotations=ann)))
    assert all(meta["annotations"][k] == v for k, v in ann.items())
    podinfo = next(v for v in spec["volumes"] if v["name"] == "istio-podinfo")
    assert {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}} in podinfo["downwardAPI"]["items"]


def test_proxy_config_annotation_and_hold_application():
    ann = {"proxy.istio.io/config": '{"holdApplicationUntilProxyStarts": true, "concurrency": 4}'}
    _, spec = pod(sidecar.inject(deployment(annotations=ann), VALUES | {"global": {"nativeSidecar": False}}))
    assert names(spec["containers"]) == ["istio-proxy", "app"]
    proxy = container(spec, "istio-proxy")
    assert proxy["lifecycle"] == {"postStart": {"exec": {"command": ["pilot-agent", "wait"]}}}
    assert json.loads(env(proxy)["PROXY_CONFIG"]) == {"holdApplicationUntilProxyStarts": True, "concurrency": 4}


def test_revision_from_flag_and_from_the_pod_label():
    meta, spec = pod(inject(deployment(), revision="canary"))
    assert env(container(spec, "istio-proxy"))["CA_ADDR"] == "istiod-canary.istio-system.svc:15012"
    assert meta["annotations"]["istio.io/rev"] == "canary"
    meta, spec = pod(inject(deployment(labels={"app": "web", "istio.io/rev": "blue"})))
    assert env(container(spec, "istio-proxy"))["CA_ADDR"] == "istiod-blue.istio-system.svc:15012"
    assert json.loads(meta["annotations"]["sidecar.istio.io/status"])["revision"] == "blue"


def test_opt_out_host_network_and_system_namespaces_are_left_alone():
    warnings = []
    for doc in (deployment(annotations={"sidecar.istio.io/inject": "false"}),
                deployment(labels={"app": "x", "sidecar.istio.io/inject": "false"}),
                deployment(hostNetwork=True)):
        assert inject(doc, warn=warnings.append) is doc
    system = deployment()
    system["metadata"]["namespace"] = "kube-system"
    assert inject(system) is system
    assert len(warnings) == 3


@pytest.mark.parametrize("annotation,value", [
    ("traffic.sidecar.istio.io/includeOutboundIPRanges", "10.0.0.0/33"),
    ("traffic.sidecar.istio.io/excludeOutboundIPRanges", "nope"),
    ("traffic.sidecar.istio.io/includeInboundPorts", "80,http"),
    ("traffic.sidecar.istio.io/excludeInboundPorts", "70000"),
    ("traffic.sidecar.istio.io/excludeOutboundPorts", "1-2"),
    ("sidecar.istio.io/proxyCPU", "lots"),
    ("proxy.istio.io/config", "[1, 2]"),
])
def test_invalid_annotations_are_refused_naming_annotation_and_value(annotation, value):
    with pytest.raises(InputError) as err:
        inject(deployment(annotations={annotation: value}))
    assert annotation in err.value.message and value in err.value.message


def test_injection_is_idempotent_and_removal_exact():
    app = {"name": "app", "image": "a", "ports": [{"name": "http", "containerPort": 80}],
           "readinessProbe": {"httpGet": {"path": "/r", "port": "http"}}}
    doc = deployment(containers=[app], annotations={"prometheus.io/port": "9090", "prometheus.io/scrape": "true"})
    once = inject(doc)
    assert inject(once) == once
    assert sidecar.remove_workload(once) == doc


def test_user_declared_proxy_container_overrides_the_template():
    proxy = {"name": "istio-proxy", "image": "auto", "resources": {"limits": {"cpu": "3"}}}
    meta, spec = pod(inject(deployment(containers=[{"name": "app", "image": "a"}, proxy])))
    got = container(spec, "istio-proxy")
    assert got["image"] == "docker.io/istio/proxyv2:1.24.0"
    assert got["resources"]["limits"] == {"cpu": "3", "memory": "1024Mi"}
    assert names(spec["initContainers"]) == ["istio-init", "istio-proxy"]
    assert json.loads(meta["annotations"]["proxy.istio.io/overrides"])["initContainers"][0]["name"] == "istio-proxy"


def test_every_workload_kind_and_lists():
    pod_spec = {"containers": [{"name": "app", "image": "a"}]}
    template = {"metadata": {"labels": {"app": "x"}}, "spec": pod_spec}
    docs = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": pod_spec},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
         "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}},
    ] + [{"apiVersion": "v1", "kind": k, "metadata": {"name": k.lower()}, "spec": {"template": template}}
         for k in ("StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job", "DeploymentConfig")]
    out = sidecar.inject({"apiVersion": "v1", "kind": "List", "items": docs}, VALUES)
    for item in out["items"]:
        holder = sidecar.pod_template(item)[0]
        assert "sidecar.istio.io/status" in holder["metadata"]["annotations"], item["kind"]
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
    assert sidecar.inject(svc, VALUES) is svc


def test_unknown_template_is_an_input_error():
    with pytest.raises(InputError, match="template 'nope' not found"):
        inject(deployment(annotations={"inject.istio.io/templates": "nope"}))


def test_config_defaults_work_without_values():
    cfg = make_config({})
    assert cfg.hub == "docker.io/istio" and cfg.native_sidecar and not cfg.cni and cfg.status_port == 15020


def test_network_from_values_or_the_pod_label_goes_last_in_the_proxy_environment():
    meta, spec = pod(inject(deployment(), {"global": {"network": "net1"}}))
    proxy = container(spec, "istio-proxy")
    assert proxy["env"][-1] == {"name": "ISTIO_META_NETWORK", "value": "net1"}
    assert meta["labels"]["topology.istio.io/network"] == "net1"
    meta, spec = pod(inject(deployment(labels={"app": "web", "topology.istio.io/network": "net2"})))
    assert env(container(spec, "istio-proxy"))["ISTIO_META_NETWORK"] == "net2"


def test_tproxy_interception_runs_the_proxy_as_root_with_net_admin():
    _, spec = pod(sidecar.inject(deployment(), VALUES, mesh_config={"defaultConfig": {"interceptionMode": "TPROXY"}}))
    proxy = container(spec, "istio-proxy")
    assert proxy["securityContext"]["runAsUser"] == 0
    assert proxy["securityContext"]["capabilities"]["add"] == ["NET_ADMIN"]
    assert "TPROXY" in container(spec, "istio-init")["args"]


@pytest.mark.parametrize("template, message", [
    ({"spec": {"containers": {"name": "app"}}}, "spec.containers must be a list, not a map"),
    ({"spec": {"containers": ["app"]}}, "spec.containers[0] must be a map, not a string"),
    ({"spec": {"containers": [{"name": "app"}], "volumes": "data"}}, "spec.volumes must be a list, not a string"),
    ({"metadata": {"annotations": ["a"]}, "spec": {"containers": [{"name": "app"}]}},
     "metadata.annotations must be a map, not a list"),
])
def test_malformed_pod_templates_are_input_errors_naming_the_field(template, message):
    doc = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"template": template}}
    with pytest.raises(InputError) as e:
        inject(doc)
    assert message in str(e.value) and "Deployment web" in str(e.value)

"""Golden output of `meshctl inject` per workload kind, and strict Kubernetes schema validation.

Settings are pinned here (not read from the profiles) so the goldens change only when injection
does. Update with `pytest --update-golden` and review the diff.
"""
from __future__ import annotations

import pytest
import yaml

from meshctl.inject import sidecar, stream
from meshctl.inject.settings import make_config

VALUES = {
    "hub": "docker.io/istio", "tag": "1.24.0",
    "global": {"imagePullPolicy": "IfNotPresent", "nativeSidecar": True},
    "meshConfig": {"trustDomain": "cluster.local", "enablePrometheusMerge": True},
}

POD_SPEC = """\
      serviceAccountName: reviews
      containers:
      - name: reviews
        image: docker.io/istio/examples-bookinfo-reviews-v1:1.20.2
        ports:
        - name: http
          containerPort: 9080
        readinessProbe:
          httpGet:
            path: /health
            port: http
        livenessProbe:
          tcpSocket:
            port: 9080
"""
TEMPLATE = """\
    metadata:
      labels:
        app: reviews
        version: v1
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "9080"
    spec:
""" + POD_SPEC


def _templated(kind: str, api: str, extra: str = "") -> str:
    return (f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: reviews-v1\n  namespace: bookinfo\n"
            f"spec:\n{extra}  template:\n" + TEMPLATE)


INPUTS = {
    "deployment": _templated("Deployment", "apps/v1", "  replicas: 2\n  selector:\n    matchLabels:\n      app: reviews\n"),
    "statefulset": _templated("StatefulSet", "apps/v1",
                              "  serviceName: reviews\n  selector:\n    matchLabels:\n      app: reviews\n"),
    "daemonset": _templated("DaemonSet", "apps/v1", "  selector:\n    matchLabels:\n      app: reviews\n"),
    "replicaset": _templated("ReplicaSet", "apps/v1", "  selector:\n    matchLabels:\n      app: reviews\n"),
    "replicationcontroller": _templated("ReplicationController", "v1", "  selector:\n    app: reviews\n"),
    "job": _templated("Job", "batch/v1").replace("    spec:\n", "    spec:\n      restartPolicy: Never\n", 1),
    "cronjob": ("apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: reviews-v1\n  namespace: bookinfo\n"
                "spec:\n  schedule: '*/5 * * * *'\n  jobTemplate:\n    spec:\n      template:\n"
                + "\n".join("    " + line if line else line for line in TEMPLATE.splitlines())
                .replace("    spec:\n", "    spec:\n          restartPolicy: Never\n", 1) + "\n"),
    "pod": ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: reviews-v1\n  namespace: bookinfo\n"
            "  labels:\n    app: reviews\n    version: v1\nspec:\n"
            + "\n".join(line[4:] for line in POD_SPEC.splitlines()) + "\n"),
    "deploymentconfig": _templated("DeploymentConfig", "apps.openshift.io/v1", "  replicas: 1\n"),
}
# Kubernetes kinds validated against the Kubernetes schema (DeploymentConfig is OpenShift's)
K8S_KINDS = {k for k in INPUTS if k != "deploymentconfig"}


@pytest.fixture(scope="module")
def cfg():
    return make_config(VALUES)


def _inject(text: str, cfg) -> str:
    renderer = sidecar.Renderer()
    return stream.process([("input.yaml", text)], lambda d, w: sidecar.inject_workload(d, cfg, renderer),
                          frozen=renderer.frozen)


@pytest.mark.parametrize("kind", sorted(INPUTS))
def test_golden_per_workload_kind(kind, cfg, golden):
    golden(f"inject/{kind}.yaml", _inject(INPUTS[kind], cfg))


@pytest.mark.parametrize("kind", sorted(K8S_KINDS))
def test_injected_output_validates_against_the_kubernetes_schema(kind, cfg):
    import kubernetes_validate

    for doc in yaml.safe_load_all(_inject(INPUTS[kind], cfg)):
        assert doc is not None
        holder = sidecar.pod_template(doc)[0]
        assert "sidecar.istio.io/status" in holder["metadata"]["annotations"]
        kubernetes_validate.validate(doc, "1.33.0", strict=True)


def test_classic_and_cni_variants_validate_too():
    import kubernetes_validate

    for values in ({**VALUES, "global": {"nativeSidecar": False}}, {**VALUES, "components": {"cni": {"enabled": True}}}):
        for doc in yaml.safe_load_all(_inject(INPUTS["deployment"], make_config(values))):
            kubernetes_validate.validate(doc, "1.33.0", strict=True)


def test_a_typo_in_a_pod_field_is_caught_by_strict_validation(cfg):
    """The validation above can fail: an unknown field is refused in strict mode."""
    import kubernetes_validate

    doc = yaml.safe_load(_inject(INPUTS["deployment"], cfg))
    doc["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, "1.33.0", strict=True)

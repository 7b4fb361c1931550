"""The vocabulary of Kubernetes and Istio objects that meshctl shares across commands: workload
kinds and where their pod template lives, the namespaces the mesh leaves alone, and Istio's
labels and annotations. Defined once; every module takes them from here."""
from __future__ import annotations

# Kinds that run pods, and the path to their pod template (a Pod is its own template).
POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "DeploymentConfig": ("spec", "template"),  # OpenShift
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    "Pod": (),
}
# The kinds above whose pod template is at spec.template.
TEMPLATE_KINDS = frozenset(k for k, p in POD_TEMPLATE_PATHS.items() if p == ("spec", "template"))
# Every kind that runs pods (what inject changes and what selectors of workloads select).
WORKLOAD_KINDS = frozenset(POD_TEMPLATE_PATHS)
# Controllers of pods: every workload kind but Pod itself.
CONTROLLER_KINDS = tuple(k for k in POD_TEMPLATE_PATHS if k != "Pod")

# Namespaces the mesh never enrols and analysis leaves out.
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "local-path-storage"})

# Labels and annotations.
REVISION_LABEL = "istio.io/rev"
INJECTION_LABEL = "istio-injection"
SIDECAR_INJECT = "sidecar.istio.io/inject"
SIDECAR_STATUS = "sidecar.istio.io/status"
DATAPLANE_MODE_LABEL = "istio.io/dataplane-mode"
AMBIENT_REDIRECTION = "ambient.istio.io/redirection"
USE_WAYPOINT_LABEL = "istio.io/use-waypoint"
USE_WAYPOINT_NAMESPACE_LABEL = "istio.io/use-waypoint-namespace"
WAYPOINT_FOR_LABEL = "istio.io/waypoint-for"
PROXY_CONTAINER = "istio-proxy"

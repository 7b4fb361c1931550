"""Kinds to REST resources without discovery where possible: a table of the built-in kinds meshctl
touches and the Istio kinds of meshctl.schemas (Kube.resource_type asks the server's discovery for
anything else), and the path of a resource type's objects."""
from __future__ import annotations

from typing import NamedTuple, Optional


class ResourceType(NamedTuple):
    group: str
    version: str
    plural: str
    namespaced: bool
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def display(self) -> str:
        """`deployments.apps`, as the API server names a resource type in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, namespace: Optional[str], name: Optional[str] = None, subresource: Optional[str] = None) -> str:
        """The REST path of the objects of this type (in `namespace` if it is namespaced and one is
        given), of one of them, or of one's subresource."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


# (group, kind) -> (plural, namespaced) for the built-in kinds meshctl touches. Versions come from
# the object's apiVersion, so one entry serves every version of a kind.
_BUILTIN: dict[tuple[str, str], tuple[str, bool]] = {
    ("", "Namespace"): ("namespaces", False),
    ("", "Node"): ("nodes", False),
    ("", "PersistentVolume"): ("persistentvolumes", False),
    ("", "Pod"): ("pods", True),
    ("", "Service"): ("services", True),
    ("", "Endpoints"): ("endpoints", True),
    ("", "ConfigMap"): ("configmaps", True),
    ("", "Secret"): ("secrets", True),
    ("", "ServiceAccount"): ("serviceaccounts", True),
    ("", "Event"): ("events", True),
    ("", "PersistentVolumeClaim"): ("persistentvolumeclaims", True),
    ("", "ResourceQuota"): ("resourcequotas", True),
    ("", "LimitRange"): ("limitranges", True),
    ("", "ReplicationController"): ("replicationcontrollers", True),
    ("apps", "Deployment"): ("deployments", True),
    ("apps", "DaemonSet"): ("daemonsets", True),
    ("apps", "StatefulSet"): ("statefulsets", True),
    ("apps", "ReplicaSet"): ("replicasets", True),
    ("apps", "ControllerRevision"): ("controllerrevisions", True),
    ("batch", "Job"): ("jobs", True),
    ("batch", "CronJob"): ("cronjobs", True),
    ("autoscaling", "HorizontalPodAutoscaler"): ("horizontalpodautoscalers", True),
    ("policy", "PodDisruptionBudget"): ("poddisruptionbudgets", True),
    ("networking.k8s.io", "NetworkPolicy"): ("networkpolicies", True),
    ("networking.k8s.io", "Ingress"): ("ingresses", True),
    ("networking.k8s.io", "IngressClass"): ("ingressclasses", False),
    ("discovery.k8s.io", "EndpointSlice"): ("endpointslices", True),
    ("coordination.k8s.io", "Lease"): ("leases", True),
    ("rbac.authorization.k8s.io", "Role"): ("roles", True),
    ("rbac.authorization.k8s.io", "RoleBinding"): ("rolebindings", True),
    ("rbac.authorization.k8s.io", "ClusterRole"): ("clusterroles", False),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): ("clusterrolebindings", False),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): ("customresourcedefinitions", False),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): ("mutatingwebhookconfigurations", False),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): ("validatingwebhookconfigurations", False),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"): ("validatingadmissionpolicies", False),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"):
        ("validatingadmissionpolicybindings", False),
    ("authorization.k8s.io", "SelfSubjectAccessReview"): ("selfsubjectaccessreviews", False),
    ("authorization.k8s.io", "SubjectAccessReview"): ("subjectaccessreviews", False),
    ("storage.k8s.io", "StorageClass"): ("storageclasses", False),
    ("scheduling.k8s.io", "PriorityClass"): ("priorityclasses", False),
    ("certificates.k8s.io", "CertificateSigningRequest"): ("certificatesigningrequests", False),
}


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def known(group: str, kind: str) -> Optional[tuple[str, bool]]:
    """(plural, namespaced) of a built-in or Istio kind; None for a kind only discovery knows."""
    return _BUILTIN.get((group, kind)) or _istio_resource(group, kind)


def _istio_resource(group: str, kind: str) -> Optional[tuple[str, bool]]:
    from meshctl.schemas import BY_KIND

    k = BY_KIND.get(kind)
    if k is not None and k.group == group:
        return k.plural, True
    return None

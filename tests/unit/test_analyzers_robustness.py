"""Schema-invalid objects (wrong types anywhere) must never crash an analyzer of this area: a
crash would surface as IST0001 and hide the other findings."""
import copy
import random

import pytest

from meshctl.analysis import framework
from meshctl.loader import load_text
from meshctl.resources import Resource, ResourceSet

from . import (test_analyzers_annotations, test_analyzers_authz, test_analyzers_conditions,
               test_analyzers_envoyfilter, test_analyzers_externalcontrolplane, test_analyzers_k8sgateway,
               test_analyzers_multicluster, test_analyzers_serviceentry, test_analyzers_sidecar,
               test_analyzers_telemetry, test_analyzers_webhook, test_security_checks)

AREAS = {"authz", "authn", "telemetry", "serviceentry", "envoyfilter", "annotations", "deprecation", "conditions",
         "externalcontrolplane", "multicluster", "k8sgateway", "webhook", "applicationuid", "sidecar", "security"}
TEXTS = [test_analyzers_annotations.DOC, test_analyzers_authz.DOC, test_analyzers_conditions.DOC,
         test_analyzers_envoyfilter.DOC, test_analyzers_externalcontrolplane.DOC, test_analyzers_k8sgateway.DOC,
         test_analyzers_k8sgateway.CRDS, test_analyzers_multicluster.DOC, test_analyzers_serviceentry.CONFLICT,
         test_analyzers_sidecar.PODS, test_analyzers_telemetry.DOC, test_analyzers_webhook.DOC,
         test_security_checks.SHOP, test_security_checks.DR, test_security_checks.GW, test_security_checks.RA,
         test_security_checks.VS]
ODD = [None, [], {}, "x", 7, True, -1, [None], {"a": None}, [[1]], 1337, {"matchLabels": None}, {1: 2}]


def _paths(obj, prefix=()):
    if prefix:
        yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


@pytest.mark.parametrize("seed", range(4))
def test_mutated_objects_do_not_crash(seed):
    rng = random.Random(seed)
    bodies = [r.body for t in TEXTS for r in load_text(t, "in.yaml").resources]
    analyzers = [a for a in framework.all_analyzers() if a.__module__.rsplit(".", 1)[-1] in AREAS]
    for _ in range(25):
        sample = [copy.deepcopy(b) for b in rng.sample(bodies, 10)]
        for body in sample:
            paths = [p for p in _paths(body) if p[0] not in ("apiVersion", "kind") and p != ("metadata",)]
            for path in rng.sample(paths, min(3, len(paths))):
                parent = body
                try:
                    for step in path[:-1]:
                        parent = parent[step]
                    parent[path[-1]] = rng.choice(ODD)
                except (KeyError, IndexError, TypeError):
                    pass
        resources = ResourceSet(Resource.from_dict(b, source="in.yaml") for b in sample
                                if isinstance(b.get("metadata"), (dict, type(None))))
        mesh = {"defaultProviders": rng.choice([None, [], {"accessLogging": 3}]),
                "extensionProviders": rng.choice([None, [1], [{"name": None, "lightstep": {}}]]),
                "defaultConfig": rng.choice([None, [], {"proxyMetadata": 5}])}
        crashes = [m.text for m in framework.run(resources, analyzers, mesh_config=mesh) if m.code == "IST0001"]
        assert crashes == []

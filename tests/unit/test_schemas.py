"""meshctl's JSON Schemas for Istio kinds: the CRD openAPIV3Schema built from them."""
from __future__ import annotations

import pytest

from meshctl.schemas import KINDS, crd_openapi


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_crd_openapi_has_object_shape(kind):
    schema = crd_openapi(kind)
    assert schema["type"] == "object"
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}
    assert schema["properties"]["status"]["x-kubernetes-preserve-unknown-fields"] is True


def test_crd_openapi_rejects_unknown_kind():
    with pytest.raises(KeyError):
        crd_openapi("Deployment")

"""MeshConfig is read one way: files (a MeshConfig or the istio ConfigMap) and the cluster's
ConfigMap, with one failure policy (an input error naming where, never a silent default)."""
from __future__ import annotations

import pytest

from meshctl import meshconfig
from meshctl.errors import InputError


class Client:
    def __init__(self, objects):
        self.objects = objects

    def get(self, api_version, kind, name, namespace=None):
        return self.objects.get((kind, namespace, name))


def test_files_hold_a_mesh_config_or_the_istio_config_map(tmp_path):
    plain = tmp_path / "mesh.yaml"
    plain.write_text("trustDomain: corp.example\n")
    assert meshconfig.read_file(str(plain)) == {"trustDomain": "corp.example"}
    cm = tmp_path / "cm.yaml"
    cm.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio}\ndata:\n  mesh: 'rootNamespace: mesh'\n")
    assert meshconfig.read_file(str(cm)) == {"rootNamespace": "mesh"}
    assert meshconfig.merged({"trustDomain": "x"})["ingressService"] == "istio-ingressgateway"


@pytest.mark.parametrize("text,needle", [("[a, b]\n", "must be a mapping"), ("a: [\n", "not valid YAML"),
                                         ("a: " + "[" * 2000 + "]" * 2000 + "\n", "nests deeper than 500 levels")])
def test_a_broken_mesh_config_is_an_input_error_naming_the_file(tmp_path, text, needle):
    f = tmp_path / "mesh.yaml"
    f.write_text(text)
    with pytest.raises(InputError) as e:
        meshconfig.read_file(str(f))
    assert e.value.message.startswith(str(f)) and needle in e.value.message


def test_the_cluster_config_map_of_a_revision_and_its_failures():
    ok = {"data": {"mesh": "trustDomain: corp\n"}}
    client = Client({("ConfigMap", "istio-system", "istio"): ok,
                     ("ConfigMap", "istio-system", "istio-canary"): {"data": {"mesh": "a: ["}}})
    assert meshconfig.read_cluster(client, "istio-system") == {"trustDomain": "corp"}
    assert meshconfig.read_cluster(client, "other") is None
    with pytest.raises(InputError) as e:
        meshconfig.read_cluster(client, "istio-system", "canary")
    assert e.value.message.startswith("ConfigMap istio-system/istio-canary (data.mesh)")

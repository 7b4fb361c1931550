"""`meshctl local apply` on a running mesh, fed documents whose fields have the wrong type at every
depth (the sweep of tests/cli/test_wrong_types.py): a result or a one-line error with a documented
exit code (0, 1 or 2), never an internal error; and a refused change leaves the mesh serving."""
from __future__ import annotations

import json

import pytest

from tests.cli.test_wrong_types import DESTINATION_RULE, OTHERS, VIRTUAL_SERVICE, _dump, _problem, _sweep, variants
from tests.local.harness import Client, next_net, service, workload, write

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

GATEWAY, PEER_AUTHENTICATION, AUTHORIZATION_POLICY, SERVICE_ENTRY = OTHERS[1:5]


@pytest.fixture(scope="module")
def shop(start_mesh, tmp_path_factory):
    a = f"127.{next_net()}.0"
    d = tmp_path_factory.mktemp("wrong-types")
    write(d, "mesh.yaml", service("reviews", namespace="shop"),
          workload("reviews-v1", f"{a}.1", "reviews", "v1", namespace="shop"),
          workload("reviews-v2", f"{a}.2", "reviews", "v2", namespace="shop"),
          workload("buyer", f"{a}.10", None, command=False, namespace="shop"))
    return {"state": start_mesh([d]), "buyer": f"{a}.10"}


def test_local_apply_never_fails_internally_on_wrong_types(cli, shop, tmp_path):
    f = tmp_path / "in.yaml"

    def run(what, docs):
        f.write_text(_dump(docs))
        return _problem(cli("local", "apply", "-f", str(f), "--state-dir", shop["state"]), f"local apply [{what}]")

    base = [VIRTUAL_SERVICE, DESTINATION_RULE, GATEWAY, PEER_AUTHENTICATION, AUTHORIZATION_POLICY, SERVICE_ENTRY]
    cases = [(f"{doc['kind']}.{what}", [v]) for doc in base for what, v in variants(doc)]
    _sweep(run, cases)
    # whatever was applied or refused, the mesh takes the right documents and serves them
    f.write_text(_dump(base))
    r = cli("local", "apply", "-f", str(f), "--state-dir", shop["state"])
    assert r.exit_code == 0, r.stderr
    status = json.loads(cli("local", "status", "-o", "json", "--state-dir", shop["state"]).stdout)
    assert {p["status"] for p in status["proxies"]} == {"SYNCED"}
    client = Client(shop["buyer"])
    try:  # the AuthorizationPolicy admits only productpage: the buyer is refused by reviews' sidecar
        code, _, _ = client.request("reviews.shop.svc.cluster.local", "/reviews/1")
    finally:
        client.close()
    assert code == 403

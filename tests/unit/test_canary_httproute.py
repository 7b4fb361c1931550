"""The HTTPRoute rewrite (pure functions): finding the route of a host, the weighted rule, the
weights of per-version Services, the header rule, the mirror — and properties over any shift:
the weights come out as asked and every other rule is untouched."""
from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshctl.canary import httproute, plan
from meshctl.errors import InputError

GW = "gateway.networking.k8s.io/v1"


def route(rules, name="reviews", namespace="default", parent="reviews", hostnames=None):
    spec = {"parentRefs": [{"group": "", "kind": "Service", "name": parent, "port": 9080}], "rules": rules}
    if hostnames:
        spec["hostnames"] = hostnames
    return {"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def backend(name, weight=None, **extra):
    out = {"name": name, "port": 9080, **extra}
    if weight is not None:
        out["weight"] = weight
    return out


HEADER_RULE = {"matches": [{"headers": [{"name": "end-user", "value": "jason"}]}],
               "backendRefs": [backend("reviews-v2")]}
PATH_RULE = {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}], "backendRefs": [backend("reviews-api")],
             "timeouts": {"request": "5s"}}


def shift(subsets, weights, **kw):
    return plan.Shift("reviews", "default", subsets, weights, **kw)


# --- finding ---------------------------------------------------------------------------------
def test_the_route_of_a_host_is_found_by_its_service_parent_hostnames_or_name():
    mesh = route([{"backendRefs": [backend("reviews-v1")]}], name="reviews-split")
    other = route([{"backendRefs": [backend("ratings-v1")]}], name="ratings", parent="ratings")
    assert httproute.find([other, mesh], "reviews", "default") is mesh
    assert httproute.find([other, mesh], "reviews.default.svc.cluster.local", "default") is mesh
    assert httproute.find([mesh], "reviews.other", "default") is None, "the parent is the Service of default"
    ingress = route([{"backendRefs": [backend("reviews-v1")]}], name="web", parent="gw", hostnames=["shop.example.com"])
    ingress["spec"]["parentRefs"] = [{"name": "gw"}]  # a Gateway, not a Service
    assert httproute.find([ingress, other], "shop.example.com", "default") is ingress
    named = route([], name="reviews", parent="something-else")
    assert httproute.find([named], "reviews", "default") is named
    twin = copy.deepcopy(mesh)
    twin["metadata"]["name"] = "reviews-2"
    with pytest.raises(InputError, match="several HTTPRoutes serve reviews"):
        httproute.find([mesh, twin], "reviews", "default")


def test_the_weighted_rule_matches_every_request_and_sends_it_to_services():
    r = route([HEADER_RULE, PATH_RULE, {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                                         "backendRefs": [backend("reviews-v1", 90), backend("reviews-v2", 10)]}])
    assert httproute.weighted_rule_index(r) == 2, "the API server's default match counts as no match"
    assert plan.current_weights(r, "reviews", "default") == [("reviews-v1", 90), ("reviews-v2", 10)]
    redirect = route([{"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https"}}]}])
    assert httproute.weighted_rule_index(redirect) is None


@pytest.mark.parametrize("weights, shown", [((None,), [100]), ((None, None), [50, 50]), ((1, 2), [33, 67]),
                                            ((1, 1, 1), [34, 33, 33]), ((900, 100), [90, 10]), ((0, 0), [0, 0])])
def test_relative_weights_are_shown_as_percentages_summing_to_100(weights, shown):
    r = route([{"backendRefs": [backend(f"reviews-v{i}", w) for i, w in enumerate(weights, 1)]}])
    assert [w for _, w in plan.current_weights(r, "reviews", "default")] == shown


# --- the rewrite -----------------------------------------------------------------------------
def test_apply_shift_rewrites_the_weighted_rule_and_keeps_the_others():
    before = route([HEADER_RULE, PATH_RULE, {"backendRefs": [backend("reviews-v1", filters=[
        {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-v", "value": "1"}]}}])],
        "timeouts": {"request": "3s"}}])
    after = plan.apply_shift(before, shift(["reviews-v1", "reviews-v2"], [90, 10]))
    rules = after["spec"]["rules"]
    assert rules[:2] == [HEADER_RULE, PATH_RULE] and rules[2]["timeouts"] == {"request": "3s"}
    assert rules[2]["backendRefs"] == [
        {"name": "reviews-v1", "port": 9080, "weight": 90, "filters": before["spec"]["rules"][2]["backendRefs"][0]["filters"]},
        {"name": "reviews-v2", "port": 9080, "weight": 10}]
    assert before["spec"]["rules"][2]["backendRefs"][0].get("weight") is None, "the input is not modified"


def test_header_rule_mirror_and_their_replacement():
    before = route([{"backendRefs": [backend("reviews-v1")]}])
    after = plan.apply_shift(before, shift(["reviews-v1", "reviews-v2"], [80, 20], header=("x-user", "beta"),
                                           mirror=5.0))
    rules = after["spec"]["rules"]
    assert rules[0] == {"matches": [{"headers": [{"name": "x-user", "value": "beta"}]}],
                        "backendRefs": [{"name": "reviews-v2", "port": 9080}]}
    assert rules[1]["filters"] == [{"type": "RequestMirror", "requestMirror": {
        "backendRef": {"name": "reviews-v2", "port": 9080}, "percent": 5}}]
    # the same header again (as the API server returns it, defaults filled in) changes its value only
    rules[0]["matches"][0]["path"] = {"type": "PathPrefix", "value": "/"}
    rules[0]["matches"][0]["headers"][0]["type"] = "Exact"
    again = plan.apply_shift(after, shift(["reviews-v1", "reviews-v3"], [50, 50], header=("X-User", "alpha"),
                                          mirror=0.5))
    assert len(again["spec"]["rules"]) == 2
    assert again["spec"]["rules"][0]["matches"] == [{"path": {"type": "PathPrefix", "value": "/"},
                                                     "headers": [{"type": "Exact", "name": "x-user", "value": "alpha"}]}]
    assert again["spec"]["rules"][0]["backendRefs"] == [{"name": "reviews-v3", "port": 9080}]
    assert again["spec"]["rules"][1]["filters"][0]["requestMirror"] == {
        "backendRef": {"name": "reviews-v3", "port": 9080}, "fraction": {"numerator": 1, "denominator": 200}}
    off = plan.apply_shift(again, shift(["reviews-v1", "reviews-v3"], [50, 50], mirror=0))
    assert "filters" not in off["spec"]["rules"][1]


def test_a_users_own_header_rule_to_another_service_is_not_taken_over():
    mine = {"matches": [{"headers": [{"name": "x-user", "value": "ops"}]}], "backendRefs": [backend("debug")]}
    after = plan.apply_shift(route([mine, {"backendRefs": [backend("reviews-v1")]}]),
                             shift(["reviews-v1", "reviews-v2"], [90, 10], header=("x-user", "beta")))
    assert after["spec"]["rules"][0] == mine and len(after["spec"]["rules"]) == 3


def test_a_rule_is_appended_when_none_takes_every_request_unless_one_blocks_it():
    after = plan.apply_shift(route([PATH_RULE]), shift(["reviews-v1", "reviews-v2"], [70, 30]))
    assert after["spec"]["rules"][1] == {"backendRefs": [{"name": "reviews-v1", "port": 9080, "weight": 70},
                                                         {"name": "reviews-v2", "port": 9080, "weight": 30}]}
    blocked = route([{"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https"}}]}])
    with pytest.raises(InputError, match=r"spec.rules\[0\] matches every request"):
        plan.apply_shift(blocked, shift(["reviews-v1", "reviews-v2"], [70, 30]))


def test_a_new_backend_without_any_port_to_copy_is_refused():
    r = route([])
    r["spec"]["parentRefs"] = [{"name": "gw"}]
    with pytest.raises(InputError, match="cannot tell the port of Service reviews-v1"):
        plan.apply_shift(r, shift(["reviews-v1", "reviews-v2"], [70, 30]))


def found(r, services=(), in_files=False):
    svcs = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": n, "namespace": "default"}} for n in services]
    return plan.Found(httproute, r, svcs, "default", " in namespace default", in_files=in_files)


def test_versions_are_services_named_in_full_or_by_their_suffix():
    r = route([{"backendRefs": [backend("reviews-v1")]}])
    f = found(r, ["reviews", "reviews-v1", "reviews-v2", "v3"])
    assert httproute.resolve(f, shift(["v1", "v2"], [90, 10])) == ["reviews-v1", "reviews-v2"]
    assert httproute.resolve(f, shift(["reviews-v1", "v3"], [90, 10])) == ["reviews-v1", "v3"]
    with pytest.raises(InputError, match="no Service reviews-v9 in namespace default") as e:
        httproute.resolve(f, shift(["v1", "reviews-v9"], [90, 10]))
    assert "create the Service for that version" in e.value.hint
    with pytest.raises(InputError, match="cannot tell which Services of reviews") as e:
        httproute.resolve(f, shift(None, [80, 10, 10]))
    assert "reviews-v1" in e.value.hint
    # in files, the backends the route names count as known (their Services may live elsewhere)
    assert httproute.resolve(found(r, [], in_files=True), shift(None, [100])) == ["reviews-v1"]


# --- properties ------------------------------------------------------------------------------
NAMES = ["reviews-v1", "reviews-v2", "reviews-v3", "reviews-v4"]


@st.composite
def routes(draw):
    """An HTTPRoute with other rules (path, header, redirect-free) around an optional weighted rule."""
    others = draw(st.lists(st.sampled_from([HEADER_RULE, PATH_RULE, {
        "matches": [{"method": "POST"}], "backendRefs": [backend("reviews-writes", 3)]}]), max_size=3))
    rules = [copy.deepcopy(r) for r in others]
    if draw(st.booleans()):
        backends = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
        weighted = {"backendRefs": [backend(n, draw(st.one_of(st.none(), st.integers(0, 1000)))) for n in backends]}
        if draw(st.booleans()):
            weighted["matches"] = [{"path": {"type": "PathPrefix", "value": "/"}}]
        rules.insert(draw(st.integers(0, len(rules))), weighted)
    return route(rules)


@st.composite
def shifts(draw):
    subsets = draw(st.lists(st.sampled_from(NAMES), min_size=2, max_size=4, unique=True))
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=len(subsets) - 1, max_size=len(subsets) - 1)))
    weights = [b - a for a, b in zip([0] + cuts, cuts + [100])]
    header = draw(st.sampled_from([None, ("x-user", "beta"), ("x-group", "canary")]))
    mirror = draw(st.sampled_from([None, 0.0, 10.0, 2.5]))
    return shift(subsets, weights, header=header, mirror=mirror)


@settings(max_examples=300, deadline=None)
@given(before=routes(), change=shifts())
def test_weights_come_out_as_asked_and_other_rules_are_untouched(before, change):
    after = plan.apply_shift(before, change)
    assert plan.current_weights(after, "reviews", "default") == list(zip(change.subsets, change.weights))
    assert sum(w for _, w in plan.current_weights(after, "reviews", "default")) == 100
    idx = httproute.weighted_rule_index(after)
    ours = {idx}
    if change.header:
        header_rules = [i for i, r in enumerate(after["spec"]["rules"]) if r.get("matches") == [
            {"headers": [{"name": change.header[0], "value": change.header[1]}]}]]
        assert len(header_rules) == 1
        assert after["spec"]["rules"][header_rules[0]]["backendRefs"][0]["name"] == change.canary
        ours.add(header_rules[0])
    kept = [r for i, r in enumerate(after["spec"]["rules"]) if i not in ours]
    old_idx = httproute.weighted_rule_index(before)
    assert kept == [r for i, r in enumerate(before["spec"]["rules"]) if i != old_idx], "other rules untouched"
    assert before == route(before["spec"]["rules"]), "the input is not modified"
    # the result is a valid HTTPRoute, and shifting it again the same way changes nothing
    plan.check_shape(after)
    assert plan.apply_shift(after, change) == after


@settings(max_examples=200, deadline=None)
@given(weights=st.lists(st.integers(0, 1000000), min_size=1, max_size=6))
def test_percentages_sum_to_100_and_keep_the_order_of_shares(weights):
    shares = httproute.percentages(weights)
    assert sum(shares) == (0 if sum(weights) == 0 else 100)
    for a, b in zip(weights, weights[1:]):
        if a > b:
            assert shares[weights.index(a)] >= shares[weights.index(b)]

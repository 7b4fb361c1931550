"""Weight parsing, step schedules and the VirtualService rewrite (pure functions)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshctl import hosts
from meshctl.canary import plan, virtualservice
from meshctl.errors import InputError


# --- weights ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [("90/10", [90, 10]), ("80/10/10", [80, 10, 10]),
                                           ("100/0", [100, 0]), (" 50 / 50 ", [50, 50]), ("25%/75%", [25, 75])])
def test_parse_weights_accepts(text, expected):
    assert plan.parse_weights(text) == expected


@pytest.mark.parametrize("text,needle", [("90/20", "sum to 110"), ("100", "name one subset; a split needs two or more"), ("40", "must be N/M"), ("90/x", "not a whole number"),
                                         ("-10/110", "not a whole number"), ("150/-50", "not a whole number"),
                                         ("9.5/90.5", "not a whole number"), ("", "must be N/M")])
def test_parse_weights_rejects_with_one_line(text, needle):
    with pytest.raises(InputError) as e:
        plan.parse_weights(text)
    assert needle in e.value.message and "\n" not in e.value.message


@given(st.lists(st.integers(min_value=0, max_value=100), min_size=2, max_size=6))
def test_parse_weights_property(weights):
    text = "/".join(map(str, weights))
    if sum(weights) == 100:
        assert plan.parse_weights(text) == weights
    else:
        with pytest.raises(InputError):
            plan.parse_weights(text)


@given(st.integers(min_value=2, max_value=5).flatmap(
    lambda n: st.lists(st.integers(min_value=0, max_value=100), min_size=n - 1, max_size=n - 1)))
def test_parse_weights_completed_to_100_always_sums_to_100(head):
    if sum(head) > 100:
        return
    weights = head + [100 - sum(head)]
    parsed = plan.parse_weights("/".join(map(str, weights)))
    assert sum(parsed) == 100 and len(parsed) == len(weights)


# --- schedules -------------------------------------------------------------------------------
def test_step_schedule_examples():
    assert plan.step_schedule(10, None, 50) == [10, 20, 30, 40, 50]
    assert plan.step_schedule(20, None, 50) == [20, 40]
    assert plan.step_schedule(None, [5, 10, 25, 50, 80], 50) == [5, 10, 25, 50]
    assert plan.step_schedule(60, None, 50) == [50]


@settings(max_examples=200)
@given(step=st.integers(min_value=1, max_value=100), max_weight=st.integers(min_value=1, max_value=100))
def test_step_schedule_property_step(step, max_weight):
    s = plan.step_schedule(step, None, max_weight)
    assert s, "a schedule has at least one step"
    assert all(1 <= w <= max_weight for w in s)
    assert all(b > a for a, b in zip(s, s[1:]))
    for w in s:  # each step leaves stable + canary at exactly 100
        assert sum(plan.parse_weights(f"{100 - w}/{w}")) == 100


@settings(max_examples=200)
@given(steps=st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=8, unique=True),
       max_weight=st.integers(min_value=1, max_value=100))
def test_step_schedule_property_steps(steps, max_weight):
    steps = sorted(steps)
    if steps[0] > max_weight:
        with pytest.raises(InputError):
            plan.step_schedule(None, steps, max_weight)
        return
    s = plan.step_schedule(None, steps, max_weight)
    assert s == [w for w in steps if w <= max_weight]
    assert all(b > a for a, b in zip(s, s[1:])) and max(s) <= max_weight


def test_step_schedule_rejects_decreasing_steps():
    with pytest.raises(InputError, match="must increase"):
        plan.step_schedule(None, [10, 5], 50)




def test_fqdn():
    assert hosts.service_fqdn("reviews", "bookinfo") == "reviews.bookinfo.svc.cluster.local"
    assert hosts.service_fqdn("reviews.bookinfo", "x") == "reviews.bookinfo.svc.cluster.local"
    assert hosts.service_fqdn("reviews.bookinfo.svc.cluster.local", "x") == "reviews.bookinfo.svc.cluster.local"


# --- the rewrite -----------------------------------------------------------------------------
def vs(http):
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "reviews", "namespace": "default"}, "spec": {"hosts": ["reviews"], "http": http}}


DR = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
      "metadata": {"name": "reviews", "namespace": "default"},
      "spec": {"host": "reviews", "subsets": [{"name": n, "labels": {"version": n}} for n in ("v1", "v2", "v3")]}}

HEADER_ROUTE = {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
                "route": [{"destination": {"host": "reviews", "subset": "v2"}}]}


def test_apply_shift_rewrites_default_route_and_keeps_header_routes():
    before = vs([HEADER_ROUTE, {"route": [{"destination": {"host": "reviews", "subset": "v1", "port": {"number": 9080}}}],
                                "timeout": "5s"}])
    after = plan.apply_shift(before, plan.Shift("reviews", "default", ["v1", "v2"], [90, 10]))
    assert after["spec"]["http"][0] == HEADER_ROUTE
    assert after["spec"]["http"][1]["timeout"] == "5s"
    assert after["spec"]["http"][1]["route"] == [
        {"destination": {"host": "reviews", "subset": "v1", "port": {"number": 9080}}, "weight": 90},
        {"destination": {"host": "reviews", "subset": "v2", "port": {"number": 9080}}, "weight": 10}]
    assert plan.current_weights(after, "reviews", "default") == [("v1", 90), ("v2", 10)]
    assert before["spec"]["http"][1]["route"][0].get("weight") is None, "the input is not modified"


def test_apply_shift_three_way_header_and_mirror():
    before = vs([{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}])
    shift = plan.Shift("reviews", "default", ["v1", "v2", "v3"], [80, 10, 10], header=("x-user", "beta"), mirror=5.0)
    after = plan.apply_shift(before, shift)
    http = after["spec"]["http"]
    assert http[0] == {"match": [{"headers": {"x-user": {"exact": "beta"}}}],
                       "route": [{"destination": {"host": "reviews", "subset": "v3"}}]}
    assert plan.current_weights(after, "reviews", "default") == [("v1", 80), ("v2", 10), ("v3", 10)]
    assert http[1]["mirror"] == {"host": "reviews", "subset": "v3"} and http[1]["mirrorPercentage"] == {"value": 5.0}
    # the same header again replaces its route; mirror 0 removes mirroring
    again = plan.apply_shift(after, plan.Shift("reviews", "default", ["v1", "v2"], [50, 50], header=("x-user", "alpha"),
                                               mirror=0))
    assert len(again["spec"]["http"]) == 2
    assert again["spec"]["http"][0]["match"][0]["headers"]["x-user"] == {"exact": "alpha"}
    assert again["spec"]["http"][0]["route"][0]["destination"]["subset"] == "v2"
    assert "mirror" not in again["spec"]["http"][1]


def test_resolve_subsets_errors_are_clear():
    v = vs([{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}])
    with pytest.raises(InputError, match=r"subset 'v9' is not defined in DestinationRule default/reviews"):
        virtualservice.resolve_subsets(v, DR, "reviews", "default", [90, 10], ["v1", "v9"])
    with pytest.raises(InputError, match="no DestinationRule for host reviews"):
        virtualservice.resolve_subsets(v, None, "reviews", "default", [90, 10], ["v1", "v2"])
    with pytest.raises(InputError, match="2 weights for 3 subsets"):
        virtualservice.resolve_subsets(v, DR, "reviews", "default", [90, 10], ["v1", "v2", "v3"])
    with pytest.raises(InputError, match="cannot tell which subsets"):
        virtualservice.resolve_subsets(v, DR, "reviews", "default", [90, 10], None)
    assert virtualservice.resolve_subsets(v, DR, "reviews", "default", [80, 10, 10], None) == ["v1", "v2", "v3"]


def test_find_virtual_service_by_host_and_ambiguity():
    a = vs([])
    b = vs([])
    b["metadata"]["name"] = "reviews-2"
    assert virtualservice.find_virtual_service([a], "reviews.default.svc.cluster.local", "default") is a
    assert virtualservice.find_virtual_service([a], "ratings", "default") is None
    with pytest.raises(InputError, match="several VirtualServices serve reviews"):
        virtualservice.find_virtual_service([a, b], "reviews", "default")


def test_a_host_in_another_namespace_is_not_found_by_the_virtual_service_name():
    a = vs([])
    a["spec"]["hosts"] = ["reviews.example.com"]   # found by its name when the host is the short name
    assert virtualservice.find_virtual_service([a], "reviews", "default") is a
    assert virtualservice.find_virtual_service([a], "reviews.default", "default") is a
    assert virtualservice.find_virtual_service([a], "reviews.other.svc.cluster.local", "default") is None
    assert virtualservice.find_virtual_service([a], "reviews.other", "default") is None


def test_shift_of_a_host_in_another_namespace_finds_no_virtual_service(cli, tmp_path):
    path = tmp_path / "vs.yaml"
    import yaml

    path.write_text(yaml.safe_dump_all([vs([]), DR]))
    r = cli("canary", "shift", "reviews.other.svc.cluster.local", "90/10", "--subsets", "v1,v2", "-f", str(path))
    assert r.exit_code == 2 and "no VirtualService for reviews.other.svc.cluster.local" in r.stderr, r


def test_no_default_route_is_added_behind_a_catch_all_to_other_hosts():
    from meshctl.canary.plan import Shift, apply_shift
    from meshctl.errors import InputError

    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
          "metadata": {"name": "reviews", "namespace": "default"},
          "spec": {"hosts": ["reviews"], "http": [{"route": [
              {"destination": {"host": "reviews", "subset": "v1"}, "weight": 50},
              {"destination": {"host": "reviewz", "subset": "v3"}, "weight": 50}]}]}}
    shift = Shift(host="reviews", namespace="default", subsets=["v1", "v2"], weights=[90, 10])
    with pytest.raises(InputError) as e:
        apply_shift(vs, shift)
    assert "spec.http[0] has no match" in e.value.message and "reviewz" in e.value.message
    assert "host typo" in e.value.hint

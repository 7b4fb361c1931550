"""Traffic shifting and progressive rollouts on Istio VirtualServices and Gateway API HTTPRoutes.

plan.py           weights, step schedules, the Shift value, the route API of an object (pure)
virtualservice.py the VirtualService rewrite: subsets of a DestinationRule (pure)
httproute.py      the HTTPRoute rewrite: per-version Services as backendRefs (pure)
textedit.py       minimal in-place edits of a YAML file (GitOps: only the changed values move)
targets.py        where routes are read and written: a cluster or the local mesh, or manifest files
shift.py          `canary shift`: one Shift on a target (optimistic concurrency, read-modify-write)
create.py         `canary shift --create`: the route (and DestinationRule) a host lacks
gates.py          metric gates over an interval: Envoy /stats deltas or Prometheus; webhooks
state.py          a rollout's phases, options and state (annotations on the route), defined once
rollout.py        the progressive state machine
report.py         every canary output: shift, status, run steps (text, json, yaml; live table)
"""

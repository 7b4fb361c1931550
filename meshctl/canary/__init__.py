"""Traffic shifting and progressive rollouts on Istio VirtualServices.

plan.py     weights, step schedules and the VirtualService rewrite (pure functions)
textedit.py minimal in-place edits of a YAML file (GitOps: only the changed values move)
shift.py    `canary shift` on the cluster (optimistic concurrency) or in a manifest file
gates.py    metric gates over an interval: Envoy /stats deltas or Prometheus; webhooks
rollout.py  the progressive state machine, its state kept in annotations on the VirtualService
"""

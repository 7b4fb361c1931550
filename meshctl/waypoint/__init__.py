"""Ambient waypoints: the Gateway API Gateways of class `istio-waypoint` that enforce L7 routing
and policy for the Services and workloads that use them.

- render.py: the Gateway istiod expects (HBONE listener on 15008) and the `istio.io/use-waypoint`
  labels, pure functions;
- cluster.py: apply (server-side apply, labels, wait for `Programmed`), list, status (who uses each
  waypoint, which policies and routes it enforces, what it cannot), delete;
- report.py: every result in text, json and yaml.
"""

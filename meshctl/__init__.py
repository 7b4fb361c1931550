"""meshctl: install, validate and operate an Envoy-based service mesh speaking the Istio API."""

__version__ = "0.1.0"

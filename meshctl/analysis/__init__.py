"""Analysis of Istio configuration: framework, analyzers, reports."""

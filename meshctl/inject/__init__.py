"""Data-plane enrolment of workloads: sidecar injection (sidecar.py) and ambient labels (ambient.py)."""

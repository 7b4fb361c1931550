"""A realistic repository for the CI tests: Kubernetes manifests beside YAML that is not
Kubernetes (pre-commit and GitHub Actions configs, mkdocs.yml, a Helm chart, a kustomization)."""
from __future__ import annotations

from pathlib import Path

FILES = {
    ".pre-commit-config.yaml": """\
repos:
  - repo: https://github.com/pre-commit/pre-commit-hooks
    rev: v5.0.0
    hooks:
      - id: check-yaml
        args: [--allow-multiple-documents]
""",
    ".github/workflows/ci.yaml": """\
name: ci
on:
  push:
    branches: [main]
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: echo "building ${{ github.sha }} for ${{ github.ref_name }}"
""",
    "mkdocs.yml": """\
site_name: shop
theme:
  name: material
markdown_extensions:
  - pymdownx.emoji:
      emoji_index: !!python/name:material.extensions.emoji.twemoji
      emoji_generator: !!python/name:material.extensions.emoji.to_svg
""",
    "charts/shop/Chart.yaml": """\
apiVersion: v2
name: shop
description: The shop
version: 0.1.0
""",
    "charts/shop/values.yaml": """\
replicaCount: 2
image:
  repository: registry.example.com/shop
  tag: ""
service:
  enabled: true
""",
    "charts/shop/templates/deployment.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "shop.fullname" . }}
  labels:
    {{- include "shop.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels:
      {{- include "shop.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "shop.selectorLabels" . | nindent 8 }}
    spec:
      containers:
        - name: shop
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
""",
    "charts/shop/templates/service.yaml": """\
{{- if .Values.service.enabled }}
apiVersion: v1
kind: Service
metadata:
  name: "{{ .Release.Name }}-web"
spec:
  ports:
    - port: 80
      name: http
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: "{{ .Release.Name }}"
{{- end }}
""",
    "kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deploy/reviews.yaml
""",
    "deploy/reviews.yaml": """\
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: shop
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: shop
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
""",
}

BROKEN_ROUTE = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
  namespace: shop
spec:
  hosts: [ratings]
  http:
  - route:
    - destination: {host: ratingz}
"""


def make(root: Path) -> Path:
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root

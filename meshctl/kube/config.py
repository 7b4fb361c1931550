"""Which cluster and as whom: the kubeconfig (files merged as kubectl merges $KUBECONFIG) or the
in-cluster service account, loaded by the kubernetes client's own loader so that exec plugins,
client certificates and tokens work as with kubectl. A kubeconfig that cannot be one, a context
that is not there and credentials that cannot be had each end in one line and a hint."""
from __future__ import annotations

import os
from typing import Optional

from meshctl.errors import ClusterError, InputError
from meshctl.kube.errors import first_line

CONFIG_HINT = "pass --kubeconfig PATH (or set KUBECONFIG) and --context NAME"


def _default_kubeconfig() -> str:
    return os.environ.get("KUBECONFIG") or os.path.join("~", ".kube", "config")


def load_configuration(kubeconfig: Optional[str], context: Optional[str]):
    """(Configuration, server, context name, default namespace) from a kubeconfig or in-cluster."""
    from kubernetes.client import Configuration
    from kubernetes.config import kube_config
    from kubernetes.config.config_exception import ConfigException

    configuration = type.__call__(Configuration)
    if kubeconfig is None and not os.environ.get("KUBECONFIG") and os.environ.get("KUBERNETES_SERVICE_HOST") \
            and not os.path.exists(os.path.expanduser(os.path.join("~", ".kube", "config"))):
        from kubernetes.config import incluster_config

        try:
            incluster_config.InClusterConfigLoader(
                token_filename=incluster_config.SERVICE_TOKEN_FILENAME,
                cert_filename=incluster_config.SERVICE_CERT_FILENAME).load_and_set(configuration)
        except ConfigException as e:
            raise ClusterError(f"cannot use the in-cluster service account: {e}", hint=CONFIG_HINT) from None
        ns_file = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
        namespace = open(ns_file).read().strip() if os.path.exists(ns_file) else "default"
        return configuration, configuration.host, "in-cluster", namespace

    path = kubeconfig or _default_kubeconfig()
    paths = [os.path.expanduser(p) for p in path.split(os.pathsep) if p]
    existing = [p for p in paths if os.path.exists(p)]
    if not existing:
        raise ClusterError(f"no kubeconfig at {path}", hint=CONFIG_HINT)
    for p in existing:
        _check_kubeconfig_file(p)
    try:
        merged = kube_config.KubeConfigMerger(os.pathsep.join(existing)).config
        if merged is None:
            raise ConfigException("no configuration found")
        raw = merged.value if hasattr(merged, "value") else merged
        entries = [getattr(c, "value", c) for c in (raw.get("contexts") or [])]
        names = [str(c.get("name")) for c in entries if isinstance(c, dict) and c.get("name")]
    except Exception as e:  # unreadable YAML, wrong shape
        raise InputError(f"invalid kubeconfig {path}: {first_line(e)}", hint=CONFIG_HINT) from None
    available = ", ".join(names) or "none"
    if context is not None and context not in names:
        raise ClusterError(f"context {context!r} not found in kubeconfig {path}",
                           hint=f"available contexts: {available}")
    if context is None and not raw.get("current-context"):
        raise ClusterError(f"kubeconfig {path} sets no current context",
                           hint=f"pass --context NAME (available contexts: {available})")
    with _LoggedErrors() as logged:  # the client logs a failed credential plugin and goes on
        try:
            loader = kube_config.KubeConfigLoader(config_dict=merged, active_context=context, config_base_path=None)
            loader.load_and_set(configuration)
            current = loader.current_context
        except ConfigException as e:
            raise InputError(f"invalid kubeconfig {path}: {first_line(e)}", hint=CONFIG_HINT) from None
        except Exception as e:  # credential plugins, unreadable certificate files
            raise ClusterError(f"cannot load credentials from kubeconfig {path}: {first_line(e)}",
                               hint=CONFIG_HINT) from None
    if logged.messages:
        import re

        problem = re.sub(r"^\[Errno \d+\] ", "", logged.messages[0])
        raise ClusterError(f"cannot get credentials from kubeconfig {path}: {problem}",
                           hint="the context's user runs a credential plugin (users[].user.exec): install it "
                                "or put it on PATH, or pick another --context")
    namespace = (current.get("context") or {}).get("namespace") or "default"
    return configuration, configuration.host, current.get("name") or context or "", namespace


class _LoggedErrors:
    """Collects what the kubernetes client logs at ERROR level (instead of raising) while loading
    a kubeconfig, and keeps it off the user's terminal."""

    def __enter__(self):
        import logging

        self.messages: list[str] = []
        outer = self

        class _Handler(logging.Handler):
            def emit(self, record):
                if record.levelno >= logging.ERROR:
                    outer.messages.append(record.getMessage().strip().splitlines()[0] if record.getMessage().strip()
                                          else "the credential plugin failed")

        self._handler = _Handler()
        self._root = logging.getLogger()
        self._root.addHandler(self._handler)
        return self

    def __exit__(self, *exc):
        self._root.removeHandler(self._handler)
        return False


def _check_kubeconfig_file(path: str) -> None:
    """Refuse a kubeconfig that cannot be one (not UTF-8, not YAML, the wrong shape) in meshctl's
    words, exit 2, before the client reads it."""
    import yaml

    from meshctl.loader import safe_load

    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as e:
        raise InputError(f"kubeconfig {path}: cannot read: {e.strerror or e}", hint=CONFIG_HINT) from None
    try:
        data = safe_load(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise InputError(f"invalid kubeconfig {path}: not UTF-8 text", hint=CONFIG_HINT) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        raise InputError(f"invalid kubeconfig {where}: {problem}", hint=CONFIG_HINT) from None
    if data is None:
        return
    if not isinstance(data, dict):
        raise InputError(f"invalid kubeconfig {path}: not a mapping of clusters, users and contexts", hint=CONFIG_HINT)
    for field, inner in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
        items = data.get(field)
        if items is None:
            continue
        if not isinstance(items, list) or not all(
                isinstance(i, dict) and isinstance(i.get("name"), str) and isinstance(i.get(inner) or {}, dict)
                for i in items):
            raise InputError(f"invalid kubeconfig {path}: {field} must be a list of entries with a name and a {inner}",
                             hint=CONFIG_HINT)
    current = data.get("current-context")
    if current is not None and not isinstance(current, str):
        raise InputError(f"invalid kubeconfig {path}: current-context must be a string", hint=CONFIG_HINT)


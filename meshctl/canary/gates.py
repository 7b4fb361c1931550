"""The probe stage of a rollout: the canary's metrics over one interval, the gates, and webhooks.

Metric sources (each measures *one interval*, never since process start):

- EnvoySource reads the admin `/stats` of the proxies that call the host: the counters and the
  `upstream_rq_time` histogram of the canary's clusters, summed over the proxies, in Istio's
  naming (every port): a subset of the host on a sidecar `outbound|PORT|SUBSET|HOST` and on a
  waypoint `inbound-vip|PORT|http/SUBSET|HOST`; a per-version Service (an HTTPRoute backend)
  `outbound|PORT||SERVICE` and `inbound-vip|PORT|http|SERVICE`. Each measure is the delta
  between two reads; a proxy whose counters went down (restarted) counts from zero.
  Envoy updates histograms when it flushes stats (every 5 s by default), counters immediately.
- PrometheusSource asks Prometheus for Istio's standard series over the interval's window:
  `istio_requests_total` (rate of non-5xx answers) and `istio_request_duration_milliseconds`
  (p99 from the buckets), reporter="destination", selected by destination_service (FQDN) and,
  for a subset, destination_version (the subset's `version` label).

Gates follow Flagger: a success-rate floor and a p99 ceiling; an interval without requests holds
(neither success nor failure). Webhooks get a JSON POST; any non-2xx answer (or no answer) fails.
"""
from __future__ import annotations

import asyncio
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from meshctl.errors import InputError, ProxyError

P99 = 0.99


@dataclass
class Metrics:
    requests: int = 0
    errors: int = 0               # 5xx answers (Envoy-generated 503s on upstream failure included)
    p99_ms: Optional[float] = None
    error: Optional[str] = None   # the source could not be read
    unreachable: list[str] = field(default_factory=list)  # proxies that did not answer (others did)

    @property
    def success_rate(self) -> Optional[float]:
        if self.requests <= 0:
            return None
        return 100.0 * (self.requests - self.errors) / self.requests

    def to_dict(self) -> dict:
        sr = self.success_rate
        out = {"requests": self.requests, "errors": self.errors,
               "successRate": round(sr, 3) if sr is not None else None,
               "p99Ms": round(self.p99_ms, 3) if self.p99_ms is not None else None}
        if self.error:
            out["error"] = self.error
        if self.unreachable:
            out["unreachable"] = self.unreachable
        return out


@dataclass
class Check:
    name: str
    ok: bool
    value: Any = None
    threshold: Any = None
    message: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "value": self.value, "threshold": self.threshold,
                "message": self.message}


@dataclass
class Thresholds:
    min_success_rate: Optional[float] = 99.0
    max_p99_ms: Optional[float] = 500.0


def evaluate(m: Metrics, t: Thresholds) -> tuple[str, list[Check]]:
    """("hold" | "pass" | "fail", checks) for one interval's metrics."""
    if m.error:
        return "fail", [Check("metrics", False, None, None, m.error)]
    if m.requests <= 0:
        return "hold", [Check("traffic", True, 0, None, "no requests to the canary in this interval: holding")]
    checks = []
    sr = m.success_rate
    if t.min_success_rate is not None:
        checks.append(Check("success-rate", sr >= t.min_success_rate, round(sr, 3), t.min_success_rate,
                            f"{sr:.2f}% of {m.requests} requests succeeded (min {t.min_success_rate:g}%)"))
    if t.max_p99_ms is not None:
        if m.p99_ms is None:
            checks.append(Check("p99", True, None, t.max_p99_ms, "no latency samples yet (not evaluated)"))
        else:
            checks.append(Check("p99", m.p99_ms <= t.max_p99_ms, round(m.p99_ms, 3), t.max_p99_ms,
                                f"p99 {m.p99_ms:.1f} ms (max {t.max_p99_ms:g} ms)"))
    return ("pass" if all(c.ok for c in checks) else "fail"), checks


def quantile(q: float, buckets: list[tuple[float, float]]) -> Optional[float]:
    """Prometheus' histogram_quantile over cumulative buckets [(upper_bound, count)], sorted."""
    buckets = sorted((float(le), float(n)) for le, n in buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_n = 0.0, 0.0
    for le, n in buckets:
        if n >= rank:
            if math.isinf(le):
                return prev_le
            if n == prev_n:
                return le
            return prev_le + (le - prev_le) * (rank - prev_n) / (n - prev_n)
        prev_le, prev_n = le, n
    return buckets[-1][0]


# --- Envoy admin /stats ----------------------------------------------------------------------
@dataclass
class _Reading:
    counters: dict[str, int] = field(default_factory=dict)      # "2xx".."5xx" → count
    buckets: dict[float, float] = field(default_factory=dict)    # upper bound → cumulative count


def _clusters(subset: str, fqdn: str) -> str:
    """The canary's Envoy clusters (Istio's BuildSubsetKey): a sidecar's `outbound|PORT|SUBSET|FQDN`
    or an ambient waypoint's `inbound-vip|PORT|http/SUBSET|FQDN`; without a subset (a
    per-version Service) `outbound|PORT||FQDN` and `inbound-vip|PORT|http|FQDN`."""
    waypoint = r"inbound-vip\|[0-9]+\|http" + ("/" + re.escape(subset) if subset else "")
    sidecar = r"outbound\|[0-9]+\|" + re.escape(subset)
    return r"cluster\.(?:" + sidecar + "|" + waypoint + r")\|" + re.escape(fqdn)


def stats_filter(subset: str, fqdn: str) -> str:
    return "^" + _clusters(subset, fqdn) + r"\.upstream_rq_(?:[1-5]xx|time)$"


def reading_from_stats(stats: dict, subset: str, fqdn: str) -> _Reading:
    """Sum a proxy's stats (meshctl.proxy.admin.parse_stats form) over the subset's clusters."""
    pattern = re.compile("^" + _clusters(subset, fqdn) + r"\.upstream_rq_(?:([1-5]xx)|time)$")
    r = _Reading()
    for name, value in stats.items():
        m = pattern.match(name)
        if not m:
            continue
        if m.group(1):
            r.counters[m.group(1)] = r.counters.get(m.group(1), 0) + int(value or 0)
        else:
            for le, n in getattr(value, "buckets", None) or []:
                r.buckets[float(le)] = r.buckets.get(float(le), 0) + float(n or 0)
    return r


def _delta(new: _Reading, old: Optional[_Reading]) -> _Reading:
    if old is None or any(new.counters.get(k, 0) < v for k, v in old.counters.items()):
        return new  # first read, or the proxy restarted: count from zero
    d = _Reading({k: v - old.counters.get(k, 0) for k, v in new.counters.items()})
    if any(new.buckets.get(le, 0) < n for le, n in old.buckets.items()):
        d.buckets = dict(new.buckets)
    else:
        d.buckets = {le: n - old.buckets.get(le, 0) for le, n in new.buckets.items()}
    return d


class EnvoySource:
    """The canary subset's outbound cluster stats on a set of proxies' admin endpoints."""

    def __init__(self, addresses: list[str], fqdn: str, subset: str, timeout: float = 3.0):
        from meshctl.proxy.admin import ADMIN_PORT, parse_address

        # as proxy-status --admin: no port means the admin port; the same proxy twice counts once
        self.addresses = list(dict.fromkeys(parse_address(a, default_port=ADMIN_PORT) for a in addresses))
        self.fqdn = fqdn
        self.subset = subset
        self.timeout = timeout
        self._last: dict[str, _Reading] = {}

    def describe(self) -> str:
        return f"Envoy /stats of {', '.join(self.addresses)} (cluster outbound|*|{self.subset}|{self.fqdn})"

    async def _read_all(self) -> dict[str, Any]:
        from meshctl.proxy.admin import AdminClient

        flt = stats_filter(self.subset, self.fqdn)
        async with AdminClient(timeout=self.timeout) as admin:
            results = await asyncio.gather(*(admin.stats(a, flt, histogram_buckets=True) for a in self.addresses),
                                           return_exceptions=True)
        return dict(zip(self.addresses, results))

    def _read(self) -> tuple[dict[str, _Reading], list[str]]:
        raw = asyncio.run(self._read_all())
        readings, errors = {}, []
        for address, result in raw.items():
            if isinstance(result, BaseException):
                if not isinstance(result, ProxyError):
                    raise result
                errors.append(result.message)
                continue
            readings[address] = reading_from_stats(result, self.subset, self.fqdn)
        return readings, errors

    def start(self) -> None:
        """Take the baseline. Raises ProxyError when no proxy answers (nothing to measure with)."""
        readings, errors = self._read()
        if not readings:
            raise ProxyError(errors[0] if errors else "no proxy to read metrics from",
                             hint="pass the admin address of proxies calling the host with --proxy-admin ADDR:PORT")
        self._last = readings

    def measure(self) -> Metrics:
        readings, errors = self._read()
        if not readings:
            return Metrics(error="; ".join(errors) or "no proxy answered")
        total = _Reading()
        for address, reading in readings.items():
            d = _delta(reading, self._last.get(address))
            for k, v in d.counters.items():
                total.counters[k] = total.counters.get(k, 0) + v
            for le, n in d.buckets.items():
                total.buckets[le] = total.buckets.get(le, 0) + n
            self._last[address] = reading
        requests = sum(total.counters.values())
        errors_5xx = total.counters.get("5xx", 0)
        return Metrics(requests=requests, errors=errors_5xx, p99_ms=quantile(P99, list(total.buckets.items())),
                       error=None, unreachable=errors)


# --- Prometheus ------------------------------------------------------------------------------
class PrometheusSource:
    """Istio's standard metrics from Prometheus, over the window since start()/the last measure()."""

    def __init__(self, url: str, fqdn: str, version: Optional[str], timeout: float = 10.0):
        if not re.match(r"^https?://", url):
            raise InputError(f"--prometheus {url!r} is not an http(s) URL", hint="e.g. http://prometheus:9090")
        self.url = url.rstrip("/")
        self.fqdn = fqdn
        self.version = version
        self.timeout = timeout
        self._since = time.monotonic()

    def describe(self) -> str:
        version = f", destination_version={self.version}" if self.version else ""
        return f"Prometheus {self.url} (destination_service={self.fqdn}{version})"

    def _selector(self, extra: str = "") -> str:
        sel = f'reporter="destination",destination_service="{self.fqdn}"'
        if self.version:
            sel += f',destination_version="{self.version}"'
        return "{" + sel + (("," + extra) if extra else "") + "}"

    def queries(self, window: str) -> dict[str, str]:
        errors = self._selector('response_code=~"5.."')
        return {
            "requests": f"sum(increase(istio_requests_total{self._selector()}[{window}]))",
            "errors": f"sum(increase(istio_requests_total{errors}[{window}]))",
            "p99": ("histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket"
                    f"{self._selector()}[{window}])) by (le))"),
        }

    def _query(self, client, q: str) -> Optional[float]:
        try:
            r = client.get(f"{self.url}/api/v1/query", params={"query": q})
        except Exception as e:  # httpx errors: connection refused, timeout...
            raise ProxyError(f"Prometheus {self.url} unreachable: {type(e).__name__}: {e}",
                             hint="check --prometheus URL") from None
        try:
            data = r.json()
        except ValueError:
            data = None
        if r.status_code != 200 or not isinstance(data, dict) or data.get("status") != "success":
            detail = (data or {}).get("error") if isinstance(data, dict) else r.text[:200]
            raise ProxyError(f"Prometheus {self.url} answered {r.status_code}: {detail}",
                             hint="check --prometheus URL and that Istio's metrics are scraped")
        result = (data.get("data") or {}).get("result") or []
        if not result:
            return None
        try:
            value = float(result[0]["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            return None
        return None if math.isnan(value) else value

    def start(self) -> None:
        import httpx

        with httpx.Client(timeout=self.timeout) as client:
            self._query(client, "vector(1)")
        self._since = time.monotonic()

    def measure(self) -> Metrics:
        import httpx

        seconds = max(1, math.ceil(time.monotonic() - self._since))
        self._since = time.monotonic()
        qs = self.queries(f"{seconds}s")
        try:
            with httpx.Client(timeout=self.timeout) as client:
                requests = self._query(client, qs["requests"])
                errors = self._query(client, qs["errors"]) if requests else 0.0
                p99 = self._query(client, qs["p99"]) if requests else None
        except ProxyError as e:
            return Metrics(error=e.message)
        return Metrics(requests=int(round(requests or 0)), errors=int(round(errors or 0)), p99_ms=p99)


# --- webhooks --------------------------------------------------------------------------------
def call_webhook(url: str, kind: str, payload: dict, timeout: float = 10.0) -> Check:
    """POST the rollout's context to a webhook; a 2xx answer passes."""
    import httpx

    body = dict(payload, type=kind)
    try:
        r = httpx.post(url, json=body, timeout=timeout)
    except Exception as e:
        return Check(f"{kind} webhook", False, None, None, f"{url}: {type(e).__name__}: {e}")
    ok = 200 <= r.status_code < 300
    text = r.text.strip().splitlines()[0][:200] if r.text.strip() else ""
    return Check(f"{kind} webhook", ok, r.status_code, "2xx", f"{url} answered {r.status_code}"
                 + (f": {text}" if text and not ok else ""))


# --- proxies found on the cluster ------------------------------------------------------------
ADMIN_PORT = 15000


def sidecar_pods(pods: list[dict], container: str | None = "istio-proxy") -> list[str]:
    """Names of running pods with an istio-proxy container (classic or native sidecar); with
    container=None, of every running pod given."""
    names = []
    for p in pods:
        spec = p.get("spec") or {}
        containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
        if container and not any(c.get("name") == container for c in containers if isinstance(c, dict)):
            continue
        if ((p.get("status") or {}).get("phase")) not in (None, "Running"):
            continue
        names.append((p.get("metadata") or {}).get("name"))
    return [n for n in names if n]


WAYPOINT_SELECTOR = "gateway.istio.io/managed=istio.io-mesh-controller"


def forward_proxies(k, namespace: str, stack) -> list[str]:
    """Port-forward to the admin port of every sidecar in the namespace, or in ambient mode of
    its waypoints (kept open by `stack`); returns their local addresses."""
    pods = sidecar_pods(k.list("v1", "Pod", namespace))
    if not pods:
        pods = sidecar_pods(k.list("v1", "Pod", namespace, label_selector=WAYPOINT_SELECTOR), container=None)
    if not pods:
        ns = k.get("v1", "Namespace", namespace) or {}
        if ((ns.get("metadata") or {}).get("labels") or {}).get("istio.io/dataplane-mode") == "ambient":
            raise InputError(f"namespace {namespace} runs in ambient mode and has no waypoint to read metrics from "
                             "(nor to apply the weights: routing acts only in a waypoint there)",
                             hint=f"create one with 'meshctl waypoint apply -n {namespace} --enroll-namespace', "
                                  "or pass --prometheus URL")
        raise InputError(f"no pod with an istio-proxy sidecar in namespace {namespace} to read metrics from",
                         hint="pass --proxy-admin ADDR:PORT of proxies calling the host, or --prometheus URL")
    return [f"127.0.0.1:{stack.enter_context(k.port_forward(namespace, pod, ADMIN_PORT))}" for pod in pods]


def source_factory(k, host: str, namespace: str, stack):
    """make_source(spec, state, found) for Rollout.run: Prometheus when asked, else the given
    proxies' admin endpoints, else those of the local mesh's proxies, else the namespace's
    sidecars (or waypoints) through port-forward (kept open by `stack` for the whole run). The
    canary is measured as its route's API names it (metric_subject)."""

    def make(spec, st, found):
        fqdn, subset, version = found.api.metric_subject(found, host, st.canary)
        if spec.prometheus:
            return PrometheusSource(spec.prometheus, fqdn, version)
        addresses = spec.proxyAdmin or (k.admin_addresses() if hasattr(k, "admin_addresses") else [])
        return EnvoySource(addresses or forward_proxies(k, namespace, stack), fqdn, subset)

    return make

"""`canary shift --create`: make the route a host lacks, with the weights asked for.

- VirtualService: the versions are the `version` labels of the pods the Service HOST selects (on
  a cluster) or of the pod templates it selects in the files; a DestinationRule with one subset
  per version is made too when the host has none.
- HTTPRoute: attached to the Service HOST (a mesh route: `parentRefs` kind Service, on its first
  port), splitting between per-version Services that exist (on the cluster, or in the files).

Everything is planned and checked before the first write: on a cluster the objects are created
in order, and those created are deleted again when a later one fails; in files they are appended
to the Service's file as new documents.
"""
from __future__ import annotations

from typing import Callable, Optional

from meshctl import hosts
from meshctl.canary import httproute, plan, virtualservice
from meshctl.canary.targets import ClusterTarget, FileTarget, object_diff, text_diff
from meshctl.errors import InputError
from meshctl.kinds import POD_TEMPLATE_PATHS
from meshctl.resources import as_dict, as_list, dig
from meshctl.selectors import matches


def create(target, found: plan.Found, change: plan.Shift, also: Optional[Callable[[dict], None]] = None):
    """The ShiftResult of creating HOST's route (and DestinationRule) on `target`."""
    from meshctl.canary.shift import ShiftResult

    if target.in_files:
        objects, path, ns = _in_files(target, found, change)
    else:
        objects, ns = _on_cluster(target, found, change), target.namespace
        path = None
    route = objects[-1]
    if also:
        also(route)
    created = [f"{plan.ref(o, ns).split(' ')[0]} {o['metadata']['name']} in {path}" if path else plan.ref(o)
               for o in objects]
    if path is not None:
        diff = _append(target, found, path, objects)
        written = route
    else:
        diff = "".join(object_diff(None, o, plan.ref(o)) for o in objects)
        written = target.create(objects)
    return ShiftResult(target=path or plan.ref(written), route=plan.ref(written, ns), kind=found.api.KIND,
                       host=change.host, before=[], after=plan.current_weights(route, change.host, ns), changed=True,
                       dry_run=bool(target.dry_run), diff=diff, created=created, header=change.header,
                       mirror=change.mirror)


def _name(host: str) -> str:
    """The host as the new objects name it: as given when qualified, else the Service's name."""
    return host if "." in host else hosts.short_name(host)


def _shifted(found: plan.Found, route: dict, change: plan.Shift, ns: Optional[str], versions: list[dict],
             where: str) -> dict:
    """The new route with the weights applied, its versions resolved against `versions`."""
    f = plan.Found(found.api, route, versions, ns, where, in_files=found.in_files)
    return plan.apply_shift(route, change.resolved(found.api.resolve(f, change), ns))


# --- on a cluster ----------------------------------------------------------------------------
def _on_cluster(target: ClusterTarget, found: plan.Found, change: plan.Shift) -> list[dict]:
    k, ns, host = target.k, target.namespace, change.host
    name = hosts.short_name(host)
    dr = found.versions[0] if found.versions and found.api is virtualservice else None
    svc = k.get("v1", "Service", name, ns) if dr is None else None
    if found.api is httproute:
        if svc is None:
            raise InputError(f"--create: no Service {ns}/{name} to attach the HTTPRoute to",
                             hint="create the Service first, or write the HTTPRoute yourself")
        route = httproute.new_route(name, ns, _first_port(svc, f"Service {ns}/{name}"))
        return [_shifted(found, route, change, ns, found.versions, target.where)]
    new_dr = None
    if dr is None:
        if svc is None:
            raise InputError(f"--create: no Service {ns}/{name} to take versions from",
                             hint="create the Service first, or write the DestinationRule yourself")
        selector = as_dict(svc.get("spec")).get("selector") or {}
        if not isinstance(selector, dict) or not selector:
            raise InputError(f"--create: Service {ns}/{name} has no selector",
                             hint="subsets come from the pods the Service selects")
        sel = ",".join(f"{a}={b}" for a, b in sorted(selector.items()))
        versions = virtualservice.versions_of(k.list("v1", "Pod", ns, label_selector=sel))
        if not versions:
            raise InputError(f"--create: no pod selected by Service {ns}/{name} has a 'version' label",
                             hint="label each Deployment's pods with version: v1, v2, ...")
        _check_given(change, versions, f"no pod of {ns}/{name}", "pods' labels")
        dr = new_dr = virtualservice.new_destination_rule(_name(host), ns, versions)
    vs = _shifted(found, virtualservice.new_virtual_service(_name(host), ns), change, ns, [dr], target.where)
    return ([new_dr] if new_dr else []) + [vs]


def _check_given(change: plan.Shift, versions: list[str], what: str, fix: str) -> None:
    missing = [s for s in change.subsets or [] if s not in versions]
    if missing:
        raise InputError(f"--create: {what} has version {', '.join(missing)} (versions: {', '.join(versions)})",
                         hint=f"fix --subsets or the {fix}")


def _first_port(svc: dict, what: str) -> int:
    ports = [p.get("port") for p in as_list(as_dict(svc.get("spec")).get("ports")) if isinstance(p, dict)]
    port = next((p for p in ports if isinstance(p, int) and not isinstance(p, bool)), None)
    if port is None:
        raise InputError(f"--create: {what} has no port to route", hint="give the Service a port")
    return port


# --- in files --------------------------------------------------------------------------------
def _in_files(target: FileTarget, found: plan.Found, change: plan.Shift) -> tuple[list[dict], str, Optional[str]]:
    """(new documents, the file they go to: the Service's, their namespace)."""
    bodies, host, namespace = found.handle.bodies, change.host, target.namespace
    name = hosts.short_name(host)
    services = [(p, r) for p, r in bodies if r.kind == "Service" and r.name == name
                and (namespace is None or (r.namespace or namespace) == namespace)]
    if not services:
        raise InputError(f"--create: no {found.api.KIND} for {host} and no Service {name} in the files to "
                         + ("attach one to" if found.api is httproute else "take versions from"),
                         hint="pass the manifests holding the Service and its "
                              + ("per-version Services" if found.api is httproute else "Deployments") + " with -f")
    path, svc = services[0]
    ns = namespace or svc.namespace
    items = [r.body for _, r in bodies]
    where = f" in {path}"
    if found.api is httproute:
        route = httproute.new_route(name, ns or "default", _first_port(svc.body, f"Service {name} in {path}"))
        docs = [_shifted(found, route, change, ns, httproute.versions(items, host, ns or "default"), where)]
    else:
        docs = _vs_docs(found, change, bodies, items, svc, path, ns, where)
    for d in docs:
        if ns is None:
            d["metadata"].pop("namespace", None)
    return docs, path, ns


def _vs_docs(found, change, bodies, items, svc, path, ns, where) -> list[dict]:
    name = hosts.short_name(change.host)
    selector = svc.spec.get("selector") if isinstance(svc.spec.get("selector"), dict) else {}
    if not selector:
        raise InputError(f"--create: Service {name} in {path} has no selector",
                         hint="subsets come from the workloads the Service selects")
    pods = []
    for _, r in bodies:
        template = POD_TEMPLATE_PATHS.get(r.kind)
        if template is None:
            continue
        labels = r.labels if not template else dig(r.body, *template, "metadata", "labels")
        if (r.namespace or ns) == ns and isinstance(labels, dict) and matches(labels, selector):
            pods.append({"metadata": {"labels": labels}})
    versions = virtualservice.versions_of(pods)
    if not versions:
        raise InputError(f"--create: no workload selected by Service {name} in the files has a 'version' label",
                         hint="label each Deployment's pod template with version: v1, v2, ...")
    _check_given(change, versions, f"no workload of {name}", "pod templates' labels")
    docs = []
    dr = virtualservice.find_destination_rule(items, change.host, ns)
    if dr is None:
        dr = virtualservice.new_destination_rule(_name(change.host), ns or "default", versions)
        docs.append(dr)
    vs = virtualservice.new_virtual_service(_name(change.host), ns or "default")
    return docs + [_shifted(found, vs, change, ns, [dr], where)]


def _append(target: FileTarget, found: plan.Found, path: str, docs: list[dict]) -> str:
    """Append the documents to the file (as YAML, in its line ends); returns the diff."""
    from meshctl.output import to_yaml

    _, text = found.handle.texts[path]
    nl = "\r\n" if "\r\n" in text else "\n"
    addition = "".join("---" + nl + to_yaml(d).replace("\n", nl) for d in docs)
    new_text = text + ("" if not text or text.endswith("\n") else nl) + addition
    target.save(found.handle, path, new_text)
    return text_diff(path, text, new_text)

#!/usr/bin/env python3
"""A fake kube-apiserver for tests (Python 3 standard library only).

It speaks the wire formats of the real one closely enough for the real
kubectl and for our C informers: discovery, get/list (selectors, paging),
create/update/patch/delete with optimistic concurrency, status and scale
subresources, watch streams (replay from a resourceVersion, bookmarks,
"Expired" after compaction), Status errors, TLS with bearer tokens or client
certificates, kubeconfig files, an audit webhook emitter, and the protobuf
bodies of kubectl's generators (`kubectl create deployment ...`).

Two ways to use it:

    sys.path.insert(0, os.path.join(KT_SRC, "tests", "lib"))
    from fake_apiserver import FakeApiserver
    srv = FakeApiserver(tls=True, token="t0k").start()
    srv.write_kubeconfig(path, context="fake")
    srv.create({"apiVersion": "v1", "kind": "ConfigMap", ...})
    srv.stop()

    python3 tests/lib/fake_apiserver.py --port 0 --kubeconfig-out FILE [--tls]
        [--token T] [--audit-webhook URL]     # prints the URL on line 1

See docs/internals/fake_apiserver.md.
"""
import argparse
import base64
import collections
import copy
import datetime
import json
import os
import queue
import random
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 3 << 20            # request bodies above this get 413
HISTORY_LIMIT = 10000         # watch events kept for replay
WATCH_QUEUE_LIMIT = 10000     # events queued for one slow watcher before it is closed
REQUEST_LOG_LIMIT = 20000     # entries kept in .requests / .request_log
AUDIT_KEEP = 10000            # audit events kept in .audit_events
SNAPSHOT_LIMIT = 100          # list snapshots kept for continue tokens
ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SERVER_VERSION = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.2",
    "gitCommit": "67a30c0adcf52bd3f56ff0893ce19966be12991f", "gitTreeState": "clean",
    "buildDate": "2025-02-12T21:17:28Z", "goVersion": "go1.23.6", "compiler": "gc",
    "platform": "linux/amd64",
}
DEFAULT_USER = "kubernetes-admin"
DEFAULT_GROUPS = ["system:masters", "system:authenticated"]
GC_USER = "system:serviceaccount:kube-system:generic-garbage-collector"
GC_AGENT = ("kube-controller-manager/v1.32.2 (linux/amd64) kubernetes/67a30c0/"
            "system:serviceaccount:kube-system:generic-garbage-collector")
META_ORDER = ["name", "generateName", "namespace", "selfLink", "uid", "resourceVersion",
              "generation", "creationTimestamp", "deletionTimestamp",
              "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences",
              "finalizers", "managedFields"]


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _ts(t=None):
    return (t or _now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro(t=None):
    return (t or _now()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


def _jcopy(obj):
    return copy.deepcopy(obj)


# ---------------------------------------------------------------- errors

def status_obj(code, reason, message, details=None, status="Failure"):
    """A meta/v1 Status, keys in the order the apiserver writes them."""
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": status}
    if message:
        s["message"] = message
    if reason:
        s["reason"] = reason
    if details is not None:
        s["details"] = details
    s["code"] = code
    return s


class ApiError(Exception):
    """An error answer: .code (HTTP status), .reason and .status (the Status
    object). Raised by the direct methods of FakeApiserver too."""

    def __init__(self, code, reason, message, details=None, status=None):
        super().__init__("%d %s: %s" % (code, reason, message))
        self.code, self.reason, self.message = code, reason, message
        self.status = status or status_obj(code, reason, message, details)

    @classmethod
    def from_status(cls, code, st):
        if not isinstance(st, dict):
            st = status_obj(code, "", str(st))
        return cls(code, st.get("reason", ""), st.get("message", ""), status=st)


def _details(r, name):
    d = {}
    if name:
        d["name"] = name
    if r.group:
        d["group"] = r.group
    d["kind"] = r.name
    return d


def not_found(r, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (r.gr, name), _details(r, name))


def conflict(r, name, msg="the object has been modified; please apply your changes "
                          "to the latest version and try again"):
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s'
                    % (r.gr, name, msg), _details(r, name))


def bad_request(msg):
    return ApiError(400, "BadRequest", msg)


def invalid(r, name, field, msg, why="FieldValueInvalid"):
    kind_gr = r.kind + ("." + r.group if r.group else "")
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s: %s' % (kind_gr, name, field, msg),
                    {"name": name, **({"group": r.group} if r.group else {}), "kind": r.kind,
                     "causes": [{"reason": why, "message": msg, "field": field}]})


def expired(msg):
    return ApiError(410, "Expired", msg)


NOT_FOUND_PATH = ApiError(404, "NotFound", "the server could not find the requested resource", {})


# ---------------------------------------------------------------- resources

class Resource:
    """One REST resource (group, version, plural) as discovery shows it."""

    def __init__(self, group, version, name, kind, namespaced=True, singular=None,
                 short_names=(), categories=(), subresources=(), generation=False,
                 storage=None, to_storage=None, from_storage=None, defaults=None,
                 return_deleted=False, verbs=None):
        self.group, self.version, self.name, self.kind = group, version, name, kind
        self.namespaced = namespaced
        self.singular = singular or kind.lower()
        self.short_names = list(short_names)
        self.categories = list(categories)
        self.subresources = list(subresources)   # "status", "scale", "binding"
        self.generation = generation             # metadata.generation tracks spec
        self.storage = storage or (group, name)  # resources sharing storage share objects
        self.to_storage, self.from_storage = to_storage, from_storage
        self.defaults = defaults
        self.return_deleted = return_deleted     # DELETE answers the object, not a Status
        self.verbs = list(verbs or ALL_VERBS)

    @property
    def api_version(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    @property
    def gv(self):
        return self.api_version

    @property
    def gr(self):
        return "%s.%s" % (self.name, self.group) if self.group else self.name

    def discovery(self):
        out = [{"name": self.name, "singularName": self.singular,
                "namespaced": self.namespaced, "kind": self.kind, "verbs": self.verbs}]
        if self.short_names:
            out[0]["shortNames"] = self.short_names
        if self.categories:
            out[0]["categories"] = self.categories
        out[0]["storageVersionHash"] = base64.b64encode(
            uuid.uuid5(uuid.NAMESPACE_URL, self.gr).bytes[:8]).decode()
        for sub in self.subresources:
            e = {"name": "%s/%s" % (self.name, sub), "singularName": "",
                 "namespaced": self.namespaced}
            if sub == "scale":
                e.update(group="autoscaling", version="v1", kind="Scale",
                         verbs=["get", "patch", "update"])
            elif sub == "binding":
                e.update(kind="Binding", verbs=["create"])
            else:
                e.update(kind=self.kind, verbs=["get", "patch", "update"])
            out.append(e)
        return out


# events.k8s.io/v1 <-> core/v1 Event (one storage, two views, as the real one)
_EV_TO_CORE = {"regarding": "involvedObject", "note": "message",
               "reportingController": "reportingComponent", "deprecatedSource": "source",
               "deprecatedFirstTimestamp": "firstTimestamp",
               "deprecatedLastTimestamp": "lastTimestamp", "deprecatedCount": "count"}
_CORE_TO_EV = {v: k for k, v in _EV_TO_CORE.items()}


def _core_event_defaults(o):
    o.setdefault("source", {})
    o.setdefault("firstTimestamp", None)
    o.setdefault("lastTimestamp", None)
    o.setdefault("eventTime", None)
    o.setdefault("reportingComponent", "")
    o.setdefault("reportingInstance", "")


def _ev_to_core(o):
    out = {_EV_TO_CORE.get(k, k): v for k, v in o.items()}
    _core_event_defaults(out)
    return out


def _core_to_ev(o):
    out = {}
    for k, v in o.items():
        k2 = _CORE_TO_EV.get(k, k)
        if k2.startswith("deprecated") and v in (None, {}, 0, ""):
            continue
        if k2 in ("reportingController", "reportingInstance") and v == "":
            continue
        out[k2] = v
    out.setdefault("eventTime", None)
    return out


def _workload_defaults(o):
    spec = o.get("spec")
    if not isinstance(spec, dict):
        spec = {}
    if "replicas" not in spec:
        o["spec"] = dict([("replicas", 1)] + list(spec.items()))
    o.setdefault("status", {})


def _pod_defaults(o):
    o.setdefault("status", {"phase": "Pending"})


def _namespace_defaults(o):
    meta = o["metadata"]
    labels = meta.setdefault("labels", {})
    labels.setdefault("kubernetes.io/metadata.name", meta["name"])
    o.setdefault("spec", {"finalizers": ["kubernetes"]})
    o.setdefault("status", {"phase": "Active"})


def _secret_defaults(o):
    sd = o.pop("stringData", None)
    if isinstance(sd, dict):
        data = o.setdefault("data", {})
        for k, v in sd.items():
            data[k] = base64.b64encode(str(v).encode()).decode()
    o.setdefault("type", "Opaque")


def builtin_resources():
    return [
        Resource("", "v1", "pods", "Pod", short_names=["po"], categories=["all"],
                 subresources=["status", "binding"], defaults=_pod_defaults,
                 return_deleted=True),
        Resource("", "v1", "configmaps", "ConfigMap", short_names=["cm"]),
        Resource("", "v1", "secrets", "Secret", defaults=_secret_defaults),
        Resource("", "v1", "events", "Event", short_names=["ev"],
                 defaults=_core_event_defaults),
        Resource("", "v1", "namespaces", "Namespace", namespaced=False, short_names=["ns"],
                 subresources=["status"], defaults=_namespace_defaults),
        Resource("", "v1", "nodes", "Node", namespaced=False, short_names=["no"],
                 subresources=["status"]),
        Resource("", "v1", "services", "Service", short_names=["svc"], categories=["all"],
                 subresources=["status"]),
        Resource("apps", "v1", "deployments", "Deployment", short_names=["deploy"],
                 categories=["all"], subresources=["scale", "status"], generation=True,
                 defaults=_workload_defaults),
        Resource("apps", "v1", "replicasets", "ReplicaSet", short_names=["rs"],
                 categories=["all"], subresources=["scale", "status"], generation=True,
                 defaults=_workload_defaults),
        Resource("coordination.k8s.io", "v1", "leases", "Lease"),
        Resource("events.k8s.io", "v1", "events", "Event", short_names=["ev"],
                 storage=("", "events"), to_storage=_ev_to_core, from_storage=_core_to_ev),
    ]


# ---------------------------------------------------------------- selectors

def _split_top(s):
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def parse_label_selector(s):
    reqs = []
    for part in _split_top(s or ""):
        m = re.match(r"^([^\s!=()]+)\s+(in|notin)\s+\((.*)\)$", part)
        if m:
            vals = {v.strip() for v in m.group(3).split(",") if v.strip()}
            reqs.append((m.group(1), m.group(2), vals))
            continue
        if part.startswith("!"):
            reqs.append((part[1:].strip(), "!exists", None))
            continue
        for op, norm in (("==", "="), ("!=", "!="), ("=", "=")):
            if op in part:
                k, v = part.split(op, 1)
                k, v = k.strip(), v.strip()
                if not k or re.search(r"[\s()!=]", k) or re.search(r"[\s()!=,]", v):
                    raise bad_request("unable to parse requirement: invalid label selector %r" % s)
                reqs.append((k, norm, v))
                break
        else:
            if re.search(r"[\s()!=]", part):
                raise bad_request("unable to parse requirement: invalid label selector %r" % s)
            reqs.append((part, "exists", None))
    return reqs


def label_match(reqs, obj):
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for k, op, v in reqs:
        have = labels.get(k)
        if op == "=" and have != v:
            return False
        if op == "!=" and have == v:
            return False
        if op == "in" and (k not in labels or have not in v):
            return False
        if op == "notin" and k in labels and have in v:
            return False
        if op == "exists" and k not in labels:
            return False
        if op == "!exists" and k in labels:
            return False
    return True


def parse_field_selector(s):
    reqs = []
    for part in _split_top(s or ""):
        for op, norm in (("==", "="), ("!=", "!="), ("=", "=")):
            if op in part:
                k, v = part.split(op, 1)
                reqs.append((k.strip(), norm, v.strip()))
                break
        else:
            raise bad_request('invalid selector: \'%s\'; can\'t understand \'%s\'' % (s, part))
    return reqs


def _field_value(obj, path):
    cur = obj
    for p in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(p)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def field_match(reqs, obj):
    for k, op, v in reqs:
        have = _field_value(obj, k)
        if (op == "=") != (have == v):
            return False
    return True


# ---------------------------------------------------------------- patches

def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return _jcopy(patch)
    target = _jcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = merge_patch(target.get(k), v)
    return target


_SMP_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name",
             "volumes": "name", "env": "name", "volumeMounts": "mountPath",
             "volumeDevices": "devicePath", "conditions": "type", "imagePullSecrets": "name",
             "ownerReferences": "uid", "containerStatuses": "name",
             "initContainerStatuses": "name", "ephemeralContainerStatuses": "name",
             "hostAliases": "ip", "podIPs": "ip", "hostIPs": "ip",
             "topologySpreadConstraints": "topologyKey", "resourceClaims": "name",
             "addresses": "type", "taints": "key"}
_SMP_SETS = {"finalizers"}


def _smp_key(field, *lists):
    if field == "ports":
        for lst in lists:
            for e in lst or []:
                if isinstance(e, dict):
                    return "containerPort" if "containerPort" in e else "port"
        return None
    return _SMP_KEYS.get(field)


def _strip_directives(v):
    if isinstance(v, dict):
        return {k: _strip_directives(x) for k, x in v.items() if not k.startswith("$")}
    if isinstance(v, list):
        return [_strip_directives(x) for x in v
                if not (isinstance(x, dict) and set(x) == {"$patch"})]
    return v


def strategic_merge_patch(target, patch):
    """Strategic merge patch, enough of it for kubectl and kubelets: lists of
    known fields merged by their merge key, $patch (replace/delete),
    $setElementOrder, $deleteFromPrimitiveList, $retainKeys; other lists
    replaced; null deletes."""
    if not isinstance(patch, dict):
        return _jcopy(patch)
    if patch.get("$patch") == "replace":
        return _strip_directives(patch)
    if patch.get("$patch") == "delete":
        return None
    target = _jcopy(target) if isinstance(target, dict) else {}
    orders = {}
    for k, v in patch.items():
        if k.startswith("$setElementOrder/"):
            orders[k[len("$setElementOrder/"):]] = v
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            f = k[len("$deleteFromPrimitiveList/"):]
            if isinstance(target.get(f), list):
                target[f] = [x for x in target[f] if x not in (v or [])]
            continue
        if k.startswith("$"):
            continue
        if v is None:
            target.pop(k, None)
            continue
        cur = target.get(k)
        if isinstance(v, list):
            key = _smp_key(k, v, cur if isinstance(cur, list) else [])
            if any(isinstance(e, dict) and e.get("$patch") == "replace" for e in v):
                target[k] = _strip_directives(v)
            elif key and isinstance(cur, list):
                target[k] = _merge_list(cur, v, key)
            elif k in _SMP_SETS and isinstance(cur, list):
                target[k] = cur + [x for x in v if x not in cur]
            else:
                target[k] = _strip_directives(v)
        elif isinstance(v, dict):
            res = strategic_merge_patch(cur, v)
            if res is None:
                target.pop(k, None)
            else:
                target[k] = res
        else:
            target[k] = v
    for f, order in orders.items():
        cur = target.get(f)
        if not isinstance(cur, list) or not isinstance(order, list):
            continue
        key = _smp_key(f, order, cur)

        def ident(e, key=key):
            return e.get(key) if key and isinstance(e, dict) else _dumps(e)
        pos = {ident(e): i for i, e in enumerate(order)}
        target[f] = sorted(cur, key=lambda e: pos.get(ident(e), len(pos)))
    if isinstance(patch.get("$retainKeys"), list):
        keep = set(patch["$retainKeys"])
        target = {k: v for k, v in target.items() if k in keep}
    return target


def _merge_list(cur, items, key):
    out = _jcopy(cur)
    for item in items:
        if isinstance(item, dict) and key in item:
            idx = next((i for i, e in enumerate(out)
                        if isinstance(e, dict) and e.get(key) == item[key]), None)
            if item.get("$patch") == "delete":
                if idx is not None:
                    del out[idx]
            elif idx is None:
                out.append(_strip_directives(item))
            else:
                out[idx] = strategic_merge_patch(out[idx], item)
        elif item not in out:
            out.append(_strip_directives(item))
    return out


def _ptr(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError("invalid JSON pointer %r" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _ptr_parent(doc, path):
    toks = _ptr(path)
    if not toks:
        raise ValueError("cannot address the document root")
    cur = doc
    for t in toks[:-1]:
        if isinstance(cur, list):
            cur = cur[int(t)]
        elif isinstance(cur, dict):
            if t not in cur:
                raise ValueError("doc is missing path: %s" % path)
            cur = cur[t]
        else:
            raise ValueError("doc is missing path: %s" % path)
    return cur, toks[-1]


def _ptr_get(doc, path):
    cur = doc
    for t in _ptr(path):
        if isinstance(cur, list):
            cur = cur[int(t)]
        elif isinstance(cur, dict) and t in cur:
            cur = cur[t]
        else:
            raise ValueError("doc is missing path: %s" % path)
    return cur


def json_patch(doc, ops):
    """RFC 6902 JSON patch: add, remove, replace, move, copy, test."""
    doc = _jcopy(doc)
    if not isinstance(ops, list):
        raise ValueError("a JSON patch must be an array of operations")

    def add(path, value):
        parent, k = _ptr_parent(doc, path)
        if isinstance(parent, list):
            if k == "-":
                parent.append(value)
            else:
                i = int(k)
                if i < 0 or i > len(parent):
                    raise ValueError("index out of range: %s" % path)
                parent.insert(i, value)
        elif isinstance(parent, dict):
            parent[k] = value
        else:
            raise ValueError("doc is missing path: %s" % path)

    def remove(path):
        parent, k = _ptr_parent(doc, path)
        if isinstance(parent, list):
            del parent[int(k)]
        elif isinstance(parent, dict) and k in parent:
            del parent[k]
        else:
            raise ValueError("unable to remove nonexistent key: %s" % path)

    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ValueError("invalid JSON patch operation %r" % (op,))
        o, path = op["op"], op["path"]
        try:
            if o == "add":
                add(path, _jcopy(op.get("value")))
            elif o == "remove":
                remove(path)
            elif o == "replace":
                _ptr_get(doc, path)
                remove(path)
                add(path, _jcopy(op.get("value")))
            elif o == "move":
                v = _ptr_get(doc, op["from"])
                remove(op["from"])
                add(path, v)
            elif o == "copy":
                add(path, _jcopy(_ptr_get(doc, op["from"])))
            elif o == "test":
                if _ptr_get(doc, path) != op.get("value"):
                    raise ValueError("testing value %s failed" % path)
            else:
                raise ValueError("unexpected kind of operation: %s" % o)
        except (IndexError, KeyError, TypeError) as e:
            raise ValueError("%s operation does not apply: %s (%s)" % (o, path, e))
    return doc


# ---------------------------------------------------------------- helpers

def _order_meta(meta):
    out = {k: meta[k] for k in META_ORDER if k in meta}
    for k, v in meta.items():
        if k not in out:
            out[k] = v
    return out


def _rand_suffix(n=5):
    return "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(n))


_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def _age(ts):
    try:
        t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return "<unknown>"
    s = max(0, int((_now() - t).total_seconds()))
    if s < 120:
        return "%ds" % s
    if s < 7200:
        return "%dm" % (s // 60)
    if s < 172800:
        return "%dh" % (s // 3600)
    return "%dd" % (s // 86400)


def _bookmark_object(r, rv, initial_end=False):
    meta = {"resourceVersion": str(rv), "creationTimestamp": None}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    o = {"kind": r.kind, "apiVersion": r.api_version, "metadata": meta}
    if r.kind == "Pod":
        o.update(spec={"containers": None}, status={})
    elif r.kind in ("Deployment", "ReplicaSet"):
        o.update(spec={"selector": None, "template": {"metadata": {"creationTimestamp": None},
                                                      "spec": {"containers": None}}},
                 status={})
    return o


def _yaml_scalar(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, list):
        return "[]"
    return json.dumps(str(v))


def to_yaml(o, ind=0):
    """A small block-style YAML emitter (strings double-quoted)."""
    sp = "  " * ind
    out = []
    if isinstance(o, dict):
        for k, v in o.items():
            if isinstance(v, dict) and v:
                out.append("%s%s:" % (sp, k))
                out += to_yaml(v, ind + 1)
            elif isinstance(v, list) and v:
                out.append("%s%s:" % (sp, k))
                out += to_yaml(v, ind)
            else:
                out.append("%s%s: %s" % (sp, k, _yaml_scalar(v)))
    elif isinstance(o, list):
        for item in o:
            if isinstance(item, (dict, list)) and item:
                sub = to_yaml(item, ind + 1)
                out.append("%s- %s" % (sp, sub[0].lstrip()))
                out += sub[1:]
            else:
                out.append("%s- %s" % (sp, _yaml_scalar(item)))
    return out


# ---------------------------------------------------------------- protobuf request bodies
#
# kubectl's generators (`kubectl create deployment|configmap|secret|namespace|service`)
# POST their object as application/vnd.kubernetes.protobuf: the magic "k8s\0", then a
# runtime.Unknown {typeMeta=1 {apiVersion=1, kind=2}, raw=2, contentEncoding=3,
# contentType=4} whose raw bytes are the object's own message. The objects are decoded
# below into the JSON that the same client would have sent as JSON (the Go JSON encoding
# of the same struct), then go through the normal create/update path.

PB_MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    """A protobuf body that cannot be decoded; .code is 400 (malformed) or 415."""

    def __init__(self, code, msg):
        ValueError.__init__(self, msg)
        self.code = code


def _pb_varint(buf, i):
    result = shift = 0
    while True:
        if i >= len(buf):
            raise ProtobufError(400, "truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift >= 70:
            raise ProtobufError(400, "varint longer than 10 bytes")


def pb_fields(buf):
    """The fields of one protobuf message, in wire order: a list of (field number,
    wire type, value). The value is an int for varint (0), fixed64 (1) and fixed32 (5)
    fields and bytes for length-delimited (2) ones. Groups (3, 4) are refused."""
    out, i, n = [], 0, len(buf)
    while i < n:
        key, i = _pb_varint(buf, i)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise ProtobufError(400, "field number 0")
        if wt == 0:
            v, i = _pb_varint(buf, i)
        elif wt in (1, 5):
            w = 8 if wt == 1 else 4
            if i + w > n:
                raise ProtobufError(400, "truncated fixed%d field %d" % (w * 8, num))
            v = int.from_bytes(buf[i:i + w], "little")
            i += w
        elif wt == 2:
            ln, i = _pb_varint(buf, i)
            if i + ln > n:
                raise ProtobufError(400, "field %d: length %d runs past the end" % (num, ln))
            v = bytes(buf[i:i + ln])
            i += ln
        else:
            raise ProtobufError(400, "field %d: wire type %d is not supported" % (num, wt))
        out.append((num, wt, v))
    return out


def _pb_int(v, bits):
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


# Message schemas: (field number, JSON name, type, mode), in the Go struct order (which is
# the JSON order). Field numbers are those of Kubernetes' generated.proto files
# (k8s.io/api/{apps,core}/v1, k8s.io/apimachinery/pkg/apis/meta/v1, .../runtime,
# .../util/intstr, .../api/resource). Types: string, int32, int64, bool, time
# (meta/v1 Time {seconds=1, nanos=2}), quantity (Quantity {string=1}), intstr
# (IntOrString {type=1, intVal=2, strVal=3}), "map:<value type>" (repeated entries
# {key=1, value=2}), "[]<type>" (repeated), or a message name. Modes follow the Go JSON
# tags: "o" omitempty (left out when zero or empty), "r" no omitempty (always there,
# zero value when absent; nil slices/maps are null), "p" pointer with omitempty (there
# when on the wire, even if zero), "n" pointer without omitempty (null when absent),
# "s" non-pointer struct (always there: Go's omitempty never drops a struct).
# Fields that are not listed are skipped (and noted in ProtobufDecoder.skipped).
PB_SCHEMAS = {
    "ObjectMeta": [
        (1, "name", "string", "o"), (2, "generateName", "string", "o"),
        (3, "namespace", "string", "o"), (4, "selfLink", "string", "o"),
        (5, "uid", "string", "o"), (6, "resourceVersion", "string", "o"),
        (7, "generation", "int64", "o"), (8, "creationTimestamp", "time", "s"),
        (9, "deletionTimestamp", "time", "p"), (10, "deletionGracePeriodSeconds", "int64", "p"),
        (11, "labels", "map:string", "o"), (12, "annotations", "map:string", "o"),
        (13, "ownerReferences", "[]OwnerReference", "o"), (14, "finalizers", "[]string", "o"),
    ],
    "OwnerReference": [
        (5, "apiVersion", "string", "r"), (1, "kind", "string", "r"), (3, "name", "string", "r"),
        (4, "uid", "string", "r"), (6, "controller", "bool", "p"),
        (7, "blockOwnerDeletion", "bool", "p"),
    ],
    "LabelSelector": [
        (1, "matchLabels", "map:string", "o"),
        (2, "matchExpressions", "[]LabelSelectorRequirement", "o"),
    ],
    "LabelSelectorRequirement": [
        (1, "key", "string", "r"), (2, "operator", "string", "r"), (3, "values", "[]string", "o"),
    ],
    # apps/v1
    "Deployment": [
        (1, "metadata", "ObjectMeta", "s"), (2, "spec", "DeploymentSpec", "s"),
        (3, "status", "DeploymentStatus", "s"),
    ],
    "DeploymentSpec": [
        (1, "replicas", "int32", "p"), (2, "selector", "LabelSelector", "n"),
        (3, "template", "PodTemplateSpec", "s"), (4, "strategy", "DeploymentStrategy", "s"),
        (5, "minReadySeconds", "int32", "o"), (6, "revisionHistoryLimit", "int32", "p"),
        (7, "paused", "bool", "o"), (9, "progressDeadlineSeconds", "int32", "p"),
    ],
    "DeploymentStrategy": [
        (1, "type", "string", "o"), (2, "rollingUpdate", "RollingUpdateDeployment", "p"),
    ],
    "RollingUpdateDeployment": [
        (1, "maxUnavailable", "intstr", "p"), (2, "maxSurge", "intstr", "p"),
    ],
    "DeploymentStatus": [
        (1, "observedGeneration", "int64", "o"), (2, "replicas", "int32", "o"),
        (3, "updatedReplicas", "int32", "o"), (7, "readyReplicas", "int32", "o"),
        (4, "availableReplicas", "int32", "o"), (5, "unavailableReplicas", "int32", "o"),
        (6, "conditions", "[]DeploymentCondition", "o"), (8, "collisionCount", "int32", "p"),
    ],
    "DeploymentCondition": [
        (1, "type", "string", "r"), (2, "status", "string", "r"),
        (6, "lastUpdateTime", "time", "s"), (7, "lastTransitionTime", "time", "s"),
        (4, "reason", "string", "o"), (5, "message", "string", "o"),
    ],
    "ReplicaSet": [
        (1, "metadata", "ObjectMeta", "s"), (2, "spec", "ReplicaSetSpec", "s"),
        (3, "status", "ReplicaSetStatus", "s"),
    ],
    "ReplicaSetSpec": [
        (1, "replicas", "int32", "p"), (4, "minReadySeconds", "int32", "o"),
        (2, "selector", "LabelSelector", "n"), (3, "template", "PodTemplateSpec", "s"),
    ],
    "ReplicaSetStatus": [
        (1, "replicas", "int32", "r"), (2, "fullyLabeledReplicas", "int32", "o"),
        (4, "readyReplicas", "int32", "o"), (5, "availableReplicas", "int32", "o"),
        (3, "observedGeneration", "int64", "o"),
        (6, "conditions", "[]ReplicaSetCondition", "o"),
    ],
    "ReplicaSetCondition": [
        (1, "type", "string", "r"), (2, "status", "string", "r"),
        (3, "lastTransitionTime", "time", "s"), (4, "reason", "string", "o"),
        (5, "message", "string", "o"),
    ],
    # core/v1
    "PodTemplateSpec": [(1, "metadata", "ObjectMeta", "s"), (2, "spec", "PodSpec", "s")],
    "PodSpec": [
        (20, "initContainers", "[]Container", "o"), (2, "containers", "[]Container", "r"),
        (3, "restartPolicy", "string", "o"), (4, "terminationGracePeriodSeconds", "int64", "p"),
        (5, "activeDeadlineSeconds", "int64", "p"), (6, "dnsPolicy", "string", "o"),
        (7, "nodeSelector", "map:string", "o"), (8, "serviceAccountName", "string", "o"),
        (9, "serviceAccount", "string", "o"), (21, "automountServiceAccountToken", "bool", "p"),
        (10, "nodeName", "string", "o"), (11, "hostNetwork", "bool", "o"),
        (12, "hostPID", "bool", "o"), (13, "hostIPC", "bool", "o"),
        (27, "shareProcessNamespace", "bool", "p"),
        (15, "imagePullSecrets", "[]LocalObjectReference", "o"),
        (16, "hostname", "string", "o"), (17, "subdomain", "string", "o"),
        (19, "schedulerName", "string", "o"), (24, "priorityClassName", "string", "o"),
        (25, "priority", "int32", "p"), (29, "runtimeClassName", "string", "p"),
        (30, "enableServiceLinks", "bool", "p"), (31, "preemptionPolicy", "string", "p"),
        (32, "overhead", "map:quantity", "o"), (35, "setHostnameAsFQDN", "bool", "p"),
        (37, "hostUsers", "bool", "p"),
    ],
    "Container": [
        (1, "name", "string", "r"), (2, "image", "string", "o"), (3, "command", "[]string", "o"),
        (4, "args", "[]string", "o"), (5, "workingDir", "string", "o"),
        (6, "ports", "[]ContainerPort", "o"), (7, "env", "[]EnvVar", "o"),
        (8, "resources", "ResourceRequirements", "s"),
        (13, "terminationMessagePath", "string", "o"),
        (20, "terminationMessagePolicy", "string", "o"),
        (14, "imagePullPolicy", "string", "o"), (16, "stdin", "bool", "o"),
        (17, "stdinOnce", "bool", "o"), (18, "tty", "bool", "o"),
    ],
    "ContainerPort": [
        (1, "name", "string", "o"), (2, "hostPort", "int32", "o"),
        (3, "containerPort", "int32", "r"), (4, "protocol", "string", "o"),
        (5, "hostIP", "string", "o"),
    ],
    "EnvVar": [(1, "name", "string", "r"), (2, "value", "string", "o")],
    "ResourceRequirements": [
        (1, "limits", "map:quantity", "o"), (2, "requests", "map:quantity", "o"),
    ],
    "LocalObjectReference": [(1, "name", "string", "o")],
    "Pod": [
        (1, "metadata", "ObjectMeta", "s"), (2, "spec", "PodSpec", "s"),
        (3, "status", "PodStatus", "s"),
    ],
    "PodStatus": [
        (1, "phase", "string", "o"), (3, "message", "string", "o"), (4, "reason", "string", "o"),
        (11, "nominatedNodeName", "string", "o"), (5, "hostIP", "string", "o"),
        (6, "podIP", "string", "o"), (7, "startTime", "time", "p"),
        (9, "qosClass", "string", "o"),
    ],
    "ConfigMap": [
        (1, "metadata", "ObjectMeta", "s"), (4, "immutable", "bool", "p"),
        (2, "data", "map:string", "o"), (3, "binaryData", "map:bytes", "o"),
    ],
    "Secret": [
        (1, "metadata", "ObjectMeta", "s"), (5, "immutable", "bool", "p"),
        (2, "data", "map:bytes", "o"), (4, "stringData", "map:string", "o"),
        (3, "type", "string", "o"),
    ],
    "Namespace": [
        (1, "metadata", "ObjectMeta", "s"), (2, "spec", "NamespaceSpec", "s"),
        (3, "status", "NamespaceStatus", "s"),
    ],
    "NamespaceSpec": [(1, "finalizers", "[]string", "o")],
    "NamespaceStatus": [(1, "phase", "string", "o")],
    "Service": [
        (1, "metadata", "ObjectMeta", "s"), (2, "spec", "ServiceSpec", "s"),
        (3, "status", "ServiceStatus", "s"),
    ],
    "ServiceSpec": [
        (1, "ports", "[]ServicePort", "o"), (2, "selector", "map:string", "o"),
        (3, "clusterIP", "string", "o"), (18, "clusterIPs", "[]string", "o"),
        (4, "type", "string", "o"), (5, "externalIPs", "[]string", "o"),
        (7, "sessionAffinity", "string", "o"), (8, "loadBalancerIP", "string", "o"),
        (9, "loadBalancerSourceRanges", "[]string", "o"), (10, "externalName", "string", "o"),
        (11, "externalTrafficPolicy", "string", "o"), (12, "healthCheckNodePort", "int32", "o"),
        (13, "publishNotReadyAddresses", "bool", "o"), (19, "ipFamilies", "[]string", "o"),
        (17, "ipFamilyPolicy", "string", "p"), (20, "allocateLoadBalancerNodePorts", "bool", "p"),
        (21, "loadBalancerClass", "string", "p"), (22, "internalTrafficPolicy", "string", "p"),
    ],
    "ServicePort": [
        (1, "name", "string", "o"), (2, "protocol", "string", "o"),
        (6, "appProtocol", "string", "p"), (3, "port", "int32", "r"),
        (4, "targetPort", "intstr", "s"), (5, "nodePort", "int32", "o"),
    ],
    "ServiceStatus": [(1, "loadBalancer", "LoadBalancerStatus", "s")],
    "LoadBalancerStatus": [(1, "ingress", "[]LoadBalancerIngress", "o")],
    "LoadBalancerIngress": [(1, "ip", "string", "o"), (2, "hostname", "string", "o")],
}

# (apiVersion, kind) of the objects that can be decoded -> their message
PB_KINDS = {("apps/v1", "Deployment"): "Deployment", ("apps/v1", "ReplicaSet"): "ReplicaSet",
            ("v1", "ConfigMap"): "ConfigMap", ("v1", "Secret"): "Secret",
            ("v1", "Namespace"): "Namespace", ("v1", "Service"): "Service",
            ("v1", "Pod"): "Pod"}
_PB_ZERO = {"string": "", "int32": 0, "int64": 0, "bool": False, "intstr": 0}
_PB_SCALAR_WIRE = {"string": 2, "bytes": 2, "int32": 0, "int64": 0, "bool": 0}


class ProtobufDecoder:
    """Decodes a Kubernetes protobuf body into the JSON dict of the same object.
    .skipped lists the fields that were on the wire but not decoded
    ("Message.number" paths), .type_meta the (apiVersion, kind) of the body."""

    def __init__(self):
        self.skipped = []
        self.type_meta = ("", "")

    def decode(self, body):
        if not body.startswith(PB_MAGIC):
            raise ProtobufError(400, "provided data does not appear to be a protobuf message, "
                                "expected prefix %r" % PB_MAGIC)
        av = kind = enc = ctype = ""
        raw = b""
        for num, wt, v in pb_fields(body[len(PB_MAGIC):]):
            if num == 1 and wt == 2:
                for n2, w2, v2 in pb_fields(v):
                    if n2 == 1 and w2 == 2:
                        av = self._str(v2, "TypeMeta.apiVersion")
                    elif n2 == 2 and w2 == 2:
                        kind = self._str(v2, "TypeMeta.kind")
            elif num == 2 and wt == 2:
                raw = v
            elif num == 3 and wt == 2:
                enc = self._str(v, "Unknown.contentEncoding")
            elif num == 4 and wt == 2:
                ctype = self._str(v, "Unknown.contentType")
        self.type_meta = (av, kind)
        if not kind:
            raise ProtobufError(400, "the protobuf body has no kind (runtime.Unknown typeMeta)")
        if enc or ctype not in ("", "application/vnd.kubernetes.protobuf"):
            raise ProtobufError(415, "the protobuf body's contentEncoding %r / contentType %r "
                                "is not supported by the fake apiserver" % (enc, ctype))
        msg = PB_KINDS.get((av, kind))
        if msg is None:
            known = ", ".join("%s %s" % k for k in sorted(PB_KINDS))
            raise ProtobufError(415, "the fake apiserver cannot decode protobuf bodies of %s "
                                "%s (it decodes %s); send it as application/json"
                                % (av or "<no apiVersion>", kind, known))
        out = {"kind": kind, "apiVersion": av}
        out.update(self.message(msg, raw))
        return out

    @staticmethod
    def _str(v, path):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtobufError(400, "%s is not valid UTF-8" % path)

    def message(self, name, buf):
        schema = PB_SCHEMAS[name]
        got = {}
        for num, wt, v in pb_fields(buf):
            got.setdefault(num, []).append((wt, v))
        known = set()
        out = {}
        for num, jname, typ, mode in schema:
            known.add(num)
            path = "%s.%s" % (name, jname)
            vals = got.get(num, [])
            if typ.startswith("[]") or typ.startswith("map:"):
                if typ.startswith("[]"):
                    v = self._repeated(typ[2:], vals, path)
                else:
                    v = self._map(typ[4:], vals, path)
                if v or mode == "r":
                    out[jname] = v or None
                continue
            if not vals:
                if mode == "r":
                    out[jname] = _PB_ZERO[typ]
                elif mode == "n" or (mode == "s" and typ == "time"):
                    out[jname] = None
                elif mode == "s":
                    out[jname] = self._single(typ, 2, b"", path)
                continue
            wt, raw = vals[-1]
            v = self._single(typ, wt, raw, path)
            if mode == "o" and v in ("", 0, False) and not isinstance(v, dict):
                continue
            out[jname] = v
        for num in got:
            if num not in known:
                self.skipped.append("%s.%d" % (name, num))
        return out

    def _single(self, typ, wt, raw, path):
        want = _PB_SCALAR_WIRE.get(typ, 2)
        if wt != want:
            raise ProtobufError(400, "%s: wire type %d, expected %d" % (path, wt, want))
        if typ == "string":
            return self._str(raw, path)
        if typ == "bytes":
            return base64.b64encode(raw).decode()
        if typ == "int32":
            return _pb_int(raw, 32)
        if typ == "int64":
            return _pb_int(raw, 64)
        if typ == "bool":
            return raw != 0
        if typ == "time":
            if not raw:         # a zero metav1.Time is marshalled as no bytes
                return None
            secs = 0
            for n, w, v in pb_fields(raw):
                if n == 1 and w == 0:
                    secs = _pb_int(v, 64)
            t = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + \
                datetime.timedelta(seconds=secs)
            return t.strftime("%Y-%m-%dT%H:%M:%SZ")      # nanos are dropped, as Go does
        if typ == "quantity":
            s = ""
            for n, w, v in pb_fields(raw):
                if n == 1 and w == 2:
                    s = self._str(v, path)
            return s
        if typ == "intstr":
            t, i, s = 0, 0, ""
            for n, w, v in pb_fields(raw):
                if n == 1 and w == 0:
                    t = _pb_int(v, 64)
                elif n == 2 and w == 0:
                    i = _pb_int(v, 32)
                elif n == 3 and w == 2:
                    s = self._str(v, path)
            return s if t == 1 else i
        return self.message(typ, raw)

    def _repeated(self, typ, vals, path):
        out = []
        for wt, raw in vals:
            if wt == 2 and typ in ("int32", "int64", "bool"):      # packed
                i = 0
                while i < len(raw):
                    x, i = _pb_varint(raw, i)
                    out.append(self._single(typ, 0, x, path))
            else:
                out.append(self._single(typ, wt, raw, path))
        return out

    def _map(self, vtyp, vals, path):
        m = {}
        for wt, raw in vals:
            if wt != 2:
                raise ProtobufError(400, "%s: a map entry must be length-delimited" % path)
            k, v = "", None
            for n, w, x in pb_fields(raw):
                if n == 1:
                    k = self._single("string", w, x, path + ".key")
                elif n == 2:
                    v = self._single(vtyp, w, x, path + "[%s]" % k)
            if v is None:
                v = {"quantity": "0", "int32": 0}.get(vtyp, "")
            m[k] = v
        return {k: m[k] for k in sorted(m)}      # Go writes map keys sorted


def decode_protobuf(body):
    """The JSON dict of a Kubernetes protobuf body (see ProtobufDecoder)."""
    return ProtobufDecoder().decode(body)


_KUBECONFIGS = {}   # abspath -> {"clusters":{}, "users":{}, "contexts":{}, "current": str}


class _Req:
    """One request, from HTTP or from a direct method."""

    def __init__(self, method, path, raw_query="", headers=None, body=b"", ip="127.0.0.1",
                 user=None, groups=None):
        self.method = method.upper()
        self.path = path
        self.raw_query = raw_query
        qs = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
        self.query = {k: v[0] for k, v in qs.items()}
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}
        self.body = body or b""
        self.ip = ip
        self.received = _now()
        self.audit_id = str(uuid.uuid4())
        name = self.headers.get("x-fake-user") or user or DEFAULT_USER
        if self.headers.get("x-fake-groups") is not None:
            grp = [g.strip() for g in self.headers["x-fake-groups"].split(",") if g.strip()]
        elif groups is not None:
            grp = list(groups)
        elif name == DEFAULT_USER:
            grp = list(DEFAULT_GROUPS)
        elif name.startswith("system:serviceaccount:"):
            ns = name.split(":")[2]
            grp = ["system:serviceaccounts", "system:serviceaccounts:" + ns,
                   "system:authenticated"]
        elif name.startswith("system:node:"):
            grp = ["system:nodes", "system:authenticated"]
        else:
            grp = ["system:authenticated"]
        self.user = {"username": name, "groups": grp}
        self.obj = None          # the decoded body, when JSON

    @property
    def uri(self):
        return self.path + ("?" + self.raw_query if self.raw_query else "")

    def ctype(self):
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


class _Resp:
    def __init__(self, code, obj=None, raw=None, ctype="application/json", headers=None):
        self.code, self.obj, self.raw, self.ctype = code, obj, raw, ctype
        self.headers = headers or {}

    def body(self):
        if self.raw is not None:
            return self.raw
        return (_dumps(self.obj) + "\n").encode()


class _WatchPlan:
    def __init__(self, r, ns, req, fmt):
        self.r, self.ns, self.req, self.fmt = r, ns, req, fmt


class _Watcher:
    def __init__(self, srv, r, ns, lsel, fsel, name):
        self.srv, self.r, self.ns, self.lsel, self.fsel = srv, r, ns, lsel, fsel
        self.name = name
        self.q = queue.Queue(WATCH_QUEUE_LIMIT)
        self.overflow = False
        self.close_mode = None   # None, "clean", "abrupt"

    def matches(self, obj):
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        if self.ns is not None and meta.get("namespace") != self.ns:
            return False
        if self.name is not None and meta.get("name") != self.name:
            return False
        if self.lsel and not label_match(self.lsel, obj):
            return False
        if self.fsel:
            view = self.r.from_storage(obj) if self.r.from_storage else obj
            if not field_match(self.fsel, view):
                return False
        return True

    def translate(self, ev):
        rv, skey, etype, old, new = ev
        if skey != self.r.storage:
            return None
        if etype == "ADDED":
            return ("ADDED", new) if self.matches(new) else None
        if etype == "DELETED":
            return ("DELETED", new) if self.matches(old) else None
        mo, mn = self.matches(old), self.matches(new)
        if mo and mn:
            return ("MODIFIED", new)
        if mn:
            return ("ADDED", new)
        if mo:
            return ("DELETED", new)
        return None

    def offer(self, ev):          # called with the store lock held
        t = self.translate(ev)
        if t is None:
            return
        try:
            self.q.put_nowait(t)
        except queue.Full:
            self.overflow = True
            self.srv._watchers.discard(self)

    def close(self, mode):
        self.close_mode = mode
        try:
            self.q.put_nowait(None)
        except queue.Full:
            pass


# ---------------------------------------------------------------- audit

class _AuditSender(threading.Thread):
    """POSTs EventLists to the webhook in batches, from its own thread."""

    def __init__(self, url, batch_max=100, batch_wait=0.1, retries=4, limit=10000):
        super().__init__(daemon=True, name="fake-apiserver-audit")
        self.url, self.batch_max, self.batch_wait, self.retries = url, batch_max, batch_wait, retries
        self.q = queue.Queue(limit)
        self.cv = threading.Condition()
        self.pending = 0
        self.sent = self.dropped = self.batches = 0
        self.stopping = False
        self.ctx = ssl._create_unverified_context() if url.startswith("https") else None

    def put(self, ev):
        with self.cv:
            self.pending += 1
        try:
            self.q.put_nowait(ev)
        except queue.Full:
            with self.cv:
                self.pending -= 1
                self.dropped += 1
                self.cv.notify_all()

    def run(self):
        while True:
            try:
                first = self.q.get(timeout=0.1)
            except queue.Empty:
                if self.stopping:
                    return
                continue
            batch = [first]
            deadline = time.monotonic() + self.batch_wait
            while len(batch) < self.batch_max:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(self.q.get(timeout=left))
                except queue.Empty:
                    break
            ok = self._send(batch)
            with self.cv:
                if ok:
                    self.sent += len(batch)
                    self.batches += 1
                else:
                    self.dropped += len(batch)
                self.pending -= len(batch)
                self.cv.notify_all()

    def _send(self, batch):
        body = _dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1",
                       "metadata": {}, "items": batch}).encode()
        delay = 0.05
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(delay)
                delay *= 2
            req = urllib.request.Request(self.url, data=body, method="POST", headers={
                "Content-Type": "application/json", "Accept": "application/json, */*",
                "User-Agent": "kube-apiserver-admission"})
            try:
                with urllib.request.urlopen(req, timeout=5, context=self.ctx) as r:
                    r.read()
                    return True
            except urllib.error.HTTPError as e:
                e.read()
                if e.code not in (429, 500, 502, 503, 504):
                    return False
            except (OSError, urllib.error.URLError):
                pass
        return False

    def flush(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self.cv:
            while self.pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cv.wait(left)
        return True


# ---------------------------------------------------------------- HTTP

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def finish_request(self, request, client_address):
        fake = self.fake
        sock = request
        try:
            if fake._ssl_ctx is not None:
                request.settimeout(10)
                sock = fake._ssl_ctx.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError, ValueError):
            try:
                request.close()
            except OSError:
                pass
            return
        with fake._lock:
            fake._conns.add(sock)
        try:
            self.RequestHandlerClass(sock, client_address, self)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            with fake._lock:
                fake._conns.discard(sock)
            if sock is not request:
                try:
                    sock.close()
                except OSError:
                    pass

    def handle_error(self, request, client_address):
        if self.fake.verbose:
            traceback.print_exc()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-apiserver"
    sys_version = ""
    timeout = 120

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        if self.server.fake.verbose:
            sys.stderr.write("fake-apiserver: %s\n" % (fmt % args))

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            data = b""
            while True:
                line = self.rfile.readline(1024)
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                if len(data) + n > MAX_BODY:
                    return None
                data += self.rfile.read(n)
                self.rfile.readline(16)
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            if n <= 8 * MAX_BODY:      # drain it so that the client reads our 413
                left = n
                while left > 0:
                    got = self.rfile.read(min(left, 1 << 16))
                    if not got:
                        break
                    left -= len(got)
            return None
        return self.rfile.read(n) if n > 0 else b""

    def _identity(self, fake, path):
        """(user, groups) when authenticated, None when not."""
        need = fake.token is not None or fake.client_cert_auth
        cert_user = None
        if fake.client_cert_auth and isinstance(self.connection, ssl.SSLSocket):
            cert = self.connection.getpeercert()
            if cert:
                cn, orgs = None, []
                for rdn in cert.get("subject", ()):
                    for k, v in rdn:
                        if k == "commonName":
                            cn = v
                        elif k == "organizationName":
                            orgs.append(v)
                if cn:
                    cert_user = (cn, orgs + ["system:authenticated"])
        if cert_user:
            return cert_user
        auth = self.headers.get("Authorization") or ""
        if fake.token is not None and auth == "Bearer " + fake.token:
            return (None, None)
        if not need or path in ("/healthz", "/readyz", "/livez", "/version") \
                or path.startswith(("/healthz/", "/readyz/", "/livez/")):
            return (None, None)
        return None

    def _serve(self):
        fake = self.server.fake
        u = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(u.path)
        body = self._read_body()
        fake._record(self.command, path, u.query, self.headers, body)
        if body is None:
            self.close_connection = True
            self._send(_Resp(413, status_obj(413, "RequestEntityTooLarge",
                                             "the request body exceeds %d bytes" % MAX_BODY)))
            return
        ident = self._identity(fake, path)
        if ident is None:
            self._send(_Resp(401, status_obj(401, "Unauthorized", "Unauthorized")))
            return
        req = _Req(self.command, path, u.query, dict(self.headers.items()), body,
                   self.client_address[0], ident[0], ident[1])
        injected = fake._take_injected(req)
        resp = injected or fake._dispatch(req)
        if isinstance(resp, _WatchPlan):
            self._watch(fake, resp)
        else:
            self._send(resp, req)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def _send(self, resp, req=None):
        body = resp.body()
        self.send_response(resp.code)
        self.send_header("Content-Type", resp.ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        if req is not None:
            self.send_header("Audit-Id", req.audit_id)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _event(self, fake, plan, etype, obj):
        if etype in ("ADDED", "MODIFIED", "DELETED"):
            obj = fake._format_one(plan.r, obj, plan.fmt, plan.req)
        self._chunk((_dumps({"type": etype, "object": obj}) + "\n").encode())

    def _client_gone(self):
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
        except (OSError, ValueError):
            return True
        if not r:
            return False
        if isinstance(self.connection, ssl.SSLSocket):
            return True     # a watching client sends nothing: readable means closed
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _watch(self, fake, plan):
        req = plan.req
        try:
            w, initial, err = fake._watch_register(plan)
        except ApiError as e:
            self._send(_Resp(e.code, e.status), req)
            return
        if err is not None and fake.expired_http_410:
            self._send(_Resp(410, err.status), req)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", req.audit_id)
        self.end_headers()
        if err is not None:
            self._chunk((_dumps({"type": "ERROR", "object": err.status}) + "\n").encode())
            self._chunk(b"")
            return
        self.connection.settimeout(10)
        bookmarks = req.query.get("allowWatchBookmarks") in ("true", "1")
        try:
            timeout = float(req.query.get("timeoutSeconds") or 0)
        except ValueError:
            timeout = 0
        deadline = time.monotonic() + timeout if timeout > 0 else None
        interval = fake.bookmark_interval
        next_bm = time.monotonic() + interval
        abrupt = False
        try:
            for etype, obj in initial:
                self._event(fake, plan, etype, obj)
            if bookmarks and req.query.get("sendInitialEvents") == "true":
                self._chunk((_dumps({"type": "BOOKMARK", "object": _bookmark_object(
                    plan.r, w.start_rv, True)}) + "\n").encode())
            while True:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                wait = 0.5
                if deadline is not None:
                    wait = min(wait, deadline - now)
                if bookmarks:
                    wait = min(wait, max(0.0, next_bm - now))
                try:
                    item = w.q.get(timeout=max(0.0, wait))
                except queue.Empty:
                    item = False
                if item is None or w.overflow:
                    abrupt = w.close_mode == "abrupt"
                    break
                if item is False:
                    if self._client_gone():
                        abrupt = True
                        break
                    if bookmarks and time.monotonic() >= next_bm:
                        rv = fake._bookmark_rv(w)
                        if rv is not None:
                            self._chunk((_dumps({"type": "BOOKMARK", "object": _bookmark_object(
                                plan.r, rv)}) + "\n").encode())
                        next_bm = time.monotonic() + interval
                    continue
                self._event(fake, plan, item[0], item[1])
            if abrupt:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            else:
                self._chunk(b"")
        except (OSError, ssl.SSLError, ValueError):
            self.close_connection = True
        finally:
            fake._watch_unregister(w)


# ---------------------------------------------------------------- the server

class FakeApiserver:
    """A fake kube-apiserver. See the module doc and
    docs/internals/fake_apiserver.md."""

    def __init__(self, tls=False, token=None, audit_webhook=None, bookmark_interval=1.0,
                 host="127.0.0.1", port=0, client_cert_auth=False, audit_log=None,
                 expired_http_410=False, history_limit=HISTORY_LIMIT, garbage_collect=True,
                 strict_namespaces=False, audit_batch_max=100, audit_batch_wait=0.1,
                 verbose=False):
        self.tls, self.token, self.host, self.port = tls, token, host, port
        self.client_cert_auth = client_cert_auth
        self.audit_webhook, self.audit_log = audit_webhook, audit_log
        self.bookmark_interval = bookmark_interval
        self.expired_http_410 = expired_http_410
        self.history_limit = history_limit
        self.garbage_collect = garbage_collect
        self.strict_namespaces = strict_namespaces
        self.verbose = verbose
        self._audit_batch = (audit_batch_max, audit_batch_wait)
        self._lock = threading.RLock()
        self._resources = []
        for r in builtin_resources():
            self._add(r)
        self._objects = collections.defaultdict(dict)   # storage key -> {(ns, name): obj}
        self._rv = 1
        self._min_rv = 1
        self._history = collections.deque()
        self._watchers = set()
        self._snapshots = collections.OrderedDict()
        self._gc_pending = []
        self._injected = []
        self._conns = set()
        self.requests = []        # (method, path, query dict) of every HTTP request
        self.request_log = []     # dicts with method, path, query, headers, body
        self.protobuf_skipped = []  # "Message.fieldnumber" of protobuf fields not decoded
        self.audit_events = []    # every audit event built (bounded)
        self._audit_sender = None
        self._audit_log_lock = threading.Lock()
        self._httpd = None
        self._thread = None
        self._ssl_ctx = None
        self.certdir = None
        self.ca_file = self.cert_file = self.key_file = None
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self._seed("namespaces", None, {"metadata": {"name": ns}})

    # ------------------------------------------------ lifecycle

    @property
    def url(self):
        return "%s://%s:%d" % ("https" if self.tls else "http", self.host, self.port)

    def start(self):
        """Starts serving (again, on the same port after stop()); returns self."""
        if self.tls and self._ssl_ctx is None:
            self._make_certs()
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cert_file, self.key_file)
            ctx.set_alpn_protocols(["http/1.1"])
            if self.client_cert_auth:
                ctx.verify_mode = ssl.CERT_OPTIONAL
                ctx.load_verify_locations(self.ca_file)
            self._ssl_ctx = ctx
        self._httpd = _Server((self.host, self.port), _Handler)
        self._httpd.fake = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True,
                                        name="fake-apiserver")
        self._thread.start()
        if self.audit_webhook and self._audit_sender is None:
            self._audit_sender = _AuditSender(self.audit_webhook, *self._audit_batch)
            self._audit_sender.start()
        return self

    def stop(self, flush_audit=2.0):
        """Stops serving: ends watches, drops open connections, flushes the
        audit webhook (up to flush_audit seconds). The store is kept."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self.close_watches("clean")
            time.sleep(0.05)
            with self._lock:
                conns = list(self._conns)
            for c in conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._httpd.server_close()
            self._httpd = None
        if self._audit_sender is not None:
            self._audit_sender.flush(flush_audit)
            self._audit_sender.stopping = True
            self._audit_sender.join(2)
            self._audit_sender = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def cleanup(self):
        """Removes the certificate directory."""
        if self.certdir:
            shutil.rmtree(self.certdir, ignore_errors=True)

    # ------------------------------------------------ TLS material

    def _openssl(self, *args):
        subprocess.run(("openssl",) + args, cwd=self.certdir, check=True,
                       capture_output=True, timeout=30)

    def _make_certs(self):
        self.certdir = tempfile.mkdtemp(prefix="fake-apiserver-")
        ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
        self._openssl("req", "-x509", *ec, "-days", "3", "-subj", "/CN=fake-apiserver-ca",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                      "-keyout", "ca.key", "-out", "ca.crt")
        with open(os.path.join(self.certdir, "server.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost,DNS:kubernetes,"
                    "DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n"
                    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n")
        self._openssl("req", *ec, "-subj", "/CN=kube-apiserver", "-keyout", "server.key",
                      "-out", "server.csr")
        self._openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                      "-CAcreateserial", "-days", "3", "-out", "server.crt",
                      "-extfile", "server.ext")
        self.ca_file = os.path.join(self.certdir, "ca.crt")
        self.cert_file = os.path.join(self.certdir, "server.crt")
        self.key_file = os.path.join(self.certdir, "server.key")

    def client_cert(self, user=DEFAULT_USER, groups=("system:masters",)):
        """A client certificate signed by the server's CA: (cert_path, key_path).
        The server accepts it when constructed with client_cert_auth=True."""
        if self.certdir is None:
            self._make_certs()
        base = "client-" + re.sub(r"[^A-Za-z0-9_.-]", "_", user)
        ext = os.path.join(self.certdir, base + ".ext")
        with open(ext, "w") as f:
            f.write("extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=digitalSignature,keyEncipherment\n")
        subj = "".join("/O=%s" % g for g in groups) + "/CN=%s" % user
        self._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-nodes", "-subj", subj, "-keyout", base + ".key", "-out", base + ".csr")
        self._openssl("x509", "-req", "-in", base + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                      "-CAcreateserial", "-days", "3", "-out", base + ".crt", "-extfile", ext)
        return os.path.join(self.certdir, base + ".crt"), os.path.join(self.certdir, base + ".key")

    # ------------------------------------------------ kubeconfig

    def kubeconfig_entries(self, context="fake", token=None, client_cert=False, insecure=False,
                           namespace="default", embed=True, token_file=None, base_dir=None):
        """The (cluster, user, context) entries of a kubeconfig for this server."""
        cluster = {"server": self.url}
        if self.tls:
            if insecure:
                cluster["insecure-skip-tls-verify"] = True
            elif embed:
                with open(self.ca_file, "rb") as f:
                    cluster["certificate-authority-data"] = base64.b64encode(f.read()).decode()
            else:
                cluster["certificate-authority"] = self._place(self.ca_file, base_dir,
                                                               context + "-ca.crt")
        user = {}
        tok = self.token if token is None else token
        if tok and token_file:
            with open(token_file, "w") as f:
                f.write(tok)
            user["tokenFile"] = token_file
        elif tok:
            user["token"] = tok
        if client_cert:
            crt, key = self.client_cert()
            if embed:
                for k, p in (("client-certificate-data", crt), ("client-key-data", key)):
                    with open(p, "rb") as f:
                        user[k] = base64.b64encode(f.read()).decode()
            else:
                user["client-certificate"] = self._place(crt, base_dir, context + "-client.crt")
                user["client-key"] = self._place(key, base_dir, context + "-client.key")
        ctx = {"cluster": context, "user": context}
        if namespace:
            ctx["namespace"] = namespace
        return ({"name": context, "cluster": cluster}, {"name": context, "user": user},
                {"name": context, "context": ctx})

    @staticmethod
    def _place(src, base_dir, name):
        if base_dir is None:
            return src
        dst = os.path.join(base_dir, name)
        shutil.copyfile(src, dst)
        return name          # relative to the kubeconfig's directory

    def write_kubeconfig(self, path, context="fake", merge=False, current=True, **kw):
        """Writes a kubeconfig for this server with one context (cluster and
        user named like the context). merge=True keeps the contexts written to
        the same path before (by any FakeApiserver of this process), so several
        servers/contexts can share one file. Keyword arguments: token (default:
        the server's), client_cert=False, insecure=False, namespace="default",
        embed=True (False: CA and client cert as files next to the kubeconfig,
        referenced by relative paths), token_file=None (path: write the token
        there and reference it as tokenFile). Returns path."""
        path = os.path.abspath(path)
        if not kw.get("embed", True):
            kw["base_dir"] = os.path.dirname(path)
        cl, us, cx = self.kubeconfig_entries(context, **kw)
        cfg = _KUBECONFIGS.get(path) if merge else None
        if cfg is None:
            cfg = {"clusters": {}, "users": {}, "contexts": {}, "current": context}
        cfg["clusters"][context], cfg["users"][context], cfg["contexts"][context] = cl, us, cx
        if current:
            cfg["current"] = context
        _KUBECONFIGS[path] = cfg
        doc = {"apiVersion": "v1", "kind": "Config", "preferences": {},
               "clusters": list(cfg["clusters"].values()),
               "users": list(cfg["users"].values()),
               "contexts": list(cfg["contexts"].values()),
               "current-context": cfg["current"]}
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(to_yaml(doc)) + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        return path

    # ------------------------------------------------ resource table

    def _add(self, r):
        self._resources = [x for x in self._resources
                           if not (x.group == r.group and x.version == r.version
                                   and x.name == r.name)]
        self._resources.append(r)

    def add_resource(self, group, version, name, kind, namespaced=True, short_names=(),
                     singular=None, categories=(), subresources=("status",), generation=True):
        """Adds a resource type (e.g. a CRD's) at runtime; discovery shows it
        at once. Returns the Resource."""
        r = Resource(group, version, name, kind, namespaced=namespaced, singular=singular,
                     short_names=short_names, categories=categories,
                     subresources=subresources, generation=generation)
        with self._lock:
            self._add(r)
        return r

    def remove_resource(self, group, version, name):
        """Removes a resource type from discovery and routing (objects stay)."""
        with self._lock:
            self._resources = [x for x in self._resources
                               if not (x.group == group and x.version == version
                                       and x.name == name)]

    def _groups(self):
        """[(group, [versions])] in table order, core first."""
        out = collections.OrderedDict()
        for r in self._resources:
            out.setdefault(r.group, [])
            if r.version not in out[r.group]:
                out[r.group].append(r.version)
        return out

    def _lookup(self, group, version, name):
        for r in self._resources:
            if r.group == group and r.version == version and r.name == name:
                return r
        return None

    def resource(self, spec, group=None):
        """Finds a resource by plural, plural.group, short name, singular or
        Kind (case-insensitive); group narrows the search."""
        s = spec.lower()
        if "/" not in s and "." in s and group is None:
            s, group = s.split(".", 1)
        with self._lock:
            for r in self._resources:
                if group is not None and r.group != group:
                    continue
                if s in (r.name, r.singular, r.kind.lower()) or s in r.short_names:
                    return r
        raise KeyError("no resource %r" % spec)

    def _resource_for_obj(self, obj):
        av, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        group, _, version = av.rpartition("/")
        with self._lock:
            for r in self._resources:
                if r.group == group and r.version == version and r.kind == kind:
                    return r
        raise KeyError("no resource for %s %s" % (av, kind))

    # ------------------------------------------------ store primitives

    def _commit(self, r, etype, old, new):
        """Writes (under the lock): bumps the RV, stores, records history,
        notifies watchers. Returns the stored object."""
        self._rv += 1
        rv = str(self._rv)
        objs = self._objects[r.storage]
        if etype == "DELETED":
            obj = _jcopy(old)
            obj["metadata"]["resourceVersion"] = rv
            m = old["metadata"]
            objs.pop((m.get("namespace"), m["name"]), None)
            uid = m.get("uid")
            if uid and self.garbage_collect:
                self._gc_pending.append(uid)
        else:
            obj = new
            obj["metadata"]["resourceVersion"] = rv
            obj["metadata"] = _order_meta(obj["metadata"])
            m = obj["metadata"]
            objs[(m.get("namespace"), m["name"])] = obj
        ev = (self._rv, r.storage, etype, old, obj)
        self._history.append(ev)
        while len(self._history) > self.history_limit:
            self._min_rv = self._history.popleft()[0]
        for w in list(self._watchers):
            w.offer(ev)
        return obj

    def _seed(self, resource, ns, obj):
        r = self.resource(resource)
        with self._lock:
            self._create_locked(r, ns, obj, False)

    def _stored(self, r, ns, name):
        return self._objects[r.storage].get((ns if r.namespaced else None, name))

    def _to_storage(self, r, obj):
        o = _jcopy(obj)
        if r.to_storage:
            o = r.to_storage(o)
        o.pop("kind", None)
        o.pop("apiVersion", None)
        return o

    def view(self, r, obj, with_type=True):
        """The stored object as resource r shows it (kind/apiVersion first)."""
        o = _jcopy(obj)
        if r.from_storage:
            o = r.from_storage(o)
        out = {"kind": r.kind, "apiVersion": r.api_version} if with_type else {}
        for k, v in o.items():
            if k not in ("kind", "apiVersion"):
                out[k] = v
        return out

    def _check_type(self, r, obj, what="object"):
        if not isinstance(obj, dict):
            raise bad_request("the body of the request is not a JSON object")
        av, kind = obj.get("apiVersion"), obj.get("kind")
        if av and av != r.api_version:
            raise bad_request("the API version in the data (%s) does not match the expected "
                              "API version (%s)" % (av, r.api_version))
        if kind and kind != r.kind:
            raise bad_request("the kind in the data (%s) does not match the expected kind (%s)"
                              % (kind, r.kind))
        if not isinstance(obj.get("metadata", {}), dict):
            raise bad_request("metadata must be an object")

    # ------------------------------------------------ verbs (lock held by callers)

    def _create_locked(self, r, ns, body, dry_run):
        self._check_type(r, body)
        obj = self._to_storage(r, body)
        meta = obj.setdefault("metadata", {})
        if r.namespaced:
            if ns is None:
                ns = meta.get("namespace") or "default"
            if meta.get("namespace") and meta["namespace"] != ns:
                raise bad_request("the namespace of the provided object does not match the "
                                  "namespace sent on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        name = meta.get("name")
        if not name:
            gen = meta.get("generateName")
            if not gen:
                raise invalid(r, "", "metadata.name",
                              "Required value: name or generateName is required",
                              "FieldValueRequired")
            for _ in range(10):
                name = gen + _rand_suffix()
                if self._stored(r, ns, name) is None:
                    break
            meta["name"] = name
        if len(name) > 253 or not _NAME_RE.match(name):
            raise invalid(r, name, "metadata.name", 'Invalid value: "%s": a lowercase RFC 1123 '
                          "subdomain must consist of lower case alphanumeric characters, '-' "
                          "or '.'" % name)
        if r.namespaced and self.strict_namespaces and r.name != "namespaces":
            if self._objects[("", "namespaces")].get((None, ns)) is None:
                raise ApiError(404, "NotFound", 'namespaces "%s" not found' % ns,
                               {"name": ns, "kind": "namespaces"})
        if self._stored(r, ns, name) is not None:
            raise ApiError(409, "AlreadyExists", '%s "%s" already exists' % (r.gr, name),
                           _details(r, name))
        for k in ("resourceVersion", "selfLink", "managedFields", "deletionTimestamp",
                  "deletionGracePeriodSeconds"):
            meta.pop(k, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _ts()
        if r.generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if r.defaults:
            r.defaults(obj)
        if dry_run:
            obj["metadata"] = _order_meta(meta)
            return obj
        return self._commit(r, "ADDED", None, obj)

    def _update_locked(self, r, ns, name, body, sub, dry_run, allow_create=False):
        self._check_type(r, body)
        old = self._stored(r, ns, name)
        bmeta = body.get("metadata") or {}
        if bmeta.get("name") and bmeta["name"] != name:
            raise bad_request("the name of the object (%s) does not match the name on the URL "
                              "(%s)" % (bmeta["name"], name))
        if r.namespaced and bmeta.get("namespace") and bmeta["namespace"] != ns:
            raise bad_request("the namespace of the provided object does not match the "
                              "namespace sent on the request")
        if old is None:
            if allow_create and sub is None:
                b = _jcopy(body)
                b.setdefault("metadata", {})["name"] = name
                return self._create_locked(r, ns, b, dry_run), 201
            raise not_found(r, name)
        brv = bmeta.get("resourceVersion")
        if brv and brv != old["metadata"].get("resourceVersion"):
            raise conflict(r, name)
        if bmeta.get("uid") and bmeta["uid"] != old["metadata"].get("uid"):
            raise conflict(r, name, "Precondition failed: UID in precondition: %s, UID in "
                           "object meta: %s" % (bmeta["uid"], old["metadata"].get("uid")))
        new = self._to_storage(r, body)
        if sub == "status":
            st = new.get("status")
            new = _jcopy(old)
            if st is None:
                new.pop("status", None)
            else:
                new["status"] = st
        else:
            nmeta = new.setdefault("metadata", {})
            ometa = old["metadata"]
            for k in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "generation"):
                if k in ometa:
                    nmeta[k] = ometa[k]
                else:
                    nmeta.pop(k, None)
            for k in ("selfLink", "managedFields"):
                nmeta.pop(k, None)
            if ometa.get("deletionTimestamp") and nmeta.get("finalizers"):
                extra = set(nmeta["finalizers"]) - set(ometa.get("finalizers") or [])
                if extra:
                    raise ApiError(422, "Invalid", "no new finalizers can be added if the "
                                   "object is being deleted, found new finalizers %s"
                                   % sorted(extra))
            if "status" in r.subresources:
                if "status" in old:
                    new["status"] = _jcopy(old["status"])
                else:
                    new.pop("status", None)
            if r.defaults:
                r.defaults(new)
        new["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
        if r.generation and new.get("spec") != old.get("spec"):
            new["metadata"]["generation"] = int(old["metadata"].get("generation") or 0) + 1
        new["metadata"] = _order_meta(new["metadata"])
        if new == old:
            return old, 200           # no-op: no new resourceVersion, no watch event
        if dry_run:
            return new, 200
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self._commit(r, "MODIFIED", old, new)
            return self._commit(r, "DELETED", new, None), 200
        return self._commit(r, "MODIFIED", old, new), 200

    def _delete_locked(self, r, ns, name, opts, dry_run):
        old = self._stored(r, ns, name)
        if old is None:
            raise not_found(r, name)
        pre = (opts or {}).get("preconditions") or {}
        m = old["metadata"]
        if pre.get("uid") and pre["uid"] != m.get("uid"):
            raise conflict(r, name, "Precondition failed: UID in precondition: %s, UID in "
                           "object meta: %s" % (pre["uid"], m.get("uid")))
        if pre.get("resourceVersion") and pre["resourceVersion"] != m.get("resourceVersion"):
            raise conflict(r, name, "Precondition failed: ResourceVersion in precondition: "
                           "%s, ResourceVersion in object meta: %s"
                           % (pre["resourceVersion"], m.get("resourceVersion")))
        if dry_run:
            return old, True
        if m.get("finalizers"):
            if m.get("deletionTimestamp"):
                return old, False
            new = _jcopy(old)
            new["metadata"]["deletionTimestamp"] = _ts()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            if r.generation:
                new["metadata"]["generation"] = int(m.get("generation") or 0) + 1
            return self._commit(r, "MODIFIED", old, new), False
        if r.name == "namespaces" and r.group == "":
            for rr in self._storage_resources():
                if rr.namespaced:
                    for (ons, _), o in sorted(self._objects[rr.storage].items()):
                        if ons == name:
                            self._commit(rr, "DELETED", o, None)
        return self._commit(r, "DELETED", old, None), True

    def _storage_resources(self):
        seen, out = set(), []
        for r in self._resources:
            if r.storage not in seen:
                seen.add(r.storage)
                out.append(r)
        return out

    # ------------------------------------------------ request handling

    def _dispatch(self, req):
        try:
            return self._route(req)
        except ApiError as e:
            return _Resp(e.code, e.status)
        except Exception as e:  # noqa: BLE001 - a bug here must answer, not hang
            traceback.print_exc()
            return _Resp(500, status_obj(500, "InternalError", "fake apiserver: %r" % e))

    def _route(self, req):
        p = req.path.rstrip("/") or "/"
        if p in ("/healthz", "/readyz", "/livez") or p.startswith(("/healthz/", "/readyz/",
                                                                    "/livez/")):
            return _Resp(200, raw=b"ok", ctype="text/plain; charset=utf-8")
        if p == "/version":
            return _Resp(200, dict(SERVER_VERSION))
        if p.startswith("/_fake/"):
            return self._control(req, p)
        if p.startswith("/openapi") or p.startswith("/swagger"):
            raise NOT_FOUND_PATH
        accept = req.headers.get("accept", "")
        if accept and "json" not in accept and "*/*" not in accept:
            raise ApiError(406, "NotAcceptable", "only the following media types are "
                           "accepted: application/json, application/yaml")
        parts = p.strip("/").split("/")
        with self._lock:
            if p == "/api":
                return _Resp(200, {"kind": "APIVersions", "versions": ["v1"],
                                   "serverAddressByClientCIDRs": [
                                       {"clientCIDR": "0.0.0.0/0",
                                        "serverAddress": "%s:%d" % (self.host, self.port)}]})
            if p == "/apis":
                return _Resp(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                    self._api_group(g, vs) for g, vs in self._groups().items() if g]})
            if parts[0] == "api":
                if len(parts) < 2:
                    raise NOT_FOUND_PATH
                group, version, rest = "", parts[1], parts[2:]
            elif parts[0] == "apis" and len(parts) >= 2:
                group = parts[1]
                groups = self._groups()
                if group not in groups:
                    raise NOT_FOUND_PATH
                if len(parts) == 2:
                    return _Resp(200, self._api_group(group, groups[group]))
                version, rest = parts[2], parts[3:]
            else:
                raise NOT_FOUND_PATH
            rs = [r for r in self._resources if r.group == group and r.version == version]
            if not rs:
                raise NOT_FOUND_PATH
            if not rest:
                res = []
                for r in rs:
                    res += r.discovery()
                doc = {"kind": "APIResourceList"}
                if group:
                    doc["apiVersion"] = "v1"
                doc.update(groupVersion=rs[0].api_version, resources=res)
                return _Resp(200, doc)
            force_watch = False
            if rest[0] == "watch":
                force_watch, rest = True, rest[1:]
            ns = None
            names = {r.name for r in rs}
            if len(rest) >= 3 and rest[0] == "namespaces" and \
                    not (len(rest) == 3 and rest[2] not in names):
                ns, rest = rest[1], rest[2:]
            if not rest or len(rest) > 3:
                raise NOT_FOUND_PATH
            r = next((x for x in rs if x.name == rest[0]), None)
            if r is None:
                raise NOT_FOUND_PATH
            name = rest[1] if len(rest) > 1 else None
            sub = rest[2] if len(rest) > 2 else None
            if (ns is not None and not r.namespaced) or (r.namespaced and name and ns is None):
                raise NOT_FOUND_PATH
            if sub is not None and sub not in r.subresources:
                raise NOT_FOUND_PATH
        return self._resource_op(req, r, ns, name, sub, force_watch)

    def _api_group(self, g, versions):
        vs = [{"groupVersion": "%s/%s" % (g, v), "version": v} for v in versions]
        return {"name": g, "versions": vs, "preferredVersion": vs[0]}

    def _format(self, req):
        accept = req.headers.get("accept", "")
        if "as=Table" in accept:
            return "table"
        if "as=PartialObjectMetadata" in accept:
            return "partial"
        return "json"

    def _verb(self, req, name, sub, watch):
        m = req.method
        if m in ("GET", "HEAD"):
            return "watch" if watch else ("get" if name else "list")
        if m == "POST":
            return "create" if (name is None or sub) else None
        if name is None:
            return "deletecollection" if m == "DELETE" else None
        return {"PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(m)

    def _resource_op(self, req, r, ns, name, sub, force_watch):
        q = req.query
        watch = force_watch or q.get("watch") in ("1", "true", "True")
        verb = self._verb(req, name, sub, watch)
        if force_watch and name is not None:
            q["fieldSelector"] = ",".join(x for x in (q.get("fieldSelector"),
                                                      "metadata.name=" + name) if x)
            name = None
            verb = "watch"
        if verb is None or (sub == "binding" and verb != "create") or \
                (sub in ("status", "scale") and verb not in ("get", "update", "patch")):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on "
                           "the requested resource", {})
        fmt = self._format(req)
        if verb == "watch":
            return _WatchPlan(r, ns, req, fmt)
        mutating = verb in ("create", "update", "patch", "delete", "deletecollection")
        try:
            if mutating and req.body:
                ct = req.ctype()
                if ct == "application/vnd.kubernetes.protobuf" and verb in ("create", "update"):
                    req.obj = self._decode_protobuf(req)
                elif "protobuf" in ct:
                    raise ApiError(415, "UnsupportedMediaType",
                                   "the body of the request was in an unknown format - accepted "
                                   "media types include: application/json, application/yaml"
                                   + (", application/json-patch+json, application/merge-patch"
                                      "+json, application/apply-patch+yaml" if verb == "patch"
                                      else ""))
                else:
                    try:
                        req.obj = json.loads(req.body)
                    except ValueError as e:
                        if ct in ("application/yaml", "application/apply-patch+yaml"):
                            raise ApiError(415, "UnsupportedMediaType", "this fake apiserver "
                                           "reads JSON bodies only (YAML that is not JSON): %s"
                                           % e)
                        raise bad_request("error decoding request body: %s" % e)
            resp = self._op(req, r, ns, name, sub, verb, fmt)
        except ApiError as e:
            resp = _Resp(e.code, e.status)
        if mutating:
            self._audit(req, r, ns, name, sub, verb, resp)
        self._run_gc()
        return resp

    def _decode_protobuf(self, req):
        """The JSON dict of a protobuf create/update body (kubectl's generators send
        those); 415 for the kinds the decoder does not know, 400 when malformed."""
        dec = ProtobufDecoder()
        try:
            obj = dec.decode(req.body)
        except ProtobufError as e:
            if e.code == 415:
                raise ApiError(415, "UnsupportedMediaType", str(e))
            raise bad_request("error decoding the protobuf request body: %s" % e)
        if dec.skipped:
            with self._lock:
                self.protobuf_skipped.extend(dec.skipped)
                del self.protobuf_skipped[:-1000]
            if self.verbose:
                sys.stderr.write("fake-apiserver: protobuf fields not decoded: %s\n"
                                 % ", ".join(dec.skipped))
        return obj

    def _op(self, req, r, ns, name, sub, verb, fmt):
        q = req.query
        dry = "dryRun" in q
        if verb == "get":
            with self._lock:
                obj = self._stored(r, ns, name)
                if obj is None:
                    raise not_found(r, name)
                if sub == "scale":
                    return _Resp(200, self._scale_of(r, obj))
            return _Resp(200, self._format_one(r, obj, fmt, req, top=True))
        if verb == "list":
            return self._list(req, r, ns, fmt)
        body = req.obj
        if verb == "create":
            if sub == "binding":
                return self._bind(r, ns, name, body)
            if body is None:
                raise bad_request("the body of the request is empty")
            with self._lock:
                obj = self._create_locked(r, ns, body, dry)
            return _Resp(201, self.view(r, obj))
        if verb == "update":
            if not isinstance(body, dict):
                raise bad_request("the body of the request is not a JSON object")
            with self._lock:
                if sub == "scale":
                    return self._update_scale(r, ns, name, body, dry)
                obj, code = self._update_locked(r, ns, name, body, sub, dry,
                                                allow_create=r.name == "events")
            return _Resp(code, self.view(r, obj))
        if verb == "patch":
            return self._patch(req, r, ns, name, sub, dry)
        if verb == "delete":
            opts = body if isinstance(body, dict) else {}
            with self._lock:
                obj, gone = self._delete_locked(r, ns, name, opts, dry)
            if r.return_deleted or not gone:
                return _Resp(200, self.view(r, obj))
            m = obj["metadata"]
            d = _details(r, m["name"])
            d["uid"] = m.get("uid")
            return _Resp(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                               "status": "Success", "details": d})
        if verb == "deletecollection":
            lsel = parse_label_selector(q.get("labelSelector"))
            fsel = parse_field_selector(q.get("fieldSelector"))
            out = []
            with self._lock:
                for (ons, oname), o in sorted(self._objects[r.storage].items(),
                                              key=lambda kv: (kv[0][0] or "", kv[0][1])):
                    if ns is not None and ons != ns:
                        continue
                    if not label_match(lsel, o) or not field_match(fsel, self.view(r, o)):
                        continue
                    obj, _ = self._delete_locked(r, ons, oname, body, dry)
                    out.append(self.view(r, obj, with_type=False))
                rv = str(self._rv)
            return _Resp(200, {"kind": r.kind + "List", "apiVersion": r.api_version,
                               "metadata": {"resourceVersion": rv}, "items": out})
        raise ApiError(405, "MethodNotAllowed", "method not allowed", {})

    def _patch(self, req, r, ns, name, sub, dry):
        ct = req.ctype()
        patch = req.obj
        if ct not in ("application/merge-patch+json", "application/strategic-merge-patch+json",
                      "application/json-patch+json", "application/apply-patch+yaml"):
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an "
                           "unknown format - accepted media types include: "
                           "application/json-patch+json, application/merge-patch+json, "
                           "application/apply-patch+yaml")
        if patch is None:
            raise bad_request("the body of the request is empty")
        with self._lock:
            old = self._stored(r, ns, name)
            if old is None:
                if ct == "application/apply-patch+yaml" and sub is None:
                    b = _jcopy(patch)
                    b.setdefault("metadata", {})["name"] = name
                    return _Resp(201, self.view(r, self._create_locked(r, ns, b, dry)))
                raise not_found(r, name)
            cur = self._scale_of(r, old) if sub == "scale" else self.view(r, old)
            try:
                if ct == "application/json-patch+json":
                    new = json_patch(cur, patch)
                elif ct == "application/strategic-merge-patch+json":
                    if sub == "scale" or r.group not in ("", "apps", "events.k8s.io",
                                                         "coordination.k8s.io"):
                        raise ApiError(415, "UnsupportedMediaType", "strategic merge patch "
                                       "is not supported for %s" % r.gr)
                    new = strategic_merge_patch(cur, patch)
                else:
                    if not isinstance(patch, dict):
                        raise bad_request("a merge patch must be a JSON object")
                    new = merge_patch(cur, patch)
            except ValueError as e:
                raise ApiError(422, "Invalid", "the server rejected our request due to an "
                               "error in our request: %s" % e)
            if not isinstance(new, dict):
                raise bad_request("the patched object is not a JSON object")
            if sub == "scale":
                return self._update_scale(r, ns, name, new, dry)
            obj, code = self._update_locked(r, ns, name, new, sub, dry)
        return _Resp(code, self.view(r, obj))

    def _scale_of(self, r, obj):
        m = obj["metadata"]
        spec, st = obj.get("spec") or {}, obj.get("status") or {}
        ml = ((spec.get("selector") or {}).get("matchLabels") or {})
        sel = ",".join("%s=%s" % (k, v) for k, v in sorted(ml.items()))
        status = {"replicas": st.get("replicas", 0)}
        if sel:
            status["selector"] = sel
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": m["name"], "namespace": m.get("namespace"),
                             "uid": m.get("uid"), "resourceVersion": m.get("resourceVersion"),
                             "creationTimestamp": m.get("creationTimestamp")},
                "spec": {"replicas": spec.get("replicas", 0)}, "status": status}

    def _update_scale(self, r, ns, name, scale, dry):
        old = self._stored(r, ns, name)
        if old is None:
            raise not_found(r, name)
        smeta = scale.get("metadata") or {}
        if smeta.get("resourceVersion") and \
                smeta["resourceVersion"] != old["metadata"].get("resourceVersion"):
            raise conflict(r, name)
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiError(422, "Invalid", 'Scale.autoscaling "%s" is invalid: spec.replicas: '
                           "Invalid value: %r: must be greater than or equal to 0"
                           % (name, replicas))
        new = _jcopy(old)
        new.setdefault("spec", {})["replicas"] = replicas
        obj, _ = self._update_locked(r, ns, name, self.view(r, new), None, dry)
        return _Resp(200, self._scale_of(r, obj))

    def _bind(self, r, ns, name, body):
        if not isinstance(body, dict):
            raise bad_request("the body of the request is not a JSON object")
        node = (body.get("target") or {}).get("name")
        if not node:
            raise ApiError(422, "Invalid", "Binding target.name: Required value")
        with self._lock:
            old = self._stored(r, ns, name)
            if old is None:
                raise not_found(r, name)
            cur = (old.get("spec") or {}).get("nodeName")
            if cur:
                raise conflict(r, name, "pod %s is already assigned to node \"%s\"" % (name, cur))
            new = _jcopy(old)
            new.setdefault("spec", {})["nodeName"] = node
            st = new.setdefault("status", {})
            conds = [c for c in st.get("conditions") or [] if c.get("type") != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                          "lastTransitionTime": _ts()})
            st["conditions"] = conds
            self._commit(r, "MODIFIED", old, new)
        return _Resp(201, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                           "status": "Success", "code": 201})

    def _list(self, req, r, ns, fmt):
        q = req.query
        try:
            limit = int(q.get("limit") or 0)
        except ValueError:
            raise bad_request("invalid limit %r" % q.get("limit"))
        cont = q.get("continue")
        with self._lock:
            if cont:
                try:
                    tok = json.loads(base64.urlsafe_b64decode(cont + "=" * (-len(cont) % 4)))
                    rv, sid, off = int(tok["rv"]), tok["id"], int(tok["off"])
                except (ValueError, KeyError, TypeError):
                    raise bad_request("invalid continue token: %r" % cont)
                snap = self._snapshots.get(sid)
                if rv < self._min_rv or snap is None:
                    raise expired("The provided continue parameter is too old to display a "
                                  "consistent list result. You can start a new list without "
                                  "the continue parameter.")
                items = snap[off:]
            else:
                lsel = parse_label_selector(q.get("labelSelector"))
                fsel = parse_field_selector(q.get("fieldSelector"))
                items = []
                for (ons, _), o in sorted(self._objects[r.storage].items(),
                                          key=lambda kv: (kv[0][0] or "", kv[0][1])):
                    if ns is not None and ons != ns:
                        continue
                    if lsel and not label_match(lsel, o):
                        continue
                    if fsel and not field_match(fsel, r.from_storage(o) if r.from_storage
                                                else o):
                        continue
                    items.append(o)
                rv, sid, off = self._rv, None, 0
            meta = {"resourceVersion": str(rv)}
            if limit > 0 and len(items) > limit:
                if sid is None:
                    sid = uuid.uuid4().hex
                    self._snapshots[sid] = items
                    while len(self._snapshots) > SNAPSHOT_LIMIT:
                        self._snapshots.popitem(last=False)
                else:
                    self._snapshots.move_to_end(sid)
                    items = self._snapshots[sid][off:]
                tok = {"v": "meta.k8s.io/v1", "rv": rv, "id": sid, "off": off + limit}
                meta["continue"] = base64.urlsafe_b64encode(_dumps(tok).encode()).decode() \
                    .rstrip("=")
                meta["remainingItemCount"] = len(items) - limit
                items = items[:limit]
        if fmt == "table":
            return _Resp(200, self._table(r, items, req, meta))
        if fmt == "partial":
            return _Resp(200, {"kind": "PartialObjectMetadataList",
                               "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                               "items": [self._partial(r, o) for o in items]})
        return _Resp(200, {"kind": r.kind + "List", "apiVersion": r.api_version,
                           "metadata": meta,
                           "items": [self.view(r, o, with_type=False) for o in items]})

    # ------------------------------------------------ output formats

    def _partial(self, r, o):
        return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": _jcopy(o["metadata"])}

    def _format_one(self, r, obj, fmt, req, top=False):
        if fmt == "table":
            return self._table(r, [obj], req, {"resourceVersion": obj["metadata"].get(
                "resourceVersion")})
        if fmt == "partial":
            return self._partial(r, obj)
        return self.view(r, obj)

    def _table(self, r, items, req, meta):
        cols = [("Name", "string", "name", "Name must be unique within a namespace.")]
        extra = []
        if r.kind == "Pod":
            extra = [("Ready", "string", "", "The aggregate readiness state of this pod."),
                     ("Status", "string", "", "The aggregate status of the containers."),
                     ("Restarts", "string", "", "The number of times the containers restarted.")]
        elif r.kind == "Deployment":
            extra = [("Ready", "string", "", "Number of the pod with ready state"),
                     ("Up-to-date", "integer", "", "Total number of updated pods."),
                     ("Available", "integer", "", "Number of available pods.")]
        elif r.kind == "ReplicaSet":
            extra = [("Desired", "integer", "", "Number of desired pods."),
                     ("Current", "integer", "", "Number of actual replicas."),
                     ("Ready", "integer", "", "Number of ready replicas.")]
        cols += extra + [("Age", "string", "", "CreationTimestamp is a timestamp representing "
                          "the server time when this object was created.")]
        include = req.query.get("includeObject", "Metadata")
        rows = []
        for o in items:
            spec, st = o.get("spec") or {}, o.get("status") or {}
            cells = [o["metadata"]["name"]]
            if r.kind == "Pod":
                cs = st.get("containerStatuses") or []
                n = len(spec.get("containers") or [])
                cells += ["%d/%d" % (sum(1 for c in cs if c.get("ready")), n),
                          st.get("phase", "Pending"),
                          str(sum(int(c.get("restartCount") or 0) for c in cs))]
            elif r.kind == "Deployment":
                cells += ["%d/%d" % (st.get("readyReplicas", 0), spec.get("replicas", 0)),
                          st.get("updatedReplicas", 0), st.get("availableReplicas", 0)]
            elif r.kind == "ReplicaSet":
                cells += [spec.get("replicas", 0), st.get("replicas", 0),
                          st.get("readyReplicas", 0)]
            cells.append(_age(o["metadata"].get("creationTimestamp")))
            row = {"cells": cells}
            if include == "Object":
                row["object"] = self.view(r, o)
            elif include != "None":
                row["object"] = self._partial(r, o)
            rows.append(row)
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                "columnDefinitions": [{"name": n, "type": t, "format": f, "description": d,
                                       "priority": 0} for n, t, f, d in cols],
                "rows": rows}

    # ------------------------------------------------ watch

    def _watch_register(self, plan):
        r, ns, q = plan.r, plan.ns, plan.req.query
        lsel = parse_label_selector(q.get("labelSelector"))
        fsel = parse_field_selector(q.get("fieldSelector"))
        name = None
        for k, op, v in fsel:
            if k == "metadata.name" and op == "=":
                name = v
            if k == "metadata.namespace" and op == "=" and ns is None and r.namespaced:
                ns = v
        fsel = [x for x in fsel if not (x[0] in ("metadata.name", "metadata.namespace")
                                        and x[1] == "=")]
        w = _Watcher(self, r, ns, lsel, fsel, name)
        rvp = q.get("resourceVersion", "")
        with self._lock:
            if rvp in ("", "0") or q.get("sendInitialEvents") == "true":
                initial = [("ADDED", o) for _, o in sorted(
                    self._objects[r.storage].items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))
                    if w.matches(o)]
            else:
                try:
                    n = int(rvp)
                except ValueError:
                    raise bad_request('invalid resource version: "%s"' % rvp)
                if n < self._min_rv:
                    return None, None, expired("too old resource version: %d (%d)"
                                               % (n, self._min_rv))
                initial = []
                for ev in self._history:
                    if ev[0] > n:
                        t = w.translate(ev)
                        if t:
                            initial.append(t)
            w.start_rv = self._rv
            self._watchers.add(w)
        return w, initial, None

    def _watch_unregister(self, w):
        with self._lock:
            self._watchers.discard(w)

    def _bookmark_rv(self, w):
        with self._lock:
            if not w.q.empty():
                return None
            return self._rv

    def close_watches(self, mode="clean"):
        """Ends every open watch stream: "clean" (terminating chunk, as a
        server-side timeout does) or "abrupt" (connection reset)."""
        with self._lock:
            ws = list(self._watchers)
            self._watchers.clear()
        for w in ws:
            w.close(mode)

    def watch_count(self):
        with self._lock:
            return len(self._watchers)

    def wait_for_watchers(self, n=1, timeout=10.0, resource=None):
        """Waits until at least n watches (of resource, if given) are open."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                ws = [w for w in self._watchers
                      if resource is None or w.r.name == resource]
            if len(ws) >= n:
                return True
            time.sleep(0.02)
        return False

    def compact(self):
        """Drops the watch history: a watch from any older resourceVersion (or a
        continue token of an older list) is then answered "Expired" (410)."""
        with self._lock:
            self._history.clear()
            self._min_rv = self._rv
            self._snapshots.clear()
            return self._rv

    @property
    def resource_version(self):
        with self._lock:
            return str(self._rv)

    # ------------------------------------------------ garbage collection

    def _run_gc(self):
        while True:
            with self._lock:
                if not self._gc_pending:
                    return
                uids = set(self._gc_pending)
                self._gc_pending = []
                victims = []
                for r in self._storage_resources():
                    for (ns, name), o in self._objects[r.storage].items():
                        for ref in o["metadata"].get("ownerReferences") or []:
                            if ref.get("uid") in uids:
                                victims.append((r, ns, name))
                                break
            for r, ns, name in victims:
                try:
                    self._call("DELETE", self._path(r, ns, name),
                               {"kind": "DeleteOptions", "apiVersion": "v1",
                                "propagationPolicy": "Background"},
                               user=GC_USER, user_agent=GC_AGENT)
                except ApiError:
                    pass

    # ------------------------------------------------ audit

    def _audit(self, req, r, ns, name, sub, verb, resp):
        ro = req.obj if isinstance(req.obj, dict) else {}
        meta = ro.get("metadata") if isinstance(ro.get("metadata"), dict) else {}
        if sub:
            meta = {}
        ref = {"resource": r.name}
        if ns is not None:
            ref["namespace"] = ns
        nm = name or (meta.get("name") if verb == "create" else None)
        if nm:
            ref["name"] = nm
        if meta.get("uid"):
            ref["uid"] = meta["uid"]
        if r.group:
            ref["apiGroup"] = r.group
        ref["apiVersion"] = r.version
        if meta.get("resourceVersion"):
            ref["resourceVersion"] = meta["resourceVersion"]
        if sub:
            ref["subresource"] = sub
        rs = {"metadata": {}}
        if resp.code >= 300 and isinstance(resp.obj, dict) and resp.obj.get("kind") == "Status":
            for k in ("status", "message", "reason", "details"):
                if k in resp.obj:
                    rs[k] = resp.obj[k]
        rs["code"] = resp.code
        ev = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
              "auditID": req.audit_id, "stage": "ResponseComplete", "requestURI": req.uri,
              "verb": verb, "user": req.user, "sourceIPs": [req.ip],
              "userAgent": req.headers.get("user-agent", ""), "objectRef": ref,
              "responseStatus": rs}
        if req.obj is not None:
            ev["requestObject"] = req.obj
        if resp.obj is not None:
            ev["responseObject"] = resp.obj
        ev["requestReceivedTimestamp"] = _micro(req.received)
        ev["stageTimestamp"] = _micro()
        ev["annotations"] = {"authorization.k8s.io/decision": "allow",
                             "authorization.k8s.io/reason": ""}
        with self._audit_log_lock:
            self.audit_events.append(ev)
            if len(self.audit_events) > AUDIT_KEEP:
                del self.audit_events[:AUDIT_KEEP // 2]
            if self.audit_log:
                with open(self.audit_log, "a") as f:
                    f.write(_dumps(ev) + "\n")
        if self._audit_sender is not None:
            self._audit_sender.put(ev)

    def flush_audit(self, timeout=5.0):
        """Waits until every audit event was posted (or dropped); True if so."""
        s = self._audit_sender
        return True if s is None else s.flush(timeout)

    @property
    def audit_stats(self):
        """{"sent", "dropped", "batches"} of the webhook emitter."""
        s = self._audit_sender
        if s is None:
            return {"sent": 0, "dropped": 0, "batches": 0}
        with s.cv:
            return {"sent": s.sent, "dropped": s.dropped, "batches": s.batches}

    # ------------------------------------------------ requests seen, fault injection

    def _record(self, method, path, raw_query, headers, body):
        qs = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
        q = {k: v[0] for k, v in qs.items()}
        with self._lock:
            self.requests.append((method, path, q))
            self.request_log.append({"method": method, "path": path, "query": q,
                                     "headers": dict(headers.items()),
                                     "body": (body or b"")[:65536]})
            if len(self.requests) > REQUEST_LOG_LIMIT:
                del self.requests[:REQUEST_LOG_LIMIT // 2]
                del self.request_log[:REQUEST_LOG_LIMIT // 2]

    def clear_requests(self):
        with self._lock:
            del self.requests[:]
            del self.request_log[:]

    def wait_for_request(self, pred, timeout=10.0):
        """Waits until pred((method, path, query)) holds for a request seen;
        returns that request or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for rq in self.requests:
                    if pred(rq):
                        return rq
            time.sleep(0.02)
        return None

    def inject_error(self, code, method=None, path_contains=None, times=1, reason=None,
                     message="injected by the test", retry_after=None):
        """The next `times` HTTP requests matching method/path answer code with a
        Status (e.g. 500, 429 with retry_after, 503)."""
        reasons = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
                   504: "Timeout", 410: "Expired", 403: "Forbidden"}
        with self._lock:
            self._injected.append({"code": code, "method": method, "path": path_contains,
                                   "times": times, "reason": reason or reasons.get(code, ""),
                                   "message": message, "retry_after": retry_after})

    def clear_injected(self):
        """Forgets the injected errors not consumed yet."""
        with self._lock:
            self._injected = []

    def _take_injected(self, req):
        with self._lock:
            for inj in self._injected:
                if inj["times"] <= 0:
                    continue
                if inj["method"] and inj["method"] != req.method:
                    continue
                if inj["path"] and inj["path"] not in req.path:
                    continue
                inj["times"] -= 1
                hdrs = {"Retry-After": str(inj["retry_after"])} if inj["retry_after"] else {}
                details = {"retryAfterSeconds": inj["retry_after"]} if inj["retry_after"] \
                    else None
                return _Resp(inj["code"], status_obj(inj["code"], inj["reason"],
                                                     inj["message"], details), headers=hdrs)
        return None

    # ------------------------------------------------ control endpoints (standalone use)

    def _control(self, req, p):
        if p == "/_fake/compact" and req.method == "POST":
            return _Resp(200, {"resourceVersion": str(self.compact())})
        if p == "/_fake/close-watches" and req.method == "POST":
            self.close_watches("abrupt" if req.query.get("abrupt") in ("1", "true") else "clean")
            return _Resp(200, {})
        if p == "/_fake/requests" and req.method == "GET":
            with self._lock:
                return _Resp(200, {"requests": [list(x) for x in self.requests]})
        if p == "/_fake/audit" and req.method == "GET":
            with self._audit_log_lock:
                return _Resp(200, {"items": list(self.audit_events)})
        if p == "/_fake/resources" and req.method == "POST":
            try:
                b = json.loads(req.body)
                r = self.add_resource(b["group"], b["version"], b["name"], b["kind"],
                                      namespaced=b.get("namespaced", True),
                                      short_names=b.get("shortNames", ()))
            except (ValueError, KeyError, TypeError) as e:
                raise bad_request("bad resource: %s" % e)
            return _Resp(201, r.discovery()[0])
        raise NOT_FOUND_PATH

    # ------------------------------------------------ direct methods

    def _path(self, r, ns, name=None, sub=None):
        base = "/apis/%s/%s" % (r.group, r.version) if r.group else "/api/" + r.version
        if r.namespaced and ns is not None:
            base += "/namespaces/" + ns
        base += "/" + r.name
        if name:
            base += "/" + name
        if sub:
            base += "/" + sub
        return base

    def _call(self, method, path, body=None, ctype="application/json", query=None, user=None,
              groups=None, user_agent=None, headers=None):
        h = {"User-Agent": user_agent or "fake-apiserver/direct", "Accept": "application/json"}
        if body is not None:
            h["Content-Type"] = ctype
        h.update(headers or {})
        raw = _dumps(body).encode() if body is not None else b""
        req = _Req(method, path, urllib.parse.urlencode(query or {}), h, raw,
                   user=user, groups=groups)
        resp = self._dispatch(req)
        if isinstance(resp, _WatchPlan):
            raise ApiError(400, "BadRequest", "direct watches are not supported; use HTTP")
        if resp.code >= 400:
            raise ApiError.from_status(resp.code, resp.obj)
        return resp.obj

    def _ns_of(self, r, obj, namespace):
        if not r.namespaced:
            return None
        return namespace or (obj.get("metadata") or {}).get("namespace") or "default"

    def create(self, obj, namespace=None, **kw):
        """POSTs obj (its apiVersion/kind pick the resource). Returns the created
        object; raises ApiError. kw: user, groups, user_agent, headers, query."""
        r = self._resource_for_obj(obj)
        return self._call("POST", self._path(r, self._ns_of(r, obj, namespace)), obj, **kw)

    def update(self, obj, subresource=None, **kw):
        """PUTs obj (a resourceVersion in it is a precondition: 409 if stale)."""
        r = self._resource_for_obj(obj)
        m = obj.get("metadata") or {}
        return self._call("PUT", self._path(r, self._ns_of(r, obj, None), m.get("name"),
                                            subresource), obj, **kw)

    def update_status(self, obj, **kw):
        return self.update(obj, subresource="status", **kw)

    PATCH_TYPES = {"merge": "application/merge-patch+json",
                   "strategic": "application/strategic-merge-patch+json",
                   "json": "application/json-patch+json",
                   "apply": "application/apply-patch+yaml"}

    def patch(self, resource, namespace, name, patch, patch_type="merge", subresource=None,
              **kw):
        """PATCHes resource (plural, short name or Kind; "deployments.apps")
        namespace/name. patch_type: merge | strategic | json | apply."""
        r = self.resource(resource)
        return self._call("PATCH", self._path(r, namespace if r.namespaced else None, name,
                                              subresource), patch,
                          self.PATCH_TYPES.get(patch_type, patch_type), **kw)

    def delete(self, resource, namespace, name, options=None, **kw):
        """DELETEs; returns the object (pods, or when finalizers hold it) or a
        Status."""
        r = self.resource(resource)
        return self._call("DELETE", self._path(r, namespace if r.namespaced else None, name),
                          options, **kw)

    def get(self, resource, namespace, name, subresource=None):
        """The object (with kind/apiVersion), or None when it does not exist."""
        r = self.resource(resource)
        try:
            return self._call("GET", self._path(r, namespace if r.namespaced else None, name,
                                                subresource))
        except ApiError as e:
            if e.code == 404:
                return None
            raise

    def list(self, resource, namespace=None, label_selector=None, field_selector=None,
             **query):
        """The List object (namespace None = all namespaces)."""
        r = self.resource(resource)
        q = dict(query)
        if label_selector:
            q["labelSelector"] = label_selector
        if field_selector:
            q["fieldSelector"] = field_selector
        return self._call("GET", self._path(r, namespace if r.namespaced else None), query=q)

    def objects(self, resource, namespace=None):
        """The stored objects of a resource, with kind/apiVersion, sorted."""
        r = self.resource(resource)
        with self._lock:
            return [self.view(r, o) for (ns, _), o in sorted(
                self._objects[r.storage].items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))
                if namespace is None or ns == namespace]

    def load(self, objs):
        """Creates every object of a list (or of a List's items)."""
        if isinstance(objs, dict):
            objs = objs.get("items", [objs])
        return [self.create(o) for o in objs]


# ---------------------------------------------------------------- standalone

def main(argv=None):
    ap = argparse.ArgumentParser(description="A fake kube-apiserver for tests.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--token")
    ap.add_argument("--client-cert-auth", action="store_true")
    ap.add_argument("--audit-webhook")
    ap.add_argument("--audit-log")
    ap.add_argument("--kubeconfig-out")
    ap.add_argument("--context", default="fake")
    ap.add_argument("--bookmark-interval", type=float, default=1.0)
    ap.add_argument("--expired-http-410", action="store_true")
    ap.add_argument("--load", action="append", default=[],
                    help="a JSON file of objects (array or List) to create at start")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args(argv)
    srv = FakeApiserver(tls=a.tls, token=a.token, audit_webhook=a.audit_webhook,
                        bookmark_interval=a.bookmark_interval, host=a.host, port=a.port,
                        client_cert_auth=a.client_cert_auth, audit_log=a.audit_log,
                        expired_http_410=a.expired_http_410, verbose=a.verbose)
    for path in a.load:
        with open(path) as f:
            srv.load(json.load(f))
    srv.start()
    if a.kubeconfig_out:
        srv.write_kubeconfig(a.kubeconfig_out, context=a.context,
                             client_cert=a.client_cert_auth and not a.token)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(srv.url, flush=True)
    while not done.wait(0.5):
        pass
    srv.stop()
    srv.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

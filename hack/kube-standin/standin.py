#!/usr/bin/env python3
"""A stand-in for the Kubernetes API server, for Trellis's tests (standard library only).

It serves namespaces, nodes, pods and networkpolicies as real Kubernetes JSON, enough for the
TrellisKube client and for kubectl 1.32 (get, create -f, apply -f, label, annotate, patch,
delete): discovery, get/list/watch with resourceVersion semantics, pagination, label and field
selectors, create/replace/patch (merge, strategic merge, JSON patch)/delete, the status
subresources, bounded history with 410 Gone, bearer tokens and client certificates over TLS.

Faults and introspection live under /_standin/ (see hack/kube-standin/README.md). Every object
lives in memory; nothing is written except the port files.
"""

import argparse
import base64
import copy
import datetime
import ipaddress
import json
import os
import queue
import random
import re
import select
import signal
import socket
import ssl
import string
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler

# --------------------------------------------------------------------------------------------
# The resources served, as discovery describes them.
# --------------------------------------------------------------------------------------------

RESOURCES = {
    "namespaces": dict(group="", version="v1", kind="Namespace", singular="namespace",
                       namespaced=False, short=["ns"], status=True),
    "nodes": dict(group="", version="v1", kind="Node", singular="node",
                  namespaced=False, short=["no"], status=True),
    "pods": dict(group="", version="v1", kind="Pod", singular="pod",
                 namespaced=True, short=["po"], status=True, categories=["all"]),
    "networkpolicies": dict(group="networking.k8s.io", version="v1", kind="NetworkPolicy",
                            singular="networkpolicy", namespaced=True, short=["netpol"],
                            status=False),
    "services": dict(group="", version="v1", kind="Service", singular="service",
                     namespaced=True, short=["svc"], status=True, categories=["all"]),
}
# Where Services get their cluster IP when they ask for none (kubeadm's default range).
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")
KIND_TO_RESOURCE = {r["kind"]: name for name, r in RESOURCES.items()}
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]

# Field selectors the real server accepts per resource (others answer 400 like it does).
FIELD_LABELS = {
    "namespaces": {"metadata.name", "status.phase"},
    "nodes": {"metadata.name", "spec.unschedulable"},
    "pods": {"metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy",
             "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
             "status.podIP", "status.nominatedNodeName"},
    "networkpolicies": {"metadata.name", "metadata.namespace"},
    "services": {"metadata.name", "metadata.namespace", "spec.clusterIP", "spec.type"},
}

# Strategic merge patch: lists merged by a key (as the Go types' patchMergeKey tags say) or as
# sets of primitives; every other list is replaced whole. Paths skip list indexes.
MERGE_KEYS = {
    ("metadata", "ownerReferences"): "uid",
    ("metadata", "finalizers"): None,  # primitives, merged as a set
    ("spec", "containers"): "name",
    ("spec", "initContainers"): "name",
    ("spec", "ephemeralContainers"): "name",
    ("spec", "containers", "ports"): "containerPort",
    ("spec", "initContainers", "ports"): "containerPort",
    ("spec", "containers", "env"): "name",
    ("spec", "initContainers", "env"): "name",
    ("spec", "containers", "volumeMounts"): "mountPath",
    ("spec", "initContainers", "volumeMounts"): "mountPath",
    ("spec", "volumes"): "name",
    ("spec", "imagePullSecrets"): "name",
    ("spec", "hostAliases"): "ip",
    ("spec", "podCIDRs"): None,
    ("status", "conditions"): "type",
    ("status", "podIPs"): "ip",
    ("status", "hostIPs"): "ip",
    ("status", "addresses"): "type",
    ("status", "volumesAttached"): "name",
}

FIRST_RESOURCE_VERSION = 1000


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_object(code, reason, message, details=None, metadata=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": metadata or {}, "status": "Failure",
         "message": message, "reason": reason, "code": code}
    if details:
        s["details"] = details
    return s


class APIError(Exception):
    """An answer with a Status object: what every failure of a request becomes."""

    def __init__(self, code, reason, message, details=None, headers=None, metadata=None):
        super().__init__(message)
        self.status = status_object(code, reason, message, details, metadata)
        self.code = code
        self.headers = headers or {}


def not_found(resource, name):
    return APIError(404, "NotFound", f'{resource} "{name}" not found',
                    {"name": name, "kind": resource})


def bad_request(message):
    return APIError(400, "BadRequest", message)


def expired(message):
    return APIError(410, "Expired", message)


# --------------------------------------------------------------------------------------------
# Selectors
# --------------------------------------------------------------------------------------------

class LabelSelector:
    """The label selector syntax of the API: a=b, a==b, a!=b, a in (x,y), a notin (x), a, !a."""

    def __init__(self, text):
        self.requirements = []
        text = (text or "").strip()
        if not text:
            return
        for part in self._split(text):
            part = part.strip()
            if not part:
                raise bad_request(f"unable to parse requirement: empty requirement in {text!r}")
            m = re.fullmatch(r"([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)", part)
            if m:
                values = {v.strip() for v in m.group(3).split(",") if v.strip()}
                self.requirements.append((m.group(1), m.group(2), values))
                continue
            m = re.fullmatch(r"([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)", part)
            if m:
                op = {"=": "in", "==": "in", "!=": "notin"}[m.group(2)]
                self.requirements.append((m.group(1), op, {m.group(3)}))
                continue
            m = re.fullmatch(r"!\s*([^\s!=(),]+)", part)
            if m:
                self.requirements.append((m.group(1), "!", None))
                continue
            m = re.fullmatch(r"([^\s!=(),]+)", part)
            if m:
                self.requirements.append((m.group(1), "exists", None))
                continue
            raise bad_request(f"unable to parse requirement: {part!r}")

    @staticmethod
    def _split(text):
        parts, depth, cur = [], 0, ""
        for ch in text:
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
        return parts

    def matches(self, labels):
        labels = labels or {}
        for key, op, values in self.requirements:
            if op == "in":
                if key not in labels or labels[key] not in values:
                    return False
            elif op == "notin":
                if key in labels and labels[key] in values:
                    return False
            elif op == "exists":
                if key not in labels:
                    return False
            elif op == "!":
                if key in labels:
                    return False
        return True


def field_value(obj, path):
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


class FieldSelector:
    """Field selectors: comma-separated path=value, path==value, path!=value."""

    def __init__(self, text, resource):
        self.requirements = []
        text = (text or "").strip()
        if not text:
            return
        for part in text.split(","):
            m = re.fullmatch(r"\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*", part)
            if not m:
                raise bad_request(f"invalid field selector: {part!r}")
            path, op, value = m.groups()
            if path not in FIELD_LABELS[resource]:
                raise bad_request(f'field label not supported: {path}')
            self.requirements.append((path, op != "!=", value))

    def matches(self, obj):
        return all((field_value(obj, p) == v) == eq for p, eq, v in self.requirements)


# --------------------------------------------------------------------------------------------
# Patches
# --------------------------------------------------------------------------------------------

def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def _strip_directives(value):
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items()
                if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value
                if not (isinstance(v, dict) and v.get("$patch") == "delete")]
    return value


def strategic_merge_patch(original, patch, path=()):
    """Strategic merge patch as the API server applies it, for the lists in MERGE_KEYS:
    null deletes, maps merge, keyed lists merge by key, primitive merge lists merge as sets,
    other lists are replaced; honours $patch (replace/delete/merge), $retainKeys,
    $deleteFromPrimitiveList/<field> and $setElementOrder/<field>."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip_directives({k: v for k, v in patch.items() if k != "$patch"})
    if directive == "delete":
        return None
    result = dict(original) if isinstance(original, dict) else {}
    orders = {}
    for k, v in patch.items():
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [x for x in result[field] if x not in v]
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys") or k.startswith("$deleteFromPrimitiveList/"):
            continue
        if k.startswith("$setElementOrder/"):
            orders[k.split("/", 1)[1]] = v
            continue
        if v is None:
            result.pop(k, None)
        elif isinstance(v, dict):
            merged = strategic_merge_patch(result.get(k), v, path + (k,))
            if merged is None:
                result.pop(k, None)
            else:
                result[k] = merged
        elif isinstance(v, list):
            result[k] = _merge_list(result.get(k), v, path + (k,))
        else:
            result[k] = v
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _apply_order(result[field], order, MERGE_KEYS.get(path + (field,)))
    if "$retainKeys" in patch:
        keep = set(patch["$retainKeys"] or [])
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _merge_list(original, patch, path):
    original = original if isinstance(original, list) else []
    if path not in MERGE_KEYS:
        return _strip_directives(patch)
    key = MERGE_KEYS[path]
    if key is None:
        return list(original) + [x for x in patch if x not in original]
    if any(isinstance(e, dict) and e.get("$patch") == "replace" for e in patch):
        return _strip_directives([e for e in patch if not (isinstance(e, dict) and "$patch" in e)])
    result = list(original)
    for e in patch:
        if not isinstance(e, dict):
            continue
        idx = next((i for i, o in enumerate(result) if isinstance(o, dict) and o.get(key) == e.get(key)), None)
        if e.get("$patch") == "delete":
            result = [o for o in result if not (isinstance(o, dict) and o.get(key) == e.get(key))]
        elif idx is not None:
            result[idx] = strategic_merge_patch(result[idx], e, path)
        else:
            result.append(_strip_directives(e))
    return result


def _apply_order(items, order, key):
    def ident(x):
        return x.get(key) if key and isinstance(x, dict) else x
    wanted = [ident(o) for o in order]
    rank = {w: i for i, w in enumerate(wanted) if not isinstance(w, (dict, list))}
    inorder = sorted([x for x in items if ident(x) in rank], key=lambda x: rank[ident(x)])
    rest = [x for x in items if ident(x) not in rank]
    return inorder + rest


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"json patch: invalid path {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _container(doc, tokens, op):
    cur = doc
    for t in tokens[:-1]:
        if isinstance(cur, list):
            cur = cur[int(t)]
        elif isinstance(cur, dict) and t in cur:
            cur = cur[t]
        else:
            raise APIError(422, "Invalid", f"json patch {op}: path element {t!r} does not exist")
    return cur


def json_patch(doc, ops):
    """RFC 6902: add, remove, replace, move, copy, test."""
    if not isinstance(ops, list):
        raise bad_request("json patch: the body must be a list of operations")
    doc = copy.deepcopy(doc)

    def get(tokens):
        cur = doc
        for t in tokens:
            cur = cur[int(t)] if isinstance(cur, list) else cur[t]
        return cur

    def remove(tokens, op):
        parent = _container(doc, tokens, op)
        last = tokens[-1]
        if isinstance(parent, list):
            return parent.pop(int(last))
        if last not in parent:
            raise APIError(422, "Invalid", f"json patch {op}: {'/'.join(tokens)} does not exist")
        return parent.pop(last)

    def add(tokens, value, op):
        nonlocal doc
        if not tokens:
            doc = value
            return
        parent = _container(doc, tokens, op)
        last = tokens[-1]
        if isinstance(parent, list):
            if last == "-":
                parent.append(value)
            else:
                parent.insert(int(last), value)
        else:
            parent[last] = value

    for o in ops:
        op, tokens = o.get("op"), _pointer(o.get("path", ""))
        try:
            if op == "add":
                add(tokens, copy.deepcopy(o.get("value")), op)
            elif op == "remove":
                remove(tokens, op)
            elif op == "replace":
                remove(tokens, op)
                add(tokens, copy.deepcopy(o.get("value")), op)
            elif op == "move":
                value = remove(_pointer(o["from"]), op)
                add(tokens, value, op)
            elif op == "copy":
                add(tokens, copy.deepcopy(get(_pointer(o["from"]))), op)
            elif op == "test":
                if get(tokens) != o.get("value"):
                    raise APIError(422, "Invalid", f"json patch test failed at {o.get('path')}")
            else:
                raise bad_request(f"json patch: unknown op {op!r}")
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise APIError(422, "Invalid", f"json patch {op} at {o.get('path')!r}: {e}")
    return doc


def _protobuf_fields(data):
    """Protocol buffer wire format: (field number, wire type, value) triples."""
    i, out = 0, []

    def varint():
        nonlocal i
        shift = result = 0
        while True:
            b = data[i]
            i += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    while i < len(data):
        tag = varint()
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            out.append((field, wire, varint()))
        elif wire == 2:
            n = varint()
            out.append((field, wire, data[i:i + n]))
            i += n
        elif wire == 1:
            out.append((field, wire, data[i:i + 8]))
            i += 8
        elif wire == 5:
            out.append((field, wire, data[i:i + 4]))
            i += 4
        else:
            raise bad_request(f"protobuf: unsupported wire type {wire}")
    return out


def _protobuf_object_meta(data):
    md = {}
    for field, _, value in _protobuf_fields(data):
        if field in (1, 2, 3):
            if value:
                md[{1: "name", 2: "generateName", 3: "namespace"}[field]] = value.decode()
        elif field in (11, 12):
            entry = {f: v.decode() for f, _, v in _protobuf_fields(value)}
            md.setdefault("labels" if field == 11 else "annotations", {})[entry.get(1, "")] = entry.get(2, "")
        elif field == 14:
            md.setdefault("finalizers", []).append(value.decode())
    return md


def decode_protobuf_object(data):
    """The few protobuf bodies kubectl sends for these resources: a Namespace (kubectl create
    namespace). Other kinds answer 415, so that the gap is visible."""
    if not data.startswith(b"k8s\x00"):
        raise bad_request("protobuf body without the k8s envelope")
    envelope = {f: v for f, _, v in _protobuf_fields(data[4:])}
    type_meta = {f: v.decode() for f, _, v in _protobuf_fields(envelope.get(1, b""))}
    kind = type_meta.get(2)
    if kind != "Namespace":
        raise APIError(415, "UnsupportedMediaType", f"the stand-in decodes protobuf only for Namespace, not {kind}; send JSON")
    obj = {"apiVersion": type_meta.get(1, "v1"), "kind": kind, "metadata": {}}
    for field, _, value in _protobuf_fields(envelope.get(2, b"")):
        if field == 1:
            obj["metadata"] = _protobuf_object_meta(value)
    return obj


# --------------------------------------------------------------------------------------------
# The store: objects, one global resourceVersion counter, bounded history, watchers.
# --------------------------------------------------------------------------------------------

class Watcher:
    def __init__(self, resource, namespace, labels, fields):
        self.resource = resource
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
        self.queue = queue.Queue()
        self.connection = None  # the socket, so that a drop can cut it

    def matches(self, obj):
        if obj is None:
            return False
        if self.namespace and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.labels.matches(obj["metadata"].get("labels")) and self.fields.matches(obj)

    def translate(self, etype, obj, prev):
        """The event this watcher sees: an object entering its selection is ADDED, one
        leaving it DELETED, as the watch cache does."""
        now, before = self.matches(obj), self.matches(prev)
        if etype == "MODIFIED":
            if now and before:
                return "MODIFIED"
            if now:
                return "ADDED"
            if before:
                return "DELETED"
            return None
        return etype if now else None


class Store:
    def __init__(self, history_size):
        self.lock = threading.RLock()
        self.rv = FIRST_RESOURCE_VERSION
        self.objects = {name: {} for name in RESOURCES}
        # (rv, resource, type, key, object, previous object)
        self.history = deque()
        self.history_size = history_size
        # Every resourceVersion below this one is gone: watching from it or continuing a list
        # made at it answers 410.
        self.compacted_rv = self.rv
        self.watchers = set()

    # -- writes -----------------------------------------------------------------------------

    def _record(self, resource, etype, key, obj, prev):
        self.history.append((self.rv, resource, etype, key, obj, prev))
        while len(self.history) > self.history_size:
            dropped = self.history.popleft()
            self.compacted_rv = max(self.compacted_rv, dropped[0])
        for w in list(self.watchers):
            if w.resource != resource:
                continue
            t = w.translate(etype, obj, prev)
            if t:
                w.queue.put(("event", t, obj))

    def next_rv(self):
        self.rv += 1
        return self.rv

    def compact(self):
        with self.lock:
            self.history.clear()
            self.compacted_rv = self.rv
            return self.rv

    def put(self, resource, key, obj, etype):
        """Stores `obj` (its metadata already complete except resourceVersion)."""
        with self.lock:
            prev = self.objects[resource].get(key)
            obj["metadata"]["resourceVersion"] = str(self.next_rv())
            self.objects[resource][key] = obj
            self._record(resource, etype, key, obj, prev)
            return obj

    def remove(self, resource, key):
        with self.lock:
            prev = self.objects[resource].pop(key, None)
            if prev is None:
                return None
            final = copy.deepcopy(prev)
            final["metadata"]["resourceVersion"] = str(self.next_rv())
            self._record(resource, "DELETED", key, final, prev)
            return final

    # -- reads ------------------------------------------------------------------------------

    def state_at(self, resource, rv):
        """The objects of `resource` as they were at `rv` (history must reach back to it)."""
        current = self.objects[resource]
        later = [h for h in self.history if h[0] > rv and h[1] == resource]
        if not later:
            return current
        state = dict(current)
        for _, _, etype, key, obj, prev in reversed(later):
            if prev is None:
                state.pop(key, None)
            else:
                state[key] = prev
        return state

    def add_watcher(self, watcher, from_rv):
        """Registers `watcher` and returns the events it must send first: the current objects as
        ADDED (from_rv None) or the history after `from_rv`; raises 410 when that is gone."""
        with self.lock:
            initial = []
            if from_rv is None:
                objs = self.objects[watcher.resource]
                for key in sorted(objs):
                    if watcher.matches(objs[key]):
                        initial.append(("event", "ADDED", objs[key]))
            else:
                if from_rv < self.compacted_rv:
                    raise expired(f"too old resource version: {from_rv} ({self.compacted_rv})")
                for rv, resource, etype, key, obj, prev in self.history:
                    if rv > from_rv and resource == watcher.resource:
                        t = watcher.translate(etype, obj, prev)
                        if t:
                            initial.append(("event", t, obj))
            self.watchers.add(watcher)
            return initial

    def remove_watcher(self, watcher):
        with self.lock:
            self.watchers.discard(watcher)

    def enqueue_bookmark(self, watcher):
        # Under the lock: every event up to self.rv is already in the queue ahead of it.
        with self.lock:
            watcher.queue.put(("bookmark", str(self.rv)))


# --------------------------------------------------------------------------------------------
# Faults, stats, auth
# --------------------------------------------------------------------------------------------

class Faults:
    """Answers the next N matching requests with an injected status."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []

    def add(self, rule):
        with self.lock:
            self.rules.append(rule)

    def clear(self):
        with self.lock:
            self.rules = []

    def take(self, path, verb):
        with self.lock:
            for r in self.rules:
                if r["count"] <= 0:
                    continue
                if r.get("pathPrefix") and not path.startswith(r["pathPrefix"]):
                    continue
                if r.get("verb") and r["verb"] != verb:
                    continue
                r["count"] -= 1
                return dict(r)
            return None


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.counts = {}
        self.log = deque(maxlen=2000)
        self.watches = {}
        self.total = 0

    def request(self, verb, resource, method, path, query, code, started, user_agent):
        """Counts a request; `started` (when it arrived) is what tests compare retry gaps with."""
        with self.lock:
            self.total += 1
            k = f"{verb} {resource}"
            self.counts[k] = self.counts.get(k, 0) + 1
            self.log.append({"time": started, "seconds": round(time.time() - started, 6), "verb": verb,
                             "resource": resource, "method": method, "path": path, "query": query, "code": code,
                             "userAgent": user_agent or ""})

    def watch_opened(self, resource, delta):
        with self.lock:
            self.watches[resource] = self.watches.get(resource, 0) + delta

    def snapshot(self, store):
        with self.lock:
            return {"requests": dict(self.counts), "total": self.total,
                    "openWatches": {k: v for k, v in self.watches.items() if v},
                    "resourceVersion": str(store.rv),
                    "compactedResourceVersion": str(store.compacted_rv),
                    "objects": {r: len(o) for r, o in store.objects.items()}}


class Tokens:
    """Bearer tokens from a file, one a line; re-read whenever the file's identity changes."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.identity = None
        self.tokens = set()

    def valid(self, token):
        if not self.path:
            return False
        with self.lock:
            try:
                st = os.stat(self.path)
                ident = (st.st_ino, st.st_size, st.st_mtime_ns)
                if ident != self.identity:
                    with open(self.path) as f:
                        self.tokens = {line.strip() for line in f if line.strip()}
                    self.identity = ident
            except OSError:
                self.tokens = set()
                self.identity = None
            return token in self.tokens


# --------------------------------------------------------------------------------------------
# Discovery and tables
# --------------------------------------------------------------------------------------------

def group_version(group, version):
    return f"{group}/{version}" if group else version


def api_resource_list(group, version):
    resources = []
    for name, r in RESOURCES.items():
        if r["group"] != group:
            continue
        entry = {"name": name, "singularName": r["singular"], "namespaced": r["namespaced"],
                 "kind": r["kind"], "verbs": VERBS + (["deletecollection"] if False else []),
                 "shortNames": r["short"], "storageVersionHash": base64.b64encode(name.encode()).decode()[:11]}
        if r.get("categories"):
            entry["categories"] = r["categories"]
        resources.append(entry)
        if r["status"]:
            resources.append({"name": f"{name}/status", "singularName": "", "namespaced": r["namespaced"],
                              "kind": r["kind"], "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version(group, version),
            "resources": resources}


def api_group(name):
    gv = {"groupVersion": f"{name}/v1", "version": "v1"}
    return {"name": name, "versions": [gv], "preferredVersion": gv}


def openapi_v3_root():
    """Enough OpenAPI v3 for kubectl: the index of group-versions."""
    return {"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=TRELLIS0"},
                      "apis/networking.k8s.io/v1": {"serverRelativeURL": "/openapi/v3/apis/networking.k8s.io/v1?hash=TRELLIS0"}}}


def openapi_v3_group(group):
    """A group-version's document with one PATCH operation per kind that takes the
    fieldValidation parameter: what kubectl's query-param verifier looks for before it lets the
    server validate fields (otherwise it insists on downloading a full schema). Schemas are not
    served, so kubectl apply computes strategic merge patches from its built-in types."""
    paths = {}
    for name, r in RESOURCES.items():
        if r["group"] != group:
            continue
        prefix = "/api/v1" if not group else f"/apis/{group}/v1"
        item = f"{prefix}/namespaces/{{namespace}}/{name}/{{name}}" if r["namespaced"] else f"{prefix}/{name}/{{name}}"
        paths[item] = {"patch": {
            "operationId": f"patch{r['kind']}",
            "x-kubernetes-group-version-kind": {"group": group, "version": "v1", "kind": r["kind"]},
            "x-kubernetes-action": "patch",
            "parameters": [{"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                           for p in ("dryRun", "fieldManager", "fieldValidation", "force")],
            "responses": {"200": {"description": "OK"}}}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": paths,
            "components": {"schemas": {}}}


def human_age(ts):
    try:
        t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return "<unknown>"
    s = int((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())
    if s < 120:
        return f"{max(s, 0)}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 48:
        return f"{h}h"
    return f"{h // 24}d"


def _col(name, typ="string", fmt="", priority=0):
    return {"name": name, "type": typ, "format": fmt, "description": name, "priority": priority}


def table_columns(resource):
    if resource == "namespaces":
        return [_col("Name", fmt="name"), _col("Status"), _col("Age")]
    if resource == "nodes":
        return [_col("Name", fmt="name"), _col("Status"), _col("Roles"), _col("Age"), _col("Version"),
                _col("Internal-IP", priority=1)]
    if resource == "pods":
        return [_col("Name", fmt="name"), _col("Ready"), _col("Status"), _col("Restarts", "string"),
                _col("Age"), _col("IP", priority=1), _col("Node", priority=1)]
    return [_col("Name", fmt="name"), _col("Pod-Selector"), _col("Age")]


def table_cells(resource, obj):
    md, spec, st = obj.get("metadata", {}), obj.get("spec", {}) or {}, obj.get("status", {}) or {}
    age = human_age(md.get("creationTimestamp"))
    if resource == "namespaces":
        return [md.get("name"), st.get("phase", "Active"), age]
    if resource == "nodes":
        ready = next((c for c in st.get("conditions", []) if c.get("type") == "Ready"), None)
        status = "Ready" if ready and ready.get("status") == "True" else ("NotReady" if ready else "Unknown")
        if spec.get("unschedulable"):
            status += ",SchedulingDisabled"
        roles = ",".join(sorted(k.split("/", 1)[1] for k in (md.get("labels") or {})
                                if k.startswith("node-role.kubernetes.io/"))) or "<none>"
        ip = next((a.get("address") for a in st.get("addresses", []) if a.get("type") == "InternalIP"), "<none>")
        return [md.get("name"), status, roles, age, (st.get("nodeInfo") or {}).get("kubeletVersion", ""), ip]
    if resource == "pods":
        containers = spec.get("containers") or []
        ready = sum(1 for c in st.get("containerStatuses", []) if c.get("ready"))
        return [md.get("name"), f"{ready}/{len(containers)}", st.get("phase", "Pending"), "0", age,
                st.get("podIP", "<none>"), spec.get("nodeName", "<none>")]
    sel = spec.get("podSelector") or {}
    text = ",".join(f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())) or "<none>"
    return [md.get("name"), text, age]


def table(resource, objs, include, list_meta=None):
    rows = []
    for o in objs:
        if include == "Object":
            embedded = o
        elif include == "None":
            embedded = None
        else:
            embedded = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}
        row = {"cells": table_cells(resource, o)}
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta or {},
            "columnDefinitions": table_columns(resource), "rows": rows}


def wants_table(accept):
    return "as=Table" in (accept or "")


# --------------------------------------------------------------------------------------------
# The API: requests to responses
# --------------------------------------------------------------------------------------------

class Route:
    def __init__(self, resource, namespace=None, name=None, subresource=None, watch_path=False):
        self.resource = resource
        self.namespace = namespace
        self.name = name
        self.subresource = subresource
        self.watch_path = watch_path


def parse_route(path):
    """Kubernetes paths: /api/v1/[watch/][namespaces/NS/]RESOURCE[/NAME[/SUB]] and the same
    under /apis/GROUP/VERSION/. Returns None for paths that are not resource paths."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
        if parts[2] != "v1":
            return None
    else:
        return None
    watch_path = False
    if rest and rest[0] == "watch":
        watch_path, rest = True, rest[1:]
    if not rest:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] in RESOURCES and RESOURCES[rest[2]]["namespaced"]:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    if resource not in RESOURCES or RESOURCES[resource]["group"] != group:
        return None
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if len(rest) > 3:
        return None
    return Route(resource, namespace, name, sub, watch_path)


def object_key(resource, namespace, name):
    return f"{namespace}/{name}" if RESOURCES[resource]["namespaced"] else name


def encode_continue(rv, start_after):
    raw = json.dumps({"rv": rv, "start": start_after}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token):
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        d = json.loads(raw)
        return int(d["rv"]), str(d["start"])
    except Exception:
        raise bad_request(f"continue key is not valid: {token!r}")


def parse_rv(text, what="resourceVersion"):
    try:
        return int(text)
    except (TypeError, ValueError):
        raise bad_request(f"invalid {what}: {text!r}")


class API:
    def __init__(self, store, stats, faults, args):
        self.store = store
        self.stats = stats
        self.faults = faults
        self.args = args

    # -- object bookkeeping -----------------------------------------------------------------

    def _with_type(self, resource, obj):
        r = RESOURCES[resource]
        out = dict(obj)
        out["kind"] = r["kind"]
        out["apiVersion"] = group_version(r["group"], r["version"])
        # kind and apiVersion first, as the API writes them
        return {"kind": out.pop("kind"), "apiVersion": out.pop("apiVersion"), **out}

    def _prepare_new(self, resource, namespace, body):
        r = RESOURCES[resource]
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        if body.get("kind") not in (None, r["kind"]):
            raise bad_request(f"the body is a {body.get('kind')}, not a {r['kind']}")
        obj = copy.deepcopy(body)
        obj.pop("kind", None)
        obj.pop("apiVersion", None)
        md = obj.setdefault("metadata", {})
        if not md.get("name"):
            if md.get("generateName"):
                md["name"] = md["generateName"] + "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
            else:
                raise APIError(422, "Invalid", f"{r['kind']} is invalid: metadata.name: Required value: name or generateName is required",
                               {"kind": r["kind"], "causes": [{"reason": "FieldValueRequired", "field": "metadata.name"}]})
        if r["namespaced"]:
            ns = namespace or md.get("namespace") or "default"
            if md.get("namespace") and md["namespace"] != ns:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now_rfc3339()
        md.pop("resourceVersion", None)
        md.pop("deletionTimestamp", None)
        if resource != "namespaces":
            md["generation"] = 1
        self._defaults(resource, obj)
        return obj

    def _defaults(self, resource, obj):
        md = obj["metadata"]
        if resource == "namespaces":
            md.setdefault("labels", {})["kubernetes.io/metadata.name"] = md["name"]
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj.setdefault("status", {}).setdefault("phase", "Active")
        elif resource == "pods":
            obj.setdefault("spec", {})
            obj.setdefault("status", {}).setdefault("phase", "Pending")
        elif resource == "nodes":
            obj.setdefault("spec", {})
            obj.setdefault("status", {})
        elif resource == "services":
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            if not spec.get("clusterIP"):
                spec["clusterIP"] = self._free_cluster_ip()
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            obj.setdefault("status", {}).setdefault("loadBalancer", {})
        elif resource == "networkpolicies":
            spec = obj.setdefault("spec", {})
            spec.setdefault("podSelector", {})
            if "policyTypes" not in spec:
                spec["policyTypes"] = ["Ingress"] + (["Egress"] if spec.get("egress") else [])

    def _free_cluster_ip(self):
        used = {(o.get("spec") or {}).get("clusterIP") for o in self.store.objects["services"].values()}
        for host in SERVICE_CIDR.hosts():
            if host.packed[-1] == 0 or int(host) - int(SERVICE_CIDR.network_address) < 10:
                continue  # .1 is the kubernetes Service's, as kubeadm has it; keep a few
            if str(host) not in used:
                return str(host)
        raise APIError(500, "InternalError", "the service IP range is full", {})

    def _validate(self, resource, obj):
        if resource == "pods":
            containers = (obj.get("spec") or {}).get("containers")
            if not containers:
                raise APIError(422, "Invalid", f'Pod "{obj["metadata"]["name"]}" is invalid: spec.containers: Required value',
                               {"name": obj["metadata"]["name"], "kind": "Pod",
                                "causes": [{"reason": "FieldValueRequired", "field": "spec.containers"}]})

    def _namespace_must_exist(self, resource, namespace):
        if RESOURCES[resource]["namespaced"] and namespace not in self.store.objects["namespaces"]:
            raise not_found("namespaces", namespace)

    def _merge_update(self, resource, route, old, new):
        """What an update of the object (or of its status) keeps from the stored one."""
        r = RESOURCES[resource]
        md_old, md_new = old["metadata"], new.setdefault("metadata", {})
        for f in ("name", "namespace"):
            if f in md_old and md_new.get(f, md_old[f]) != md_old[f]:
                raise bad_request(f"metadata.{f} cannot be changed (was {md_old[f]!r}, is {md_new.get(f)!r})")
        if route.subresource == "status":
            merged = copy.deepcopy(old)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            return merged
        for f in ("uid", "creationTimestamp", "generation", "deletionTimestamp"):
            if f in md_old:
                md_new[f] = md_old[f]
            else:
                md_new.pop(f, None)
        if r["status"] and "status" in old:
            # A copy: stored objects are shared with the history and the watchers, never changed.
            new["status"] = copy.deepcopy(old["status"])
        if resource != "namespaces" and new.get("spec") != old.get("spec"):
            md_new["generation"] = md_old.get("generation", 1) + 1
        self._defaults(resource, new)
        return new

    # -- verbs ------------------------------------------------------------------------------

    def get(self, route, accept, query):
        key = object_key(route.resource, route.namespace, route.name)
        with self.store.lock:
            obj = self.store.objects[route.resource].get(key)
            if obj is None:
                raise not_found(route.resource if not route.subresource else route.resource, route.name)
            obj = self._with_type(route.resource, obj)
        if wants_table(accept):
            return table(route.resource, [obj], query.get("includeObject"),
                         {"resourceVersion": obj["metadata"]["resourceVersion"]})
        return obj

    def list(self, route, accept, query):
        labels = LabelSelector(query.get("labelSelector"))
        fields = FieldSelector(query.get("fieldSelector"), route.resource)
        limit = int(query.get("limit") or 0)
        token = query.get("continue")
        rv_param = query.get("resourceVersion")
        match = query.get("resourceVersionMatch")
        with self.store.lock:
            if token:
                list_rv, start = decode_continue(token)
                if list_rv < self.store.compacted_rv:
                    raise APIError(410, "Expired",
                                   "The provided continue parameter is too old to display a consistent list result. "
                                   "You can start a new list without the continue parameter, or use the continue "
                                   "token in this response to retrieve the remainder of the results. Continuing "
                                   "with the provided token results in an inconsistent list - objects that were "
                                   "created, modified, or deleted between the time the first chunk was returned "
                                   "and now may show up in the list.",
                                   metadata={"continue": encode_continue(self.store.rv, start)})
            else:
                start = None
                list_rv = self.store.rv
                if rv_param and rv_param != "0" and match == "Exact":
                    list_rv = parse_rv(rv_param)
                    if list_rv < self.store.compacted_rv:
                        raise expired(f"too old resource version: {list_rv} ({self.store.compacted_rv})")
            state = self.store.state_at(route.resource, list_rv)
            keys = sorted(state)
            items = []
            next_key = None
            remaining = 0
            for k in keys:
                if start is not None and k <= start:
                    continue
                o = state[k]
                if route.namespace and o["metadata"].get("namespace") != route.namespace:
                    continue
                if not labels.matches(o["metadata"].get("labels")) or not fields.matches(o):
                    continue
                if limit and len(items) >= limit:
                    remaining += 1
                    continue
                items.append(o)
                next_key = k
            if not (limit and remaining):
                next_key = None
            list_meta = {"resourceVersion": str(list_rv)}
            if next_key is not None:
                list_meta["continue"] = encode_continue(list_rv, next_key)
                if not labels.requirements and not fields.requirements:
                    list_meta["remainingItemCount"] = remaining
            r = RESOURCES[route.resource]
            if wants_table(accept):
                return table(route.resource, [self._with_type(route.resource, o) for o in items],
                             query.get("includeObject"), list_meta)
            # Items of a list carry no kind/apiVersion, as the real server writes them.
            body = json.dumps({"kind": r["kind"] + "List", "apiVersion": group_version(r["group"], r["version"]),
                               "metadata": list_meta, "items": items}, separators=(",", ":"))
        return RawJSON(body)

    def create(self, route, body):
        if route.name:
            raise APIError(405, "MethodNotAllowed", "POST to a named object is not allowed")
        obj = self._prepare_new(route.resource, route.namespace, body)
        self._validate(route.resource, obj)
        key = object_key(route.resource, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        with self.store.lock:
            self._namespace_must_exist(route.resource, obj["metadata"].get("namespace"))
            if key in self.store.objects[route.resource]:
                raise APIError(409, "AlreadyExists", f'{route.resource} "{obj["metadata"]["name"]}" already exists',
                               {"name": obj["metadata"]["name"], "kind": route.resource})
            stored = self.store.put(route.resource, key, obj, "ADDED")
            return 201, self._with_type(route.resource, stored)

    def replace(self, route, body):
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        key = object_key(route.resource, route.namespace, route.name)
        new = copy.deepcopy(body)
        new.pop("kind", None)
        new.pop("apiVersion", None)
        md = new.setdefault("metadata", {})
        if md.get("name", route.name) != route.name:
            raise bad_request(f"the name of the object ({md.get('name')}) does not match the name on the URL ({route.name})")
        with self.store.lock:
            old = self.store.objects[route.resource].get(key)
            if old is None:
                raise not_found(route.resource, route.name)
            rv = md.get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise self._conflict(route)
            merged = self._merge_update(route.resource, route, old, new)
            self._validate(route.resource, merged)
            stored = self.store.put(route.resource, key, merged, "MODIFIED")
            return 200, self._with_type(route.resource, stored)

    def _conflict(self, route):
        return APIError(409, "Conflict",
                        f'Operation cannot be fulfilled on {route.resource} "{route.name}": the object has been '
                        "modified; please apply your changes to the latest version and try again",
                        {"name": route.name, "kind": route.resource})

    def patch(self, route, content_type, body):
        ctype = (content_type or "").split(";")[0].strip()
        key = object_key(route.resource, route.namespace, route.name)
        with self.store.lock:
            old = self.store.objects[route.resource].get(key)
            if old is None:
                raise not_found(route.resource, route.name)
            current = self._with_type(route.resource, copy.deepcopy(old))
            if ctype == "application/merge-patch+json":
                patched = merge_patch(current, body)
            elif ctype == "application/strategic-merge-patch+json":
                if not isinstance(body, dict):
                    raise bad_request("a strategic merge patch must be a JSON object")
                patched = strategic_merge_patch(current, body)
            elif ctype == "application/json-patch+json":
                patched = json_patch(current, body)
            else:
                raise APIError(415, "UnsupportedMediaType",
                               f"the body of the request was in an unknown format - accepted media types include: "
                               "application/json-patch+json, application/merge-patch+json, "
                               f"application/strategic-merge-patch+json (got {ctype!r})")
            if not isinstance(patched, dict):
                raise bad_request("the patch did not produce an object")
            rv = (patched.get("metadata") or {}).get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise self._conflict(route)
            patched.pop("kind", None)
            patched.pop("apiVersion", None)
            merged = self._merge_update(route.resource, route, old, patched)
            self._validate(route.resource, merged)
            stored = self.store.put(route.resource, key, merged, "MODIFIED")
            return 200, self._with_type(route.resource, stored)

    def delete(self, route, body):
        key = object_key(route.resource, route.namespace, route.name)
        pre = (body or {}).get("preconditions") or {} if isinstance(body, dict) else {}
        with self.store.lock:
            old = self.store.objects[route.resource].get(key)
            if old is None:
                raise not_found(route.resource, route.name)
            if pre.get("uid") and pre["uid"] != old["metadata"].get("uid"):
                raise APIError(409, "Conflict", f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {old['metadata'].get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise self._conflict(route)
            if route.resource == "namespaces":
                # What the namespace controller would do: its content goes first.
                for res, objs in self.store.objects.items():
                    if RESOURCES[res]["namespaced"]:
                        for k in sorted(k for k, o in objs.items() if o["metadata"].get("namespace") == route.name):
                            self.store.remove(res, k)
            # A copy: the stored final state is shared with the history and the watchers.
            final = copy.deepcopy(self.store.remove(route.resource, key))
            final["metadata"]["deletionTimestamp"] = now_rfc3339()
            if route.resource in ("pods", "namespaces"):
                if route.resource == "pods":
                    final["metadata"]["deletionGracePeriodSeconds"] = 0
                else:
                    final.setdefault("status", {})["phase"] = "Terminating"
                return 200, self._with_type(route.resource, final)
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                         "details": {"name": route.name, "group": RESOURCES[route.resource]["group"],
                                     "kind": route.resource, "uid": old["metadata"].get("uid")}}

    def load(self, items):
        """Creates (or replaces) every object, with ordinary events: for --load and /_standin/load."""
        count = 0
        for item in items:
            resource = KIND_TO_RESOURCE.get(item.get("kind"))
            if resource is None:
                raise bad_request(f"cannot load a {item.get('kind')!r}: not one of {sorted(KIND_TO_RESOURCE)}")
            ns = (item.get("metadata") or {}).get("namespace")
            with self.store.lock:
                obj = self._prepare_new(resource, ns, item)
                key = object_key(resource, obj["metadata"].get("namespace"), obj["metadata"]["name"])
                if RESOURCES[resource]["namespaced"] and obj["metadata"]["namespace"] not in self.store.objects["namespaces"]:
                    ns_obj = self._prepare_new("namespaces", None, {"metadata": {"name": obj["metadata"]["namespace"]}})
                    self.store.put("namespaces", ns_obj["metadata"]["name"], ns_obj, "ADDED")
                old = self.store.objects[resource].get(key)
                if old is not None:
                    obj["metadata"]["uid"] = old["metadata"]["uid"]
                    obj["metadata"]["creationTimestamp"] = old["metadata"]["creationTimestamp"]
                self.store.put(resource, key, obj, "MODIFIED" if old else "ADDED")
                count += 1
        return count


class RawJSON:
    """A body already serialised (lists: encoded once, under the lock, without a copy)."""

    def __init__(self, text):
        self.text = text


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "trellis-kube-standin"
    sys_version = ""
    # Set per listener through a subclass.
    app = None
    listener = None

    def log_message(self, fmt, *args):
        if self.app.args.verbose:
            sys.stderr.write("standin: %s - %s\n" % (self.address_string(), fmt % args))

    # All methods go through one dispatcher.
    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def read_body(self):
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
            return data
        if length:
            return self.rfile.read(int(length))
        return b""

    def send_json(self, code, body, headers=None):
        if isinstance(body, RawJSON):
            data = body.text.encode()
        else:
            data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def authenticated(self):
        app = self.app
        if self.listener.admin or not app.auth_required:
            return True
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and app.tokens.valid(auth[len("Bearer "):].strip()):
            return True
        cert = getattr(self.connection, "getpeercert", lambda: None)()
        if cert:  # only verified certificates (signed by --client-ca) are returned
            return True
        return False

    def dispatch(self):
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        verb, resource, code = self.command.lower(), "-", 200
        self.started = time.time()
        # A watch is counted when its stream starts, so that tests see it while it is open.
        self.counted = False
        try:
            body = self.read_body()
            if path.startswith("/_standin/"):
                verb, resource = "standin", path
                code = self.app.standin(self, path, query, body)
                return
            route = parse_route(path)
            verb, resource = self.kube_verb(route, query), (route.resource + ("/" + route.subresource if route and route.subresource else "")) if route else path
            if not self.authenticated():
                raise APIError(401, "Unauthorized", "Unauthorized")
            fault = self.app.faults.take(path, verb) if not self.listener.admin else None
            if fault:
                headers = {"Retry-After": fault["retryAfter"]} if fault.get("retryAfter") is not None else {}
                reason = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}.get(fault["status"], "InternalError")
                msg = fault.get("message") or {429: "Too many requests, please try again later.",
                                                500: "Internal error injected by the stand-in"}.get(fault["status"], "injected failure")
                raise APIError(fault["status"], reason, msg, {"retryAfterSeconds": fault.get("retryAfter")} if fault.get("retryAfter") is not None else None, headers)
            if route is None:
                code, out = self.app.discovery(path, self.listener)
                self.send_json(code, out)
                return
            code = self.serve_resource(route, verb, query, body)
        except APIError as e:
            code = e.code
            self.send_json(e.code, e.status, e.headers)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            code = 499
            self.close_connection = True
        except Exception as e:
            code = 500
            traceback.print_exc()
            try:
                self.send_json(500, status_object(500, "InternalError", f"stand-in failure: {e}"))
            except OSError:
                self.close_connection = True
        finally:
            if not self.counted:
                self.app.stats.request(verb, resource, self.command, path, url.query, code, self.started,
                                       self.headers.get("User-Agent"))

    def kube_verb(self, route, query):
        m = self.command
        if route is None:
            return m.lower()
        if m in ("GET", "HEAD"):
            if route.watch_path or query.get("watch") in ("true", "1"):
                return "watch"
            return "get" if route.name else "list"
        return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(m, m.lower())

    def serve_resource(self, route, verb, query, raw):
        api = self.app.api
        if route.subresource and route.subresource != "status":
            raise not_found(route.resource + "/" + route.subresource, route.name)
        if route.subresource == "status" and not RESOURCES[route.resource]["status"]:
            raise not_found(route.resource + "/status", route.name)
        body = None
        if raw:
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if ctype == "application/vnd.kubernetes.protobuf":
                # kubectl's typed commands (kubectl create namespace) send protobuf and take JSON back.
                raw = json.dumps(decode_protobuf_object(raw)).encode()
            if ctype == "application/apply-patch+yaml":
                raise APIError(415, "UnsupportedMediaType", "server-side apply is not served by the stand-in; use client-side apply")
            try:
                body = json.loads(raw)
            except ValueError as e:
                raise bad_request(f"the request body is not JSON: {e}")
        accept = self.headers.get("Accept", "")
        if verb == "watch":
            self.serve_watch(route, query, accept)
            return 200
        if verb == "get":
            self.send_json(200, api.get(route, accept, query))
            return 200
        if verb == "list":
            if route.subresource:
                raise not_found(route.resource, route.subresource)
            self.send_json(200, api.list(route, accept, query))
            return 200
        if verb == "create":
            code, out = api.create(route, body)
        elif verb == "update":
            self.need_name(route)
            code, out = api.replace(route, body)
        elif verb == "patch":
            self.need_name(route)
            code, out = api.patch(route, self.headers.get("Content-Type"), body)
        elif verb == "delete":
            self.need_name(route)
            code, out = api.delete(route, body)
        else:
            raise APIError(405, "MethodNotAllowed", f"{self.command} is not allowed here")
        self.send_json(code, out)
        return code

    @staticmethod
    def need_name(route):
        if not route.name:
            raise APIError(405, "MethodNotAllowed", "this verb needs an object name (collections are not served)")

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def serve_watch(self, route, query, accept):
        app = self.app
        labels = LabelSelector(query.get("labelSelector"))
        fields = FieldSelector(query.get("fieldSelector"), route.resource)
        if route.name:
            fields.requirements.append(("metadata.name", True, route.name))
        rv = query.get("resourceVersion")
        from_rv = None if rv in (None, "", "0") else parse_rv(rv)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        watcher = Watcher(route.resource, route.namespace, labels, fields)
        watcher.connection = self.connection
        as_table = wants_table(accept)
        r = RESOURCES[route.resource]
        expired_error = None
        try:
            initial = app.store.add_watcher(watcher, from_rv)
        except APIError as e:
            if app.args.watch_expired == "http":
                raise
            expired_error, initial = e, []
        app.register_watch(self.listener, watcher)
        app.stats.watch_opened(route.resource, +1)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache, private")
            self.end_headers()
            app.stats.request("watch", route.resource, self.command, self.path.split("?")[0],
                              urllib.parse.urlsplit(self.path).query, 200, self.started, self.headers.get("User-Agent"))
            self.counted = True
            if expired_error is not None:
                # What the watch cache does for a too-old version: 200, then one ERROR event.
                self.write_chunk(json.dumps({"type": "ERROR", "object": expired_error.status},
                                            separators=(",", ":")).encode() + b"\n")
                self.write_chunk(b"")
                return
            for item in initial:
                watcher.queue.put(item)
            deadline = time.monotonic() + timeout if timeout else None
            next_bookmark = time.monotonic() + app.args.bookmark_interval
            while True:
                now = time.monotonic()
                if deadline and now >= deadline:
                    break
                if bookmarks and now >= next_bookmark:
                    app.store.enqueue_bookmark(watcher)
                    next_bookmark = now + app.args.bookmark_interval
                wait = min(x for x in (deadline, next_bookmark if bookmarks else None, now + 1.0) if x) - now
                try:
                    item = watcher.queue.get(timeout=max(wait, 0.001))
                except queue.Empty:
                    continue
                if item[0] == "drop":
                    self.close_connection = True
                    return
                if item[0] == "bookmark":
                    event = {"type": "BOOKMARK", "object": {"kind": r["kind"], "apiVersion": group_version(r["group"], r["version"]),
                                                             "metadata": {"resourceVersion": item[1]}}}
                else:
                    obj = app.api._with_type(route.resource, item[2])
                    if as_table:
                        obj = table(route.resource, [obj], query.get("includeObject"), {"resourceVersion": obj["metadata"]["resourceVersion"]})
                    event = {"type": item[1], "object": obj}
                self.write_chunk(json.dumps(event, separators=(",", ":")).encode() + b"\n")
            self.write_chunk(b"")
        except OSError:
            self.close_connection = True
        finally:
            app.store.remove_watcher(watcher)
            app.unregister_watch(self.listener, watcher)
            app.stats.watch_opened(route.resource, -1)


class Listener:
    """One listening socket and its connections; the main one can be paused (closed, every
    connection cut, connections refused) and reopened on the same port."""

    def __init__(self, app, host, port, tls, admin):
        self.app = app
        self.host = host
        self.port = port
        self.tls = tls
        self.admin = admin
        self.sock = None
        self.lock = threading.Lock()
        self.connections = set()
        self.watches = set()
        self.pause_request = None  # (seconds, connection to spare, threading.Event)
        self.handler = type("BoundHandler", (Handler,), {"app": app, "listener": self})

    def open(self):
        s = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(256)
        self.port = s.getsockname()[1]
        self.sock = s

    def cut_all(self, spare=None):
        with self.lock:
            conns = [c for c in self.connections if c is not spare]
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def serve_forever(self):
        while True:
            req = self.pause_request
            if req is not None:
                seconds, spare, paused = req
                self.sock.close()
                self.cut_all(spare)
                paused.set()
                self.app.log(f"paused for {seconds}s")
                time.sleep(seconds)
                while True:
                    try:
                        self.open()
                        break
                    except OSError as e:  # the port is briefly unavailable: try again
                        self.app.log(f"cannot listen again on port {self.port}: {e}; retrying")
                        time.sleep(0.1)
                self.pause_request = None
                self.app.log("serving again")
                continue
            try:
                ready, _, _ = select.select([self.sock], [], [], 0.05)
            except (OSError, ValueError):
                continue
            if not ready:
                continue
            try:
                conn, addr = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.handle_connection, args=(conn, addr), daemon=True).start()

    def handle_connection(self, conn, addr):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.lock:
            self.connections.add(conn)
        try:
            if self.tls is not None:
                conn.settimeout(10)
                try:
                    tls_conn = self.tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    self.app.log(f"TLS handshake with {addr[0]}:{addr[1]} failed: {e}")
                    return
                tls_conn.settimeout(None)
                with self.lock:
                    self.connections.discard(conn)
                    self.connections.add(tls_conn)
                conn = tls_conn
            try:
                self.handler(conn, addr, self)
            except (OSError, ssl.SSLError):
                pass
        finally:
            with self.lock:
                self.connections.discard(conn)
            try:
                conn.close()
            except OSError:
                pass


class App:
    def __init__(self, args):
        self.args = args
        self.store = Store(args.history)
        self.stats = Stats()
        self.faults = Faults()
        self.api = API(self.store, self.stats, self.faults, args)
        self.tokens = Tokens(args.tokens_file)
        self.auth_required = bool(args.tokens_file or args.client_ca)
        self.watch_lock = threading.Lock()
        self.main = None
        self.admin = None

    def log(self, text):
        sys.stderr.write(f"standin: {text}\n")
        sys.stderr.flush()

    def register_watch(self, listener, watcher):
        with self.watch_lock:
            listener.watches.add(watcher)

    def unregister_watch(self, listener, watcher):
        with self.watch_lock:
            listener.watches.discard(watcher)

    def drop_watches(self):
        with self.watch_lock:
            watchers = [w for l in (self.main, self.admin) if l for w in l.watches]
        for w in watchers:
            w.queue.put(("drop",))
            try:
                w.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(watchers)

    def discovery(self, path, listener):
        p = path.rstrip("/") or "/"
        if p == "/version":
            return 200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0-trellis-standin",
                         "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                         "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23", "compiler": "gc",
                         "platform": "linux/amd64"}
        if p == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"],
                         "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                         "serverAddress": f"{self.args.host}:{self.main.port}"}]}
        if p == "/api/v1":
            return 200, api_resource_list("", "v1")
        if p == "/apis":
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [api_group("networking.k8s.io")]}
        if p == "/apis/networking.k8s.io":
            return 200, {"kind": "APIGroup", "apiVersion": "v1", **api_group("networking.k8s.io")}
        if p == "/apis/networking.k8s.io/v1":
            return 200, api_resource_list("networking.k8s.io", "v1")
        if p == "/openapi/v3":
            return 200, openapi_v3_root()
        if p == "/openapi/v3/api/v1":
            return 200, openapi_v3_group("")
        if p == "/openapi/v3/apis/networking.k8s.io/v1":
            return 200, openapi_v3_group("networking.k8s.io")
        if p in ("/healthz", "/readyz", "/livez"):
            return 200, "ok"
        raise APIError(404, "NotFound", "the server could not find the requested resource")

    def standin(self, handler, path, query, raw):
        """The /_standin/ endpoints: faults and introspection (no authentication)."""
        method = handler.command
        body = json.loads(raw) if raw else {}
        if path == "/_standin/stats" and method == "GET":
            handler.send_json(200, self.stats.snapshot(self.store))
        elif path == "/_standin/requests" and method == "GET":
            with self.stats.lock:
                handler.send_json(200, {"requests": list(self.stats.log)})
        elif path == "/_standin/reset-stats" and method == "POST":
            with self.stats.lock:
                watches = self.stats.watches
                self.stats.reset()
                self.stats.watches = watches
            handler.send_json(200, {"ok": True})
        elif path == "/_standin/drop-watches" and method == "POST":
            handler.send_json(200, {"dropped": self.drop_watches()})
        elif path == "/_standin/compact" and method == "POST":
            handler.send_json(200, {"compactedResourceVersion": str(self.store.compact())})
        elif path == "/_standin/faults" and method == "POST":
            rule = {"status": int(body.get("status", query.get("status", 429))),
                    "count": int(body.get("count", query.get("count", 1))),
                    "retryAfter": body.get("retryAfter", query.get("retryAfter")),
                    "pathPrefix": body.get("pathPrefix", query.get("pathPrefix")),
                    "verb": body.get("verb", query.get("verb")),
                    "message": body.get("message")}
            self.faults.add(rule)
            handler.send_json(200, {"ok": True})
        elif path == "/_standin/faults" and method == "DELETE":
            self.faults.clear()
            handler.send_json(200, {"ok": True})
        elif path == "/_standin/pause" and method == "POST":
            seconds = float(body.get("seconds", query.get("seconds", 3)))
            paused = threading.Event()
            self.main.pause_request = (seconds, handler.connection, paused)
            paused.wait(5)
            handler.close_connection = True
            handler.send_json(200, {"pausedSeconds": seconds})
        elif path == "/_standin/load" and method == "POST":
            items = body.get("items", body) if isinstance(body, dict) else body
            handler.send_json(200, {"loaded": self.api.load(items)})
        else:
            raise APIError(404, "NotFound", f"no stand-in endpoint {method} {path}")
        return 200


def write_port_file(path, port):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.rename(tmp, path)


def parse_address(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def main(argv=None):
    p = argparse.ArgumentParser(description="A stand-in for the Kubernetes API server, for tests.")
    p.add_argument("--listen", default="127.0.0.1:0", help="address:port to serve the API on (port 0: any free port)")
    p.add_argument("--port-file", help="written with the bound port once listening")
    p.add_argument("--admin-listen", help="an extra plain-HTTP listener without authentication that is never paused "
                                          "(for tests: it serves the API and /_standin/)")
    p.add_argument("--admin-port-file", help="written with the admin listener's port once listening")
    p.add_argument("--tls-cert", help="PEM certificate (chain) of the server; TLS is on when given")
    p.add_argument("--tls-key", help="PEM private key of the server")
    p.add_argument("--client-ca", help="PEM CA bundle: client certificates it signed authenticate")
    p.add_argument("--tokens-file", help="valid bearer tokens, one a line, re-read when the file changes")
    p.add_argument("--bookmark-interval", type=float, default=1.0, help="seconds between BOOKMARK events (default 1)")
    p.add_argument("--history", type=int, default=10000, help="events kept for watches and continue tokens (default 10000)")
    p.add_argument("--load", action="append", default=[], help="JSON file: a List (or array) of objects to start with")
    p.add_argument("--watch-expired", choices=["event", "http"], default="event",
                   help="how a watch from a too-old resourceVersion fails: an ERROR event with a 410 Status "
                        "(the watch cache's way, default) or HTTP 410")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = p.parse_args(argv)
    args.host, port = parse_address(args.listen)

    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
        if args.client_ca:
            tls.load_verify_locations(args.client_ca)
            tls.verify_mode = ssl.CERT_OPTIONAL
    elif args.client_ca:
        p.error("--client-ca needs --tls-cert and --tls-key")

    app = App(args)
    for path in args.load:
        with open(path) as f:
            data = json.load(f)
        app.api.load(data.get("items", []) if isinstance(data, dict) else data)
    app.store.compact()  # loaded objects are the starting state, not history

    app.main = Listener(app, args.host, port, tls, admin=False)
    app.main.open()
    if args.admin_listen:
        host, aport = parse_address(args.admin_listen)
        app.admin = Listener(app, host, aport, None, admin=True)
        app.admin.open()
        threading.Thread(target=app.admin.serve_forever, daemon=True).start()
        if args.admin_port_file:
            write_port_file(args.admin_port_file, app.admin.port)
    if args.port_file:
        write_port_file(args.port_file, app.main.port)
    app.log(f"serving {'https' if tls else 'http'}://{args.host}:{app.main.port}"
            + (f", admin http://{args.host}:{app.admin.port}" if app.admin else ""))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:
        app.main.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

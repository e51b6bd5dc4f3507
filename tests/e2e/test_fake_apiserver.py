"""The fake kube-apiserver (tests/lib/fake_apiserver.py) checked the way a
client sees it: discovery, CRUD with paging and optimistic concurrency, the
three patch types, watch streams (replay, bookmarks, Expired after
compaction), TLS with tokens and client certificates, the audit webhook
emitter, the standalone mode, and the real kubectl driving it."""
import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LIB = os.path.join(os.environ.get("KT_SRC", "."), "tests", "lib")
sys.path.insert(0, LIB)
from fake_apiserver import ApiError, FakeApiserver  # noqa: E402
from ktest import Results  # noqa: E402

R = Results()
T0 = time.time()
TMP = tempfile.mkdtemp(prefix="kt-fakeapi-")


class Client:
    """A small HTTP(S) client speaking JSON to the fake server."""

    def __init__(self, srv, token=None, ctx=None, headers=None):
        self.host, self.port = srv.host, srv.port
        self.tls = srv.tls
        self.token = token
        self.headers = headers or {}
        if self.tls and ctx is None:
            ctx = ssl.create_default_context(cafile=srv.ca_file)
        self.ctx = ctx

    def conn(self, timeout=10):
        if self.tls:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=self.ctx)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def hdrs(self, ctype=None, extra=None):
        h = {"Accept": "application/json"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        if ctype:
            h["Content-Type"] = ctype
        h.update(self.headers)
        h.update(extra or {})
        return h

    def req(self, method, path, body=None, ctype="application/json", headers=None):
        c = self.conn()
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        c.request(method, path, body=data, headers=self.hdrs(ctype if data else None, headers))
        r = c.getresponse()
        raw = r.read()
        c.close()
        try:
            return r.status, json.loads(raw)
        except ValueError:
            return r.status, raw.decode(errors="replace")

    def watch(self, path, headers=None):
        """Opens a watch; returns (status, queue of decoded lines, Watch).
        The queue gets None when the stream ends cleanly (terminating chunk),
        "EOF-ERR" otherwise."""
        c = self.conn(timeout=15)
        c.request("GET", path, headers=self.hdrs(None, headers))
        r = c.getresponse()
        q = queue.Queue()

        def pump():
            try:
                while True:
                    line = r.readline()
                    if not line:
                        q.put(None if r.isclosed() else "EOF-ERR")
                        return
                    q.put(json.loads(line))
            except Exception:  # noqa: BLE001 - the stream broke
                q.put("EOF-ERR")
        if r.status == 200:
            threading.Thread(target=pump, daemon=True).start()
        else:
            q.put(json.loads(r.read()))
        return r.status, q, Watch(c)


class Watch:
    def __init__(self, conn):
        self.conn = conn

    def close(self):
        """Hangs up (a plain close would wait for the reading thread)."""
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass


def take(q, n, timeout=5.0, skip_bookmarks=True):
    out, deadline = [], time.time() + timeout
    while len(out) < n and time.time() < deadline:
        try:
            ev = q.get(timeout=max(0.01, deadline - time.time()))
        except queue.Empty:
            break
        if skip_bookmarks and isinstance(ev, dict) and ev.get("type") == "BOOKMARK":
            continue
        out.append(ev)
    return out


def cm(name, ns="default", labels=None, data=None):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "data": data or {"k": name}}


def deployment(name, image="img:1", replicas=2):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image},
                                                          {"name": "side", "image": "s:1"}]}}}}


def is_status(body, code, reason):
    return (isinstance(body, dict) and body.get("kind") == "Status"
            and body.get("apiVersion") == "v1" and body.get("metadata") == {}
            and body.get("status") == "Failure" and body.get("code") == code
            and body.get("reason") == reason and isinstance(body.get("message"), str))


# ------------------------------------------------------------ plain HTTP: the protocol
srv = FakeApiserver(bookmark_interval=0.3).start()
c = Client(srv)

st, body = c.req("GET", "/api")
R.check(st == 200 and body["kind"] == "APIVersions" and body["versions"] == ["v1"], "/api")
st, body = c.req("GET", "/apis")
groups = {g["name"]: g for g in body.get("groups", [])}
R.check(body.get("kind") == "APIGroupList" and {"apps", "coordination.k8s.io",
                                                 "events.k8s.io"} <= set(groups)
        and groups["apps"]["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"},
        "/apis groups with preferredVersion: %s" % body)
st, body = c.req("GET", "/api/v1")
res = {r["name"]: r for r in body.get("resources", [])}
R.check(body.get("kind") == "APIResourceList" and body.get("groupVersion") == "v1"
        and res["pods"]["shortNames"] == ["po"] and res["pods"]["namespaced"] is True
        and res["pods"]["singularName"] == "pod" and "watch" in res["pods"]["verbs"]
        and "pods/status" in res and res["pods/binding"]["verbs"] == ["create"]
        and res["namespaces"]["namespaced"] is False and res["nodes"]["shortNames"] == ["no"]
        and {"cm", "ev", "svc", "ns"} <= {s for r in res.values() for s in r.get("shortNames", [])},
        "/api/v1 resources")
st, body = c.req("GET", "/apis/apps/v1")
res = {r["name"]: r for r in body.get("resources", [])}
R.check(body.get("groupVersion") == "apps/v1" and res["deployments"]["shortNames"] == ["deploy"]
        and res["replicasets"]["shortNames"] == ["rs"]
        and res["deployments/scale"]["group"] == "autoscaling"
        and res["deployments/scale"]["kind"] == "Scale" and "deployments/status" in res
        and "replicasets/scale" in res, "/apis/apps/v1 resources")
st, body = c.req("GET", "/apis/coordination.k8s.io/v1")
R.check(st == 200 and body["resources"][0]["name"] == "leases", "leases discovered")
st, body = c.req("GET", "/version")
R.check(st == 200 and body.get("gitVersion", "").startswith("v1.") and "major" in body, "/version")
st, body = c.req("GET", "/healthz")
R.check(st == 200 and body == "ok", "/healthz")
st, body = c.req("GET", "/readyz")
R.check(st == 200 and body == "ok", "/readyz")
st, body = c.req("GET", "/apis/example.com/v1")
R.check(st == 404 and is_status(body, 404, "NotFound"), "unknown group 404 Status: %s" % body)
srv.add_resource("example.com", "v1", "widgets", "Widget", short_names=["wd"])
st, body = c.req("GET", "/apis")
R.check("example.com" in [g["name"] for g in body["groups"]], "added group in /apis")
st, body = c.req("GET", "/apis/example.com/v1")
R.check(st == 200 and body["resources"][0]["name"] == "widgets"
        and body["resources"][0]["kind"] == "Widget", "added resource discovered")
st, body = c.req("POST", "/apis/example.com/v1/namespaces/default/widgets",
                 {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                  "spec": {"size": 1}})
R.check(st == 201 and body["metadata"]["generation"] == 1, "custom resource created")
srv.remove_resource("example.com", "v1", "widgets")
st, body = c.req("GET", "/apis")
R.check("example.com" not in [g["name"] for g in body["groups"]], "removed group gone")

# create / get / errors
rv_before = int(srv.resource_version)
for i in range(5):
    st, body = c.req("POST", "/api/v1/namespaces/default/configmaps",
                     cm("cm%d" % i, labels={"app": "a" if i % 2 else "b", "tier": "x"}))
    R.check(st == 201 and body["kind"] == "ConfigMap" and body["apiVersion"] == "v1"
            and body["metadata"]["uid"] and body["metadata"]["creationTimestamp"].endswith("Z")
            and int(body["metadata"]["resourceVersion"]) == rv_before + i + 1, "create cm%d" % i)
st, body = c.req("POST", "/api/v1/namespaces/default/configmaps", cm("cm0"))
R.check(st == 409 and is_status(body, 409, "AlreadyExists")
        and body["details"] == {"name": "cm0", "kind": "configmaps"}, "AlreadyExists: %s" % body)
st, body = c.req("GET", "/api/v1/namespaces/default/configmaps/nope")
R.check(st == 404 and is_status(body, 404, "NotFound")
        and body["message"] == 'configmaps "nope" not found', "NotFound Status: %s" % body)
st, body = c.req("GET", "/apis/apps/v1/namespaces/default/deployments/nope")
R.check(body.get("details") == {"name": "nope", "group": "apps", "kind": "deployments"}
        and body["message"] == 'deployments.apps "nope" not found', "NotFound with group")
st, body = c.req("POST", "/api/v1/namespaces/default/configmaps",
                 {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"generateName": "gen-"}})
R.check(st == 201 and re.match(r"^gen-[a-z0-9]{5}$", body["metadata"]["name"]), "generateName")
st, body = c.req("POST", "/api/v1/namespaces/default/configmaps",
                 {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {}})
R.check(st == 422 and is_status(body, 422, "Invalid"), "name required: %s" % body)
st, body = c.req("POST", "/api/v1/namespaces/default/configmaps", b"k8s\x00\x0a\x02",
                 ctype="application/vnd.kubernetes.protobuf")
R.check(st == 400 and is_status(body, 400, "BadRequest"), "truncated protobuf -> 400: %s" % body)
st, body = c.req("POST", "/api/v1/namespaces/default/configmaps", b"x" * (3 << 20 | 1))
R.check(st == 413 and body.get("kind") == "Status", "body over 3 MiB: %d" % st)
st, body = c.req("GET", "/api/v1/namespaces/default/configmaps/cm1")
R.check(st == 200 and body["kind"] == "ConfigMap" and body["data"] == {"k": "cm1"}, "get one")
st, body = c.req("GET", "/api/v1/nodes/n1")
R.check(st == 404, "cluster-scoped get")
st, body = c.req("POST", "/api/v1/nodes", {"kind": "Node", "apiVersion": "v1",
                                            "metadata": {"name": "n1", "namespace": "zz"}})
R.check(st == 201 and "namespace" not in body["metadata"], "cluster-scoped create drops namespace")

# list, paging, selectors
srv.create(cm("other", ns="kube-system"))
st, page1 = c.req("GET", "/api/v1/namespaces/default/configmaps?labelSelector=tier%3Dx&limit=2")
st2, page2 = c.req("GET", "/api/v1/namespaces/default/configmaps?labelSelector=tier%3Dx&limit=2"
                   "&continue=" + page1["metadata"].get("continue", ""))
srv.create(cm("cm9", labels={"tier": "x"}))    # after the first page: not in this list
st3, page3 = c.req("GET", "/api/v1/namespaces/default/configmaps?labelSelector=tier%3Dx&limit=2"
                   "&continue=" + page2["metadata"].get("continue", ""))
names = [i["metadata"]["name"] for p in (page1, page2, page3) for i in p["items"]]
R.check(page1["kind"] == "ConfigMapList" and page1["apiVersion"] == "v1"
        and names == ["cm0", "cm1", "cm2", "cm3", "cm4"]
        and page1["metadata"]["remainingItemCount"] == 3
        and page2["metadata"]["remainingItemCount"] == 1
        and "continue" not in page3["metadata"]
        and page1["metadata"]["resourceVersion"] == page3["metadata"]["resourceVersion"],
        "paging limit=2 over 5: %s %s" % (names, page3["metadata"]))
R.check(all("kind" not in i and "apiVersion" not in i for i in page1["items"]),
        "list items without kind/apiVersion")
st, body = c.req("GET", "/api/v1/namespaces/default/configmaps?continue=bm90LWEtdG9rZW4")
R.check(st == 400 and is_status(body, 400, "BadRequest"), "bad continue token")
st, body = c.req("GET", "/api/v1/namespaces/default/configmaps?labelSelector=app%3Da,tier%3Dx")
R.check([i["metadata"]["name"] for i in body["items"]] == ["cm1", "cm3"], "labelSelector a=b,c=d")
st, body = c.req("GET", "/api/v1/namespaces/default/configmaps?labelSelector=app!%3Da,tier")
R.check([i["metadata"]["name"] for i in body["items"]] == ["cm0", "cm2", "cm4", "cm9"],
        "labelSelector != and exists")
st, body = c.req("GET", "/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Dcm2")
R.check([i["metadata"]["name"] for i in body["items"]] == ["cm2"], "fieldSelector metadata.name")
st, body = c.req("GET", "/api/v1/configmaps?fieldSelector=metadata.namespace%3Dkube-system")
R.check([i["metadata"]["name"] for i in body["items"]] == ["other"], "fieldSelector namespace")
st, body = c.req("GET", "/api/v1/configmaps")
R.check(body["metadata"]["resourceVersion"] == srv.resource_version
        and {i["metadata"]["namespace"] for i in body["items"]} == {"default", "kube-system"},
        "all-namespaces list at the current RV")

# update: optimistic concurrency
st, cur = c.req("GET", "/api/v1/namespaces/default/configmaps/cm0")
stale = json.loads(json.dumps(cur))
cur["data"] = {"k": "v2"}
st, upd = c.req("PUT", "/api/v1/namespaces/default/configmaps/cm0", cur)
R.check(st == 200 and upd["data"] == {"k": "v2"}
        and int(upd["metadata"]["resourceVersion"]) > int(cur["metadata"]["resourceVersion"])
        and upd["metadata"]["uid"] == cur["metadata"]["uid"], "update")
stale["data"] = {"k": "lost"}
st, body = c.req("PUT", "/api/v1/namespaces/default/configmaps/cm0", stale)
R.check(st == 409 and is_status(body, 409, "Conflict") and "the object has been modified"
        in body["message"], "stale resourceVersion -> 409 Conflict: %s" % body)
same = c.req("PUT", "/api/v1/namespaces/default/configmaps/cm0", upd)[1]
R.check(same["metadata"]["resourceVersion"] == upd["metadata"]["resourceVersion"],
        "no-op update keeps the resourceVersion")
del stale["metadata"]["resourceVersion"]
st, body = c.req("PUT", "/api/v1/namespaces/default/configmaps/cm0", stale)
R.check(st == 200 and body["data"] == {"k": "lost"}, "unconditional update without RV")
st, body = c.req("PUT", "/api/v1/namespaces/default/configmaps/nope", cm("nope"))
R.check(st == 404, "update of a missing object -> 404")
try:
    srv.update(dict(upd, data={"x": "y"}))
    R.check(False, "direct update with a stale RV raised")
except ApiError as e:
    R.check(e.code == 409 and e.reason == "Conflict", "direct update raises ApiError 409")

# leader election on a Lease: create races and conditional updates
lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
         "metadata": {"name": "lock", "namespace": "kube-system"},
         "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}
st, l1 = c.req("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases", lease)
st2, _ = c.req("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases", lease)
l1["spec"]["holderIdentity"] = "b"
st3, _ = c.req("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/lock", l1)
st4, _ = c.req("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/lock", l1)
R.check((st, st2, st3, st4) == (201, 409, 200, 409), "lease create/update races: %s"
        % [st, st2, st3, st4])

# patches
PATCH = "/apis/apps/v1/namespaces/default/deployments/web"
st, d0 = c.req("POST", "/apis/apps/v1/namespaces/default/deployments", deployment("web"))
R.check(st == 201 and d0["metadata"]["generation"] == 1 and d0["status"] == {}, "deployment")
st, body = c.req("PATCH", PATCH, {"metadata": {"labels": {"x": "1", "app": None}}},
                 ctype="application/merge-patch+json")
R.check(st == 200 and body["metadata"]["labels"] == {"x": "1"}
        and body["metadata"]["generation"] == 1, "merge patch (null deletes, no generation bump)")
smp = {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "c"},
                                                                       {"name": "side"}],
                                      "containers": [{"name": "c", "image": "img:2"}]}}}}
st, body = c.req("PATCH", PATCH, smp, ctype="application/strategic-merge-patch+json")
ctrs = body["spec"]["template"]["spec"]["containers"]
R.check(st == 200 and ctrs == [{"name": "c", "image": "img:2"}, {"name": "side", "image": "s:1"}]
        and body["metadata"]["generation"] == 2, "strategic merge patch by name: %s" % ctrs)
st, body = c.req("PATCH", PATCH, {"spec": {"template": {"spec": {"containers": [
    {"name": "side", "$patch": "delete"}]}}}}, ctype="application/strategic-merge-patch+json")
R.check([x["name"] for x in body["spec"]["template"]["spec"]["containers"]] == ["c"],
        "strategic $patch: delete")
st, body = c.req("PATCH", PATCH, [
    {"op": "add", "path": "/metadata/annotations", "value": {"a/b": "1"}},
    {"op": "replace", "path": "/spec/replicas", "value": 5},
    {"op": "remove", "path": "/metadata/labels/x"},
    {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "z", "image": "z"}}],
    ctype="application/json-patch+json")
R.check(st == 200 and body["metadata"]["annotations"] == {"a/b": "1"}
        and body["spec"]["replicas"] == 5 and "x" not in body["metadata"].get("labels", {})
        and len(body["spec"]["template"]["spec"]["containers"]) == 2, "json patch: %s" % body)
st, body = c.req("PATCH", PATCH, [{"op": "test", "path": "/spec/replicas", "value": 1}],
                 ctype="application/json-patch+json")
R.check(st == 422 and is_status(body, 422, "Invalid"), "json patch test failure -> 422")
st, body = c.req("PATCH", PATCH, {"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 1}},
                 ctype="application/merge-patch+json")
R.check(st == 409 and body["reason"] == "Conflict", "patch with a stale RV precondition")
st, body = c.req("PATCH", PATCH, {"spec": {}}, ctype="text/plain")
R.check(st == 415, "unknown patch type -> 415")

# scale and status subresources
st, sc = c.req("GET", PATCH + "/scale")
R.check(st == 200 and sc["kind"] == "Scale" and sc["apiVersion"] == "autoscaling/v1"
        and sc["spec"] == {"replicas": 5} and sc["status"]["selector"] == "app=web", "GET scale")
st, sc = c.req("PATCH", PATCH + "/scale", {"spec": {"replicas": 3}},
               ctype="application/merge-patch+json")
R.check(st == 200 and sc["kind"] == "Scale" and sc["spec"]["replicas"] == 3
        and srv.get("deployments", "default", "web")["spec"]["replicas"] == 3, "PATCH scale")
sc["spec"]["replicas"] = 4
st, sc2 = c.req("PUT", PATCH + "/scale", sc)
st3, _ = c.req("PUT", PATCH + "/scale", sc)
R.check(st == 200 and sc2["spec"]["replicas"] == 4 and st3 == 409, "PUT scale with RV check")
cur = srv.get("deployments", "default", "web")
cur["status"] = {"replicas": 4, "readyReplicas": 4}
cur["spec"]["replicas"] = 9
st, body = c.req("PUT", PATCH + "/status", cur)
R.check(st == 200 and body["status"]["replicas"] == 4 and body["spec"]["replicas"] == 4,
        "status PUT changes only status")
body["status"] = {}
body["metadata"]["labels"] = {"z": "1"}
st, body = c.req("PUT", PATCH, body)
R.check(st == 200 and body["status"]["replicas"] == 4 and body["metadata"]["labels"] == {"z": "1"},
        "main PUT keeps status")
st, body = c.req("PATCH", PATCH + "/status", {"status": {"observedGeneration": 7}},
                 ctype="application/merge-patch+json")
R.check(st == 200 and body["status"] == {"replicas": 4, "readyReplicas": 4,
                                         "observedGeneration": 7}, "status merge patch")

# watch from a resourceVersion: MODIFIED and DELETED in order, bookmarks
st, lst = c.req("GET", "/api/v1/namespaces/default/configmaps")
rv0 = lst["metadata"]["resourceVersion"]
wst, wq, wconn = c.watch("/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true"
                         "&resourceVersion=" + rv0)
srv.patch("configmaps", "default", "cm1", {"data": {"k": "changed"}})
srv.delete("configmaps", "default", "cm2")
srv.create(cm("cm7"))
srv.create(cm("elsewhere", ns="kube-system"))
evs = take(wq, 3)
R.check(wst == 200 and [(e["type"], e["object"]["metadata"]["name"]) for e in evs]
        == [("MODIFIED", "cm1"), ("DELETED", "cm2"), ("ADDED", "cm7")]
        and all(e["object"]["kind"] == "ConfigMap" and e["object"]["apiVersion"] == "v1"
                for e in evs)
        and evs[0]["object"]["data"] == {"k": "changed"}
        and int(evs[1]["object"]["metadata"]["resourceVersion"])
        > int(evs[0]["object"]["metadata"]["resourceVersion"]), "watch from RV: %s" % evs)
bms = [e for e in take(wq, 2, timeout=2.0, skip_bookmarks=False) if e and e["type"] == "BOOKMARK"]
R.check(len(bms) >= 1 and set(bms[0]["object"]) == {"kind", "apiVersion", "metadata"}
        and bms[0]["object"]["kind"] == "ConfigMap"
        and bms[0]["object"]["metadata"]["resourceVersion"] == srv.resource_version,
        "bookmarks: %s" % bms)
wconn.close()

wst, wq, wconn = c.watch("/api/v1/namespaces/default/pods?watch=true&resourceVersion=" + rv0)
R.check(take(wq, 1, timeout=0.5) == [], "a watch of another resource sees nothing")
wconn.close()

# replay after the fact; no RV -> ADDED of everything first; timeoutSeconds
wst, wq, wconn = c.watch("/api/v1/configmaps?watch=1&resourceVersion=" + rv0)
evs = take(wq, 4)
R.check([e["type"] for e in evs] == ["MODIFIED", "DELETED", "ADDED", "ADDED"], "history replay")
wconn.close()
wst, wq, wconn = c.watch("/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1")
evs = take(wq, 20, timeout=3.0)
names = [e["object"]["metadata"]["name"] for e in evs if isinstance(e, dict)]
R.check(all(e["type"] == "ADDED" for e in evs if isinstance(e, dict))
        and "cm0" in names and "cm2" not in names and evs[-1] is None,
        "watch without RV: ADDED for all, then a clean end after timeoutSeconds: %s" % evs[-1:])
wconn.close()

# fieldSelector metadata.name (kubectl's single-object watch); label selector exits
wst, wq, wconn = c.watch("/api/v1/namespaces/default/configmaps?watch=1&fieldSelector="
                         "metadata.name%3Dcm3&resourceVersion=" + srv.resource_version)
wst2, wq2, wconn2 = c.watch("/api/v1/namespaces/default/configmaps?watch=1&labelSelector="
                            "app%3Da&resourceVersion=" + srv.resource_version)
srv.patch("configmaps", "default", "cm4", {"data": {"k": "x"}})
srv.patch("configmaps", "default", "cm3", {"metadata": {"labels": {"app": "gone"}}})
evs, evs2 = take(wq, 1), take(wq2, 1)
R.check([(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [("MODIFIED", "cm3")],
        "fieldSelector watch: %s" % evs)
R.check([(e["type"], e["object"]["metadata"]["name"]) for e in evs2] == [("DELETED", "cm3")],
        "object leaving a label selector -> DELETED: %s" % evs2)
wconn.close()
wconn2.close()

# compaction -> Expired
old_rv = rv0
srv.compact()
wst, wq, wconn = c.watch("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=" + old_rv)
evs = take(wq, 2)
R.check(wst == 200 and len(evs) == 2 and evs[0]["type"] == "ERROR"
        and evs[0]["object"]["code"] == 410 and evs[0]["object"]["reason"] == "Expired"
        and is_status(evs[0]["object"], 410, "Expired") and evs[1] is None,
        "compacted RV -> in-stream ERROR 410 Expired: %s" % evs)
wconn.close()
wst, wq, wconn = c.watch("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion="
                         + srv.resource_version)
srv.create(cm("after-compact"))
evs = take(wq, 1)
R.check(evs and evs[0]["type"] == "ADDED", "watch from the current RV after compaction")
wconn.close()
st, p1 = c.req("GET", "/api/v1/namespaces/default/configmaps?limit=1")
srv.compact()
st, body = c.req("GET", "/api/v1/namespaces/default/configmaps?limit=1&continue="
                 + p1["metadata"]["continue"])
R.check(st == 410 and is_status(body, 410, "Expired"), "compacted continue token -> 410")
srv.expired_http_410 = True
wst, wq, wconn = c.watch("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=" + old_rv)
R.check(wst == 410 and is_status(wq.get(timeout=2), 410, "Expired"), "HTTP 410 option")
wconn.close()
srv.expired_http_410 = False

# server-side stream ends: clean and abrupt
def raw_watch_end(mode):
    deadline = time.time() + 3  # the previous one has gone
    while srv.watch_count() and time.time() < deadline:
        time.sleep(0.01)
    so = socket.create_connection((srv.host, srv.port), timeout=5)
    so.sendall(b"GET /api/v1/pods?watch=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    R.check(srv.wait_for_watchers(1, 3, resource="pods"), "watch registered")
    data = b""
    while b"\r\n\r\n" not in data:  # the headers are out before the end
        got = so.recv(65536)
        if not got:
            break
        data += got
    srv.close_watches(mode)
    while not data.endswith(b"\r\n0\r\n\r\n"):    # clean: the connection stays open
        got = so.recv(65536)
        if not got:
            break
        data += got
    so.close()
    return data


R.check(raw_watch_end("clean").endswith(b"\r\n\r\n0\r\n\r\n"), "clean end: last chunk")
data = raw_watch_end("abrupt")
# the last chunk is looked for in the body only: a header (Audit-Id) may
# end in "0" too
body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
R.check(data.startswith(b"HTTP/1.1 200 OK") and not body.endswith(b"0\r\n\r\n"),
        "abrupt end: no last chunk: %r" % data[-120:])

# a client that never reads its watch must not slow anyone else
slow = socket.create_connection((srv.host, srv.port))
slow.sendall(b"GET /api/v1/namespaces/default/configmaps?watch=1 HTTP/1.1\r\nHost: x\r\n\r\n")
srv.wait_for_watchers(1, 3)
big = "x" * 20000
t = time.time()
worst = 0.0
for i in range(150):
    t1 = time.time()
    srv.create(cm("bulk%03d" % i, data={"d": big}))
    st, _ = c.req("GET", "/api/v1/namespaces/default/configmaps/cm0")
    worst = max(worst, time.time() - t1)
R.check(worst < 1.0, "writes and reads stay fast with a stuck watcher (worst %.3fs)" % worst)
slow.close()
st, body = c.req("DELETE", "/api/v1/namespaces/default/configmaps?labelSelector=",
                 None)
R.check(st == 200 and body["kind"] == "ConfigMapList" and len(body["items"]) > 150,
        "deletecollection")

# delete answers; finalizers; garbage collection; pods/binding
st, body = c.req("POST", "/api/v1/namespaces/default/configmaps",
                 dict(cm("fin"), metadata={"name": "fin", "finalizers": ["x/y"]}))
st, body = c.req("DELETE", "/api/v1/namespaces/default/configmaps/fin",
                 {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"})
R.check(st == 200 and body["metadata"].get("deletionTimestamp"), "finalizer holds the delete")
srv.patch("configmaps", "default", "fin", {"metadata": {"finalizers": None}})
R.check(srv.get("configmaps", "default", "fin") is None, "removing the finalizer deletes")
owner = srv.get("deployments", "default", "web")
srv.create({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-1", "namespace": "default", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                 "uid": owner["metadata"]["uid"], "controller": True}]},
            "spec": {"selector": {"matchLabels": {"app": "web"}}}})
st, body = c.req("POST", "/api/v1/namespaces/default/pods", {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
    "spec": {"containers": [{"name": "c", "image": "i"}]}})
R.check(st == 201 and body["status"] == {"phase": "Pending"}, "pod created Pending")
st, body = c.req("POST", "/api/v1/namespaces/default/pods/p/binding",
                 {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
                  "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}})
R.check(st == 201 and srv.get("pods", "default", "p")["spec"]["nodeName"] == "n1", "binding")
st, body = c.req("DELETE", "/api/v1/namespaces/default/pods/p")
R.check(st == 200 and body["kind"] == "Pod", "pod delete answers the Pod")
st, body = c.req("DELETE", PATCH)
R.check(st == 200 and body["kind"] == "Status" and body["status"] == "Success"
        and body["details"]["name"] == "web" and body["details"]["group"] == "apps",
        "deployment delete answers a Success Status: %s" % body)
R.check(srv.get("replicasets", "default", "web-1") is None, "owned ReplicaSet collected")

# Events: one storage, two views
srv.create({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "default"},
            "eventTime": "2024-01-01T00:00:00.000000Z", "action": "Scheduling",
            "reason": "Scheduled", "note": "assigned", "type": "Normal",
            "reportingController": "default-scheduler", "reportingInstance": "s-1",
            "regarding": {"kind": "Pod", "name": "p", "namespace": "default"}})
core = srv.get("events", "default", "web.1")
R.check(core["apiVersion"] == "v1" and core["involvedObject"]["name"] == "p"
        and core["message"] == "assigned" and core["source"] == {}
        and core["firstTimestamp"] is None and core["reportingComponent"] == "default-scheduler",
        "events.k8s.io Event read as core/v1: %s" % core)
st, body = c.req("GET", "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dp")
R.check(len(body["items"]) == 1, "event fieldSelector involvedObject.name")
st, body = c.req("GET", "/apis/events.k8s.io/v1/namespaces/default/events/web.1")
R.check(body["apiVersion"] == "events.k8s.io/v1" and body["regarding"]["name"] == "p"
        and body["note"] == "assigned", "events.k8s.io view")
st, body = c.req("POST", "/api/v1/namespaces/default/events", {
    "apiVersion": "v1", "kind": "Event", "metadata": {"name": "p.16806e83e5b82d63"},
    "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Pulled", "message": "m",
    "type": "Normal", "source": {"component": "kubelet"}, "count": 1,
    "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:00Z"})
R.check(st == 201 and body["eventTime"] is None and body["reportingComponent"] == "", "core event")

# restart on the same port keeps the store; an open watch ends cleanly
url, rv = srv.url, srv.resource_version
wst, wq, wconn = c.watch("/api/v1/namespaces/default/events?watch=1&resourceVersion=" + rv)
srv.stop()
evs = take(wq, 1, timeout=3)
srv.start()
st, body = c.req("GET", "/api/v1/namespaces/default/events/web.1")
R.check(evs == [None] and srv.url == url and st == 200
        and srv.resource_version == rv, "restart: %s %s %d" % (evs, srv.url, st))
wconn.close()
srv.stop()

# ------------------------------------------------------------ TLS, tokens, client certificates
srv = FakeApiserver(tls=True, token="t0k", client_cert_auth=True).start()
R.check(srv.url.startswith("https://127.0.0.1:"), "https URL")
st, body = Client(srv).req("GET", "/api/v1/namespaces")
R.check(st == 401 and is_status(body, 401, "Unauthorized"), "no token -> 401 Status: %s" % body)
st, body = Client(srv, token="wrong").req("GET", "/api/v1/namespaces")
R.check(st == 401, "wrong token -> 401")
st, body = Client(srv, token="t0k").req("GET", "/api/v1/namespaces")
R.check(st == 200 and len(body["items"]) == 4, "token -> 200")
st, body = Client(srv).req("GET", "/healthz")
R.check(st == 200, "healthz is anonymous")
crt, key = srv.client_cert("alice", ["devs"])
ctx = ssl.create_default_context(cafile=srv.ca_file)
ctx.load_cert_chain(crt, key)
cc = Client(srv, ctx=ctx)
st, body = cc.req("POST", "/api/v1/namespaces/default/configmaps", cm("by-alice"))
R.check(st == 201, "client certificate -> 201")
ev = srv.audit_events[-1]
R.check(ev["user"] == {"username": "alice", "groups": ["devs", "system:authenticated"]},
        "user from the certificate: %s" % ev["user"])
try:
    ssl.create_default_context().wrap_socket(socket.create_connection((srv.host, srv.port)),
                                             server_hostname="127.0.0.1").close()
    R.check(False, "the server certificate is not trusted without the CA")
except ssl.SSLError:
    R.check(True, "")
kc = srv.write_kubeconfig(os.path.join(TMP, "multi"), context="one")
srv2 = FakeApiserver().start()
srv2.write_kubeconfig(kc, context="two", merge=True, current=False)
text = open(kc).read()
R.check(text.count("- name:") == 6 and 'current-context: "one"' in text
        and "certificate-authority-data" in text and srv2.url in text, "two contexts in one file")
srv2.stop()
srv.stop()

# ------------------------------------------------------------ audit webhook emitter
posts = []
fail_first = [1]


class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if fail_first[0]:
            fail_first[0] -= 1
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        posts.append((self.path, self.headers.get("Content-Type"), json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *a):
        pass


sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
threading.Thread(target=sink.serve_forever, daemon=True).start()
srv = FakeApiserver(audit_webhook="http://127.0.0.1:%d/audit/fake" % sink.server_address[1]).start()
ca = Client(srv, headers={"User-Agent": "kube-controller-manager/v1.32.2 (linux/amd64)",
                          "X-Fake-User": "system:serviceaccount:kube-system:deployment-controller"})
ca.req("POST", "/apis/apps/v1/namespaces/default/deployments", deployment("aud"))
ca.req("PATCH", "/apis/apps/v1/namespaces/default/deployments/aud/scale",
       {"spec": {"replicas": 3}}, ctype="application/merge-patch+json")
cur = srv.get("deployments", "default", "aud")
ca.req("PUT", "/apis/apps/v1/namespaces/default/deployments/aud/status",
       dict(cur, status={"replicas": 3}))
ca.req("PUT", "/apis/apps/v1/namespaces/default/deployments/aud", dict(cur, metadata=dict(
    cur["metadata"], resourceVersion="1")))
ca.req("DELETE", "/apis/apps/v1/namespaces/default/deployments/aud")
ca.req("GET", "/apis/apps/v1/namespaces/default/deployments")
srv.create(cm("direct"))
R.check(srv.flush_audit(5), "audit flushed")
items = [i for _, _, b in posts for i in b["items"]]
R.check(posts and all(p == "/audit/fake" and ct == "application/json"
                      and set(b) == {"kind", "apiVersion", "metadata", "items"}
                      and b["kind"] == "EventList" and b["apiVersion"] == "audit.k8s.io/v1"
                      and b["metadata"] == {} for p, ct, b in posts), "EventList POSTs")
R.check([(i["verb"], i["objectRef"].get("subresource"), i["responseStatus"]["code"])
         for i in items] == [("create", None, 201), ("patch", "scale", 200),
                             ("update", "status", 200), ("update", None, 409),
                             ("delete", None, 200), ("create", None, 201)],
        "one event per mutating request, reads not audited: %s"
        % [(i["verb"], i["objectRef"]) for i in items])
R.check(srv.audit_stats["sent"] == 6 and srv.audit_stats["dropped"] == 0,
        "503 retried, nothing dropped: %s" % srv.audit_stats)
e0 = items[0]
TS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"
R.check(list(e0) == ["kind", "apiVersion", "level", "auditID", "stage", "requestURI", "verb",
                     "user", "sourceIPs", "userAgent", "objectRef", "responseStatus",
                     "requestObject", "responseObject", "requestReceivedTimestamp",
                     "stageTimestamp", "annotations"]
        and e0["kind"] == "Event" and e0["apiVersion"] == "audit.k8s.io/v1"
        and e0["level"] == "RequestResponse" and e0["stage"] == "ResponseComplete"
        and re.match(r"^[0-9a-f-]{36}$", e0["auditID"])
        and e0["requestURI"] == "/apis/apps/v1/namespaces/default/deployments"
        and e0["user"]["username"] == "system:serviceaccount:kube-system:deployment-controller"
        and "system:serviceaccounts" in e0["user"]["groups"]
        and e0["sourceIPs"] == ["127.0.0.1"]
        and e0["userAgent"].startswith("kube-controller-manager/")
        and e0["objectRef"] == {"resource": "deployments", "namespace": "default",
                                "name": "aud", "apiGroup": "apps", "apiVersion": "v1"}
        and e0["responseStatus"] == {"metadata": {}, "code": 201}
        and e0["requestObject"]["kind"] == "Deployment"
        and e0["responseObject"]["metadata"]["uid"]
        and re.match(TS, e0["requestReceivedTimestamp"]) and re.match(TS, e0["stageTimestamp"])
        and e0["annotations"]["authorization.k8s.io/decision"] == "allow",
        "audit event shape: %s" % json.dumps(e0)[:600])
e1, e3 = items[1], items[3]
R.check(e1["objectRef"]["subresource"] == "scale" and e1["requestObject"] ==
        {"spec": {"replicas": 3}} and e1["responseObject"]["kind"] == "Scale", "scale audit")
R.check(e3["responseStatus"]["reason"] == "Conflict" and e3["responseStatus"]["code"] == 409
        and e3["objectRef"]["resourceVersion"] == "1" and e3["objectRef"]["uid"],
        "failed update audited with its Status: %s" % e3["responseStatus"])
R.check(items[5]["objectRef"] == {"resource": "configmaps", "namespace": "default",
                                  "name": "direct", "apiVersion": "v1"}
        and items[5]["userAgent"] == "fake-apiserver/direct", "direct methods are audited")
srv.stop()
sink.shutdown()
sink.server_close()
srv = FakeApiserver(audit_webhook="http://127.0.0.1:%d/x" % sink.server_address[1]).start()
srv.create(cm("nobody-listens"))
srv.flush_audit(5)
R.check(srv.audit_stats["dropped"] == 1, "refused connections retried, then dropped")
srv.stop()

# ------------------------------------------------------------ protobuf request bodies


def pb_varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_len(num, data):
    data = data.encode() if isinstance(data, str) else data
    return pb_varint(num << 3 | 2) + pb_varint(len(data)) + data


def pb_num(num, v):
    return pb_varint(num << 3) + pb_varint(v)


def pb_map(num, d):
    return b"".join(pb_len(num, pb_len(1, k) + pb_len(2, v)) for k, v in d.items())


def pb_body(api_version, kind, raw):
    return b"k8s\x00" + pb_len(1, pb_len(1, api_version) + pb_len(2, kind)) + pb_len(2, raw)


PB = "application/vnd.kubernetes.protobuf"
PBH = {"Accept": "application/vnd.kubernetes.protobuf,application/json"}
srv = FakeApiserver().start()
c = Client(srv)
# a Deployment as gogo-protobuf writes it (zero strings included), plus an unknown field of
# each wire type that must be skipped
meta = pb_len(1, "pb") + pb_len(2, "") + pb_len(8, b"") + pb_map(11, {"app": "pb"})
ctr = (pb_len(1, "c") + pb_len(2, "i:1") + pb_len(6, pb_num(3, 80) + pb_len(4, "TCP"))
       + pb_len(8, b"") + pb_num(16, 0))
tmpl = pb_len(1, pb_len(8, b"") + pb_map(11, {"app": "pb"})) + pb_len(2, pb_len(2, ctr))
strategy = pb_len(1, "RollingUpdate") + pb_len(2, pb_len(1, pb_num(2, 1))
                                                + pb_len(2, pb_num(1, 1) + pb_len(3, "25%")))
spec = (pb_num(1, 0) + pb_len(2, pb_map(1, {"app": "pb"})) + pb_len(3, tmpl)
        + pb_len(4, strategy) + pb_num(5, 0) + pb_num(6, 5) + pb_num(7, 0)
        + pb_varint(99 << 3 | 1) + b"\x01" * 8 + pb_varint(98 << 3 | 5) + b"\x02" * 4
        + pb_num(97, 7) + pb_len(96, "x"))
status = pb_num(1, 0) + pb_num(2, 0)
st, body = c.req("POST", "/apis/apps/v1/namespaces/default/deployments",
                 pb_body("apps/v1", "Deployment", pb_len(1, meta) + pb_len(2, spec)
                         + pb_len(3, status)), ctype=PB, headers=PBH)
want = {"kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": "pb", "creationTimestamp": None, "labels": {"app": "pb"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "pb"}},
                 "template": {"metadata": {"creationTimestamp": None, "labels": {"app": "pb"}},
                              "spec": {"containers": [{
                                  "name": "c", "image": "i:1",
                                  "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                  "resources": {}}]}},
                 "strategy": {"type": "RollingUpdate",
                              "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
                 "revisionHistoryLimit": 5},
        "status": {}}
ev = srv.audit_events[-1]
R.check(st == 201 and body["spec"] == want["spec"] and body["metadata"]["uid"]
        and ev["requestObject"] == want and ev["responseStatus"]["code"] == 201,
        "protobuf Deployment decoded (pointer zero kept, IntOrString both ways, zero values "
        "dropped): %s / %s" % (st, json.dumps(ev.get("requestObject"))[:400]))
R.check(sorted(srv.protobuf_skipped) == ["DeploymentSpec.96", "DeploymentSpec.97",
                                         "DeploymentSpec.98", "DeploymentSpec.99"],
        "unknown fields of every wire type skipped: %s" % srv.protobuf_skipped)
cm_raw = lambda rv: (pb_len(1, pb_len(1, "pbcm") + (pb_len(6, rv) if rv else b""))  # noqa: E731
                     + pb_map(2, {"b": "2", "a": "1"}) + pb_map(3, {"bin": b"\x00\xff"}))
st, body = c.req("POST", "/api/v1/namespaces/default/configmaps",
                 pb_body("v1", "ConfigMap", cm_raw(None)), ctype=PB, headers=PBH)
st2, body2 = c.req("PUT", "/api/v1/namespaces/default/configmaps/pbcm",
                   pb_body("v1", "ConfigMap", cm_raw(body["metadata"]["resourceVersion"])),
                   ctype=PB, headers=PBH)
R.check(st == 201 and list(body["data"].items()) == [("a", "1"), ("b", "2")]
        and body["binaryData"] == {"bin": "AP8="} and st2 == 200,
        "protobuf ConfigMap create and update: %s %s %s" % (st, st2, body))
st, body = c.req("POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases",
                 pb_body("coordination.k8s.io/v1", "Lease", pb_len(1, pb_len(1, "l"))),
                 ctype=PB, headers=PBH)
R.check(st == 415 and is_status(body, 415, "UnsupportedMediaType")
        and "cannot decode protobuf bodies of coordination.k8s.io/v1 Lease" in body["message"]
        and srv.audit_events[-1]["responseStatus"]["code"] == 415
        and srv.get("leases", "default", "l") is None,
        "protobuf body of an unsupported kind -> 415: %s" % body)
st, body = c.req("POST", "/api/v1/namespaces/default/configmaps",
                 pb_body("v1", "ConfigMap", b"\x0a\x05ab"), ctype=PB, headers=PBH)
st2, body2 = c.req("POST", "/api/v1/namespaces/default/configmaps", b"{}", ctype=PB)
R.check(st == 400 and is_status(body, 400, "BadRequest") and "runs past the end"
        in body["message"] and st2 == 400 and "expected prefix" in body2["message"],
        "malformed protobuf -> 400: %s / %s" % (body.get("message"), body2.get("message")))
st, body = c.req("PATCH", "/api/v1/namespaces/default/configmaps/pbcm",
                 pb_body("v1", "ConfigMap", cm_raw(None)), ctype=PB)
R.check(st == 415, "protobuf patch -> 415")
srv.stop()

# ------------------------------------------------------------ standalone
kcs = os.path.join(TMP, "standalone.kubeconfig")
p = subprocess.Popen([sys.executable, os.path.join(LIB, "fake_apiserver.py"), "--port", "0",
                      "--tls", "--token", "tt", "--kubeconfig-out", kcs],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
try:
    url = p.stdout.readline().strip()
    R.check(re.match(r"^https://127\.0\.0\.1:\d+$", url) is not None, "standalone URL: %r" % url)
    R.check(os.path.exists(kcs) and '"tt"' in open(kcs).read(), "standalone kubeconfig")
    import base64
    cadata = re.search(r'certificate-authority-data: "([^"]+)"', open(kcs).read()).group(1)
    sctx = ssl.create_default_context(cadata=base64.b64decode(cadata).decode())
    conn = http.client.HTTPSConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=10,
                                       context=sctx)
    conn.request("GET", "/api/v1/namespaces/default", headers={"Authorization": "Bearer tt"})
    r = conn.getresponse()
    R.check(r.status == 200 and json.loads(r.read())["metadata"]["name"] == "default",
            "standalone serves")
    conn.close()
finally:
    p.send_signal(signal.SIGTERM)
    try:
        R.check(p.wait(timeout=10) == 0, "standalone exits 0 on SIGTERM")
    except subprocess.TimeoutExpired:
        p.kill()
        R.check(False, "standalone did not stop")

# ------------------------------------------------------------ the real kubectl
KUBECTL = shutil.which("kubectl")
if KUBECTL is None:
    print("kubectl not installed: its part is skipped")
else:
    posts.clear()
    fail_first[0] = 0
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    srv = FakeApiserver(tls=True, token="t0k", audit_webhook="http://127.0.0.1:%d/audit"
                        % sink.server_address[1]).start()
    kc = srv.write_kubeconfig(os.path.join(TMP, "kubeconfig"), context="fake")

    def kubectl(*args, fails=False):
        p = subprocess.run([KUBECTL, "--kubeconfig", kc, *args], capture_output=True,
                           text=True, timeout=30)
        if (p.returncode != 0) != fails:
            print("kubectl %s: rc=%d\n%s%s" % (" ".join(args), p.returncode, p.stdout,
                                                p.stderr))
        return p

    dep = os.path.join(TMP, "dep.yaml")
    with open(dep, "w") as f:
        f.write("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n"
                "  namespace: default\n  labels: {app: x}\nspec:\n  replicas: 2\n"
                "  selector:\n    matchLabels: {app: x}\n  template:\n    metadata:\n"
                "      labels: {app: x}\n    spec:\n      containers:\n      - name: c\n"
                "        image: img:1\n      - name: d\n        image: sidecar:1\n")
    cmf = os.path.join(TMP, "cm.yaml")
    with open(cmf, "w") as f:
        f.write("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"
                "data:\n  color: blue\n")
    p = kubectl("apply", "-f", dep, "--validate=false")
    d = srv.get("deployments", "default", "x")
    R.check(p.returncode == 0 and "created" in p.stdout and d is not None
            and "kubectl.kubernetes.io/last-applied-configuration" in d["metadata"]["annotations"],
            "kubectl apply")
    p = kubectl("get", "deployments", "-o", "json")
    R.check(p.returncode == 0 and [i["metadata"]["name"] for i in json.loads(p.stdout)["items"]]
            == ["x"], "kubectl get -o json")
    p = kubectl("get", "deployments")
    R.check(p.returncode == 0 and re.search(r"^x\s+0/2\s", p.stdout, re.M), "kubectl get (Table)")
    p = kubectl("scale", "deployment", "x", "--replicas=4")
    R.check(p.returncode == 0 and srv.get("deployments", "default", "x")["spec"]["replicas"] == 4
            and ("PATCH", "/apis/apps/v1/namespaces/default/deployments/x/scale", {})
            in srv.requests, "kubectl scale")
    gen = srv.get("deployments", "default", "x")["metadata"]["generation"]
    p = kubectl("set", "image", "deployment/x", "c=img:2")
    d = srv.get("deployments", "default", "x")
    ctrs = d["spec"]["template"]["spec"]["containers"]
    R.check(p.returncode == 0 and ctrs == [{"name": "c", "image": "img:2"},
                                           {"name": "d", "image": "sidecar:1"}]
            and d["metadata"]["generation"] == gen + 1, "kubectl set image: %s" % ctrs)
    srv.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x-1",
                                                                 "namespace": "kube-system"},
                "spec": {"containers": [{"name": "c", "image": "i"}]}})
    p = kubectl("get", "pods", "-A")
    R.check(p.returncode == 0 and re.search(r"^kube-system\s+x-1\s+0/1\s+Pending", p.stdout, re.M),
            "kubectl get pods -A: %s" % p.stdout)
    p = kubectl("create", "-f", cmf, "--validate=false")
    R.check(p.returncode == 0 and srv.get("configmaps", "default", "settings")["data"]
            == {"color": "blue"}, "kubectl create -f")
    p = kubectl("delete", "deployment", "x")
    R.check(p.returncode == 0 and srv.get("deployments", "default", "x") is None,
            "kubectl delete")
    # kubectl's generators POST protobuf: decoded, then the normal create path
    wst, wq, wconn = Client(srv, token="t0k").watch(
        "/apis/apps/v1/namespaces/default/deployments?watch=1&resourceVersion="
        + srv.resource_version)
    p = kubectl("create", "deployment", "web", "--image=nginx:1", "--replicas=3")
    d = srv.get("deployments", "default", "web") or {}
    spec = d.get("spec", {})
    R.check(p.returncode == 0 and p.stdout.strip() == "deployment.apps/web created"
            and spec.get("replicas") == 3 and spec["selector"] == {"matchLabels": {"app": "web"}}
            and spec["template"]["metadata"]["labels"] == {"app": "web"}
            and [(c["name"], c["image"]) for c in spec["template"]["spec"]["containers"]]
            == [("nginx", "nginx:1")] and d["metadata"]["generation"] == 1,
            "kubectl create deployment (protobuf): %s %s" % (p.stdout, json.dumps(d)))
    post = [e for e in srv.request_log if e["method"] == "POST"
            and e["path"] == "/apis/apps/v1/namespaces/default/deployments"][-1]
    R.check({k.lower(): v for k, v in post["headers"].items()}.get("content-type") == PB
            and post["body"].startswith(b"k8s\x00")
            and post["query"] == {"fieldManager": "kubectl-create", "fieldValidation": "Strict"},
            "kubectl sent protobuf: %s" % post["headers"])
    evs = take(wq, 1)
    wconn.close()
    R.check(wst == 200 and evs and evs[0]["type"] == "ADDED"
            and evs[0]["object"]["metadata"]["name"] == "web"
            and evs[0]["object"]["spec"]["replicas"] == 3, "watch ADDED for it: %s" % evs)
    p = kubectl("create", "deployment", "web", "--image=nginx:1", "--replicas=3",
                "--dry-run=client", "-o", "json")
    dry = json.loads(p.stdout)
    R.check(srv.flush_audit(5), "audit flushed")
    items = [i for _, _, b in posts for i in b["items"]
             if i["verb"] == "create" and i["objectRef"].get("name") == "web"]
    R.check(len(items) == 1 and items[0]["requestObject"] == dry
            and items[0]["objectRef"]["resource"] == "deployments"
            and items[0]["responseStatus"]["code"] == 201
            and items[0]["responseObject"]["spec"]["replicas"] == 3,
            "audit webhook: the create's requestObject is the decoded object, the same as "
            "kubectl's JSON: %s" % json.dumps(items[0]["requestObject"] if items else None))
    p = kubectl("create", "configmap", "pb", "--from-literal=k=v")
    R.check(p.returncode == 0 and srv.get("configmaps", "default", "pb")["data"] == {"k": "v"},
            "kubectl create configmap (protobuf)")
    srv.stop()
    srv.cleanup()
    sink.shutdown()
    sink.server_close()

shutil.rmtree(TMP, ignore_errors=True)
print("took %.1fs" % (time.time() - T0))
R.finish()

#!/usr/bin/env python3
"""The bundled demo scenario: a Deployment's whole life, as the
kube-apiserver logs it at RequestResponse level (--audit-log-format=json,
one audit.k8s.io/v1 Event per line).

The user creates Deployment `demo` with 2 replicas, scales it to 4, changes
its image, scales it to 2 and deletes it. Around those requests the control
plane does what it really does: the deployment controller creates and
scales two ReplicaSets and updates the Deployment's status (observedGeneration
1 -> 2 -> ...); the replicaset controller creates Pods with generateName (no
name in objectRef) and deletes them; the scheduler binds them; kubelets
patch their status and finish deletions; the garbage collector deletes the
dependents. Requests a consumer must drop are mixed in (gets, lists,
watches, leader-election lease updates, a RequestReceived stage).

Object shapes follow the real recording shared/data/real/kspan-deployment-
2-pods.yaml (managedFields, ownerReferences, conditions, containerStatuses)
and the event shape of shared/reference/wire-formats.md.

  examples/gen_deployment.py [--start RFC3339] [--name demo] [--seed 1]
                             [--out FILE] [--eventlist N]
"""
import argparse
import copy
import datetime
import json
import random
import sys
import uuid

KUBECTL = "kubectl/v1.32.2 (linux/amd64) kubernetes/67a30c0"
KCM = "kube-controller-manager/v1.32.2 (linux/amd64) kubernetes/67a30c0/system:serviceaccount:kube-system:"
ADMIN = {"username": "kubernetes-admin", "groups": ["kubeadm:cluster-admins", "system:authenticated"]}


def sa(name):
    return {"username": "system:serviceaccount:kube-system:" + name,
            "uid": "00000000-0000-4000-8000-%012d" % (abs(hash(name)) % 10 ** 12),
            "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system",
                       "system:authenticated"]}


class Cluster:
    def __init__(self, start, seed):
        self.t = start
        self.rnd = random.Random(seed)
        self.rv = 5361000
        self.lines = []

    def uid(self):
        return str(uuid.UUID(int=self.rnd.getrandbits(128), version=4))

    def next_rv(self):
        self.rv += self.rnd.randint(1, 7)
        return str(self.rv)

    def ts(self, t=None):
        t = self.t if t is None else t
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def sec(self):
        return self.t.strftime("%Y-%m-%dT%H:%M:%SZ")

    def tick(self, ms):
        self.t += datetime.timedelta(milliseconds=ms)

    def audit(self, verb, user, agent, ref, code=200, req=None, resp=None,
              uri=None, stage="ResponseComplete", ip="172.18.0.1"):
        recv = self.t
        self.tick(self.rnd.randint(2, 9))
        ev = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
              "auditID": self.uid(), "stage": stage, "requestURI": uri or "/",
              "verb": verb, "user": user, "sourceIPs": [ip], "userAgent": agent,
              "objectRef": {k: v for k, v in ref.items() if v},
              "responseStatus": {"metadata": {}, "code": code}}
        if req is not None:
            ev["requestObject"] = req
        if resp is not None:
            ev["responseObject"] = resp
        ev["requestReceivedTimestamp"] = self.ts(recv)
        ev["stageTimestamp"] = self.ts()
        ev["annotations"] = {"authorization.k8s.io/decision": "allow",
                             "authorization.k8s.io/reason": ""}
        if stage != "ResponseComplete":
            del ev["responseStatus"]
            ev.pop("responseObject", None)
        self.lines.append(ev)
        self.tick(self.rnd.randint(5, 40))
        return ev


def ref_of(obj, resource, group, sub=None, with_rv=True, name=True):
    api = obj["apiVersion"]
    return {"resource": resource, "namespace": obj["metadata"]["namespace"],
            "name": obj["metadata"]["name"] if name else None,
            "uid": obj["metadata"].get("uid"),
            "apiGroup": group, "apiVersion": api.split("/")[-1],
            "resourceVersion": obj["metadata"]["resourceVersion"] if with_rv else None,
            "subresource": sub}


def uri_of(obj, plural, group, sub=None, name=True):
    api = obj["apiVersion"]
    base = "/apis/" + api if group else "/api/" + api
    u = "%s/namespaces/%s/%s" % (base, obj["metadata"]["namespace"], plural)
    if name:
        u += "/" + obj["metadata"]["name"]
    return u + ("/" + sub if sub else "")


def managed(manager, op, api, t, fields, sub=None):
    m = {"manager": manager, "operation": op, "apiVersion": api, "time": t,
         "fieldsType": "FieldsV1", "fieldsV1": fields}
    if sub:
        m["subresource"] = sub
    return m


def touch_manager(obj, entry):
    mf = obj["metadata"].setdefault("managedFields", [])
    for i, m in enumerate(mf):
        if m["manager"] == entry["manager"] and m.get("subresource") == entry.get("subresource"):
            mf[i] = entry
            return
    mf.append(entry)


def template(image, hash_=None):
    labels = {"app": "demo"}
    if hash_:
        labels["pod-template-hash"] = hash_
    return {"metadata": {"creationTimestamp": None, "labels": labels},
            "spec": {"containers": [{"name": "nginx", "image": image,
                                     "resources": {}, "terminationMessagePath": "/dev/termination-log",
                                     "terminationMessagePolicy": "File",
                                     "imagePullPolicy": "IfNotPresent"}],
                     "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                     "dnsPolicy": "ClusterFirst", "securityContext": {},
                     "schedulerName": "default-scheduler"}}


class Scenario:
    def __init__(self, c, name):
        self.c = c
        self.name = name
        self.dep = None
        self.rs = []      # [obj]
        self.pods = {}    # rs name -> [pod obj]
        self.node = "kind-worker"

    # ---- deployment ----------------------------------------------------
    def create_deployment(self, replicas, image):
        c = self.c
        dep = {"kind": "Deployment", "apiVersion": "apps/v1",
               "metadata": {"name": self.name, "namespace": "default", "uid": c.uid(),
                            "resourceVersion": c.next_rv(), "generation": 1,
                            "creationTimestamp": c.sec(), "labels": {"app": self.name},
                            "annotations": {}, "managedFields": []},
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "demo"}},
                        "template": template(image),
                        "strategy": {"type": "RollingUpdate",
                                     "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                        "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
               "status": {}}
        touch_manager(dep, managed("kubectl-create", "Update", "apps/v1", c.sec(),
                                   {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                                    "f:spec": {"f:replicas": {}, "f:template": {}}}))
        req = copy.deepcopy(dep)
        for k in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"):
            req["metadata"].pop(k, None)
        c.audit("create", ADMIN, KUBECTL, ref_of(dep, "deployments", "apps", with_rv=False),
                201, req, dep, uri_of(dep, "deployments", "apps", name=False))
        self.dep = dep

    def dep_status(self):
        """The deployment controller's `update status`."""
        c, dep = self.c, self.dep
        total = sum(r["spec"]["replicas"] for r in self.rs)
        ready = sum(len(self.pods.get(r["metadata"]["name"], [])) for r in self.rs)
        new = copy.deepcopy(dep)
        old_rv = dep["metadata"]["resourceVersion"]
        new["metadata"]["resourceVersion"] = c.next_rv()
        conds = [{"type": "Available", "status": "True" if ready >= 1 else "False",
                  "lastUpdateTime": c.sec(), "lastTransitionTime": c.sec(),
                  "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."},
                 {"type": "Progressing", "status": "True", "lastUpdateTime": c.sec(),
                  "lastTransitionTime": c.sec(), "reason": "NewReplicaSetAvailable",
                  "message": 'ReplicaSet "%s" has successfully progressed.' % self.rs[-1]["metadata"]["name"]}]
        new["status"] = {"observedGeneration": dep["metadata"]["generation"], "replicas": total,
                         "updatedReplicas": self.rs[-1]["spec"]["replicas"],
                         "readyReplicas": ready, "availableReplicas": ready,
                         "conditions": conds}
        touch_manager(new, managed("kube-controller-manager", "Update", "apps/v1", c.sec(),
                                   {"f:status": {"f:observedGeneration": {}, "f:replicas": {},
                                                 "f:conditions": {}}}, "status"))
        ref = ref_of(new, "deployments", "apps", "status")
        ref["resourceVersion"] = old_rv
        c.audit("update", sa("deployment-controller"), KCM + "deployment-controller", ref,
                200, new, new, uri_of(new, "deployments", "apps", "status"), ip="172.18.0.2")
        self.dep = new

    def user_scale(self, replicas):
        c, dep = self.c, self.dep
        new = copy.deepcopy(dep)
        new["spec"]["replicas"] = replicas
        new["metadata"]["generation"] += 1
        new["metadata"]["resourceVersion"] = c.next_rv()
        scale = {"kind": "Scale", "apiVersion": "autoscaling/v1",
                 "metadata": {"name": self.name, "namespace": "default",
                              "uid": dep["metadata"]["uid"],
                              "resourceVersion": new["metadata"]["resourceVersion"],
                              "creationTimestamp": dep["metadata"]["creationTimestamp"]},
                 "spec": {"replicas": replicas},
                 "status": {"replicas": dep["status"].get("replicas", 0), "selector": "app=demo"}}
        ref = ref_of(dep, "deployments", "apps", "scale", with_rv=False)
        c.audit("patch", ADMIN, KUBECTL, ref, 200, {"spec": {"replicas": replicas}}, scale,
                uri_of(dep, "deployments", "apps", "scale"))
        self.dep = new

    def user_set_image(self, image):
        c, dep = self.c, self.dep
        new = copy.deepcopy(dep)
        new["spec"]["template"]["spec"]["containers"][0]["image"] = image
        new["metadata"]["generation"] += 1
        new["metadata"]["resourceVersion"] = c.next_rv()
        new["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = "2"
        touch_manager(new, managed("kubectl-set", "Update", "apps/v1", c.sec(),
                                   {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                                       'k:{"name":"nginx"}': {"f:image": {}}}}}}}))
        req = {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "nginx"}],
                                              "containers": [{"image": image, "name": "nginx"}]}}}}
        c.audit("patch", ADMIN, KUBECTL, ref_of(dep, "deployments", "apps", with_rv=False),
                200, req, new, uri_of(dep, "deployments", "apps"))
        self.dep = new

    def user_delete(self):
        c, dep = self.c, self.dep
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                  "details": {"name": self.name, "group": "apps", "kind": "deployments",
                              "uid": dep["metadata"]["uid"]}}
        c.audit("delete", ADMIN, KUBECTL, ref_of(dep, "deployments", "apps", with_rv=False),
                200, {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
                status, uri_of(dep, "deployments", "apps"))

    # ---- replicasets ---------------------------------------------------
    def create_rs(self, replicas):
        c, dep = self.c, self.dep
        h = "%010x" % c.rnd.getrandbits(40)
        image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
        rs = {"kind": "ReplicaSet", "apiVersion": "apps/v1",
              "metadata": {"name": "%s-%s" % (self.name, h), "namespace": "default",
                           "uid": c.uid(), "resourceVersion": c.next_rv(), "generation": 1,
                           "creationTimestamp": c.sec(),
                           "labels": {"app": "demo", "pod-template-hash": h},
                           "annotations": {"deployment.kubernetes.io/desired-replicas": str(dep["spec"]["replicas"]),
                                           "deployment.kubernetes.io/max-replicas": str(dep["spec"]["replicas"] + 1),
                                           "deployment.kubernetes.io/revision": str(len(self.rs) + 1)},
                           "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                                "name": self.name, "uid": dep["metadata"]["uid"],
                                                "controller": True, "blockOwnerDeletion": True}],
                           "managedFields": []},
              "spec": {"replicas": replicas,
                       "selector": {"matchLabels": {"app": "demo", "pod-template-hash": h}},
                       "template": template(image, h)},
              "status": {"replicas": 0}}
        touch_manager(rs, managed("kube-controller-manager", "Update", "apps/v1", c.sec(),
                                  {"f:metadata": {"f:ownerReferences": {}}, "f:spec": {"f:replicas": {}}}))
        c.audit("create", sa("deployment-controller"), KCM + "deployment-controller",
                ref_of(rs, "replicasets", "apps", with_rv=False), 201, rs, rs,
                uri_of(rs, "replicasets", "apps", name=False), ip="172.18.0.2")
        self.rs.append(rs)
        self.pods[rs["metadata"]["name"]] = []
        return rs

    def scale_rs(self, rs, replicas):
        c = self.c
        new = copy.deepcopy(rs)
        new["spec"]["replicas"] = replicas
        new["metadata"]["generation"] += 1
        new["metadata"]["resourceVersion"] = c.next_rv()
        new["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] = str(self.dep["spec"]["replicas"])
        c.audit("update", sa("deployment-controller"), KCM + "deployment-controller",
                ref_of(rs, "replicasets", "apps"), 200, new, new,
                uri_of(rs, "replicasets", "apps"), ip="172.18.0.2")
        self.replace_rs(new)
        return new

    def replace_rs(self, new):
        self.rs = [new if r["metadata"]["uid"] == new["metadata"]["uid"] else r for r in self.rs]

    def rs_status(self, rs):
        c = self.c
        n = len(self.pods[rs["metadata"]["name"]])
        new = copy.deepcopy(rs)
        new["metadata"]["resourceVersion"] = c.next_rv()
        new["status"] = {"replicas": n, "fullyLabeledReplicas": n, "readyReplicas": n,
                         "availableReplicas": n, "observedGeneration": rs["metadata"]["generation"]}
        c.audit("update", sa("replicaset-controller"), KCM + "replicaset-controller",
                ref_of(rs, "replicasets", "apps", "status"), 200, new, new,
                uri_of(rs, "replicasets", "apps", "status"), ip="172.18.0.2")
        self.replace_rs(new)
        return new

    # ---- pods ----------------------------------------------------------
    def create_pod(self, rs):
        c = self.c
        rsname = rs["metadata"]["name"]
        suffix = "".join(c.rnd.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        tpl = copy.deepcopy(rs["spec"]["template"])
        pod = {"kind": "Pod", "apiVersion": "v1",
               "metadata": {"name": rsname + "-" + suffix, "generateName": rsname + "-",
                            "namespace": "default", "uid": c.uid(), "resourceVersion": c.next_rv(),
                            "creationTimestamp": c.sec(), "labels": tpl["metadata"]["labels"],
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                 "name": rsname, "uid": rs["metadata"]["uid"],
                                                 "controller": True, "blockOwnerDeletion": True}],
                            "managedFields": []},
               "spec": dict(tpl["spec"], enableServiceLinks=True, preemptionPolicy="PreemptLowerPriority",
                            priority=0, serviceAccountName="default", serviceAccount="default",
                            tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                          "effect": "NoExecute", "tolerationSeconds": 300}]),
               "status": {"phase": "Pending", "qosClass": "BestEffort"}}
        touch_manager(pod, managed("kube-controller-manager", "Update", "v1", c.sec(),
                                   {"f:metadata": {"f:generateName": {}, "f:ownerReferences": {}}}))
        ref = {"resource": "pods", "namespace": "default", "apiVersion": "v1"}
        req = copy.deepcopy(pod)
        for k in ("name", "uid", "resourceVersion", "creationTimestamp", "managedFields"):
            req["metadata"].pop(k, None)
        c.audit("create", sa("replicaset-controller"), KCM + "replicaset-controller", ref,
                201, req, pod, "/api/v1/namespaces/default/pods", ip="172.18.0.2")
        self.pods[rsname].append(pod)
        return pod

    def set_pod(self, pod):
        for k, lst in self.pods.items():
            self.pods[k] = [pod if p["metadata"]["uid"] == pod["metadata"]["uid"] else p for p in lst]

    def bind_pod(self, pod):
        c = self.c
        binding = {"kind": "Binding", "apiVersion": "v1",
                   "metadata": {"name": pod["metadata"]["name"], "namespace": "default",
                                "uid": pod["metadata"]["uid"]},
                   "target": {"kind": "Node", "name": self.node}}
        c.audit("create", {"username": "system:kube-scheduler", "groups": ["system:authenticated"]},
                "kube-scheduler/v1.32.2 (linux/amd64) kubernetes/67a30c0/scheduler",
                ref_of(pod, "pods", None, "binding", with_rv=False), 201, binding,
                {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201},
                uri_of(pod, "pods", None, "binding"), ip="172.18.0.2")
        new = copy.deepcopy(pod)
        new["spec"]["nodeName"] = self.node
        new["metadata"]["resourceVersion"] = c.next_rv()
        new["status"]["conditions"] = [{"type": "PodScheduled", "status": "True",
                                        "lastProbeTime": None, "lastTransitionTime": c.sec()}]
        self.set_pod(new)
        return new

    def kubelet_running(self, pod):
        c = self.c
        new = copy.deepcopy(pod)
        old_rv = pod["metadata"]["resourceVersion"]
        new["metadata"]["resourceVersion"] = c.next_rv()
        conds = [{"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": c.sec()}
                 for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")]
        image = pod["spec"]["containers"][0]["image"]
        new["status"] = {"phase": "Running", "conditions": conds, "hostIP": "172.18.0.3",
                         "hostIPs": [{"ip": "172.18.0.3"}],
                         "podIP": "10.244.1.%d" % c.rnd.randint(2, 250), "startTime": c.sec(),
                         "containerStatuses": [{"name": "nginx", "state": {"running": {"startedAt": c.sec()}},
                                                "lastState": {}, "ready": True, "restartCount": 0,
                                                "image": "docker.io/library/" + image,
                                                "imageID": "docker.io/library/nginx@sha256:" + "%064x" % c.rnd.getrandbits(256),
                                                "containerID": "containerd://" + "%064x" % c.rnd.getrandbits(256),
                                                "started": True}],
                         "qosClass": "BestEffort"}
        new["status"]["podIPs"] = [{"ip": new["status"]["podIP"]}]
        touch_manager(new, managed("kubelet", "Update", "v1", c.sec(),
                                   {"f:status": {"f:conditions": {}, "f:phase": {}, "f:podIP": {}}}, "status"))
        req = {"metadata": {"uid": pod["metadata"]["uid"]},
               "status": {"$setElementOrder/conditions": [{"type": x["type"]} for x in conds],
                          "conditions": conds, "phase": "Running"}}
        kubelet = {"username": "system:node:" + self.node, "groups": ["system:nodes", "system:authenticated"]}
        ref = ref_of(new, "pods", None, "status", with_rv=False)
        c.audit("patch", kubelet, "kubelet/v1.32.2 (linux/amd64) kubernetes/67a30c0", ref, 200,
                req, new, uri_of(new, "pods", None, "status"), ip="172.18.0.3")
        self.set_pod(new)
        return new

    def delete_pod(self, pod, user, agent):
        c = self.c
        new = copy.deepcopy(pod)
        new["metadata"]["resourceVersion"] = c.next_rv()
        new["metadata"]["deletionTimestamp"] = c.sec()
        new["metadata"]["deletionGracePeriodSeconds"] = 30
        c.audit("delete", user, agent, ref_of(pod, "pods", None, with_rv=False), 200,
                {"kind": "DeleteOptions", "apiVersion": "v1"}, new, uri_of(pod, "pods", None),
                ip="172.18.0.2")
        c.tick(300)
        final = copy.deepcopy(new)
        final["metadata"]["resourceVersion"] = c.next_rv()
        final["metadata"]["deletionGracePeriodSeconds"] = 0
        final["status"]["phase"] = "Succeeded"
        kubelet = {"username": "system:node:" + self.node, "groups": ["system:nodes", "system:authenticated"]}
        c.audit("delete", kubelet, "kubelet/v1.32.2 (linux/amd64) kubernetes/67a30c0",
                ref_of(pod, "pods", None, with_rv=False), 200,
                {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                 "preconditions": {"uid": pod["metadata"]["uid"]}}, final,
                uri_of(pod, "pods", None), ip="172.18.0.3")
        for k in self.pods:
            self.pods[k] = [p for p in self.pods[k] if p["metadata"]["uid"] != pod["metadata"]["uid"]]

    def delete_rs(self, rs):
        c = self.c
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                  "details": {"name": rs["metadata"]["name"], "group": "apps",
                              "kind": "replicasets", "uid": rs["metadata"]["uid"]}}
        c.audit("delete", sa("generic-garbage-collector"), KCM + "generic-garbage-collector",
                ref_of(rs, "replicasets", "apps", with_rv=False), 200,
                {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background",
                 "preconditions": {"uid": rs["metadata"]["uid"]}}, status,
                uri_of(rs, "replicasets", "apps"), ip="172.18.0.2")

    # ---- controllers at work --------------------------------------------
    def grow(self, rs, n):
        for _ in range(n):
            pod = self.create_pod(rs)
            self.c.tick(50)
            pod = self.bind_pod(pod)
            self.c.tick(800)
            self.kubelet_running(pod)
        return self.rs_status(rs)

    def shrink(self, rs, n):
        for pod in list(self.pods[rs["metadata"]["name"]])[-n:]:
            self.delete_pod(pod, sa("replicaset-controller"), KCM + "replicaset-controller")
        return self.rs_status(rs)

    def noise(self):
        c = self.c
        dep = self.dep
        c.audit("get", ADMIN, KUBECTL, ref_of(dep, "deployments", "apps", with_rv=False), 200,
                None, dep, uri_of(dep, "deployments", "apps"))
        c.audit("list", sa("generic-garbage-collector"), KCM + "generic-garbage-collector",
                {"resource": "pods", "apiVersion": "v1"}, 200, None, None, "/api/v1/pods?limit=500")
        lease = {"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                 "metadata": {"name": "kube-controller-manager", "namespace": "kube-system",
                              "resourceVersion": c.next_rv(), "uid": c.uid()},
                 "spec": {"holderIdentity": "kind-control-plane_" + c.uid(), "leaseDurationSeconds": 15}}
        c.audit("update", {"username": "system:kube-controller-manager", "groups": ["system:authenticated"]},
                "kube-controller-manager/v1.32.2 (linux/amd64) kubernetes/67a30c0/leader-election",
                {"resource": "leases", "namespace": "kube-system", "name": "kube-controller-manager",
                 "apiGroup": "coordination.k8s.io", "apiVersion": "v1"}, 200, lease, lease,
                "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager")


def run(start, name, seed):
    c = Cluster(start, seed)
    s = Scenario(c, name)
    # RequestReceived stage of the create: a consumer must skip it.
    c.audit("create", ADMIN, KUBECTL, {"resource": "deployments", "namespace": "default",
                                        "apiGroup": "apps", "apiVersion": "v1", "name": name},
            uri="/apis/apps/v1/namespaces/default/deployments", stage="RequestReceived")
    s.create_deployment(2, "nginx:1.25")
    rs1 = s.create_rs(2)
    s.dep_status()                       # observedGeneration: none -> 1
    rs1 = s.grow(rs1, 2)
    s.dep_status()
    s.noise()
    c.tick(30000)
    s.user_scale(4)                      # generation 2
    rs1 = s.scale_rs(rs1, 4)
    rs1 = s.grow(rs1, 2)
    s.dep_status()                       # observedGeneration: 1 -> 2
    c.tick(30000)
    s.user_set_image("nginx:1.26")      # generation 3
    rs2 = s.create_rs(1)
    rs2 = s.grow(rs2, 1)
    rs1 = s.scale_rs(rs1, 3)
    rs1 = s.shrink(rs1, 1)
    rs2 = s.scale_rs(rs2, 4)
    rs2 = s.grow(rs2, 3)
    rs1 = s.scale_rs(rs1, 0)
    rs1 = s.shrink(rs1, 3)
    s.dep_status()                       # observedGeneration: 2 -> 3
    s.noise()
    c.tick(30000)
    s.user_scale(2)                      # generation 4
    rs2 = s.scale_rs(rs2, 2)
    rs2 = s.shrink(rs2, 2)
    s.dep_status()                       # observedGeneration: 3 -> 4
    c.tick(30000)
    s.user_delete()
    for rs in list(s.rs):
        s.delete_rs(rs)
    for rsname in list(s.pods):
        for pod in list(s.pods[rsname]):
            s.delete_pod(pod, sa("generic-garbage-collector"), KCM + "generic-garbage-collector")
    return c.lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--start", default="2026-01-01T00:00:00Z")
    ap.add_argument("--name", default="demo")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="-")
    ap.add_argument("--eventlist", type=int, default=0,
                    help="write webhook bodies (EventLists of up to N items), one per line")
    a = ap.parse_args()
    start = datetime.datetime.strptime(a.start, "%Y-%m-%dT%H:%M:%SZ")
    lines = run(start, a.name, a.seed)
    out = sys.stdout if a.out == "-" else open(a.out, "w")
    if a.eventlist:
        for i in range(0, len(lines), a.eventlist):
            out.write(json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1",
                                  "metadata": {}, "items": lines[i:i + a.eventlist]},
                                 separators=(",", ":")) + "\n")
    else:
        for ev in lines:
            out.write(json.dumps(ev, separators=(",", ":")) + "\n")
    if out is not sys.stdout:
        out.close()


if __name__ == "__main__":
    main()

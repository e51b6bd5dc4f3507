#!/usr/bin/env python3
"""Realistic audit load for the ingest benchmarks.

Writes webhook bodies, one audit.k8s.io/v1 EventList per line, as the
apiserver's batching webhook backend sends them: many Pods across
namespaces, each created once and then updated and patched (status and
labels change, resourceVersion advances), at RequestResponse level with a
full Pod of about 5 KB (containers, env, volumes, conditions, managedFields)
as responseObject.

  bench/gen_load.py --objects 5000 --events 200000 --batch 100 --out load.jsonl
"""
import argparse
import json
import random
import uuid

BASE = 1767225600  # 2026-01-01T00:00:00Z


def ts(sec, us):
    import datetime
    t = datetime.datetime.fromtimestamp(BASE + sec, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%06dZ" % us


def pod(name, ns, rv, gen_phase, node, rnd):
    env = [{"name": "VAR_%d" % i, "value": "value-%d-%s" % (i, "x" * 20)}
           for i in range(12)]
    return {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {
            "name": name, "namespace": ns, "uid": str(uuid.UUID(int=rnd.getrandbits(128))),
            "resourceVersion": str(rv), "creationTimestamp": ts(0, 0),
            "annotations": {"example.com/owner-notes": "team-%d: " % (rv % 7) + "n" * 700,
                            "prometheus.io/scrape": "true", "prometheus.io/port": "8080"},
            "labels": {"app": name.rsplit("-", 2)[0], "pod-template-hash": "7d9f8c6b5",
                       "tier": "backend", "revision": str(gen_phase)},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                 "name": name.rsplit("-", 1)[0], "uid": "rs-uid",
                                 "controller": True, "blockOwnerDeletion": True}],
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                               "apiVersion": "v1", "time": ts(0, 0), "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                                            "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}}}}}},
                              {"manager": "kubelet", "operation": "Update", "apiVersion": "v1",
                               "time": ts(1, 0), "fieldsType": "FieldsV1", "subresource": "status",
                               "fieldsV1": {"f:status": {"f:conditions": {}, "f:phase": {}}}}],
        },
        "spec": {
            "containers": [{"name": "app", "image": "registry.example/app:1.%d" % gen_phase,
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "env": env,
                            "resources": {"limits": {"cpu": "500m", "memory": "256Mi"},
                                          "requests": {"cpu": "100m", "memory": "128Mi"}},
                            "volumeMounts": [{"name": "kube-api-access", "readOnly": True,
                                              "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst", "serviceAccountName": "default", "nodeName": node,
            "securityContext": {}, "schedulerName": "default-scheduler",
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                             "effect": "NoExecute", "tolerationSeconds": 300}],
            "volumes": [{"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}}],
        },
        "status": {
            "phase": "Running" if gen_phase % 2 else "Pending",
            "conditions": [{"type": t, "status": "True", "lastProbeTime": None,
                            "lastTransitionTime": ts(gen_phase, 0)}
                           for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
            "hostIP": "172.18.0.2", "podIP": "10.244.0.%d" % (rv % 250),
            "startTime": ts(0, 0),
            "containerStatuses": [{"name": "app", "ready": True, "restartCount": gen_phase,
                                   "image": "registry.example/app:1.%d" % gen_phase,
                                   "imageID": "registry.example/app@sha256:" + "ab" * 32,
                                   "containerID": "containerd://" + "cd" * 32, "started": True,
                                   "state": {"running": {"startedAt": ts(gen_phase, 0)}}}],
            "qosClass": "Burstable",
        },
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=5000)
    ap.add_argument("--events", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    names = ["app%d-7d9f8c6b5-%05d" % (i % 50, i) for i in range(a.objects)]
    phase = [0] * a.objects
    rv = 1000
    batch = []
    with open(a.out, "w") as out:
        for n in range(a.events):
            i = n % a.objects
            ns = "ns-%d" % (i % 20)
            rv += 1
            verb = "create" if phase[i] == 0 else rnd.choice(["update", "patch"])
            sub = "status" if verb == "update" else None
            obj = pod(names[i], ns, rv, phase[i], "node-%d" % (i % 10), rnd)
            sec, us = n // 1000, (n % 1000) * 1000
            ev = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
                  "auditID": str(uuid.UUID(int=rnd.getrandbits(128))), "stage": "ResponseComplete",
                  "requestURI": "/api/v1/namespaces/%s/pods/%s" % (ns, names[i]), "verb": verb,
                  "user": {"username": "system:node:node-%d" % (i % 10), "groups": ["system:nodes"]},
                  "sourceIPs": ["172.18.0.%d" % (2 + i % 10)],
                  "userAgent": "kubelet/v1.32.2 (linux/amd64) kubernetes/67a30c0",
                  "objectRef": {"resource": "pods", "namespace": ns, "name": names[i],
                                "apiVersion": "v1"},
                  "responseStatus": {"metadata": {}, "code": 201 if verb == "create" else 200},
                  "responseObject": obj,
                  "requestReceivedTimestamp": ts(sec, us),
                  "stageTimestamp": ts(sec, us + 900),
                  "annotations": {"authorization.k8s.io/decision": "allow",
                                  "authorization.k8s.io/reason": ""}}
            if sub:
                ev["objectRef"]["subresource"] = sub
            if verb != "create":
                ev["objectRef"]["resourceVersion"] = str(rv - 1)
            phase[i] += 1
            batch.append(ev)
            if len(batch) == a.batch:
                out.write(json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1",
                                      "metadata": {}, "items": batch}, separators=(",", ":")))
                out.write("\n")
                batch = []
        if batch:
            out.write(json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1",
                                  "metadata": {}, "items": batch}, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()

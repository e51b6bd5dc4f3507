"""An OTLP/HTTP trace receiver for the tests (stdlib only).

It listens on a free loopback port for POST /v1/traces, decodes the
ExportTraceServiceRequest with its own protobuf decoder (or the OTLP/JSON
mapping), checks it against the OpenTelemetry protocol (field numbers and
wire types of opentelemetry-proto collector/trace/v1, trace/v1, common/v1
and resource/v1; 16-byte trace ids and 8-byte span ids, not all zero;
times; span kind; AnyValue; unique attribute keys; service.name on every
resource) and records the spans. A payload that breaks the protocol is
answered 400 and kept in .errors; check() raises on it, so a test fails.

Faults for the retry and overflow tests: fail_next(n, status, retry_after),
delay (seconds per request), partial_next(rejected), stop() and start()
(same port).

    r = OtlpReceiver().start()
    ... kelemetry --tracer-otel-endpoint r.url ...
    r.wait_spans(100); r.check(); r.stop()

Run as a script it prints what it receives:
    python3 tests/lib/otlp_receiver.py [--port N]
"""
import json
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VARINT, I64, LEN, I32 = 0, 1, 2, 5

# message -> {field number: (name, type, repeated)}; type is a scalar name
# or the name of a message. Proto3 scalars and their wire types:
WIRE = {"string": LEN, "bytes": LEN, "uint32": VARINT, "int64": VARINT,
        "bool": VARINT, "enum": VARINT, "double": I64, "fixed64": I64,
        "fixed32": I32}
SCHEMA = {
    "ExportTraceServiceRequest": {1: ("resource_spans", "ResourceSpans", True)},
    "ResourceSpans": {1: ("resource", "Resource", False),
                      2: ("scope_spans", "ScopeSpans", True),
                      3: ("schema_url", "string", False)},
    "Resource": {1: ("attributes", "KeyValue", True),
                 2: ("dropped_attributes_count", "uint32", False),
                 3: ("entity_refs", "EntityRef", True)},
    "EntityRef": {1: ("schema_url", "string", False), 2: ("type", "string", False),
                  3: ("id_keys", "string", True),
                  4: ("description_keys", "string", True)},
    "ScopeSpans": {1: ("scope", "InstrumentationScope", False),
                   2: ("spans", "Span", True),
                   3: ("schema_url", "string", False)},
    "InstrumentationScope": {1: ("name", "string", False),
                             2: ("version", "string", False),
                             3: ("attributes", "KeyValue", True),
                             4: ("dropped_attributes_count", "uint32", False)},
    "Span": {1: ("trace_id", "bytes", False), 2: ("span_id", "bytes", False),
             3: ("trace_state", "string", False),
             4: ("parent_span_id", "bytes", False),
             16: ("flags", "fixed32", False), 5: ("name", "string", False),
             6: ("kind", "enum", False),
             7: ("start_time_unix_nano", "fixed64", False),
             8: ("end_time_unix_nano", "fixed64", False),
             9: ("attributes", "KeyValue", True),
             10: ("dropped_attributes_count", "uint32", False),
             11: ("events", "Event", True),
             12: ("dropped_events_count", "uint32", False),
             13: ("links", "Link", True),
             14: ("dropped_links_count", "uint32", False),
             15: ("status", "Status", False)},
    "Event": {1: ("time_unix_nano", "fixed64", False), 2: ("name", "string", False),
              3: ("attributes", "KeyValue", True),
              4: ("dropped_attributes_count", "uint32", False)},
    "Link": {1: ("trace_id", "bytes", False), 2: ("span_id", "bytes", False),
             3: ("trace_state", "string", False),
             4: ("attributes", "KeyValue", True),
             5: ("dropped_attributes_count", "uint32", False),
             6: ("flags", "fixed32", False)},
    "Status": {2: ("message", "string", False), 3: ("code", "enum", False)},
    "KeyValue": {1: ("key", "string", False), 2: ("value", "AnyValue", False)},
    "AnyValue": {1: ("string_value", "string", False), 2: ("bool_value", "bool", False),
                 3: ("int_value", "int64", False), 4: ("double_value", "double", False),
                 5: ("array_value", "ArrayValue", False),
                 6: ("kvlist_value", "KeyValueList", False),
                 7: ("bytes_value", "bytes", False)},
    "ArrayValue": {1: ("values", "AnyValue", True)},
    "KeyValueList": {1: ("values", "KeyValue", True)},
}
SPAN_KINDS = range(0, 6)


class Invalid(Exception):
    """The payload breaks the OTLP protocol."""


def _varint(b, i):
    x = shift = 0
    while True:
        if i >= len(b):
            raise Invalid("truncated varint")
        c = b[i]
        i += 1
        x |= (c & 0x7F) << shift
        if not c & 0x80:
            return x, i
        shift += 7
        if shift >= 70:
            raise Invalid("varint longer than 10 bytes")


def decode(msg, b, path=None):
    """Decodes message `msg` from bytes b into a dict, strictly: unknown
    field numbers, wrong wire types, a non-repeated field seen twice and
    truncation are errors."""
    path = path or msg
    schema, out, i = SCHEMA[msg], {}, 0
    while i < len(b):
        key, i = _varint(b, i)
        num, wire = key >> 3, key & 7
        if num not in schema:
            raise Invalid("%s: unknown field %d (wire type %d)" % (path, num, wire))
        name, typ, rep = schema[num]
        want = WIRE.get(typ, LEN)
        if wire != want:
            raise Invalid("%s.%s: wire type %d, the .proto says %d" % (path, name, wire, want))
        if wire == VARINT:
            v, i = _varint(b, i)
            if typ == "int64" and v >= 1 << 63:
                v -= 1 << 64
            if typ == "uint32" and v >= 1 << 32:
                raise Invalid("%s.%s: %d overflows uint32" % (path, name, v))
            if typ == "bool" and v > 1:
                raise Invalid("%s.%s: bool %d" % (path, name, v))
        elif wire == I64:
            if i + 8 > len(b):
                raise Invalid("%s.%s: truncated fixed64" % (path, name))
            raw = b[i:i + 8]
            v = struct.unpack("<d" if typ == "double" else "<Q", raw)[0]
            i += 8
        elif wire == I32:
            if i + 4 > len(b):
                raise Invalid("%s.%s: truncated fixed32" % (path, name))
            v = struct.unpack("<I", b[i:i + 4])[0]
            i += 4
        else:
            n, i = _varint(b, i)
            if i + n > len(b):
                raise Invalid("%s.%s: length %d past the end" % (path, name, n))
            raw = b[i:i + n]
            i += n
            if typ == "bytes":
                v = bytes(raw)
            elif typ == "string":
                try:
                    v = bytes(raw).decode("utf-8")
                except UnicodeDecodeError:
                    raise Invalid("%s.%s: string is not UTF-8" % (path, name))
            else:
                v = decode(typ, raw, path + "." + name)
        if rep:
            out.setdefault(name, []).append(v)
        elif name in out:
            raise Invalid("%s.%s: non-repeated field sent twice" % (path, name))
        else:
            out[name] = v
    return out


def any_value(v, path):
    """The one value of an AnyValue (a oneof: at most one member)."""
    if len(v) != 1:
        raise Invalid("%s: AnyValue with %d values set" % (path, len(v)))
    (k, x), = v.items()
    if k == "array_value":
        return [any_value(e, path) for e in x.get("values", [])]
    if k == "kvlist_value":
        return attributes(x.get("values", []), path)
    return x


def attributes(kvs, path):
    out = {}
    for kv in kvs:
        key = kv.get("key", "")
        if not key:
            raise Invalid("%s: attribute with an empty key" % path)
        if key in out:
            raise Invalid("%s: attribute key %r twice" % (path, key))
        if "value" not in kv:
            raise Invalid("%s: attribute %r without a value" % (path, key))
        out[key] = any_value(kv["value"], "%s[%s]" % (path, key))
    return out


def _id(b, n, what, path, optional=False):
    if optional and len(b) == 0:
        return ""
    if len(b) != n:
        raise Invalid("%s: %s is %d bytes, must be %d" % (path, what, len(b), n))
    if b == bytes(n):
        raise Invalid("%s: %s is all zero" % (path, what))
    return b.hex()


def check_request(req):
    """Validates a decoded request (the protobuf field names) and returns
    the spans as flat dicts."""
    spans = []
    for ri, rs in enumerate(req.get("resource_spans", [])):
        p = "resource_spans[%d]" % ri
        res = attributes(rs.get("resource", {}).get("attributes", []), p + ".resource")
        svc = res.get("service.name")
        if not isinstance(svc, str) or not svc:
            raise Invalid("%s: resource without a service.name string" % p)
        for si, ss in enumerate(rs.get("scope_spans", [])):
            sp = "%s.scope_spans[%d]" % (p, si)
            scope = ss.get("scope", {})
            for xi, s in enumerate(ss.get("spans", [])):
                spans.append(check_span(s, "%s.spans[%d]" % (sp, xi), svc, res, scope))
    return spans


def check_span(s, p, svc, res, scope):
    kind = s.get("kind", 0)
    if kind not in SPAN_KINDS:
        raise Invalid("%s: span kind %d" % (p, kind))
    start, end = s.get("start_time_unix_nano", 0), s.get("end_time_unix_nano", 0)
    if start <= 0 or end < start:
        raise Invalid("%s: times start=%d end=%d" % (p, start, end))
    if not s.get("name"):
        raise Invalid("%s: span without a name" % p)
    events = []
    for ei, ev in enumerate(s.get("events", [])):
        ep = "%s.events[%d]" % (p, ei)
        if ev.get("time_unix_nano", 0) <= 0:
            raise Invalid("%s: event without a time" % ep)
        events.append({"time": ev["time_unix_nano"], "name": ev.get("name", ""),
                       "attributes": attributes(ev.get("attributes", []), ep)})
    return {"service": svc, "resource": res, "scope": scope.get("name", ""),
            "scope_version": scope.get("version", ""),
            "trace_id": _id(s.get("trace_id", b""), 16, "trace_id", p),
            "span_id": _id(s.get("span_id", b""), 8, "span_id", p),
            "parent_span_id": _id(s.get("parent_span_id", b""), 8,
                                  "parent_span_id", p, optional=True),
            "name": s["name"], "kind": kind, "start": start, "end": end,
            "attributes": attributes(s.get("attributes", []), p),
            "events": events}


# ---- OTLP/JSON: the protobuf JSON mapping with hex ids (OTLP spec) ----------

def _camel(name):
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


def from_json(msg, o, path=None):
    """OTLP/JSON -> the same dict decode() gives: lowerCamelCase keys,
    trace and span ids as hex, 64-bit integers as strings or numbers,
    enums as integers; unknown keys are errors."""
    path = path or msg
    if not isinstance(o, dict):
        raise Invalid("%s: not an object" % path)
    fields = {_camel(n): (n, t, r) for n, t, r in SCHEMA[msg].values()}
    out = {}
    for k, v in o.items():
        if k not in fields:
            raise Invalid("%s: unknown key %r" % (path, k))
        name, typ, rep = fields[k]
        vals = v if rep else [v]
        if rep and not isinstance(v, list):
            raise Invalid("%s.%s: not an array" % (path, k))
        conv = [_json_scalar(msg, name, typ, x, "%s.%s" % (path, k)) for x in vals]
        out[name] = conv if rep else conv[0]
    return out


def _json_scalar(msg, name, typ, x, path):
    if typ in SCHEMA:
        return from_json(typ, x, path)
    if typ == "bytes":
        if not isinstance(x, str):
            raise Invalid("%s: not a string" % path)
        if name in ("trace_id", "span_id", "parent_span_id"):
            try:
                return bytes.fromhex(x)
            except ValueError:
                raise Invalid("%s: %r is not hex" % (path, x))
        import base64
        return base64.b64decode(x)
    if typ in ("fixed64", "int64"):
        if isinstance(x, str) and x.lstrip("-").isdigit():
            return int(x)
        if isinstance(x, int):
            return x
        raise Invalid("%s: %r is not a 64-bit integer" % (path, x))
    if typ in ("enum", "uint32", "fixed32"):
        if not isinstance(x, int):
            raise Invalid("%s: %r is not an integer" % (path, x))
        return x
    if typ == "string" and not isinstance(x, str):
        raise Invalid("%s: not a string" % path)
    return x


# ---- the server ---------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        with self.server.rx.lock:
            self.server.rx.conns.add(self.connection)

    def finish(self):
        super().finish()
        with self.server.rx.lock:
            self.server.rx.conns.discard(self.connection)

    def _answer(self, code, body=b"", ctype="application/x-protobuf", extra=None):
        with self.server.rx.lock:
            self.server.rx.answers.append((self.arrival, code))
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        rx = self.server.rx
        self.arrival = time.time()
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        with rx.lock:
            rx.requests += 1
            fault = rx.faults.pop(0) if rx.faults else None
            partial = rx.partials.pop(0) if rx.partials else 0
            rx.headers.append({k.lower(): v for k, v in self.headers.items()})
        if rx.delay:
            time.sleep(rx.delay)
        if self.path != "/v1/traces":
            return self._answer(404, b"not found", "text/plain")
        if fault:
            status, ra = fault
            return self._answer(status, b"injected", "text/plain",
                                {"Retry-After": str(ra)} if ra is not None else None)
        ctype = self.headers.get("Content-Type", "")
        try:
            if ctype == "application/x-protobuf":
                req = decode("ExportTraceServiceRequest", body)
            elif ctype == "application/json":
                req = from_json("ExportTraceServiceRequest", json.loads(body))
            else:
                raise Invalid("Content-Type %r" % ctype)
            spans = check_request(req)
        except (Invalid, ValueError) as e:
            with rx.lock:
                rx.errors.append(str(e))
            return self._answer(400, str(e).encode(), "text/plain")
        with rx.lock:
            rx.spans.extend(spans[partial:])
            rx.batches.append(len(spans))
        if ctype == "application/json":
            out = {} if not partial else {"partialSuccess": {
                "rejectedSpans": str(partial), "errorMessage": "test"}}
            return self._answer(200, json.dumps(out).encode(), "application/json")
        resp = b""
        if partial:  # ExportTraceServiceResponse.partial_success (1) {rejected_spans (1)}
            inner = b"\x08" + _enc_varint(partial)
            resp = b"\x0a" + _enc_varint(len(inner)) + inner
        self._answer(200, resp)


def _enc_varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


class OtlpReceiver:
    def __init__(self, port=0):
        self.lock = threading.Lock()
        self.spans, self.batches, self.errors, self.headers = [], [], [], []
        self.faults, self.partials, self.conns = [], [], set()
        self.answers = []  # (arrival time, status) of every request
        self.delay, self.requests, self.port = 0, 0, port
        self.server = None

    @property
    def url(self):
        return "http://127.0.0.1:%d/v1/traces" % self.port

    def start(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        self.server.daemon_threads = True
        self.server.rx = self
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        """Stops listening and cuts open (keep-alive) connections, so that a
        client sees connection errors until start()."""
        if not self.server:
            return
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            for c in list(self.conns):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.server = None

    def fail_next(self, n, status=503, retry_after=None):
        with self.lock:
            self.faults.extend([(status, retry_after)] * n)

    def partial_next(self, rejected):
        with self.lock:
            self.partials.append(rejected)

    def snapshot(self):
        with self.lock:
            return list(self.spans)

    def wait_spans(self, n, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.snapshot()) >= n:
                return True
            time.sleep(0.05)
        return False

    def check(self):
        if self.errors:
            raise AssertionError("invalid OTLP payloads: %s" % self.errors[:3])


if __name__ == "__main__":
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 4318
    r = OtlpReceiver(port).start()
    print("listening on", r.url, flush=True)
    seen = 0
    while True:
        time.sleep(0.5)
        spans = r.snapshot()
        for s in spans[seen:]:
            print(s["service"], s["trace_id"], s["span_id"], s["parent_span_id"] or "-",
                  s["name"], len(s["attributes"]), "attrs", len(s["events"]), "events")
        seen = len(spans)
        for e in r.errors:
            print("INVALID:", e)
        r.errors.clear()

"""deploy/: the Kustomize manifests and the Helm chart render, every object
is accepted by the fake apiserver and is consistent (selectors, ports,
volumes, service account, RBAC for the namespaces the flags use), every
flag exists in `kelemetry --help` and parses, the Dockerfile names real
Debian packages covering the binary's libraries, and the rendered pod
actually starts: the real binary runs with the rendered args (paths and
ports moved to a temporary directory and loopback, the in-cluster service
account replaced by a fake apiserver's kubeconfig), answers /metrics, takes
its leases where the Role allows, and accepts audit events with the
credentials the manifests configure.

No helm binary exists here: the chart is rendered by a small Go-template
interpreter below (the subset of text/template + sprig the chart uses,
strict where Helm would fail: unknown functions, nil field access, eq of
mixed types, floats Helm would print as 1e+06). What it cannot prove is
listed in docs/deployment.md. kubectl (for `kubectl kustomize`) is optional:
without it the Kustomize parts are skipped. Python standard library only.
"""
import base64
import glob
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

SRC = os.environ.get("KT_SRC", ".")
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
from fake_apiserver import FakeApiserver, ApiError  # noqa: E402
from ktest import BIN, Results, demo_events, event_list, free_port  # noqa: E402

R = Results()
DEPLOY = os.path.join(SRC, "deploy")
CHART = os.path.join(DEPLOY, "helm", "kelemetry")
KUSTOMIZE = os.path.join(DEPLOY, "kustomize")
KUBECTL = shutil.which("kubectl")
OPENSSL = shutil.which("openssl")
T0 = time.time()
TMP = tempfile.mkdtemp(prefix="kt-deploy-")


# ====================================================================== YAML
# The subset Kubernetes manifests use: block mappings and sequences, plain,
# quoted and block scalars, flow collections on one line, YAML 1.1 scalars
# (as sigs.k8s.io/yaml reads them: 0440 is octal, yes/no/on/off are bools).

class YamlError(Exception):
    pass


_INT = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")
_OCT = re.compile(r"^[-+]?0[0-7_]+$")
_HEX = re.compile(r"^[-+]?0x[0-9a-fA-F_]+$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$")


def _plain(s):
    if s in ("", "~", "null", "Null", "NULL"):
        return None
    if s in ("true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"):
        return True
    if s in ("false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"):
        return False
    t = s.replace("_", "")
    if _INT.match(s):
        return int(t)
    if _OCT.match(s):
        return int(t, 8)
    if _HEX.match(s):
        return int(t, 16)
    if _FLOAT.match(s):
        return float(t)
    if s in (".inf", ".Inf", "+.inf"):
        return float("inf")
    return s


def _dq(s, i):
    """Double-quoted scalar starting at s[i] == '"'; returns (value, end)."""
    out, i = [], i + 1
    esc = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "/": "/", "0": "\0",
           " ": " ", "a": "\a", "b": "\b", "e": "\x1b", "f": "\f", "v": "\v"}
    while i < len(s):
        c = s[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            n = s[i + 1]
            if n in esc:
                out.append(esc[n])
                i += 2
            elif n in "xuU":
                w = {"x": 2, "u": 4, "U": 8}[n]
                out.append(chr(int(s[i + 2:i + 2 + w], 16)))
                i += 2 + w
            else:
                raise YamlError("bad escape \\%s" % n)
        else:
            out.append(c)
            i += 1
    raise YamlError("unterminated double-quoted scalar")


def _sq(s, i):
    out, i = [], i + 1
    while i < len(s):
        if s[i] == "'":
            if s[i + 1:i + 2] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        out.append(s[i])
        i += 1
    raise YamlError("unterminated single-quoted scalar")


def _strip_comment(s):
    """s without a trailing ` # comment` outside quotes."""
    q = None
    for i, c in enumerate(s):
        if q:
            if c == q == '"' and s[i - 1] != "\\" or c == q == "'":
                q = None
        elif c in "\"'" and (i == 0 or s[i - 1] in " [{,:"):
            q = c
        elif c == "#" and (i == 0 or s[i - 1] in " \t"):
            return s[:i].rstrip()
    return s.rstrip()


def _flow(s, i):
    """A flow node at s[i]; returns (value, end)."""
    while s[i] == " ":
        i += 1
    c = s[i]
    if c in "[{":
        close, out = ("]", []) if c == "[" else ("}", {})
        i += 1
        while True:
            while s[i] == " ":
                i += 1
            if s[i] == close:
                return out, i + 1
            if c == "[":
                v, i = _flow(s, i)
                out.append(v)
            else:
                k, i = _flow(s, i)
                while s[i] == " ":
                    i += 1
                if s[i] != ":":
                    raise YamlError("flow mapping without ':' in %r" % s)
                v, i = _flow(s, i + 1)
                out[k] = v
            while s[i] == " ":
                i += 1
            if s[i] == ",":
                i += 1
            elif s[i] != close:
                raise YamlError("bad flow collection %r" % s)
    if c == '"':
        return _dq(s, i)
    if c == "'":
        return _sq(s, i)
    j = i
    while j < len(s) and s[j] not in ",]}" and not (s[j] == ":" and s[j + 1:j + 2] in (" ", "")):
        j += 1
    return _plain(s[i:j].strip()), j


def _scalar(s):
    try:
        return _scalar1(s.strip())
    except IndexError:
        raise YamlError("unterminated %r" % s)


def _scalar1(s):
    if s[:1] in ("[", "{"):
        v, end = _flow(s, 0)
        if s[end:].strip():
            raise YamlError("text after a flow collection: %r" % s)
        return v
    if s[:1] == '"':
        v, end = _dq(s, 0)
        if s[end:].strip():
            raise YamlError("text after a quoted scalar: %r" % s)
        return v
    if s[:1] == "'":
        v, end = _sq(s, 0)
        if s[end:].strip():
            raise YamlError("text after a quoted scalar: %r" % s)
        return v
    if s[:1] in ("&", "*", "!", "%", "@", "`"):
        raise YamlError("unsupported YAML construct: %r" % s)
    return _plain(s)


def _key_split(s):
    """(key, rest) when s is a mapping entry `key: rest`, else None."""
    if s[:1] in ('"', "'"):
        k, end = (_dq if s[0] == '"' else _sq)(s, 0)
        rest = s[end:]
        if rest[:1] == ":" and rest[1:2] in (" ", ""):
            return k, rest[1:].strip()
        return None
    if s[:1] in ("[", "{", "-", "#") and not (s[:1] == "-" and s[1:2] not in (" ", "")):
        return None
    for i in range(len(s)):
        if s[i] == ":" and (i + 1 == len(s) or s[i + 1] == " "):
            return s[:i].strip(), s[i + 1:].strip()
        if s[i] == " " and s[i + 1:i + 2] == "#":
            return None
    return None


class _Y:
    def __init__(self, text):
        self.lines = text.replace("\t", "  ").split("\n")
        self.i = 0

    @staticmethod
    def ind(line):
        return len(line) - len(line.lstrip(" "))

    def skip(self):
        while self.i < len(self.lines):
            s = self.lines[self.i].strip()
            if s and not s.startswith("#"):
                return True
            self.i += 1
        return False

    def node(self, indent):
        if not self.skip():
            return None
        line = self.lines[self.i]
        ind = self.ind(line)
        if ind < indent:
            return None
        s = line.strip()
        if s == "-" or s.startswith("- "):
            return self.seq(ind)
        if _key_split(_strip_comment(s)) is not None:
            return self.map(ind)
        return self.multiline_scalar(ind)

    def multiline_scalar(self, ind):
        parts = [_strip_comment(self.lines[self.i].strip())]
        self.i += 1
        quoted = parts[0][:1] in ('"', "'")
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if line.strip() and self.ind(line) < ind:
                break
            if not line.strip():
                parts.append("")
            else:
                parts.append(line.strip())
            self.i += 1
            if quoted:
                try:
                    return _scalar(self.fold(parts))
                except YamlError:
                    continue
        while parts and parts[-1] == "":
            parts.pop()
        return _scalar(self.fold(parts))

    @staticmethod
    def fold(parts):
        out = parts[0]
        for p in parts[1:]:
            out += "\n" if p == "" else ("" if out.endswith("\n") else " ") + p
        return out

    def block_scalar(self, header, ind):
        style, chomp = header[0], "clip"
        if "-" in header:
            chomp = "strip"
        elif "+" in header:
            chomp = "keep"
        lines = []
        bind = None
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if line.strip():
                if self.ind(line) <= ind:
                    break
                if bind is None:
                    bind = self.ind(line)
                lines.append(line[bind:])
            else:
                lines.append("")
            self.i += 1
        while lines and lines[-1] == "" and chomp != "keep":
            lines.pop()
        if style == "|":
            text = "\n".join(lines)
        else:
            text, prev_blank = "", True
            for ln in lines:
                if ln == "":
                    text += "\n"
                    prev_blank = True
                else:
                    text += ("" if prev_blank else " ") + ln
                    prev_blank = False
        if chomp != "strip" and lines:
            text += "\n"
        return text

    def value(self, rest, ind):
        """The value after `key:` or `- ` on a line of indentation ind."""
        rest = _strip_comment(rest)
        if rest[:1] in ("|", ">"):
            self.i += 1
            return self.block_scalar(rest, ind)
        if rest:
            s = rest
            self.i += 1
            # a scalar or flow collection may continue on more-indented lines
            while (self.i < len(self.lines) and self.lines[self.i].strip()
                   and self.ind(self.lines[self.i]) > ind
                   and not self.lines[self.i].strip().startswith("#")):
                try:
                    _scalar(s)
                    if s[:1] in ('"', "'", "[", "{"):
                        break
                except YamlError:
                    pass
                s += " " + _strip_comment(self.lines[self.i].strip())
                self.i += 1
            return _scalar(s)
        self.i += 1
        if not self.skip():
            return None
        nxt = self.lines[self.i]
        nind = self.ind(nxt)
        if nind > ind:
            return self.node(ind + 1)
        if nind == ind and (nxt.strip() == "-" or nxt.strip().startswith("- ")):
            return self.seq(ind)        # `key:` followed by `- item` at the key's column
        return None

    def map(self, ind):
        out = {}
        while self.skip():
            line = self.lines[self.i]
            if self.ind(line) != ind:
                if self.ind(line) > ind:
                    raise YamlError("line %d: unexpected indentation" % (self.i + 1))
                break
            kv = _key_split(_strip_comment(line.strip()))
            if kv is None:
                break
            k, rest = kv
            key = _scalar(k) if k[:1] in ('"', "'") else k
            if key in out:
                raise YamlError("line %d: duplicate key %r" % (self.i + 1, key))
            out[key] = self.value(rest, ind)
        return out

    def seq(self, ind):
        out = []
        while self.skip():
            line = self.lines[self.i]
            s = line.strip()
            if self.ind(line) != ind or not (s == "-" or s.startswith("- ")):
                break
            content = line[ind + 1:]
            col = ind + 1 + (len(content) - len(content.lstrip(" ")))
            body = content.strip()
            if not body or body.startswith("#"):
                out.append(self.value("", ind))
            elif body.startswith("- ") or body == "-" or (
                    _key_split(_strip_comment(body)) is not None):
                self.lines[self.i] = " " * col + body      # the item is a block node
                out.append(self.node(col))
            else:
                out.append(self.value(body, ind))
        return out


def yaml_docs(text):
    """Every non-empty document of a multi-document YAML text."""
    docs, cur = [], []
    for line in text.split("\n"):
        if re.match(r"^---(\s|$)", line) or line.rstrip() == "...":
            docs.append("\n".join(cur))
            cur = []
        else:
            cur.append(line)
    docs.append("\n".join(cur))
    out = []
    for d in docs:
        y = _Y(d)
        v = y.node(0)
        if y.skip():
            raise YamlError("line %d: unparsed text: %r" % (y.i + 1, y.lines[y.i]))
        if v is not None:
            out.append(v)
    return out


def yaml_load(text):
    docs = yaml_docs(text)
    return docs[0] if docs else None


_YAML_PLAIN_OK = re.compile(r"^[A-Za-z/._][A-Za-z0-9/._=-]*$")


def yaml_dump(v, ind=0):
    """YAML for toYaml (keys sorted as sigs.k8s.io/yaml does; no trailing newline)."""
    pad = " " * ind
    if isinstance(v, dict):
        if not v:
            return pad + "{}"
        lines = []
        for k in sorted(v):
            x = v[k]
            key = pad + _yaml_scalar(str(k))
            if isinstance(x, dict) and x:
                lines.append(key + ":\n" + yaml_dump(x, ind + 2))
            elif isinstance(x, list) and x:
                lines.append(key + ":\n" + yaml_dump(x, ind))
            else:
                lines.append(key + ": " + yaml_dump(x, 0))
        return "\n".join(lines)
    if isinstance(v, list):
        if not v:
            return pad + "[]"
        lines = []
        for x in v:
            if isinstance(x, (dict, list)) and x:
                inner = yaml_dump(x, ind + 2)
                lines.append(pad + "- " + inner[ind + 2:])
            else:
                lines.append(pad + "- " + yaml_dump(x, 0))
        return "\n".join(lines)
    return pad + _yaml_scalar(v)


def _yaml_scalar(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return go_str(v)
    s = str(v)
    if _YAML_PLAIN_OK.match(s) and not isinstance(_plain(s), (bool, int, float, type(None))):
        return s
    return json.dumps(s)


# ================================================================ Go templates

class SkipRun(Exception):
    pass


class TemplateError(Exception):
    pass


class TemplateFail(Exception):
    """The chart called `fail` (or `required` failed)."""


def go_str(v):
    """How text/template prints a value (Helm: nil prints as empty)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v == int(v) and abs(v) < 1e6:
            return str(int(v))
        if 1e-4 <= abs(v) < 1e6:
            return repr(v)
        raise TemplateError("float %r would print in exponent form (1e+06) in Helm: "
                            "quote it in values.yaml" % v)
    if isinstance(v, str):
        return v
    raise TemplateError("printing a %s (%r) gives Go's map/slice syntax"
                        % (type(v).__name__, v))


def _truthy(v):
    return not (v is None or v is False or v == 0 and not isinstance(v, bool) and
                isinstance(v, (int, float)) or v in ("",) or
                isinstance(v, (list, dict)) and not v)


def _go_quote(s):
    return json.dumps(s, ensure_ascii=False)


def _printf(fmt, *args):
    out, ai, i = [], 0, 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        verb = fmt[i + 1]
        i += 2
        if verb == "%":
            out.append("%")
            continue
        if ai >= len(args):
            raise TemplateError("printf %r: missing argument" % fmt)
        a = args[ai]
        ai += 1
        if verb == "v":
            out.append(go_str(a))
        elif verb == "s":
            if not isinstance(a, str):
                raise TemplateError("printf %%s of %r prints %%!s(...) in Go" % (a,))
            out.append(a)
        elif verb == "d":
            if isinstance(a, bool) or not isinstance(a, int):
                raise TemplateError("printf %%d of %r prints %%!d(...) in Go (values are "
                                    "float64)" % (a,))
            out.append(str(a))
        elif verb == "q":
            out.append(_go_quote(go_str(a)))
        elif verb == "t":
            if not isinstance(a, bool):
                raise TemplateError("printf %%t of %r" % (a,))
            out.append(go_str(a))
        else:
            raise TemplateError("printf verb %%%s not approximated" % verb)
    if ai != len(args):
        raise TemplateError("printf %r: extra arguments" % fmt)
    return "".join(out)


def _kind(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    raise TemplateError("eq/ne on %r: invalid type for comparison" % (v,))


def _eq(a, *bs):
    for b in bs:
        if _kind(a) != _kind(b):
            raise TemplateError("eq %r %r: incompatible types for comparison" % (a, b))
        if a == b:
            return True
    return False


def _cmp_kinds(fn, a, b):
    """The false branch of lt/gt: an error when Go would refuse the types."""
    if _kind(a) != _kind(b):
        raise TemplateError("%s %r %r: incompatible types for comparison" % (fn, a, b))
    return False


def _raise(e):
    raise e


def _trunc(n, s):
    return s[:n] if n >= 0 else s[n:]


def _need_str(fn, s):
    if not isinstance(s, str):
        raise TemplateError("%s needs a string, got %r" % (fn, s))
    return s


FUNCS = {
    "quote": lambda *a: " ".join(_go_quote(go_str(x)) for x in a if x is not None),
    "squote": lambda *a: " ".join("'%s'" % go_str(x) for x in a if x is not None),
    "default": lambda d, *v: v[0] if v and _truthy(v[0]) else d,
    "printf": _printf,
    "join": lambda sep, l: sep.join(go_str(x) for x in (l or [])),
    "list": lambda *a: list(a),
    "append": lambda l, v: list(l or []) + [v],
    "uniq": lambda l: [x for i, x in enumerate(l) if x not in l[:i]],
    "has": lambda needle, l: needle in (l or []),
    "splitList": lambda sep, s: _need_str("splitList", s).split(sep),
    "trunc": lambda n, s: _trunc(n, _need_str("trunc", s)),
    "trimSuffix": lambda suf, s: _need_str("trimSuffix", s)[:-len(suf)]
    if suf and s.endswith(suf) else s,
    "contains": lambda sub, s: sub in _need_str("contains", s),
    "lower": lambda s: _need_str("lower", s).lower(),
    "upper": lambda s: _need_str("upper", s).upper(),
    "replace": lambda old, new, s: _need_str("replace", s).replace(old, new),
    "eq": _eq,
    "lt": lambda a, b: _eq(a, a) and _kind(a) == _kind(b) and a < b
    or _cmp_kinds("lt", a, b),
    "gt": lambda a, b: _eq(a, a) and _kind(a) == _kind(b) and a > b
    or _cmp_kinds("gt", a, b),
    "int": lambda v: int(v) if isinstance(v, (int, float)) and not isinstance(v, bool)
    else int(_need_str("int", v) or 0),
    "until": lambda n: list(range(n)) if isinstance(n, int) and not isinstance(n, bool)
    else _raise(TemplateError("until needs an int (wrap float64 values in int), got %r" % (n,))),
    "ne": lambda a, b: not _eq(a, b),
    "not": lambda v: not _truthy(v),
    "empty": lambda v: not _truthy(v),
    "len": lambda v: len(v),
    "ternary": lambda t, f, c: t if c else f,
    "hasKey": lambda d, k: k in d,
    "dict": lambda *a: {a[i]: a[i + 1] for i in range(0, len(a), 2)},
    "b64enc": lambda s: base64.b64encode(go_str(s).encode()).decode(),
    "toString": go_str,
    "toYaml": lambda v: yaml_dump(v),
    "indent": lambda n, s: "\n".join(" " * n + ln for ln in _need_str("indent", s).split("\n")),
    "nindent": lambda n, s: "\n" + "\n".join(" " * n + ln
                                              for ln in _need_str("nindent", s).split("\n")),
}


class _Node:
    def __init__(self, kind, **kw):
        self.kind = kind
        self.__dict__.update(kw)


_TOK = re.compile(r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*")|(?P<raw>`[^`]*`)|
    (?P<num>-?[0-9]+(?:\.[0-9]+)?)|
    (?P<decl>:=)|(?P<assign>=)|(?P<pipe>\|)|(?P<lp>\()|(?P<rp>\))|(?P<comma>,)|
    (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)|
    (?P<field>(?:\.[A-Za-z0-9_]+)+|\.)|
    (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
)""", re.X)


def _tokens(src, where):
    out, i = [], 0
    while i < len(src):
        if src[i:].strip() == "":
            break
        m = _TOK.match(src, i)
        if not m or m.end() == i:
            raise TemplateError("%s: cannot read %r" % (where, src[i:]))
        kind = m.lastgroup
        val = m.group(kind)
        out.append((kind, val, m.start(kind), m.end()))
        i = m.end()
    return out


class _Parser:
    """Pipelines of one action: commands separated by |, operands, (...)."""

    def __init__(self, toks, where):
        self.t, self.i, self.where = toks, 0, where

    def peek(self, k=0):
        return self.t[self.i + k] if self.i + k < len(self.t) else (None, None, 0, 0)

    def take(self):
        tok = self.peek()
        self.i += 1
        return tok

    def pipeline(self, allow_decl=True):
        decl = None
        if allow_decl and self.peek()[0] == "var":
            names, j = [self.peek()[1]], 1
            if self.peek(1)[0] == "comma" and self.peek(2)[0] == "var":
                names.append(self.peek(2)[1])
                j = 3
            if self.peek(j)[0] in ("decl", "assign"):
                decl = (names, self.peek(j)[0])
                self.i += j + 1
        cmds = [self.command()]
        while self.peek()[0] == "pipe":
            self.take()
            cmds.append(self.command())
        return _Node("pipe", decl=decl, cmds=cmds)

    def command(self):
        args = []
        while self.peek()[0] not in (None, "pipe", "rp"):
            args.append(self.operand())
        if not args:
            raise TemplateError("%s: empty command" % self.where)
        return args

    def operand(self):
        kind, val, start, end = self.take()
        if kind == "lp":
            p = self.pipeline(allow_decl=False)
            if self.take()[0] != "rp":
                raise TemplateError("%s: unclosed (" % self.where)
            node = _Node("paren", pipe=p)
            nk, nv, ns, _ = self.peek()
            if nk == "field" and ns == self.t[self.i - 1][3] and nv != ".":
                self.take()
                node = _Node("chain", base=node, fields=nv.split(".")[1:])
            return node
        if kind == "str":
            return _Node("lit", value=json.loads(val))
        if kind == "raw":
            return _Node("lit", value=val[1:-1])
        if kind == "num":
            return _Node("lit", value=float(val) if "." in val else int(val))
        if kind == "var":
            parts = val.split(".")
            return _Node("var", name=parts[0], fields=parts[1:])
        if kind == "field":
            return _Node("field", fields=[] if val == "." else val.split(".")[1:])
        if kind == "ident":
            if val in ("true", "false"):
                return _Node("lit", value=val == "true")
            if val == "nil":
                return _Node("lit", value=None)
            return _Node("ident", name=val)
        raise TemplateError("%s: unexpected %r" % (self.where, val))


def _split_actions(text, where):
    """[(kind, value)] with kind text|action, trim markers applied."""
    out, i = [], 0
    while True:
        j = text.find("{{", i)
        if j < 0:
            if "}}" in text[i:]:
                raise TemplateError("%s: '}}' without '{{'" % where)
            out.append(("text", text[i:]))
            return out
        if "}}" in text[i:j]:
            raise TemplateError("%s: '}}' without '{{'" % where)
        out.append(("text", text[i:j]))
        k, q = j + 2, None
        while k < len(text):               # the closing }}, outside strings
            c = text[k]
            if q:
                if c == "\\" and q == '"':
                    k += 2
                    continue
                if c == q:
                    q = None
            elif c in "\"`":
                q = c
            elif text.startswith("{{", k):
                raise TemplateError("%s: '{{' inside an action at %d" % (where, k))
            elif text.startswith("}}", k):
                break
            k += 1
        else:
            raise TemplateError("%s: unclosed '{{' at offset %d" % (where, j))
        body = text[j + 2:k]
        ltrim = body.startswith("- ") or body == "-"
        rtrim = body.endswith(" -")
        if ltrim:
            body = body[1:]
            out[-1] = ("text", out[-1][1].rstrip(" \t\r\n"))
        if rtrim:
            body = body[:-1]
        out.append(("action", body.strip(), rtrim))
        i = k + 2
        if rtrim:
            rest = text[i:]
            i += len(rest) - len(rest.lstrip(" \t\r\n"))


class Templates:
    def __init__(self):
        self.defines = {}
        self.files = {}

    def add(self, name, text):
        self.files[name] = self.parse(text, name)

    def parse(self, text, where):
        root = _Node("list", items=[])
        stack = [root]
        for part in _split_actions(text, where):
            if part[0] == "text":
                if part[1]:
                    stack[-1].items.append(_Node("text", text=part[1]))
                continue
            body = part[1]
            if body.startswith("/*"):
                if not body.endswith("*/"):
                    raise TemplateError("%s: bad comment %r" % (where, body))
                continue
            word = body.split(None, 1)[0] if body else ""
            rest = body[len(word):].strip()

            def pipe(src):
                p = _Parser(_tokens(src, where), where)
                node = p.pipeline()
                if p.i != len(p.t):
                    raise TemplateError("%s: trailing %r" % (where, src))
                return node
            if word in ("if", "range", "with"):
                n = _Node(word, pipe=pipe(rest), body=_Node("list", items=[]), orelse=None,
                          where=where)
                stack[-1].items.append(n)
                stack.append(n)
                stack.append(n.body)
            elif word == "define":
                name = json.loads(rest)
                n = _Node("define", name=name, body=_Node("list", items=[]))
                stack.append(n)
                stack.append(n.body)
            elif word == "else":
                if len(stack) < 3 or stack[-2].kind not in ("if", "range", "with"):
                    raise TemplateError("%s: else outside if/range/with" % where)
                stack.pop()
                owner = stack[-1]
                if owner.orelse is not None:
                    raise TemplateError("%s: two else branches" % where)
                owner.orelse = _Node("list", items=[])
                if rest.startswith("if "):
                    n = _Node("if", pipe=pipe(rest[3:]), body=_Node("list", items=[]),
                              orelse=None, where=where, chained=True)
                    owner.orelse.items.append(n)
                    stack.append(owner.orelse)      # placeholder popped by the chain's end
                    stack.append(n)
                    stack.append(n.body)
                else:
                    stack.append(owner.orelse)
            elif word == "end":
                if len(stack) < 3:
                    raise TemplateError("%s: end without a block" % where)
                stack.pop()
                n = stack.pop()
                while getattr(n, "chained", False):
                    stack.pop()                      # the else list holding the chain
                    n = stack.pop()
                if n.kind == "define":
                    self.defines[n.name] = n.body
            elif word == "template":
                p = _Parser(_tokens(rest, where), where)
                name = p.operand()
                arg = p.pipeline(allow_decl=False) if p.i < len(p.t) else None
                stack[-1].items.append(_Node("template", name=name, arg=arg))
            elif word in ("block", "break", "continue"):
                raise TemplateError("%s: {{%s}} not approximated" % (where, word))
            else:
                stack[-1].items.append(_Node("action", pipe=pipe(body)))
        if len(stack) != 1:
            raise TemplateError("%s: %d block(s) not closed with {{end}}"
                                % (where, (len(stack) - 1) // 2))
        return root

    # ------------------------------------------------------------- execution
    def render(self, name, data):
        return self.exec_list(self.files[name], data, [{"$": data}], data)

    def exec_list(self, node, dot, scopes, root):
        out = []
        for n in node.items:
            out.append(self.exec_node(n, dot, scopes, root))
        return "".join(out)

    def exec_node(self, n, dot, scopes, root):
        k = n.kind
        if k == "text":
            return n.text
        if k == "action":
            v = self.eval_pipe(n.pipe, dot, scopes, root)
            return "" if n.pipe.decl else go_str(v)
        if k == "template":
            name = self.eval_arg(n.name, dot, scopes, root)
            arg = self.eval_pipe(n.arg, dot, scopes, root) if n.arg else None
            return self.include(name, arg, root)
        if k in ("if", "with"):
            inner = [dict()] + scopes
            v = self.eval_pipe(n.pipe, dot, inner, root)
            if _truthy(v):
                return self.exec_list(n.body, v if k == "with" else dot, inner, root)
            if n.orelse:
                return self.exec_list(n.orelse, dot, inner, root)
            return ""
        if k == "range":
            inner = [dict()] + scopes
            decl = n.pipe.decl
            p = _Node("pipe", decl=None, cmds=n.pipe.cmds)
            coll = self.eval_pipe(p, dot, inner, root)
            if coll is None:
                items = []
            elif isinstance(coll, dict):
                items = [(key, coll[key]) for key in sorted(coll)]
            elif isinstance(coll, list):
                items = list(enumerate(coll))
            else:
                raise TemplateError("range over %r" % (coll,))
            if not items:
                return self.exec_list(n.orelse, dot, inner, root) if n.orelse else ""
            out = []
            for key, val in items:
                sc = [dict()] + inner
                if decl:
                    names = decl[0]
                    if len(names) == 2:
                        sc[0][names[0]], sc[0][names[1]] = key, val
                    else:
                        sc[0][names[0]] = val
                out.append(self.exec_list(n.body, val, sc, root))
            return "".join(out)
        raise TemplateError("node %s" % k)

    def include(self, name, data, root):
        if name not in self.defines:
            raise TemplateError("no template %r" % name)
        return self.exec_list(self.defines[name], data, [{"$": data}], root)

    def eval_pipe(self, p, dot, scopes, root):
        val, first = None, True
        for cmd in p.cmds:
            val = self.eval_cmd(cmd, dot, scopes, root, None if first else [val])
            first = False
        if p.decl:
            names, op = p.decl
            if op == "decl":
                scopes[0][names[-1]] = val
            else:
                for sc in scopes:
                    if names[-1] in sc:
                        sc[names[-1]] = val
                        break
                else:
                    raise TemplateError("assignment to undeclared %s" % names[-1])
        return val

    def eval_cmd(self, cmd, dot, scopes, root, piped):
        head = cmd[0]
        if head.kind == "ident":
            name = head.name
            if name in ("and", "or"):
                args = cmd[1:]
                vals = []
                for a in args:
                    v = self.eval_arg(a, dot, scopes, root)
                    vals.append(v)
                    if (name == "and") != _truthy(v):
                        return v
                if piped:
                    return piped[0]
                return vals[-1]
            args = [self.eval_arg(a, dot, scopes, root) for a in cmd[1:]] + (piped or [])
            if name == "include":
                if len(args) != 2:
                    raise TemplateError("include needs a name and a value")
                return self.include(args[0], args[1], root)
            if name == "fail":
                raise TemplateFail(go_str(args[0]))
            if name == "required":
                if not _truthy(args[1]):
                    raise TemplateFail(go_str(args[0]))
                return args[1]
            if name == "index":
                v = args[0]
                for key in args[1:]:
                    if isinstance(v, list):
                        if not isinstance(key, int) or isinstance(key, bool):
                            raise TemplateError("index of a list with %r" % (key,))
                        if key >= len(v):
                            raise TemplateError("index out of range: %d" % key)
                        v = v[key]
                    elif isinstance(v, dict):
                        v = v.get(key)
                    else:
                        raise TemplateError("index of %r" % (v,))
                return v
            if name not in FUNCS:
                raise TemplateError("function %r is not approximated here" % name)
            try:
                return FUNCS[name](*args)
            except TypeError as e:
                raise TemplateError("%s%r: %s" % (name, tuple(args), e))
        if len(cmd) > 1 or piped:
            raise TemplateError("can't give arguments to a non-function %r" % head.kind)
        return self.eval_arg(head, dot, scopes, root)

    def eval_arg(self, a, dot, scopes, root):
        if a.kind == "lit":
            return a.value
        if a.kind == "ident":
            return self.eval_cmd([a], dot, scopes, root, None)
        if a.kind == "paren":
            return self.eval_pipe(a.pipe, dot, scopes, root)
        if a.kind == "chain":
            return self.fields(self.eval_arg(a.base, dot, scopes, root), a.fields)
        if a.kind == "field":
            return self.fields(dot, a.fields)
        if a.kind == "var":
            for sc in scopes:
                if a.name in sc:
                    base = sc[a.name]
                    break
            else:
                raise TemplateError("undefined variable %s" % a.name)
            return self.fields(base, a.fields)
        raise TemplateError("operand %s" % a.kind)

    @staticmethod
    def fields(v, names):
        for n in names:
            if v is None:
                raise TemplateError("nil pointer evaluating .%s" % n)
            if not isinstance(v, dict):
                raise TemplateError("can't evaluate field %s in %r" % (n, v))
            v = v.get(n)
        return v


def _floats(v):
    """Values as Helm holds them: every number a float64."""
    if isinstance(v, dict):
        return {k: _floats(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_floats(x) for x in v]
    if isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return v


def _merge(base, over):
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def helm_template(overrides=None, release="kelemetry", namespace="kelemetry"):
    """(objects, NOTES.txt, YAML text) as `helm template` would render them,
    approximately."""
    with open(os.path.join(CHART, "Chart.yaml")) as f:
        chart = yaml_load(f.read())
    with open(os.path.join(CHART, "values.yaml")) as f:
        values = _floats(yaml_load(f.read()))
    values = _merge(values, _floats(overrides or {}))
    t = Templates()
    names = sorted(os.listdir(os.path.join(CHART, "templates")))
    for n in names:
        with open(os.path.join(CHART, "templates", n)) as f:
            t.add(n, f.read())
    data = {"Values": values,
            "Release": {"Name": release, "Namespace": namespace, "Service": "Helm",
                        "IsInstall": True, "IsUpgrade": False, "Revision": 1},
            "Chart": {"Name": chart["name"], "Version": chart["version"],
                      "AppVersion": chart["appVersion"]},
            "Capabilities": {}, "Template": {"BasePath": "kelemetry/templates"}}
    objs, notes, texts = [], None, []
    for n in names:
        if n.startswith("_"):
            continue
        out = t.render(n, data)
        if n == "NOTES.txt":
            notes = out
            continue
        try:
            objs.extend(yaml_docs(out))
        except YamlError as e:
            raise YamlError("%s rendered invalid YAML (%s):\n%s" % (n, e, out))
        texts.append("# Source: kelemetry/templates/%s\n%s" % (n, out))
    return objs, notes, "\n---\n".join(texts)


# ============================================================== object checks

FLAGS = None


def kelemetry_flags():
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=30).stdout
    return set(re.findall(r"^  --([a-z0-9-]+) ", out, re.M))


def pod_specs(objs):
    """[(owner object, pod template spec, pod template labels)]."""
    out = []
    for o in objs:
        if o.get("kind") in ("StatefulSet", "Deployment", "DaemonSet", "Job"):
            tpl = o["spec"]["template"]
            out.append((o, tpl.get("spec") or {}, (tpl.get("metadata") or {}).get("labels") or {}))
        elif o.get("kind") == "Pod":
            out.append((o, o["spec"], o["metadata"].get("labels") or {}))
    return out


def find(objs, kind, name=None, namespace=None):
    for o in objs:
        m = o.get("metadata") or {}
        if o.get("kind") == kind and (name is None or m.get("name") == name) and (
                namespace is None or m.get("namespace") in (namespace, None)):
            return o
    return None


def check_objects(label, objs, namespace):
    """Required fields and references inside one rendered set."""
    R.check(objs, "%s: renders objects" % label)
    seen = set()
    for o in objs:
        m = o.get("metadata") or {}
        ok = o.get("apiVersion") and o.get("kind") and m.get("name")
        R.check(ok, "%s: apiVersion, kind and metadata.name on %s" % (label, json.dumps(o)[:200]))
        key = (o.get("kind"), m.get("namespace"), m.get("name"))
        R.check(key not in seen, "%s: %s rendered twice" % (label, key))
        seen.add(key)
    pods = pod_specs(objs)
    R.check(pods, "%s: a workload" % label)
    for owner, spec, labels in pods:
        oname = "%s/%s" % (owner["kind"], owner["metadata"]["name"])
        sel = ((owner.get("spec") or {}).get("selector") or {}).get("matchLabels")
        if owner["kind"] in ("StatefulSet", "Deployment", "DaemonSet"):
            R.check(sel and all(labels.get(k) == v for k, v in sel.items()),
                    "%s: %s selector %s matches its template labels %s"
                    % (label, oname, sel, labels))
        etcd = labels.get("app.kubernetes.io/name") == "etcd"   # bundled: N members
        if owner["kind"] == "StatefulSet":
            R.check(owner["spec"].get("replicas") == 1 or etcd,
                    "%s: %s has one replica (embedded store)" % (label, oname))
            gov = find(objs, "Service", owner["spec"].get("serviceName"))
            R.check(gov and gov["spec"].get("clusterIP") == "None",
                    "%s: %s governing Service %s is headless"
                    % (label, oname, owner["spec"].get("serviceName")))
        sa = spec.get("serviceAccountName")
        if sa and sa != "default":
            R.check(find(objs, "ServiceAccount", sa), "%s: %s service account %s rendered"
                    % (label, oname, sa))
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        claims = {c["metadata"]["name"] for c in
                  (owner.get("spec") or {}).get("volumeClaimTemplates") or []}
        R.check(not (set(volumes) & claims), "%s: %s volume names unique" % (label, oname))
        for vol in volumes.values():
            cm = (vol.get("configMap") or {}).get("name")
            if cm:
                R.check(find(objs, "ConfigMap", cm), "%s: %s ConfigMap %s rendered"
                        % (label, oname, cm))
        for c in spec.get("containers") or []:
            R.check(c.get("name") and c.get("image"),
                    "%s: %s container has name and image" % (label, oname))
            for vm in c.get("volumeMounts") or []:
                R.check(vm["name"] in volumes or vm["name"] in claims,
                        "%s: %s mount %s has a volume" % (label, oname, vm["name"]))
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports") or []}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                pr = c.get(probe)
                if not pr:
                    continue
                if pr.get("exec"):
                    R.check(pr["exec"].get("command"),
                            "%s: %s %s runs a command" % (label, oname, probe))
                    continue
                port = (pr.get("httpGet") or pr.get("tcpSocket") or {}).get("port")
                R.check(port in ports or port in ports.values(),
                        "%s: %s %s port %r is a container port" % (label, oname, probe, port))
                if pr.get("httpGet") and etcd:
                    R.check(pr["httpGet"]["path"] == "/health" and port == "client",
                            "%s: %s %s asks etcd's client port for /health"
                            % (label, oname, probe))
                elif pr.get("httpGet"):
                    R.check(pr["httpGet"]["path"] == "/metrics" and port in ("metrics", 9090),
                            "%s: %s %s asks the metrics port for /metrics"
                            % (label, oname, probe))
            sc = c.get("securityContext") or {}
            psc = spec.get("securityContext") or {}
            R.check(sc.get("allowPrivilegeEscalation") is False and
                    sc.get("readOnlyRootFilesystem") is True and
                    psc.get("runAsNonRoot") is True,
                    "%s: %s/%s runs non-root on a read-only root" % (label, oname, c["name"]))
            if sc.get("readOnlyRootFilesystem") and c["name"] == "kelemetry":
                mounts = {vm["mountPath"] for vm in c.get("volumeMounts") or []}
                R.check("/tmp" in mounts, "%s: writable /tmp for SQLite" % label)
    # Services select the kelemetry pods and target ports they expose
    for svc in (o for o in objs if o.get("kind") == "Service"):
        sel = svc["spec"].get("selector") or {}
        name = svc["metadata"]["name"]
        targets = [(spec, lb) for _, spec, lb in pods
                   if sel and all(lb.get(k) == v for k, v in sel.items())]
        R.check(len(targets) == 1, "%s: Service %s selects exactly one workload (%d)"
                % (label, name, len(targets)))
        for p in svc["spec"].get("ports") or []:
            tp = p.get("targetPort", p["port"])
            names = {cp.get("name") for spec, _ in targets for c in spec["containers"]
                     for cp in c.get("ports") or []}
            nums = {cp["containerPort"] for spec, _ in targets for c in spec["containers"]
                    for cp in c.get("ports") or []}
            R.check(tp in names or tp in nums, "%s: Service %s targetPort %r exists"
                    % (label, name, tp))
    # Ingress backends name Services and their port names
    for ing in (o for o in objs if o.get("kind") == "Ingress"):
        paths = {}
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                svc = find(objs, "Service", p["backend"]["service"]["name"])
                pname = p["backend"]["service"]["port"].get("name")
                R.check(svc and pname in {x.get("name") for x in svc["spec"]["ports"]},
                        "%s: Ingress path %s -> %s:%s exists" % (
                            label, p["path"], p["backend"]["service"]["name"], pname))
                paths[p["path"]] = pname
        R.check(paths == {"/audit": "webhook", "/redirect": "http", "/extensions": "http",
                          "/api": "http", "/": "http"},
                "%s: Ingress routes /audit to the webhook, the rest to the query port: %s"
                % (label, paths))
    # RBAC bindings point at rendered roles and the service account
    for b in (o for o in objs if o.get("kind") in ("RoleBinding", "ClusterRoleBinding")):
        ref = b["roleRef"]
        R.check(find(objs, ref["kind"], ref["name"],
                     b["metadata"].get("namespace") if ref["kind"] == "Role" else None),
                "%s: %s %s refers to a rendered %s" % (label, b["kind"],
                                                        b["metadata"]["name"], ref["kind"]))
        for s in b.get("subjects") or []:
            R.check(s["kind"] == "ServiceAccount" and s.get("namespace") == namespace
                    and find(objs, "ServiceAccount", s["name"], namespace),
                    "%s: %s subject %s" % (label, b["metadata"]["name"], s))
    cr = find(objs, "ClusterRole")
    R.check(cr and any(set(r["verbs"]) >= {"get", "list", "watch"} and r["resources"] == ["*"]
                       and r["apiGroups"] == ["*"] for r in cr["rules"]),
            "%s: ClusterRole reads everything" % label)


def rbac_allows(objs, namespace, group, resource, verb):
    for role in objs:
        if role.get("kind") not in ("Role", "ClusterRole"):
            continue
        if role["kind"] == "Role" and role["metadata"].get("namespace") != namespace:
            continue
        bound = any(b.get("kind") in ("RoleBinding", "ClusterRoleBinding")
                    and b["roleRef"]["name"] == role["metadata"]["name"]
                    and b["roleRef"]["kind"] == role["kind"]
                    and (role["kind"] == "ClusterRole" or
                         b["metadata"].get("namespace") == namespace)
                    for b in objs)
        for r in role.get("rules") or [] if bound else []:
            if (set(r["apiGroups"]) & {group, "*"} and set(r["resources"]) & {resource, "*"}
                    and set(r["verbs"]) & {verb, "*"}):
                return True
    return False


KINDS = [("apps", "v1", "statefulsets", "StatefulSet", True),
         ("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
         ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
         ("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
         ("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
         ("networking.k8s.io", "v1", "ingresses", "Ingress", True),
         ("", "v1", "serviceaccounts", "ServiceAccount", True),
         ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True),
         ("batch", "v1", "jobs", "Job", True),
         ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True)]


def fake_apiserver():
    srv = FakeApiserver(strict_namespaces=True).start()
    for g, v, name, kind, namespaced in KINDS:
        srv.add_resource(g, v, name, kind, namespaced=namespaced)
    return srv


def accepted(label, objs, namespace, srv=None, kubectl_kc=None, rendered=None):
    """Every object created in the fake apiserver (namespaces first, as
    `kubectl apply` and `helm install --create-namespace` order them)."""
    own = srv is None
    srv = srv or fake_apiserver()
    try:
        if not any(o["kind"] == "Namespace" and o["metadata"]["name"] == namespace
                   for o in objs) and srv.get("namespaces", None, namespace) is None:
            srv.create({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": namespace}})
        order = sorted(objs, key=lambda o: o["kind"] != "Namespace")
        for o in order:
            try:
                srv.create(json.loads(json.dumps(o)))
                R.check(True, "")
            except (ApiError, KeyError) as e:
                R.check(False, "%s: fake apiserver refused %s %s: %s" % (
                    label, o.get("kind"), (o.get("metadata") or {}).get("name"), e))
        if kubectl_kc and rendered is not None:
            # kubectl reads the same YAML: its JSON must equal our parse
            p = subprocess.run([KUBECTL, "--kubeconfig", kubectl_kc, "create",
                                "--dry-run=client", "--validate=false", "-o", "json",
                                "-f", "-"], input=rendered, capture_output=True, text=True,
                               timeout=60)
            R.check(p.returncode == 0, "%s: kubectl reads the YAML: %s" % (label, p.stderr))
            if p.returncode == 0:
                items, dec, i = [], json.JSONDecoder(), 0
                while p.stdout[i:].strip():
                    i += len(p.stdout[i:]) - len(p.stdout[i:].lstrip())
                    doc, n = dec.raw_decode(p.stdout[i:])
                    items.extend(doc["items"] if doc.get("kind") == "List" else [doc])
                    i += n
                mine = json.loads(json.dumps(objs))
                R.check(len(items) == len(mine), "%s: kubectl sees %d objects, we %d"
                        % (label, len(items), len(mine)))
                for a, b in zip(items, mine):
                    R.check(a == b, "%s: kubectl and the test parse %s/%s alike:\n%s\n%s" % (
                        label, b.get("kind"), b["metadata"].get("name"),
                        json.dumps(a, sort_keys=True), json.dumps(b, sort_keys=True)))
    finally:
        if own:
            srv.stop()
            srv.cleanup()


def container(objs, name="kelemetry"):
    for owner, spec, _ in pod_specs(objs):
        for c in spec.get("containers") or []:
            if c["name"] == name:
                return owner, spec, c
    return None, None, None


def check_flags(label, args, config_keys=()):
    flags = []
    for a in args:
        if a.startswith("--"):
            flags.append(a[2:].split("=", 1)[0])
    unknown = sorted(set(flags + list(config_keys)) - FLAGS)
    R.check(not unknown, "%s: flags not in `kelemetry --help`: %s" % (label, unknown))
    dup = sorted({f for f in flags if flags.count(f) > 1})
    R.check(not dup, "%s: flags given twice: %s" % (label, dup))
    return flags


# ====================================================== running the rendered pod

def openssl(*args, cwd):
    subprocess.run([OPENSSL] + list(args), cwd=cwd, check=True, capture_output=True,
                   timeout=30)


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    os.makedirs(d, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-subj",
            "/CN=kt-deploy-ca", "-days", "2", cwd=d)
    ext = os.path.join(d, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for n in ("server", "client"):
        openssl("req", *ec, "-keyout", n + ".key", "-out", n + ".csr", "-subj",
                "/CN=" + n, cwd=d)
        openssl("x509", "-req", "-in", n + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", n + ".crt", "-days", "2", "-extfile", ext, cwd=d)
    return d


PKI = None
TOKEN = "kt-deploy-webhook-token"
BASIC = "admin:kt-deploy-password"


def secret_file(key, path):
    """Content for a Secret key the manifests expect the operator to create."""
    if path == "kubeconfig":
        return None          # the fake apiserver's kubeconfig
    if key in ("tls.crt", "tls.key", "ca.crt"):
        if PKI is None:
            raise SkipRun("no openssl to make certificates")
        src = {"tls.crt": "server.crt", "tls.key": "server.key", "ca.crt": "ca.crt"}[key]
        with open(os.path.join(PKI, src)) as f:
            return f.read()
    if key == "webhook-tokens":
        return "# webhook\n" + TOKEN + "\n"
    if key == "query-tokens":
        return "kt-deploy-query-token\n"
    if key == "query-basic-auth":
        return BASIC + "\n"
    raise KeyError(key)


def remap_text(text, mounts):
    """Mount paths in text (args, config files) moved to the temporary dirs."""
    if not mounts:
        return text
    alt = "|".join(re.escape(mp) for mp in sorted(mounts, key=len, reverse=True))
    return re.sub(r"(?<![A-Za-z0-9_./-])(" + alt + r")(?=/|\s|$|,|\")",
                  lambda m: mounts[m.group(1)], text)


def materialise(objs, spec, c, root, kubeconfig):
    """Each volume mounted by the container as a directory under root; returns
    {mountPath: dir} (the PVC and emptyDirs empty, ConfigMaps as rendered
    with mount paths moved, Secrets with generated content for their keys)."""
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    mounts = {}
    for vm in c.get("volumeMounts") or []:
        mounts[vm["mountPath"]] = os.path.join(root, vm["name"])
        os.makedirs(mounts[vm["mountPath"]], exist_ok=True)
    for vm in c.get("volumeMounts") or []:
        d = mounts[vm["mountPath"]]
        vol = volumes.get(vm["name"], {})
        if "configMap" in vol:
            cm = find(objs, "ConfigMap", vol["configMap"]["name"])
            for k, v in (cm.get("data") or {}).items():
                with open(os.path.join(d, k), "w") as f:
                    f.write(remap_text(v, mounts))
        elif "secret" in vol:
            items = vol["secret"].get("items")
            sec = find(objs, "Secret", vol["secret"]["secretName"])
            if items:
                keys = [(i["key"], i["path"]) for i in items]
            elif sec:
                keys = [(k, k) for k in list(sec.get("stringData") or {})
                        + list(sec.get("data") or {})]
            else:
                keys = [(k, k) for k in ("tls.crt", "tls.key", "ca.crt", "webhook-tokens",
                                         "query-tokens", "query-basic-auth")]
            for key, path in keys:
                if sec and key in (sec.get("stringData") or {}):
                    content = sec["stringData"][key]
                elif sec and key in (sec.get("data") or {}):
                    content = base64.b64decode(sec["data"][key]).decode()
                else:
                    content = secret_file(key, path)
                if content is None:
                    shutil.copy(kubeconfig, os.path.join(d, path))
                    continue
                with open(os.path.join(d, path), "w") as f:
                    f.write(content)
    return mounts


def remap(args, mounts, ports):
    """The rendered args with mount paths moved under the temporary
    directories and ports/addresses moved to loopback."""
    out = []
    for a in args:
        name = a[2:].split("=", 1)[0] if a.startswith("--") else ""
        if name in ("http-port", "query-port", "metrics-port"):
            continue
        out.append(remap_text(a, mounts))
    out += ["--http-address=127.0.0.1", "--query-address=127.0.0.1",
            "--metrics-address=127.0.0.1", "--http-port=%d" % ports["webhook"],
            "--query-port=%d" % ports["http"], "--metrics-port=%d" % ports["metrics"]]
    return out


def effective(args):
    """Flag values as kelemetry sees them: the --config file, then args."""
    eff = {}
    for a in args:
        if a.startswith("--config="):
            with open(a.split("=", 1)[1]) as f:
                for k, v in (yaml_load(f.read()) or {}).items():
                    eff[k] = go_str(v)
    for a in args:
        if a.startswith("--"):
            k, _, v = a[2:].partition("=")
            eff[k] = v if _ else "true"
    return eff


def http(url, data=None, headers=None, ctx=None, timeout=10):
    req = urllib.request.Request(url, data=data, headers=headers or {},
                                 method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def run_rendered(label, objs, namespace, cluster, srv, kubeconfig):
    """Starts the rendered kelemetry container's args for real."""
    owner, spec, c = container(objs)
    root = os.path.join(TMP, re.sub(r"[^a-z0-9]+", "-", label.lower()))
    os.makedirs(root)
    mounts = materialise(objs, spec, c, root, kubeconfig)
    ports = {"webhook": free_port(), "http": free_port(), "metrics": free_port()}
    args = remap(c.get("args") or [], mounts, ports)
    # No service account token here: the fake apiserver's kubeconfig stands in
    # for the in-cluster configuration.
    eff = effective(args)
    if not eff.get("kube-config"):
        args.append("--kube-config=" + kubeconfig)
    cmd = [BIN] + args
    p = subprocess.run(cmd + ["--help"], capture_output=True, text=True, timeout=30)
    R.check(p.returncode == 0 and "usage:" in p.stdout,
            "%s: every flag and config value parses: %s" % (label, p.stderr.strip()))
    log = open(os.path.join(root, "log"), "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=dict(
        os.environ, TMPDIR=mounts.get("/tmp", root)))
    murl = "http://127.0.0.1:%d/metrics" % ports["metrics"]
    try:
        deadline, up = time.time() + 15, False
        while time.time() < deadline and proc.poll() is None:
            try:
                up = http(murl, timeout=2)[0] == 200
                if up:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        R.check(up, "%s: kelemetry answers GET /metrics (the probes' path): %s"
                % (label, tail(root)))
        if not up:
            return
        # leases and the event checkpoint where the Roles allow them
        want = []
        if eff.get("event-informer-enable") == "true":
            want.append(("leases", eff.get("event-informer-leader-election-namespace", "default"),
                         eff.get("event-informer-leader-election-name",
                                 "kelemetry-event-informer-leader-election") + "-0"))
            want.append(("configmaps", eff.get("event-informer-configmap-namespace", "default"),
                         eff.get("event-informer-configmap-name", "kelemetry-event-controller")))
        if eff.get("diff-controller-enable") == "true":
            want.append(("leases", eff.get("diff-controller-leader-election-namespace", "default"),
                         eff.get("diff-controller-leader-election-name",
                                 "kelemetry-diff-controller-leader-election") + "-0"))
        for res, ns, name in want:
            deadline, got = time.time() + 10, None
            while time.time() < deadline and got is None:
                got = srv.get(res, ns, name)
                if got is None:
                    time.sleep(0.1)
            R.check(got is not None, "%s: %s %s/%s created by the running pod"
                    % (label, res, ns, name))
            group = "coordination.k8s.io" if res == "leases" else ""
            R.check(all(rbac_allows(objs, ns, group, res, v) for v in ("get", "create", "update")),
                    "%s: the Roles let it get/create/update %s in %s" % (label, res, ns))
        if eff.get("filter-config-watch", "true") == "true":
            R.check(rbac_allows(objs, "default", "", "events", "create"),
                    "%s: it may report on default/kelemetry-filter-config" % label)
        # the webhook, with the credentials the manifests configure
        body = json.dumps(event_list(demo_events()[:3])).encode()
        hdr = {"Content-Type": "application/json"}
        tls = eff.get("http-tls-cert")
        ctx = None
        scheme = "http"
        if tls:
            scheme = "https"
            ctx = ssl.create_default_context(cafile=os.path.join(PKI, "ca.crt"))
            if eff.get("http-tls-client-ca"):
                try:
                    st, _ = http("https://127.0.0.1:%d/audit/%s" % (ports["webhook"], cluster),
                                 b"{}", hdr, ctx)
                except (OSError, ssl.SSLError):
                    st = "refused"
                R.check(st in (403, "refused"),
                        "%s: no client certificate, no audit events (%s)" % (label, st))
                ctx.load_cert_chain(os.path.join(PKI, "client.crt"),
                                    os.path.join(PKI, "client.key"))
        url = "%s://127.0.0.1:%d/audit/%s" % (scheme, ports["webhook"], cluster)
        if eff.get("audit-webhook-token-file"):
            try:
                st, _ = http(url, b"{}", hdr, ctx)
            except OSError as e:
                st = str(e)
            R.check(st == 401, "%s: no token, no audit events (%s)" % (label, st))
            hdr["Authorization"] = "Bearer " + TOKEN
        st, out = http(url, body, hdr, ctx)
        R.check(st == 200 and json.loads(out).get("accepted") == 3,
                "%s: POST /audit/%s accepted: %d %s" % (label, cluster, st, out[:200]))
        q = "http://127.0.0.1:%d/api/services" % ports["http"]
        qh = {}
        if eff.get("query-basic-auth-file"):
            R.check(http(q)[0] == 401, "%s: the UI asks for credentials" % label)
            qh["Authorization"] = "Basic " + base64.b64encode(BASIC.encode()).decode()
        st, _ = http(q, headers=qh)
        R.check(st == 200, "%s: the query API answers /api/services: %d" % (label, st))
        # what the scan Job / `kubectl exec ... kelemetry scan` runs
        sp = subprocess.run([BIN, "scan", murl], capture_output=True, text=True, timeout=30)
        R.check(sp.returncode in (0, 1) and re.search(r"Received [1-9]\d* webhook requests",
                                                       sp.stdout),
                "%s: kelemetry scan reads it: %d %s" % (label, sp.returncode, sp.stdout))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = "killed"
        else:
            rc = proc.returncode
        log.close()
        R.check(rc == 0, "%s: clean shutdown on SIGTERM (%s): %s" % (label, rc, tail(root)))
        text = tail(root)
        R.check("Sanitizer" not in text and "runtime error:" not in text,
                "%s: sanitizer report: %s" % (label, text))


def tail(root):
    try:
        with open(os.path.join(root, "log"), "rb") as f:
            return f.read().decode(errors="replace")[-3000:]
    except OSError:
        return ""


def run_with_fake(label, objs, namespace, cluster):
    srv = FakeApiserver(token="kt-deploy-sa-token", bookmark_interval=0.5).start()
    try:
        kc = srv.write_kubeconfig(os.path.join(TMP, re.sub(r"\W+", "-", label) + ".kubeconfig"),
                                  context="fake")
        run_rendered(label, objs, namespace, cluster, srv, kc)
    except SkipRun as e:
        print("SKIP: %s not started: %s" % (label, e))
    finally:
        srv.stop()
        srv.cleanup()


# =================================================================== the parts

def check_kustomize():
    t0 = time.time()
    if not KUBECTL:
        print("SKIP: kubectl not found: Kustomize rendering not checked")
        return
    srv = fake_apiserver()
    kc = srv.write_kubeconfig(os.path.join(TMP, "dryrun.kubeconfig"), context="dryrun")
    try:
        dirs = [os.path.join(KUSTOMIZE, "base")] + sorted(
            glob.glob(os.path.join(KUSTOMIZE, "overlays", "*")))
        R.check(len(dirs) >= 3, "base and at least two overlays: %s" % dirs)
        for d in dirs:
            label = "kustomize " + os.path.relpath(d, KUSTOMIZE)
            p = subprocess.run([KUBECTL, "kustomize", d], capture_output=True, text=True,
                               timeout=60)
            R.check(p.returncode == 0, "%s renders: %s" % (label, p.stderr))
            if p.returncode:
                continue
            objs = yaml_docs(p.stdout)
            check_objects(label, objs, "kelemetry")
            accepted(label, objs, "kelemetry", kubectl_kc=kc, rendered=p.stdout)
            if find(objs, "Deployment", "kelemetry-informers"):
                check_kustomize_distributed(label, objs)
                continue
            owner, spec, c = container(objs)
            cfg_keys = ()
            cm_args = [a for a in c["args"] if a.startswith("--config=")]
            if cm_args:
                vols = {v["name"]: v for v in spec["volumes"]}
                path = cm_args[0].split("=", 1)[1]
                vm = [m for m in c["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
                R.check(vm and "configMap" in vols[vm[0]["name"]],
                        "%s: --config is a mounted ConfigMap" % label)
                cm = find(objs, "ConfigMap", vols[vm[0]["name"]]["configMap"]["name"])
                text = cm["data"][path[len(vm[0]["mountPath"]) + 1:]]
                cfg = yaml_load(text)
                R.check(isinstance(cfg, dict) and all(
                    isinstance(v, (str, int, bool)) for v in cfg.values()),
                    "%s: config file is a flat mapping: %r" % (label, cfg))
                cfg_keys = list(cfg)
            flags = check_flags(label, c["args"], cfg_keys)
            cluster = (yaml_load(text) if cm_args else {}).get("kube-target-cluster")
            R.check(cluster and (yaml_load(text) or {}).get("audit-default-cluster") == cluster,
                    "%s: one cluster name for the informers and plain /audit" % label)
            for f in ("event-informer-enable", "diff-controller-enable"):
                R.check(f in flags, "%s: %s" % (label, f))
            scan_owner, _, sc = container(objs, "scan")
            if sc:
                check_scan(label, objs, sc)
            run_with_fake(label, objs, "kelemetry", cluster)
    finally:
        srv.stop()
        srv.cleanup()


def check_kustomize_distributed(label, objs):
    """overlays/distributed: the checks of the chart's distributed topology,
    the same objects and flags as `helm template` of it, and the roles run."""
    dep = find(objs, "Deployment", "kelemetry-informers")
    spec, c = kelemetry_container(dep)
    cfg = {}
    paths = [a.split("=", 1)[1] for a in c["args"] if a.startswith("--config=")]
    if paths:
        vols = {v["name"]: v for v in spec["volumes"]}
        vm = [m for m in c["volumeMounts"] if paths[0].startswith(m["mountPath"] + "/")]
        cm = find(objs, "ConfigMap", vols[vm[0]["name"]]["configMap"]["name"]) if vm else None
        R.check(cm, "%s: --config is a mounted ConfigMap" % label)
        if cm:
            cfg = {k: go_str(v) for k, v in (yaml_load(
                cm["data"][paths[0][len(vm[0]["mountPath"]) + 1:]]) or {}).items()}
    want = {"replicas": {"informers": 3, "consumer": 3, "frontend": 2},
            "caches": {"span": "redis", "diff": "redis", "trace": "redis"}, "etcd": [],
            "redis": None, "postgres_secret": None, "pg_secret_external_ok": True,
            "otlp": "", "sa": {r: "kelemetry-" + r for r in ROLES}, "config": cfg}
    roles = check_distributed(label, objs, "kelemetry", "kelemetry", want)
    # the same shape as the chart (the chart also makes the DSN Secret)
    hobjs = helm_template({"topology": "distributed", "postgres": {"password": PG_PASSWORD}},
                          "kelemetry", "kelemetry")[0]
    names = {(o["kind"], o["metadata"]["name"]) for o in objs
             if o["kind"] not in ("Namespace", "ConfigMap")}
    hnames = {(o["kind"], o["metadata"]["name"]) for o in hobjs} - {("Secret", "kelemetry-postgres")}
    R.check(names == hnames, "%s: the chart's objects: only here %s, only in the chart %s"
            % (label, sorted(names - hnames), sorted(hnames - names)))
    for role in roles:
        hdep = find(hobjs, "Deployment", "kelemetry-" + role)
        heff = {}
        for a in kelemetry_container(hdep)[1]["args"]:
            k, _, val = a[2:].partition("=")
            heff[k] = val
        keff = {k: val for k, val in roles[role][2].items() if k != "config"}
        diff = sorted(k for k in set(heff) | set(keff) if heff.get(k) != keff.get(k))
        R.check(not diff, "%s: %s flags as the chart's: differ %s" % (
            label, role, [(k, keff.get(k), heff.get(k)) for k in diff]))
    if len(roles) == 3:
        run_distributed(label, objs, roles, cfg.get("kube-target-cluster", "default"))


def check_scan(label, objs, sc, urls=1):
    R.check(sc["args"][0] == "scan" and len(sc["args"]) == 1 + urls,
            "%s: scan container runs `kelemetry scan URL...` (%d URLs): %s"
            % (label, urls, sc["args"]))
    for url in sc["args"][1:]:
        m = re.match(r"^http://([a-z0-9-]+)\.([a-z0-9-]+)\.svc:(\d+)/metrics$", url)
        R.check(m, "%s: scan URL form %s" % (label, url))
        if m:
            svc = find(objs, "Service", m.group(1), m.group(2))
            R.check(svc and any(p["port"] == int(m.group(3)) and p.get("name") == "metrics"
                                for p in svc["spec"]["ports"]),
                    "%s: scan URL %s names a metrics Service and port" % (label, url))


def values_refs():
    """Every .Values.x.y path the templates use."""
    refs = set()
    for f in glob.glob(os.path.join(CHART, "templates", "*")):
        with open(f) as fh:
            for m in re.finditer(r"\.Values((?:\.[A-Za-z0-9_]+)+)", fh.read()):
                refs.add(m.group(1)[1:])
    return refs


def check_helm():
    with open(os.path.join(CHART, "values.yaml")) as f:
        values = yaml_load(f.read())
    with open(os.path.join(CHART, "Chart.yaml")) as f:
        chart = yaml_load(f.read())
    R.check(chart.get("apiVersion") == "v2" and chart.get("name") == "kelemetry"
            and chart.get("version") and chart.get("appVersion"), "Chart.yaml: %r" % chart)
    R.check(os.path.exists(os.path.join(CHART, "templates", "NOTES.txt")) and
            os.path.exists(os.path.join(CHART, "templates", "_helpers.tpl")),
            "chart has NOTES.txt and _helpers.tpl")
    for ref in sorted(values_refs()):
        v, ok = values, True
        for part in ref.split("."):
            if isinstance(v, dict) and part in v:
                v = v[part]
            else:
                ok = False
                break
        R.check(ok, "helm: .Values.%s is in values.yaml" % ref)
    # `{{ }}` balanced and blocks closed: the parser refuses otherwise
    for f in sorted(glob.glob(os.path.join(CHART, "templates", "*"))):
        with open(f) as fh:
            text = fh.read()
        R.check(text.count("{{") == text.count("}}"),
                "helm: %s has as many {{ as }}" % os.path.basename(f))
        try:
            Templates().add(os.path.basename(f), text)
        except TemplateError as e:
            R.check(False, "helm: %s" % e)
    # the flags come from one helper
    for f in glob.glob(os.path.join(CHART, "templates", "*.yaml")):
        if os.path.basename(f) == "etcd.yaml":
            continue    # etcd's own flags, checked against `etcd --help` below
        with open(f) as fh:
            text = fh.read()
        R.check(not re.search(r"--[a-z]+-[a-z-]+=", text),
                "helm: %s writes flags itself (they belong in kelemetry.args)"
                % os.path.basename(f))

    variants = [
        ("helm default", {}, "kelemetry", "kelemetry"),
        ("helm full", {
            "clusters": [{"name": "prod", "kubeconfig": {"secretName": ""}},
                         {"name": "staging", "kubeconfig": {"secretName": "kubeconfig-staging",
                                                            "key": "config"}}],
            "webhook": {"tls": {"enabled": True, "secretName": "kelemetry-webhook-tls",
                                "clientCA": True}},
            "auth": {"webhookTokens": [TOKEN], "queryBasicAuth": [BASIC]},
            "ingress": {"enabled": True, "className": "nginx",
                        "tls": [{"secretName": "kt", "hosts": ["kelemetry.example.com"]}]},
            "scan": {"enabled": True},
            "query": {"clusterNames": ["prod", "staging"]},
            "informers": {"diff": {"leaderElection": {"namespace": "kube-system"},
                                   "redactPattern": "^/v1/secrets/"}},
            "aggregator": {"globalTags": {"pseudoSpan": {"env": "prod", "dc": "eu"}}},
            "persistence": {"storageClass": "fast", "size": "50Gi"},
            "service": {"webhook": {"clusterIP": "10.96.100.100"}},
            "extraArgs": ["--resource-tag-mapping=pods#nodes:spec.nodeName"],
            "podLabels": {"team": "platform"},
            "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        }, "tracing", "monitoring"),
        ("helm minimal", {"informers": {"event": {"enabled": False},
                                        "diff": {"enabled": False}},
                          "persistence": {"enabled": False}, "metrics": {"enabled": False},
                          "rbac": {"create": True}, "filter": {"configWatch": False},
                          "fullnameOverride": "kt"}, "kt", "default"),
    ]
    for label, over, release, ns in variants:
        try:
            objs, notes, text = helm_template(over, release, ns)
        except (TemplateError, TemplateFail, YamlError) as e:
            R.check(False, "%s: renders: %s" % (label, e))
            continue
        R.check(notes and "kelemetry scan" in notes and "/audit/" in notes,
                "%s: NOTES.txt renders" % label)
        check_objects(label, objs, ns)
        kc = None
        srv = fake_apiserver()
        try:
            if KUBECTL:
                kc = srv.write_kubeconfig(os.path.join(TMP, "h.kubeconfig"), context="h")
            accepted(label, objs, ns, srv=srv, kubectl_kc=kc, rendered=text)
        finally:
            srv.stop()
            srv.cleanup()
        owner, spec, c = container(objs)
        flags = check_flags(label, c["args"])
        target = (over.get("clusters") or [{"name": "my-cluster"}])[0]["name"]
        R.check("--kube-target-cluster=%s" % target in c["args"] and
                "--audit-default-cluster=%s" % target in c["args"],
                "%s: target cluster %s on both sides" % (label, target))
        sc = container(objs, "scan")[2]
        if sc:
            check_scan(label, objs, sc)
            job = find(objs, "Job")
            R.check(job["metadata"]["annotations"].get("helm.sh/hook") == "test",
                    "%s: the scan Job is a helm test hook" % label)
        if label == "helm full":
            R.check("--kube-config-paths=staging=/etc/kelemetry/clusters/staging/kubeconfig"
                    in c["args"], "%s: kubeconfig per cluster: %s" % (label, c["args"]))
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            vols = {v["name"]: v for v in spec["volumes"]}
            vol = vols.get(mounts.get("/etc/kelemetry/clusters/staging"), {})
            R.check(vol.get("secret", {}).get("secretName") == "kubeconfig-staging" and
                    vol["secret"]["items"] == [{"key": "config", "path": "kubeconfig"}],
                    "%s: the staging kubeconfig Secret is mounted" % label)
            R.check("--aggregator-pseudo-span-global-tags=dc=eu,env=prod" in c["args"],
                    "%s: map values become k=v lists" % label)
            R.check(find(objs, "Role", "tracing-kelemetry", "kube-system") and
                    find(objs, "Role", "tracing-kelemetry", "monitoring"),
                    "%s: a Role in each namespace the leases use" % label)
            R.check(find(objs, "Service", "tracing-kelemetry-webhook")["spec"]["clusterIP"]
                    == "10.96.100.100", "%s: fixed webhook ClusterIP" % label)
        if label == "helm minimal":
            R.check("--event-informer-enable=false" in c["args"] and
                    not find(objs, "Role", "kt") and not find(objs, "Role", "kt-events"),
                    "%s: no informers, no Roles" % label)
            R.check(c.get("livenessProbe", {}).get("tcpSocket", {}).get("port") == "webhook",
                    "%s: without metrics the probes use the webhook port" % label)
            R.check(not find(objs, "PersistentVolumeClaim") and
                    not spec.get("volumeClaimTemplates") and
                    any(v["name"] == "data" and "emptyDir" in v for v in spec["volumes"]),
                    "%s: emptyDir data without persistence" % label)
        if label != "helm minimal":
            run_with_fake(label, objs, ns, target)
    # topologies that do not work are refused with a clear message
    try:
        helm_template({"topology": "sharded"})
        R.check(False, "helm topology=sharded must fail")
    except TemplateFail as e:
        R.check("topology must be allInOne or distributed" in str(e),
                "helm topology=sharded: %s" % e)
    try:
        helm_template({"webhook": {"tls": {"enabled": True}}})
        R.check(False, "helm: webhook TLS without a Secret must fail")
    except TemplateFail as e:
        R.check("secretName" in str(e), "helm: webhook TLS without a Secret: %s" % e)


# ============================================================ distributed
# topology=distributed (Helm) and overlays/distributed (Kustomize): three
# Deployments of the same image with role flag sets over shared engines.

ROLES = ("informers", "consumer", "frontend")
PG_PASSWORD = "kt-deploy-pg-pass'word"     # a quote: the DSN must escape it


def parse_dsn(dsn):
    """A libpq key=value conninfo as a dict (single-quoted values, \\ escapes)."""
    out, i, n = {}, 0, len(dsn)
    while True:
        while i < n and dsn[i] == " ":
            i += 1
        if i >= n:
            return out
        j = dsn.index("=", i)
        key, i = dsn[i:j].strip(), j + 1
        while i < n and dsn[i] == " ":
            i += 1
        if i < n and dsn[i] == "'":
            i, val = i + 1, []
            while dsn[i] != "'":
                if dsn[i] == "\\":
                    i += 1
                val.append(dsn[i])
                i += 1
            out[key], i = "".join(val), i + 1
        else:
            j = i
            while j < n and dsn[j] != " ":
                j += 1
            out[key], i = dsn[i:j], j


def build_dsn(d):
    return " ".join("%s='%s'" % (k, str(v).replace("\\", "\\\\").replace("'", "\\'"))
                    for k, v in d.items())


def sa_allows(objs, sa, sa_ns, namespace, group, resource, verb):
    """Whether the rendered RBAC lets ServiceAccount sa_ns/sa do verb on
    group/resource in namespace (cluster-wide rules count everywhere)."""
    for b in objs:
        if b.get("kind") not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == sa and
                   s.get("namespace") == sa_ns for s in b.get("subjects") or []):
            continue
        if b["kind"] == "RoleBinding" and b["metadata"].get("namespace") != namespace:
            continue
        ref = b["roleRef"]
        role = find(objs, ref["kind"], ref["name"],
                    b["metadata"].get("namespace") if ref["kind"] == "Role" else None)
        for r in (role or {}).get("rules") or []:
            if (set(r["apiGroups"]) & {group, "*"} and set(r["resources"]) & {resource, "*"}
                    and set(r["verbs"]) & {verb, "*"}):
                return True
    return False


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_labels(o):
    return ((o["spec"]["template"].get("metadata") or {}).get("labels")) or {}


def kelemetry_container(dep):
    spec = dep["spec"]["template"]["spec"]
    return spec, next(c for c in spec["containers"] if c["name"] == "kelemetry")


def service_target(label, objs, address, default_port=None):
    """The workload and container port behind "<svc>.<ns>.svc:<port>"."""
    host, _, port = address.rpartition(":") if default_port is None else (address, "",
                                                                           default_port)
    m = re.match(r"^([a-z0-9-]+)\.([a-z0-9-]+)\.svc$", host)
    R.check(m, "%s: %s is <service>.<namespace>.svc" % (label, address))
    if not m:
        return None, None
    svc = find(objs, "Service", m.group(1), m.group(2))
    R.check(svc, "%s: Service %s rendered" % (label, m.group(1)))
    if not svc:
        return None, None
    sp = [p for p in svc["spec"]["ports"] if p["port"] == int(port)]
    R.check(sp, "%s: Service %s has port %s" % (label, m.group(1), port))
    wl = [o for o in objs if o.get("kind") in ("StatefulSet", "Deployment")
          and selects(svc["spec"].get("selector"), pod_labels(o))]
    R.check(len(wl) == 1, "%s: Service %s selects one workload" % (label, m.group(1)))
    if not (sp and len(wl) == 1):
        return None, None
    tp = sp[0].get("targetPort", sp[0]["port"])
    for c in wl[0]["spec"]["template"]["spec"]["containers"]:
        for cp in c.get("ports") or []:
            if tp in (cp.get("name"), cp["containerPort"]):
                return wl[0], c
    R.check(False, "%s: Service %s targetPort %r is no container port" % (label, m.group(1), tp))
    return None, None


def env_secret(c, name):
    for e in c.get("env") or []:
        if e["name"] == name:
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            return (ref["name"], ref["key"]) if ref else None
    return None


def check_distributed(label, objs, ns, full, want):
    """Consistency of a distributed rendering. want: replicas {role: n},
    caches {span, diff, trace}, redis (external address or None = bundled),
    postgres_secret ((name, key) of an external DSN or None = bundled),
    etcd (endpoints list), otlp (endpoint or ""), sa {role: name}, config
    (flags of a mounted --config file, Kustomize). Returns {role: (Deployment,
    container, effective flags)}."""
    R.check(not find(objs, "StatefulSet", full), "%s: no all-in-one StatefulSet" % label)
    roles = {}
    for role in ROLES:
        dep = find(objs, "Deployment", "%s-%s" % (full, role), ns)
        R.check(dep, "%s: Deployment %s-%s" % (label, full, role))
        if not dep:
            continue
        spec, c = kelemetry_container(dep)
        R.check(dep["spec"].get("replicas") == want["replicas"][role],
                "%s: %s replicas %s" % (label, role, dep["spec"].get("replicas")))
        R.check(pod_labels(dep).get("app.kubernetes.io/component") == role and
                dep["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/component")
                == role, "%s: %s pods and selector carry component=%s" % (label, role, role))
        R.check(spec.get("serviceAccountName") == want["sa"][role],
                "%s: %s runs as %s" % (label, role, spec.get("serviceAccountName")))
        eff = dict(want.get("config") or {})
        for a in c["args"]:
            if a.startswith("--") and not a.startswith("--config="):
                k, _, val = a[2:].partition("=")
                eff[k] = val if _ else "true"
        check_flags("%s %s" % (label, role), c["args"], list(want.get("config") or {}))
        roles[role] = (dep, c, eff)
        # the kubelet expands $(VAR) only for variables of the container's env
        env = {e["name"] for e in c.get("env") or []}
        for a in c["args"]:
            for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", a):
                R.check(var in env, "%s: %s arg %s uses $(%s), not in env" % (label, role, a, var))
        ports = {p["name"] for p in c.get("ports") or []}
        R.check(ports == {"informers": {"metrics"}, "consumer": {"webhook", "metrics"},
                          "frontend": {"http", "metrics"}}[role],
                "%s: %s container ports %s" % (label, role, sorted(ports)))
    if len(roles) != 3:
        return roles
    f = {r: roles[r][2] for r in roles}
    # the role flag sets of src/ops/kt_roles.h
    expect = {
        "informers": {"event-informer-enable": "true", "diff-controller-enable": "true",
                      "audit-webhook-enable": "false", "audit-consumer-enable": "false",
                      "jaeger-query-enable": "false"},
        "consumer": {"audit-webhook-enable": "true", "audit-producer-enable": "true",
                     "audit-consumer-enable": "true", "diff-decorator-enable": "true",
                     "mq": "redis", "jaeger-query-enable": "false",
                     "event-informer-enable": "false", "diff-controller-enable": "false"},
        "frontend": {"jaeger-query-enable": "true", "audit-webhook-enable": "false",
                     "audit-consumer-enable": "false", "event-informer-enable": "false",
                     "diff-controller-enable": "false"}}
    for role, kv in expect.items():
        bad = {k: f[role].get(k) for k, v in kv.items() if f[role].get(k) != v}
        R.check(not bad, "%s: %s flag set (kt_roles.h): wrong %s" % (label, role, bad))
    R.check(f["informers"].get("event-informer-leader-election-num-leaders") == "1" and
            f["informers"].get("diff-controller-leader-election-num-leaders") == "2",
            "%s: informers lead with 1 event and 2 diff leaders" % label)
    # engines: the store everywhere, caches where they are used
    redis_addr = f["consumer"].get("mq-redis-address")
    for role in ROLES:
        R.check(f[role].get("storage-backend") == "postgres" and
                f[role].get("storage-postgres-dsn") == "$(KELEMETRY_POSTGRES_DSN)",
                "%s: %s stores in PostgreSQL, DSN from the environment" % (label, role))
        caches = ({"span-cache": want["caches"]["span"], "diff-cache": want["caches"]["diff"]}
                  if role != "frontend" else {"jaeger-trace-cache": want["caches"]["trace"]})
        for flag, typ in caches.items():
            addr = (f[role].get(flag + "-redis-address") if typ == "redis"
                    else f[role].get(flag + "-etcd-endpoints"))
            R.check(f[role].get(flag) == typ and addr == (
                redis_addr if typ == "redis" else ",".join(want["etcd"])),
                "%s: %s --%s=%s at %s" % (label, role, flag, f[role].get(flag), addr))
        R.check((f[role].get("tracer-otel-endpoint") or "") ==
                (want["otlp"] if role != "frontend" else ""),
                "%s: %s OTLP export %r" % (label, role, f[role].get("tracer-otel-endpoint")))
    R.check(f["consumer"].get("mq-redis-partitions") and f["consumer"].get("audit-consumer-group")
            and f["consumer"].get("audit-producer-partition-key-type")
            in ("object", "cluster", "audit-id"), "%s: consumer queue settings" % label)
    # Services point at the pods that serve them
    for svc_name, role, port_name in (("%s-webhook" % full, "consumer", "webhook"),
                                      ("%s-query" % full, "frontend", "http")):
        svc = find(objs, "Service", svc_name, ns)
        R.check(svc and selects(svc["spec"]["selector"], pod_labels(roles[role][0])) and
                all(not selects(svc["spec"]["selector"], pod_labels(roles[r][0]))
                    for r in ROLES if r != role) and
                [p.get("targetPort") for p in svc["spec"]["ports"]] == [port_name],
                "%s: Service %s -> %s pods, port %s" % (label, svc_name, role, port_name))
    for role in ROLES:
        svc = find(objs, "Service", "%s-%s-metrics" % (full, role), ns)
        R.check(svc and selects(svc["spec"]["selector"], pod_labels(roles[role][0])) and
                svc["spec"]["ports"][0].get("targetPort") == "metrics",
                "%s: metrics Service of %s" % (label, role))
    # RBAC per role (§5.1)
    sa = want["sa"]
    lease_ns = f["informers"].get("event-informer-leader-election-namespace")
    diff_ns = f["informers"].get("diff-controller-leader-election-namespace")
    cm_ns = f["informers"].get("event-informer-configmap-namespace")
    R.check(all(sa_allows(objs, sa["informers"], ns, None, g, res, v)
                for g, res in (("apps", "deployments"), ("", "events"), ("", "pods"))
                for v in ("get", "list", "watch")) and
            all(sa_allows(objs, sa["informers"], ns, n, "coordination.k8s.io", "leases", v)
                for n in (lease_ns, diff_ns) for v in ("get", "create", "update")) and
            all(sa_allows(objs, sa["informers"], ns, cm_ns, "", "configmaps", v)
                for v in ("get", "create", "update")),
            "%s: informers read everything, take leases in %s/%s, write the checkpoint in %s"
            % (label, lease_ns, diff_ns, cm_ns))
    R.check(all(sa_allows(objs, sa["consumer"], ns, None, g, res, v)
                for g, res in (("apps", "replicasets"), ("", "pods")) for v in ("get", "list")) and
            not sa_allows(objs, sa["consumer"], ns, lease_ns, "coordination.k8s.io", "leases",
                          "create") and
            not sa_allows(objs, sa["consumer"], ns, cm_ns, "", "configmaps", "update"),
            "%s: consumer reads everything, writes nothing" % label)
    R.check(not any(sa_allows(objs, sa["frontend"], ns, ns, "", "pods", v)
                    for v in ("get", "list")) and
            roles["frontend"][0]["spec"]["template"]["spec"].get(
                "automountServiceAccountToken") is False,
            "%s: frontend has no Kubernetes access and no token" % label)
    if f["informers"].get("filter-config-watch", "true") == "true":
        R.check(sa_allows(objs, sa["informers"], ns, "default", "", "events", "create") and
                sa_allows(objs, sa["consumer"], ns, "default", "", "events", "create"),
                "%s: informers and consumer may report on default/kelemetry-filter-config"
                % label)
    # Redis: bundled behind a Service, or the external address
    if want["redis"] is None:
        wl, rc = service_target(label + " redis", objs, redis_addr)
        R.check(wl and wl["kind"] == "StatefulSet" and wl["spec"]["replicas"] == 1 and
                rc["image"].startswith("redis:7"), "%s: bundled Redis 7 StatefulSet" % label)
        if rc:
            a = rc.get("args") or rc.get("command") or []
            pairs = {a[i]: a[i + 1] for i in range(len(a) - 1) if a[i].startswith("--")}
            R.check(pairs.get("--appendonly") == "yes" and
                    pairs.get("--maxmemory-policy") == "noeviction",
                    "%s: Redis persists the stream (appendonly) and never evicts: %s"
                    % (label, a))
            mounts = {m["name"]: m["mountPath"] for m in rc.get("volumeMounts") or []}
            R.check(pairs.get("--dir") == mounts.get("data") and any(
                t["metadata"]["name"] == "data" for t in wl["spec"].get("volumeClaimTemplates")
                or []), "%s: Redis data on a PersistentVolumeClaim" % label)
    else:
        R.check(redis_addr == want["redis"] and not find(objs, "StatefulSet", full + "-redis"),
                "%s: external Redis %s, none bundled" % (label, redis_addr))
    # PostgreSQL: the DSN's Secret; bundled: it names the bundled server
    refs = {env_secret(roles[r][1], "KELEMETRY_POSTGRES_DSN") for r in ROLES}
    R.check(len(refs) == 1 and None not in refs, "%s: one DSN Secret for every role: %s"
            % (label, refs))
    ref = refs.pop() if len(refs) == 1 else None
    if want["postgres_secret"] is None and ref:
        sec = find(objs, "Secret", ref[0], ns)
        wl = None
        if sec:
            dsn = parse_dsn((sec.get("stringData") or {}).get(ref[1], ""))
            wl, pc = service_target(label + " postgres", objs, dsn.get("host", ""),
                                    dsn.get("port", "5432"))
            penv = {e["name"]: e.get("value") for e in (pc or {}).get("env") or []}
            R.check(wl and wl["kind"] == "StatefulSet" and pc["image"].startswith("postgres:15")
                    and penv.get("POSTGRES_USER") == dsn.get("user") and
                    penv.get("POSTGRES_DB") == dsn.get("dbname") and
                    env_secret(pc, "POSTGRES_PASSWORD") == (ref[0], "password") and
                    sec["stringData"]["password"] == dsn.get("password") == want["pg_password"],
                    "%s: the DSN's host, port, user, database and password are the bundled "
                    "PostgreSQL's: %s" % (label, dsn))
        elif want.get("pg_secret_external_ok"):
            # Kustomize: the operator creates the Secret; the server is still bundled
            wl = find(objs, "StatefulSet", full + "-postgres", ns)
        R.check(wl and any(t["metadata"]["name"] == "data"
                           for t in wl["spec"].get("volumeClaimTemplates") or []),
                "%s: bundled PostgreSQL with a PersistentVolumeClaim" % label)
    elif ref:
        R.check(ref == want["postgres_secret"] and not find(objs, "Secret", ref[0], ns) and
                not find(objs, "StatefulSet", full + "-postgres"),
                "%s: external PostgreSQL DSN from Secret %s, none bundled" % (label, ref))
    # NetworkPolicies: only kelemetry pods reach a bundled engine
    for eng in ("redis", "postgres"):
        ss = find(objs, "StatefulSet", "%s-%s" % (full, eng), ns)
        pols = [p for p in objs if p.get("kind") == "NetworkPolicy" and ss and
                selects(p["spec"]["podSelector"].get("matchLabels"), pod_labels(ss))]
        if not ss:
            R.check(not pols, "%s: no NetworkPolicy for an external %s" % (label, eng))
            continue
        port = ss["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
        ok = len(pols) == 1
        for pol in pols:
            frm = [x["podSelector"]["matchLabels"] for rule in pol["spec"]["ingress"]
                   for x in rule["from"]]
            ok = ok and all(any(selects(s, pod_labels(roles[r][0])) for s in frm)
                            for r in ROLES) and [
                p["port"] for rule in pol["spec"]["ingress"] for p in rule["ports"]] == [port]
            ok = ok and not any(selects(s, pod_labels(ss)) for s in frm)
        R.check(ok, "%s: NetworkPolicy lets the three roles (only) into %s:%s"
                % (label, eng, port))
    return roles


# ---------------------------------------------------- running the three roles

class OtlpSink:
    """An HTTP endpoint counting POSTs (the OTLP export reaches it)."""

    def __init__(self):
        import http.server
        import threading
        sink = self
        self.posts = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                sink.posts.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def fresh_events(n):
    """The demo's first n audit events, moved to now (retention and the
    query window are relative to the clock)."""
    evs = demo_events()[:n]
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    import datetime
    t0 = datetime.datetime.strptime(evs[0]["requestReceivedTimestamp"], fmt)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    shift = now - datetime.timedelta(seconds=5) - t0
    for e in evs:
        for k in ("requestReceivedTimestamp", "stageTimestamp"):
            if e.get(k):
                e[k] = (datetime.datetime.strptime(e[k], fmt) + shift).strftime(fmt)
    return evs


def wait_http(url, deadline, headers=None, ok=lambda st, body: st == 200):
    last = None
    while time.time() < deadline:
        try:
            st, body = http(url, headers=headers, timeout=3)
            last = (st, body[:200])
            if ok(st, body):
                return True, last
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    return False, last


def engines_available(need_etcd):
    import engines
    bins = ["redis-server", os.path.join(engines.PGBIN, "postgres")] + (
        ["etcd"] if need_etcd else [])
    return [b for b in bins if not (shutil.which(b) or os.path.exists(b))]


def run_distributed(label, objs, roles, cluster):
    """Starts each role's rendered container args for real against Redis,
    PostgreSQL (and etcd) on loopback and the fake apiserver: each serves
    /metrics, the informers take their leases, the consumer accepts an audit
    batch (into the Redis stream), the frontend answers /api/services and
    finds the trace the consumer stored, OTLP export reaches its endpoint."""
    used = set()
    for _, c, _ in roles.values():
        used |= {a[2:].split("=", 1)[0] for a in c["args"] if a.startswith("--")}
    missing = sorted(used - FLAGS)
    if missing:
        print("SKIP: %s: roles not started: `kelemetry --help` lacks %s (the distributed "
              "engines are not in this binary yet)" % (label, missing), flush=True)
        return
    effs = {r: roles[r][2] for r in roles}
    need_etcd = any(v.endswith("-cache") and effs[r].get(v) == "etcd"
                    for r in effs for v in ("span-cache", "diff-cache", "jaeger-trace-cache"))
    absent = engines_available(need_etcd)
    if absent:
        print("SKIP: %s: roles not started: no %s" % (label, absent), flush=True)
        return
    import engines
    started, procs = [], []
    sink = None
    srv = FakeApiserver(token="kt-deploy-sa-token", bookmark_interval=0.5).start()
    root = os.path.join(TMP, re.sub(r"[^a-z0-9]+", "-", label.lower()))
    os.makedirs(root)
    try:
        redis = engines.Redis().start()
        started.append(redis)
        pg = engines.Postgres().start()
        started.append(pg)
        etcd = engines.Etcd().start() if need_etcd else None
        if etcd:
            started.append(etcd)
        if effs["consumer"].get("tracer-otel-endpoint"):
            sink = OtlpSink()
        kc = srv.write_kubeconfig(os.path.join(root, "kubeconfig"), context="fake")
        # the DSN as the pods get it, pointed at the loopback server
        ref = env_secret(roles["consumer"][1], "KELEMETRY_POSTGRES_DSN")
        sec = find(objs, "Secret", ref[0]) if ref else None
        if sec and ref[1] in (sec.get("stringData") or {}):
            d = parse_dsn(sec["stringData"][ref[1]])
            pg.psql("CREATE ROLE \"%s\" LOGIN PASSWORD '%s'" % (
                d["user"], d["password"].replace("'", "''")))
            pg.psql("CREATE DATABASE \"%s\" OWNER \"%s\"" % (d["dbname"], d["user"]))
            d.update(host="127.0.0.1", port=str(pg.port))
            dsn = build_dsn(d)
        else:
            dsn = pg.dsn          # the operator's Secret: any DSN reaching the server
        ports, logs = {}, {}
        for role in ROLES:
            dep, c, _ = roles[role]
            spec = dep["spec"]["template"]["spec"]
            rroot = os.path.join(root, role)
            os.makedirs(rroot)
            mounts = materialise(objs, spec, c, rroot, kc)
            ports[role] = {"webhook": free_port(), "http": free_port(), "metrics": free_port()}
            env = dict(os.environ, TMPDIR=mounts.get("/tmp", rroot), KELEMETRY_POSTGRES_DSN=dsn)
            args = []
            for a in remap(c["args"], mounts, ports[role]):
                a = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env[m.group(1)], a)
                k = a[2:].split("=", 1)[0]
                if k.endswith("-redis-address"):
                    a = "--%s=%s" % (k, redis.addr)
                elif k.endswith("-etcd-endpoints"):
                    a = "--%s=%s" % (k, etcd.url)
                elif k == "tracer-otel-endpoint":
                    a = "--%s=http://127.0.0.1:%d/v1/traces" % (k, sink.port)
                args.append(a)
            if role != "frontend":
                # the pod's service account, here the fake apiserver's kubeconfig
                args.append("--kube-config=" + kc)
            p = subprocess.run([BIN] + args + ["--help"], capture_output=True, text=True,
                               timeout=30)
            R.check(p.returncode == 0, "%s: %s args parse: %s" % (label, role, p.stderr.strip()))
            logs[role] = os.path.join(rroot, "log")
            with open(logs[role], "wb") as log:
                procs.append((role, subprocess.Popen([BIN] + args, stdout=log, stderr=log,
                                                     env=env)))

        def logtail(role):
            with open(logs[role], "rb") as fh:
                return fh.read().decode(errors="replace")[-2500:]
        deadline = time.time() + 30
        for role in ROLES:
            up, last = wait_http("http://127.0.0.1:%d/metrics" % ports[role]["metrics"],
                                 deadline)
            R.check(up, "%s: %s serves /metrics: %s %s" % (label, role, last, logtail(role)))
        # the informers lead: their leases exist
        fi = effs["informers"]
        for res, ns, name in (
                ("leases", fi.get("event-informer-leader-election-namespace"),
                 fi.get("event-informer-leader-election-name") + "-0"),
                ("leases", fi.get("diff-controller-leader-election-namespace"),
                 fi.get("diff-controller-leader-election-name") + "-0")):
            dl, got = time.time() + 15, None
            while time.time() < dl and got is None:
                got = srv.get(res, ns, name)
                if got is None:
                    time.sleep(0.1)
            R.check(got is not None, "%s: informers hold lease %s/%s: %s"
                    % (label, ns, name, logtail("informers")))
        # an audit batch into the consumer's webhook
        hdr = {"Content-Type": "application/json"}
        if effs["consumer"].get("audit-webhook-token-file"):
            hdr["Authorization"] = "Bearer " + TOKEN
        evs = fresh_events(6)
        st, out = http("http://127.0.0.1:%d/audit/%s" % (ports["consumer"]["webhook"], cluster),
                       json.dumps(event_list(evs)).encode(), hdr)
        R.check(st == 200, "%s: consumer accepts an audit batch: %d %s %s"
                % (label, st, out[:200], logtail("consumer")))
        # the frontend reads what the consumer stored
        qh = {}
        if effs["frontend"].get("query-basic-auth-file"):
            qh["Authorization"] = "Basic " + base64.b64encode(BASIC.encode()).decode()
        q = "http://127.0.0.1:%d" % ports["frontend"]["http"]
        st, _ = http(q + "/api/services", headers=qh)
        R.check(st == 200, "%s: frontend answers /api/services: %d" % (label, st))
        now = time.time()
        search = q + "/api/traces?" + urllib.parse.urlencode({
            "service": "tracing", "operation": cluster, "limit": "20", "lookback": "1h",
            "start": str(int((now - 3600) * 1e6)), "end": str(int((now + 600) * 1e6)),
            "tags": json.dumps({"resource": "deployments", "name": evs[0]["objectRef"]["name"]})})
        found, last = wait_http(search, time.time() + 30, qh,
                                lambda st, body: st == 200 and json.loads(body).get("data"))
        R.check(found, "%s: the frontend finds the trace the consumer stored: %s\n%s"
                % (label, last, logtail("consumer")))
        if sink:
            dl = time.time() + 15
            while time.time() < dl and not sink.posts:
                time.sleep(0.1)
            R.check(sink.posts and all(p == "/v1/traces" for p in sink.posts),
                    "%s: OTLP export POSTs to the endpoint: %s" % (label, sink.posts[:5]))
    finally:
        for role, p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for role, p in procs:
            try:
                rc = p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = "killed"
            with open(os.path.join(root, role, "log"), "rb") as fh:
                text = fh.read().decode(errors="replace")[-3000:]
            R.check(rc == 0, "%s: %s stops cleanly on SIGTERM (%s): %s" % (label, role, rc, text))
            R.check("Sanitizer" not in text and "runtime error:" not in text,
                    "%s: %s sanitizer report: %s" % (label, role, text))
        if sink:
            sink.close()
        for e in started:
            e.cleanup()
        srv.stop()
        srv.cleanup()


# ------------------------------------------------------------ bundled etcd
def _flagmap(args):
    out = {}
    for a in args:
        if a.startswith("--"):
            k, _, v = a[2:].partition("=")
            out[k] = v
    return out


def _url(u):
    """(host, port) of http://host:port."""
    m = re.match(r"^http://([^:/]+):(\d+)/?$", u or "")
    return (m.group(1), int(m.group(2))) if m else (None, None)


def check_etcd_bundled(label, objs, ns, full, v, roles):
    """The bundled etcd renders consistently: member names are the pod names,
    every peer URL is <pod>.<headless Service>.<ns>.svc at the peer port and
    every replica is in --initial-cluster, the data dir is on the PVC, the
    caches reach the clients' Service at the client port, the NetworkPolicy
    admits the kelemetry pods and the peers. Returns (StatefulSet, container,
    flags) or None."""
    e = v["etcd"]
    n = int(e["replicas"])
    sts = find(objs, "StatefulSet", "%s-etcd" % full, ns)
    R.check(sts, "%s: StatefulSet %s-etcd rendered" % (label, full))
    if not sts:
        return None
    spec = sts["spec"]
    R.check(spec.get("replicas") == n and spec.get("podManagementPolicy") == "Parallel",
            "%s: etcd %s members started in parallel (%s)" % (label, spec.get("replicas"),
                                                               spec.get("podManagementPolicy")))
    pspec = spec["template"]["spec"]
    c = [x for x in pspec["containers"] if x["name"] == "etcd"]
    R.check(c and c[0]["image"] == "quay.io/coreos/etcd:v3.5.15" and
            c[0].get("command") == ["/usr/local/bin/etcd"], "%s: etcd image" % label)
    if not c:
        return None
    c = c[0]
    f = _flagmap(c["args"])
    cports = {p["name"]: p["containerPort"] for p in c["ports"]}
    R.check(cports == {"client": e["clientPort"], "peer": e["peerPort"]},
            "%s: etcd container ports %s" % (label, cports))
    env = {x["name"]: x.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
           for x in c.get("env") or []}
    R.check(f.get("name") == "$(POD_NAME)" and env.get("POD_NAME") == "metadata.name",
            "%s: member name = pod name (%s, env %s)" % (label, f.get("name"), env))
    peers = find(objs, "Service", spec.get("serviceName"), ns)
    R.check(peers and peers["spec"].get("clusterIP") == "None" and
            peers["spec"].get("publishNotReadyAddresses") is True,
            "%s: governing Service %s is headless and publishes not-ready members"
            % (label, spec.get("serviceName")))
    if not peers:
        return None
    psvc = peers["metadata"]["name"]
    sports = {p["name"]: (p["port"], p.get("targetPort")) for p in peers["spec"]["ports"]}
    R.check(sports.get("peer") == (e["peerPort"], "peer") and
            sports.get("client") == (e["clientPort"], "client"),
            "%s: headless Service ports %s" % (label, sports))

    def expect(pod, port):
        return "http://%s.%s.%s.svc:%d" % (pod, psvc, ns, port)
    pods = ["%s-etcd-%d" % (full, i) for i in range(n)]
    ic = dict(x.split("=", 1) for x in f.get("initial-cluster", "").split(",") if "=" in x)
    R.check(ic == {p: expect(p, cports["peer"]) for p in pods},
            "%s: --initial-cluster lists every replica at its headless peer URL: %s"
            % (label, f.get("initial-cluster")))
    for p in pods:
        R.check(f.get("initial-advertise-peer-urls", "").replace("$(POD_NAME)", p)
                == ic.get(p) and f.get("advertise-client-urls", "").replace("$(POD_NAME)", p)
                == expect(p, cports["client"]),
                "%s: %s advertises the URLs its peers know it by" % (label, p))
    R.check(_url(f.get("listen-peer-urls"))[1] == cports["peer"] and
            _url(f.get("listen-client-urls"))[1] == cports["client"],
            "%s: etcd listens on the container ports" % label)
    R.check(f.get("initial-cluster-state") == "new" and f.get("initial-cluster-token"),
            "%s: a new cluster with a token" % label)
    # the data dir lives on the claim, so a restarted member keeps its WAL
    claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates") or []}
    dd = f.get("data-dir", "")
    on = [m for m in c.get("volumeMounts") or []
          if dd == m["mountPath"] or dd.startswith(m["mountPath"].rstrip("/") + "/")]
    R.check(on and on[0]["name"] in claims and
            not any(vol["name"] == on[0]["name"] for vol in pspec.get("volumes") or []),
            "%s: --data-dir %s is on a PVC (claims %s)" % (label, dd, sorted(claims)))
    # every flag is one etcd knows (the local etcd; v3.5 kept these names)
    hp = subprocess.run(["etcd", "--help"], capture_output=True, text=True, timeout=20) \
        if shutil.which("etcd") else None
    if hp:
        known = set(re.findall(r"--([a-z0-9-]+)", hp.stdout + hp.stderr))
        R.check(set(f) <= known, "%s: etcd knows every flag: unknown %s"
                % (label, sorted(set(f) - known)))
    # the caches reach the clients' Service, which selects the members' client port
    for role, (_, _, eff) in roles.items():
        for flag in ("span-cache", "diff-cache", "jaeger-trace-cache"):
            if eff.get(flag) != "etcd":
                continue
            eps = eff.get(flag + "-etcd-endpoints", "").split(",")
            host, port = _url(eps[0])
            R.check(len(eps) == 1 and host, "%s: %s --%s-etcd-endpoints %s" % (
                label, role, flag, eps))
            if not host:
                continue
            wl, tc = service_target("%s %s" % (label, role), objs, "%s:%d" % (host, port))
            svc = find(objs, "Service", host.split(".")[0], ns)
            tp = [p.get("targetPort") for p in svc["spec"]["ports"] if p["port"] == port] \
                if svc else []
            R.check(wl is sts and tc is c and tp in (["client"], [cports["client"]]) and
                    not svc["spec"].get("publishNotReadyAddresses"),
                    "%s: %s --%s-etcd-endpoints=%s reaches Ready etcd members' client port"
                    % (label, role, flag, eps[0]))
    # only the kelemetry pods and the members themselves may connect
    np = find(objs, "NetworkPolicy", "%s-etcd" % full, ns)
    R.check(np and selects(np["spec"]["podSelector"].get("matchLabels"), pod_labels(sts)),
            "%s: a NetworkPolicy guards the etcd pods" % label)
    if np:
        def allowed(lbls):
            return {p["port"] for r in np["spec"]["ingress"]
                    for fr in r["from"] if selects(fr["podSelector"]["matchLabels"], lbls)
                    for p in r["ports"]}
        R.check(all(e["clientPort"] in allowed(pod_labels(dep)) and
                    e["peerPort"] not in allowed(pod_labels(dep))
                    for dep, _, _ in roles.values()),
                "%s: kelemetry pods may reach the client port only" % label)
        R.check(allowed(pod_labels(sts)) >= {e["clientPort"], e["peerPort"]},
                "%s: members reach each other's peer port" % label)
    return sts, c, f


def _etcd_get(url, path, body, timeout=3):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode() if body is not None
                                 else None, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read() or b"{}")


def _etcd_healthy(url):
    try:
        return _etcd_get(url, "/health", None).get("health") == "true"
    except (OSError, ValueError):
        return False


def run_etcd_members(label, full, ns, sts, c, f):
    """Starts the rendered etcd members as real processes, with their DNS
    names and ports rewritten to loopback and the PVC to a directory: all of
    them form one cluster and serve /health, a value written through one is
    read through another, and a member killed and started again with the
    same flags (the restart that crash-looped upstream, #134) rejoins."""
    if not shutil.which("etcd"):
        print("SKIP: %s: no etcd binary, members not started" % label, flush=True)
        return
    n = sts["spec"]["replicas"]
    psvc = sts["spec"]["serviceName"]
    cports = {p["name"]: p["containerPort"] for p in c["ports"]}
    mount = [m for m in c["volumeMounts"] if f["data-dir"].startswith(m["mountPath"])][0]
    root = os.path.join(TMP, "etcd")
    pods = ["%s-etcd-%d" % (full, i) for i in range(n)]
    loop = {p: {"client": free_port(), "peer": free_port()} for p in pods}

    def argv(pod):
        out = []
        for a in c["args"]:
            a = a.replace("$(POD_NAME)", pod)
            for p in pods:
                for kind in ("client", "peer"):
                    a = a.replace("http://%s.%s.%s.svc:%d" % (p, psvc, ns, cports[kind]),
                                  "http://127.0.0.1:%d" % loop[p][kind])
            for kind in ("client", "peer"):
                a = a.replace("http://0.0.0.0:%d" % cports[kind],
                              "http://127.0.0.1:%d" % loop[pod][kind])
            a = a.replace(mount["mountPath"], os.path.join(root, pod, "volume"))
            out.append(a)
        leftover = [a for a in out if ".svc" in a or "0.0.0.0" in a]
        R.check(not leftover, "%s: every address rewritten to loopback: %s" % (label, leftover))
        return ["etcd"] + out

    procs = {}

    def start(pod):
        os.makedirs(os.path.join(root, pod, "volume"), exist_ok=True)
        log = open(os.path.join(root, pod + ".log"), "ab")
        procs[pod] = subprocess.Popen(argv(pod), stdout=log, stderr=log,
                                      stdin=subprocess.DEVNULL)
        log.close()

    def url(pod):
        return "http://127.0.0.1:%d" % loop[pod]["client"]

    def wait_healthy(which, secs=30):
        end = time.time() + secs
        while time.time() < end:
            if all(_etcd_healthy(url(p)) for p in which):
                return True
            if any(procs[p].poll() is not None for p in which):
                return False
            time.sleep(0.3)
        return False

    def logtail(pod):
        try:
            with open(os.path.join(root, pod + ".log"), errors="replace") as fh:
                return fh.read()[-1500:]
        except OSError:
            return ""

    try:
        t0 = time.time()
        for p in pods:             # podManagementPolicy: Parallel
            start(p)
        ok = wait_healthy(pods)
        print("%s: %d etcd members healthy after %.1f s" % (label, n, time.time() - t0),
              flush=True)
        R.check(ok, "%s: %d rendered members form a cluster and serve /health: %s"
                % (label, n, "" if ok else logtail(pods[0])))
        if not ok:
            return
        members = _etcd_get(url(pods[0]), "/v3/cluster/member/list", {}).get("members", [])
        R.check(sorted(m.get("name") for m in members) == pods,
                "%s: members are named after the pods: %s" % (label, [m.get("name")
                                                                        for m in members]))
        b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
        _etcd_get(url(pods[0]), "/v3/kv/put", {"key": b64("/span/kt"), "value": b64("v1")})
        # the member restarts on its volume with the very same flags
        last = pods[-1]
        procs[last].send_signal(signal.SIGKILL)
        procs[last].wait(10)
        start(last)
        t0 = time.time()
        ok = wait_healthy([last])
        print("%s: %s healthy again %.1f s after its restart" % (label, last, time.time() - t0),
              flush=True)
        R.check(ok, "%s: %s restarted with the rendered flags and its data dir rejoins: %s"
                % (label, last, "" if ok else logtail(last)))
        if ok:
            end = time.time() + 10
            got = None
            while time.time() < end and got != "v1":
                kvs = _etcd_get(url(last), "/v3/kv/range", {"key": b64("/span/kt")}).get("kvs")
                got = base64.b64decode(kvs[0]["value"]).decode() if kvs else None
                time.sleep(0.2)
            R.check(got == "v1", "%s: the restarted member serves the cluster's data: %r"
                    % (label, got))
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def check_helm_distributed():
    with open(os.path.join(CHART, "values.yaml")) as f:
        defaults = yaml_load(f.read())
    variants = [
        ("helm distributed bundled", {
            "topology": "distributed", "postgres": {"password": PG_PASSWORD},
            "auth": {"webhookTokens": [TOKEN], "queryBasicAuth": [BASIC]},
            "ingress": {"enabled": True}, "scan": {"enabled": True},
        }, "kelemetry", "kelemetry"),
        ("helm distributed external", {
            "topology": "distributed",
            "postgres": {"bundled": False,
                         "external": {"dsnSecret": {"name": "kelemetry-pg", "key": "conninfo"}}},
            "redis": {"bundled": False, "external": {"address": "redis.example.com:6379"}},
            "caches": {"span": "etcd", "diff": "redis", "trace": "etcd"},
            "etcd": {"endpoints": ["http://etcd-0.etcd:2379", "http://etcd-1.etcd:2379"]},
            "otlp": {"endpoint": "http://otel-collector.monitoring:4318/v1/traces",
                     "resourceAttributes": {"deployment.environment": "prod"}},
            "clusters": [{"name": "prod", "kubeconfig": {"secretName": ""}},
                         {"name": "staging", "kubeconfig": {"secretName": "kubeconfig-staging"}}],
            "informers": {"diff": {"leaderElection": {"namespace": "kube-system"}}},
            "consumer": {"replicas": 5}, "frontend": {"replicas": 1},
        }, "tracing", "monitoring"),
        ("helm distributed etcd", {
            "topology": "distributed", "postgres": {"password": PG_PASSWORD},
            "caches": {"span": "etcd", "diff": "etcd", "trace": "etcd"},
            "etcd": {"bundled": True},
        }, "obs", "tracing"),
    ]
    for label, over, release, ns in variants:
        try:
            objs, notes, text = helm_template(over, release, ns)
        except (TemplateError, TemplateFail, YamlError) as e:
            R.check(False, "%s: renders: %s" % (label, e))
            continue
        v = _merge(defaults, over)
        full = release if "kelemetry" in release else release + "-kelemetry"
        R.check(notes and "runs distributed" in notes and "deployment/%s-consumer" % full
                in notes, "%s: NOTES.txt tells the topology: %s" % (label, notes[:300]))
        check_objects(label, objs, ns)
        srv = fake_apiserver()
        try:
            kc = srv.write_kubeconfig(os.path.join(TMP, "hd.kubeconfig"), context="hd") \
                if KUBECTL else None
            accepted(label, objs, ns, srv=srv, kubectl_kc=kc, rendered=text)
        finally:
            srv.stop()
            srv.cleanup()
        want = {
            "replicas": {r: v[r]["replicas"] for r in ROLES},
            "caches": v["caches"],
            "etcd": ["http://%s-etcd.%s.svc:%d" % (full, ns, v["etcd"]["clientPort"])]
            if v["etcd"]["bundled"] else v["etcd"]["endpoints"],
            "redis": None if v["redis"]["bundled"] else v["redis"]["external"]["address"],
            "postgres_secret": None if v["postgres"]["bundled"] else (
                v["postgres"]["external"]["dsnSecret"]["name"],
                v["postgres"]["external"]["dsnSecret"]["key"]),
            "pg_password": v["postgres"]["password"],
            "otlp": v["otlp"]["endpoint"],
            "sa": {r: "%s-%s" % (full, r) for r in ROLES}}
        roles = check_distributed(label, objs, ns, full, want)
        sc = container(objs, "scan")[2]
        if sc:
            check_scan(label, objs, sc, urls=3)
        if label.endswith("external") and len(roles) == 3:
            f = roles["consumer"][2]
            R.check(f.get("tracer-otel-resource-attributes") == "deployment.environment=prod"
                    and f.get("kube-config-paths") ==
                    "staging=/etc/kelemetry/clusters/staging/kubeconfig" and
                    "kube-config-paths" not in roles["frontend"][2],
                    "%s: OTLP attributes; kubeconfigs for the roles that call clusters" % label)
        if v["etcd"]["bundled"]:
            r = check_etcd_bundled(label, objs, ns, full, v, roles)
            if r:
                run_etcd_members(label, full, ns, *r)
        elif len(roles) == 3:
            run_distributed(label, objs, roles, v["clusters"][0]["name"])
    # combinations that cannot work are refused with what to set
    base = {"topology": "distributed", "postgres": {"password": "x"}}
    for over, want in (
            ({"topology": "distributed"}, "postgres.password"),
            (_merge(base, {"postgres": {"bundled": False}}), "postgres.external.dsnSecret"),
            (_merge(base, {"redis": {"bundled": False}}), "redis.external.address"),
            (_merge(base, {"caches": {"span": "local"}}), "caches.span must be redis or etcd"),
            (_merge(base, {"caches": {"trace": "etcd"}}), "needs etcd.endpoints"),
            (_merge(base, {"etcd": {"bundled": True}}), "no cache uses etcd"),
            (_merge(base, {"caches": {"span": "etcd"}, "etcd": {
                "bundled": True, "endpoints": ["http://e:2379"]}}), "choose one"),
            (_merge(base, {"caches": {"span": "etcd"}, "etcd": {
                "bundled": True, "persistence": {"enabled": False}}}), "needs etcd.replicas=1"),
            (_merge(base, {"caches": {"span": "etcd"}, "etcd": {
                "bundled": True, "replicas": 0}}), "at least 1"),
            (_merge(base, {"metrics": {"enabled": False}}), "needs metrics.enabled"),
            (_merge(base, {"webhook": {"enabled": False}}), "needs webhook.enabled")):
        try:
            helm_template(over)
            R.check(False, "helm distributed %s must fail" % json.dumps(over))
        except TemplateFail as e:
            R.check(want in str(e), "helm distributed refused: want %r, got %s" % (want, e))


def check_dockerfile():
    with open(os.path.join(DEPLOY, "Dockerfile")) as f:
        text = f.read()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    R.check(len(stages) == 2 and all(s.startswith("debian:bookworm") for s in stages),
            "Dockerfile: two stages on Debian bookworm")
    pkgs = []
    for s in stages:
        m = re.search(r"apt-get install[^\n]*?--no-install-recommends\s*\\\n(.*?)(?:\\\n\s*&&|\n\n)",
                      s, re.S)
        pkgs.append(m.group(1).replace("\\", " ").split() if m else [])
    build, runtime = pkgs
    R.check(build and runtime, "Dockerfile: packages found: %s" % pkgs)
    with open(os.path.join(SRC, "scripts", "install-deps.sh")) as f:
        deps = re.search(r'PKGS="([^"]*)"', f.read()).group(1).split()
    test_only = {"libcmocka-dev", "clang", "chromium", "libclang-rt-14-dev", "python3", "jq",
                 "curl", "openssl", "valgrind",
                 # the engines the tests start (tests/lib/engines.py); a
                 # cluster runs them as their own images
                 "redis-server", "redis-tools", "etcd-server", "etcd-client", "postgresql-15"}
    R.check(set(deps) - test_only <= set(build),
            "Dockerfile: builds with install-deps.sh's packages: missing %s"
            % sorted(set(deps) - test_only - set(build)))
    R.check("USER 10001" in text and 'ENTRYPOINT ["kelemetry"]' in text and
            re.search(r"^EXPOSE 8080 16686 9090$", text, re.M) and "VOLUME" in text,
            "Dockerfile: non-root, entrypoint, ports, data volume")
    # every package exists in Debian (where apt knows any package)
    if shutil.which("apt-cache") and subprocess.run(
            ["apt-cache", "show", "--no-all-versions", "libc6"], capture_output=True,
            timeout=60).returncode == 0:
        r = subprocess.run(["apt-cache", "show", "--no-all-versions"] + build + runtime,
                           capture_output=True, text=True, timeout=120)
        known = set(re.findall(r"^Package: (\S+)", r.stdout, re.M))
        for p in build + runtime:
            R.check(p in known, "Dockerfile: Debian package %s exists" % p)
    else:
        print("SKIP: apt-cache has no package lists: Debian package names not checked")
    # the runtime stage holds every library the binary links
    if shutil.which("readelf") and shutil.which("dpkg"):
        out = subprocess.run(["readelf", "-d", BIN], capture_output=True, text=True).stdout
        for lib in re.findall(r"NEEDED.*\[(.+)\]", out):
            if lib.startswith(("libc.so", "libm.so", "libpthread", "libdl", "ld-linux",
                               "libasan", "libubsan", "libgcc_s")):
                continue
            owner = None
            for d in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu",
                      "/usr/lib/aarch64-linux-gnu", "/lib/aarch64-linux-gnu"):
                r = subprocess.run(["dpkg", "-S", os.path.join(d, lib)], capture_output=True,
                                   text=True)
                if r.returncode == 0:
                    owner = r.stdout.split(":")[0]
                    break
            R.check(owner in runtime, "Dockerfile: runtime stage installs %s (for %s)"
                    % (owner, lib))


def check_samples():
    d = os.path.join(DEPLOY, "samples")
    with open(os.path.join(d, "audit-policy.yaml")) as f:
        pol = yaml_load(f.read())
    R.check(pol["apiVersion"] == "audit.k8s.io/v1" and pol["kind"] == "Policy",
            "audit policy kind")
    rules = pol["rules"]
    R.check(rules[-1] == {"level": "RequestResponse"},
            "audit policy ends with RequestResponse for everything else")
    noisy = {(r2.get("group", ""), res) for r in rules if r["level"] == "None"
             for r2 in r.get("resources") or [] for res in r2["resources"]}
    for want in (("", "events"), ("coordination.k8s.io", "leases"),
                 ("authentication.k8s.io", "tokenreviews")):
        R.check(want in noisy, "audit policy drops %s/%s" % want)
    R.check(any(r["level"] == "None" and r.get("verbs") == ["get", "list", "watch"]
                for r in rules), "audit policy drops reads")
    R.check("ResponseComplete" not in pol.get("omitStages", []), "ResponseComplete kept")
    for n in ("audit-webhook-kubeconfig.yaml", "audit-webhook-kubeconfig.kind.yaml"):
        with open(os.path.join(d, n)) as f:
            kc = yaml_load(f.read())
        server = kc["clusters"][0]["cluster"]["server"]
        R.check(re.match(r"^https?://[^/]+/audit/[A-Za-z0-9._-]+$", server) and
                kc["current-context"] == kc["contexts"][0]["name"],
                "%s: server %s is /audit/<cluster>" % (n, server))
    with open(os.path.join(d, "kind-cluster.yaml")) as f:
        kind = yaml_load(f.read())
    patch = yaml_load(kind["nodes"][0]["kubeadmConfigPatches"][0])
    extra = patch["apiServer"]["extraArgs"]
    mount = kind["nodes"][0]["extraMounts"][0]["containerPath"]
    R.check(extra["audit-policy-file"].startswith(mount + "/") and
            os.path.exists(os.path.join(d, os.path.basename(extra["audit-policy-file"]))) and
            os.path.exists(os.path.join(d, os.path.basename(
                extra["audit-webhook-config-file"]))) and
            any(v["mountPath"] == mount for v in patch["apiServer"]["extraVolumes"]),
            "kind config mounts the samples for the apiserver: %s" % extra)
    with open(os.path.join(d, "audit-webhook-kubeconfig.kind.yaml")) as f:
        kc = yaml_load(f.read())
    if KUBECTL:
        p = subprocess.run([KUBECTL, "kustomize", os.path.join(KUSTOMIZE, "overlays", "kind")],
                           capture_output=True, text=True, timeout=60)
        objs = yaml_docs(p.stdout)
        svc = find(objs, "Service", "kelemetry-webhook")
        cfg = yaml_load(find(objs, "ConfigMap")["data"]["config.yaml"])
        R.check(kc["clusters"][0]["cluster"]["server"] == "http://%s:%d/audit/%s" % (
            svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["port"],
            cfg["kube-target-cluster"]),
            "kind webhook kubeconfig targets the kind overlay's Service and cluster name")
    with open(os.path.join(d, "kube-apiserver-flags.txt")) as f:
        flags = f.read()
    for want in ("--audit-policy-file=", "--audit-webhook-config-file=",
                 "--audit-webhook-batch-max-wait="):
        R.check(want in flags, "apiserver flags sample has %s" % want)
    with open(os.path.join(d, "kelemetry.service")) as f:
        unit = f.read()
    m = re.search(r"^ExecStart=(.*?)(?<!\\)$", unit, re.M | re.S)
    argv = m.group(1).replace("\\\n", " ").split()
    R.check(argv[0] == "/usr/local/bin/kelemetry", "systemd unit runs kelemetry")
    check_flags("systemd unit", argv[1:])


def self_test():
    """The YAML reader and the template interpreter on known answers."""
    y = yaml_docs('a: 1\nb: "x: y"\nc:\n- d: 0440\n  e: [1, "two", {f: g}]\n- |\n  l1\n  l2\n'
                  "h: 'it''s'\ni: >-\n  folded\n  text\nj: {}\nk: yes # c\n---\n- x\n")
    R.check(y == [{"a": 1, "b": "x: y", "c": [{"d": 288, "e": [1, "two", {"f": "g"}]},
                                              "l1\nl2\n"], "h": "it's", "i": "folded text",
                   "j": {}, "k": True}, ["x"]], "YAML reader: %r" % y)
    t = Templates()
    t.add("x", '{{- define "n" -}}[{{ . }}]{{- end -}}\n'
               '{{- $l := list -}}{{ range $i, $v := .L }}{{ $l = append $l (printf "%s%d" $v $i) }}'
               '{{ end }}{{ join "," $l }} {{ include "n" .V.a | quote }}'
               '{{ if eq .V.s "x" }} yes{{ else if .V.b }} b{{ else }} no{{ end }}'
               '{{- with .V.m }} {{ toYaml . | nindent 2 }}{{ end }}')
    out = t.render("x", {"L": ["p", "q"], "V": {"a": 1.0, "s": "y", "b": True,
                                               "m": {"z": 1.0, "k": "true"}}})
    R.check(out == 'p0,q1 "[1]" b \n  k: "true"\n  z: 1', "template interpreter: %r" % out)
    for bad, why in (('{{ eq .V.a 1 }}', "incompatible"), ("{{ .V.none.x }}", "nil pointer"),
                     ("{{ sha256sum .V }}", "not approximated"), ("{{ .V.big }}", "1e+06")):
        try:
            t2 = Templates()
            t2.add("b", bad)
            t2.render("b", {"V": {"a": 1.0, "big": 2e6}})
            R.check(False, "template interpreter accepts %s" % bad)
        except TemplateError as e:
            R.check(why in str(e), "template interpreter refuses %s: %s" % (bad, e))


def main():
    global FLAGS, PKI
    if not os.path.exists(BIN):
        print("SKIP: no kelemetry binary at %s" % BIN)
        raise SystemExit(77)
    FLAGS = kelemetry_flags()
    R.check(len(FLAGS) > 50 and "data-dir" in FLAGS, "flags read from --help: %d" % len(FLAGS))
    if OPENSSL:
        PKI = make_pki(os.path.join(TMP, "pki"))
    self_test()
    check_dockerfile()
    check_samples()
    check_kustomize()
    check_helm()
    check_helm_distributed()
    print("deploy checks took %.1f s" % (time.time() - T0))
    shutil.rmtree(TMP, ignore_errors=True)
    R.finish()


if __name__ == "__main__":
    main()

"""Differential fuzz of jobd's ``${{ }}`` expressions against GitHub's own evaluator.

Installs ``@actions/expressions`` (GitHub's TypeScript evaluator, which the Actions runner
follows) from the npm registry into a temporary directory, then evaluates the same random
expressions with it (through node) and with jobd, and compares: whether each gives an error,
the result's kind, its ``JSON.stringify`` form, and for a primitive its string coercion (what
``format`` and a rendered template show). Not part of the test suite: it needs node, npm and
the network.

    .venv/bin/python bench/expr_fuzz.py                 # 100,000 expressions, seed 1
    .venv/bin/python bench/expr_fuzz.py -n 20000 --seed 7 --show 20
    .venv/bin/python bench/expr_fuzz.py --package-version 0.3.61

Exit status 0 when every expression agrees, 1 when some differ (the first few are printed).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from jobd.expressions import ExpressionError, parse_condition
from jobd.expressions.values import Kind, kind_of, to_json, to_string

KIND = {
    Kind.NULL: "Null",
    Kind.BOOLEAN: "Boolean",
    Kind.NUMBER: "Number",
    Kind.STRING: "String",
    Kind.ARRAY: "Array",
    Kind.OBJECT: "Object",
}

CONTEXTS: dict[str, Any] = {
    "obj": {"a": 1, "B": "x", "c": [1, 2, 3], "d": {"e": None, "E2": "deep"}, "n": 0.5},
    "arr": [1, "two", True, None, {"name": "n1"}, [3, 4], 2.5],
    "objs": [{"name": "A", "v": 1}, {"name": "b", "v": 2}, {"Name": "c"}, {"other": 3}],
    "s": "Hello ı İ ß é 😀",
    "num": 0.1,
    "big": 9007199254740993.0,
    "empty": "",
    "t": True,
    "nul": None,
}

# The node side: one JSON line in ({"expr": ...}), one JSON line out.
DRIVER = r"""
import * as readline from "node:readline";
import * as fs from "node:fs";
import {Lexer, Parser, Evaluator, data} from "@actions/expressions";
import {kindStr} from "@actions/expressions/data/expressiondata";

const contexts = JSON.parse(fs.readFileSync(process.argv[2], "utf8"), data.reviver);
const names = contexts.pairs().map(p => p.key);
const rl = readline.createInterface({input: process.stdin, crlfDelay: Infinity});
for await (const line of rl) {
  const {expr} = JSON.parse(line);
  let out;
  let stage = "lexing";
  try {
    const tokens = new Lexer(expr).lex().tokens;
    stage = "parsing";
    const tree = new Parser(tokens, names, []).parse();
    stage = "evaluation";
    const r = tree === undefined ? new data.Null() : new Evaluator(tree, contexts).evaluate();
    out = {ok: true, kind: kindStr(r.kind), json: JSON.stringify(r, data.replacer),
           str: r.primitive ? r.coerceString() : null};
  } catch (e) {
    out = {ok: false, stage, msg: String(e && e.message)};
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}
"""

CHARS = [
    *'abcxyzABCXYZ019 _-.,:{}[]"\\/',
    "''",
    "ı",
    "İ",
    "ß",
    "é",
    "É",
    "ǅ",
    "ﬀ",
    "😀",
    "𝒜",
    "\u00a0",
    "\t",
    "\uffff",
    "\ue000",
    "\u2028",
    "K",
    "k",
    "\u212a",
]
NUMBERS = [
    "0",
    "-0",
    "1",
    "-1",
    "42",
    "0.1",
    "0.5",
    "1.5",
    "-2.25",
    "1e3",
    "1E-7",
    "2e21",
    "1e21",
    "123456789012345",
    "1234567890123456",
    "12345678901234567890",
    "9007199254740993",
    "0.0000152587890625",
    "0.1234567890123456789",
    "0x1F",
    "0o17",
    "3.000000000000000444",
    "1.0000000000000005",
    "NaN",
    "Infinity",
    "-Infinity",
    "0.3",
    "1.7976931348623157e308",
    "5e-324",
    "123.456",
    "-0.0000005",
]
JSON_TEXTS = [
    '{"a": 1, "A": 2}',
    '{"A": 1, "a": 2, "b": 3}',
    '{"b": 1, "2": 2, "1": 3, "a": 4}',
    '{"a": 1, "a": 2}',
    '{"K": 1, "\\u212a": 2}',
    "12345678901234567890",
    "[1, 2.50, -0]",
    '"\\ud800"',
    '"\\ud83d\\ude00"',
    '"x\\u0001y"',
    '{"x": {"Y": [true, null]}}',
    "1e400",
    "[]",
    "{}",
    '"ı"',
    '{"İ": 1, "i̇": 2}',
    "0.1",
    "-0",
    '[{"name": "a"}, {"NAME": "b"}]',
    '{"10": "ten", "9": "nine", "01": "lead"}',
    '"\\u2028"',
    "true",
    "null",
]
CONTEXT_PATHS = [
    "obj",
    "obj.a",
    "obj.A",
    "obj.b",
    "obj['B']",
    "obj.c",
    "obj.c[1]",
    "obj.d",
    "obj.d.E",
    "obj.d.e2",
    "obj.missing",
    "arr",
    "arr[0]",
    "arr[4].name",
    "arr.*",
    "arr[1]",
    "arr[5][1]",
    "arr[10]",
    "objs.*.name",
    "objs.*.NAME",
    "objs.*.v",
    "s",
    "num",
    "big",
    "empty",
    "t",
    "nul",
    "obj.*",
    "obj[arr[1]]",
    "objs[1]",
]


def rand_string(rng: random.Random) -> str:
    return "'" + "".join(rng.choice(CHARS) for _ in range(rng.randint(0, 6))) + "'"


def rand_json(rng: random.Random) -> str:
    text = rng.choice(JSON_TEXTS)
    return "'" + text.replace("'", "''") + "'"


def gen(rng: random.Random, depth: int) -> str:
    """A random expression over the contexts above."""
    if depth <= 0 or rng.random() < 0.25:
        leaf = rng.randrange(4)
        if leaf == 0:
            return rng.choice(NUMBERS)
        if leaf == 1:
            return rand_string(rng)
        return rng.choice(["true", "false", "null"] if leaf == 2 else CONTEXT_PATHS)
    d = depth - 1
    pick = rng.random()
    if pick < 0.30:
        op = rng.choice(["==", "!=", "<", "<=", ">", ">=", "&&", "||"])
        return f"{gen(rng, d)} {op} {gen(rng, d)}"
    if pick < 0.35:
        return f"!{gen(rng, d)}"
    if pick < 0.42:
        return f"({gen(rng, d)})"
    fn = rng.choice(
        [
            "contains",
            "startsWith",
            "endsWith",
            "format",
            "join",
            "fromJson",
            "fromJson",
            "toJson",
            "case",
            "index",
        ]
    )
    if fn in ("contains", "startsWith", "endsWith"):
        return f"{fn}({gen(rng, d)}, {gen(rng, d)})"
    if fn == "format":
        fmt = rng.choice(["'{0}'", "'{0} {1}'", "'[{1}{0}]'", "'{{0}}{0}'"])
        return f"format({fmt}, {gen(rng, d)}, {gen(rng, d)})"
    if fn == "join":
        return (
            f"join({gen(rng, d)}, {gen(rng, d)})" if rng.random() < 0.5 else f"join({gen(rng, d)})"
        )
    if fn == "fromJson":
        return (
            f"fromJson({rand_json(rng)})"
            if rng.random() < 0.7
            else f"fromJson(toJson({gen(rng, d)}))"
        )
    if fn == "toJson":
        return f"toJson({gen(rng, d)})"
    if fn == "case":
        return f"case({gen(rng, d)} == {gen(rng, d)}, {gen(rng, d)}, {gen(rng, d)})"
    return f"{gen(rng, d)}[{gen(rng, d)}]"


def as_typescript_lexes(expr: str) -> str | None:
    """``expr`` rewritten so that jobd reads its strings as the TypeScript lexer does, or None
    when that makes no difference. The lexer unescapes only the first ``''`` of a literal
    (``value.replace("''", "'")`` in JavaScript replaces once); GitHub's documentation and the
    runner unescape every one, and so does jobd."""
    out: list[str] = []
    i, changed = 0, False
    while i < len(expr):
        if expr[i] != "'":
            out.append(expr[i])
            i += 1
            continue
        j, body = i + 1, []
        while j < len(expr):
            if expr.startswith("''", j):
                body.append("''")
                j += 2
            elif expr[j] == "'":
                break
            else:
                body.append(expr[j])
                j += 1
        escapes = [k for k, piece in enumerate(body) if piece == "''"]
        for k in escapes[1:]:
            body[k] = "''" * 2
            changed = True
        out.append("'" + "".join(body) + expr[j : j + 1])
        i = j + 1
    return "".join(out) if changed else None


def _same(ours: dict[str, Any], ref: dict[str, Any]) -> bool:
    if not ours["ok"] or not ref["ok"]:
        return bool(ours["ok"] == ref["ok"])
    return all(ours[k] == ref[k] for k in ("kind", "json", "str"))


def jobd_side(expr: str) -> dict[str, Any]:
    try:
        parsed = parse_condition(expr, roots=tuple(CONTEXTS)) if expr.strip() else None
        value = parsed.evaluate(CONTEXTS) if parsed is not None else None
    except ExpressionError as exc:
        return {"ok": False, "msg": str(exc)}
    kind = kind_of(value)
    primitive = kind not in (Kind.ARRAY, Kind.OBJECT)
    return {
        "ok": True,
        "kind": KIND[kind],
        "json": to_json(value, indent=None),
        "str": to_string(value) if primitive else None,
    }


def install(workdir: Path, version: str | None) -> str:
    spec = "@actions/expressions" + (f"@{version}" if version else "")
    subprocess.run(["npm", "init", "-y"], cwd=workdir, check=True, capture_output=True)
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", spec],
        cwd=workdir,
        check=True,
        capture_output=True,
        timeout=600,
    )
    meta = json.loads(
        (workdir / "node_modules" / "@actions" / "expressions" / "package.json").read_text()
    )
    return str(meta["version"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=100_000, help="expressions (100,000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--depth", type=int, default=4, help="nesting depth (4)")
    ap.add_argument("--show", type=int, default=10, help="differences to print (10)")
    ap.add_argument("--package-version", help="@actions/expressions version (latest)")
    args = ap.parse_args()
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            print(f"expr_fuzz: {tool} is not installed", file=sys.stderr)
            return 2
    rng = random.Random(args.seed)
    exprs = [gen(rng, args.depth) for _ in range(args.n)]
    with tempfile.TemporaryDirectory(prefix="jobd-expr-fuzz-") as tmp:
        work = Path(tmp)
        version = install(work, args.package_version)
        (work / "driver.mjs").write_text(DRIVER)
        (work / "contexts.json").write_text(json.dumps(CONTEXTS))
        node_version = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        started = time.monotonic()
        feed = "".join(json.dumps({"expr": e}) + "\n" for e in exprs)
        done = subprocess.run(
            ["node", "driver.mjs", "contexts.json"],
            cwd=work,
            input=feed,
            capture_output=True,
            text=True,
            check=True,
        )
        # split on "\n" only: a result may hold U+2028, which splitlines() also splits on
        theirs = [json.loads(line) for line in done.stdout.split("\n") if line]
    assert len(theirs) == len(exprs), done.stderr[-2000:]
    differ: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = []
    outcomes: Counter[str] = Counter()
    known = 0
    for expr, ref in zip(exprs, theirs, strict=True):
        ours = jobd_side(expr)
        rewritten = None if _same(ours, ref) else as_typescript_lexes(expr)
        if rewritten is not None and _same(jobd_side(rewritten), ref):
            known += 1  # the TypeScript lexer's once-only unescaping, nothing else
            continue
        if ref["ok"] != ours["ok"]:
            what = "error" if not ours["ok"] else f"github {ref['stage']} error"
        elif not ref["ok"]:
            outcomes["both error"] += 1
            continue
        elif ref["kind"] != ours["kind"]:
            what = "kind"
        elif ref["json"] != ours["json"]:
            what = "json"
        elif ref["str"] != ours["str"]:
            what = "string"
        else:
            outcomes[f"agree: {ref['kind']}"] += 1
            continue
        differ.append((what, expr, ref, ours))
    took = time.monotonic() - started
    agree = len(exprs) - len(differ) - known
    print(
        f"@actions/expressions {version} on node {node_version}; seed {args.seed}, "
        f"depth {args.depth}"
    )
    print(
        f"{len(exprs):,} expressions in {took:.1f} s: {agree:,} agree "
        f"({100 * agree / len(exprs):.3f} %), {len(differ):,} differ"
    )
    for name, count in sorted(outcomes.items()):
        print(f"  {name}: {count:,}")
    print(
        f"  known difference, not counted as one: {known:,} (a string literal with two or "
        "more '' escapes, which the TypeScript lexer unescapes only once; GitHub's docs, the "
        "runner and jobd unescape all)"
    )
    for what, count in Counter(d[0] for d in differ).most_common():
        print(f"  differ in {what}: {count:,}")
    for what, expr, ref, ours in differ[: args.show]:
        print(f"\n[{what}] {expr}\n  github: {json.dumps(ref)}\n  jobd:   {json.dumps(ours)}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())

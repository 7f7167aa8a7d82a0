"""The hostile-input corpus: each case, the exit code and HTTP status it must get, and a phrase.

A case is a spec body (YAML, or JSON, which is also YAML to the CLI) or an HTTP request. The
CLI door runs ``verifier check FILE`` on the body; the HTTP door POSTs it (or sends the
request). ``cli``/``http`` is the exit code / status each door must give (None: that door
does not apply), and ``phrase`` must appear in the error message (for an accepted case: in the
CLI's output and the finished job). The hostile review's defects are here, each with its ``defect``
number, beside inputs that already held and must keep holding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

JOB_PLACEHOLDER = "{job}"  # replaced by the id of a finished job in request paths
BASIC_PLACEHOLDER = "{basic}"  # replaced by "Basic base64(user:<the server's token>)"

GOOD = """\
name: hostile
instance: {kind: bijection, entities: 32, relations: 2, seed: 0}
claims:
  - id: exact
    check: construction
    construction: {name: geometric, codebook: rademacher, code_dim: auto, margin: 0.5}
    expect: {accuracy: 1.0, margin: ">= 0.5"}
"""

BOUND = """\
name: hostile-bound
instance: {kind: bijection, entities: 32, relations: 2, seed: 0}
claims:
  - id: b
    check: bound
    theorem: G1
    given: {code_dim: 8}
    expect: {params: ">= 1"}
"""

TRAINING = """\
name: hostile-training
instance: {kind: bijection, entities: 32, relations: 2, seed: 0}
claims:
  - id: t
    check: training
    model: {d_model: 16, d_mlp: 64, heads: 1, init_scale: 1.0}
    optim: {lr: 3e-3, steps: 10, weight_decay: 0.0}
    expect: {accuracy: ">= 0"}
"""

FEASIBILITY = """\
name: hostile-feasibility
instance: {kind: bijection, entities: 32, relations: 2, seed: 0}
claims:
  - id: f
    check: feasibility
    program: codebook_margin
    construction: {name: geometric, codebook: rademacher, code_dim: 8}
    min_margin: 0.001
    expect: {status: feasible}
"""

JSON_GOOD: dict[str, object] = {
    "name": "hostile-json",
    "instance": {"kind": "bijection", "entities": 32, "relations": 2, "seed": 0},
    "claims": [
        {
            "id": "exact",
            "check": "construction",
            "construction": {"name": "geometric", "code_dim": "auto", "margin": 0.5},
            "expect": {"accuracy": 1.0},
        }
    ],
}


@dataclass(frozen=True)
class Case:
    """One hostile input and what each door must answer."""

    id: str
    body: bytes
    phrase: str
    cli: int | None = 2  # `verifier check FILE`: 0 passed, 1 failed, 2 bad spec, 5 nothing
    http: int | None = 422
    media: str = "application/yaml"
    method: str = "POST"
    path: str = "/v1/verifications"
    headers: dict[str, str] = field(default_factory=dict)
    auth: bool = True  # send the server's token
    cli_phrase: str | None = None  # when the doors word it differently
    http_phrase: str | None = None
    cli_args: tuple[str, ...] = ()  # extra CLI arguments ("{file}" is the case's file)
    defect: int | None = None  # the defect (test_defects.py's NN) this case is a regression test of

    @property
    def spec_case(self) -> bool:
        """A POST of a body (as opposed to another request)."""
        return self.method == "POST" and self.path == "/v1/verifications"


def _b(text: str) -> bytes:
    return text.encode("utf-8")


def margin(formula: str) -> bytes:
    """GOOD with its margin expectation replaced by ``formula``."""
    return _b(GOOD.replace('margin: ">= 0.5"', f"margin: {json.dumps(formula)}"))


def replaced(base: str, old: str, new: str) -> bytes:
    """``base`` with one fragment replaced (the fragment must be there)."""
    if old not in base:
        raise ValueError(f"{old!r} is not in the base spec")
    return _b(base.replace(old, new, 1))


def as_json(data: object, indent: int | None = None) -> bytes:
    """A JSON body."""
    return json.dumps(data, indent=indent).encode()


def get(path_id: str, path: str, status: int, phrase: str, **kw: object) -> Case:
    """An HTTP-only GET case."""
    return Case(path_id, b"", phrase, cli=None, http=status, method="GET", path=path, **kw)  # type: ignore[arg-type]


def _nested_json(depth: int) -> bytes:
    data: object = 1
    for _ in range(depth):
        data = {"a": data}
    return as_json({**JSON_GOOD, "description": "x", "deep": data})


ALIAS_BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    + [
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    + ["name: *i", "instance: {kind: bijection, entities: 8, relations: 1}", "claims: *i"]
)

_FORMULAS = [
    # (id, formula, phrase, defect)
    ("exponent-bomb-8", ">= (2/3)**(10**8)", "the exponent 100,000,000 is too large", 1),
    ("exponent-bomb-12", ">= (2/3)**(10**12)", "the exponent 1,000,000,000,000 is too large", 1),
    ("third-to-1e5", ">= (1/3)**(10**5)", "the exponent 100,000 is too large", 2),
    ("literal-1e309", ">= 1" + "0" * 309, "digits; expected at most 1e+300", 2),
    ("tower-10", ">= 10**10**10", "a constant overflows", None),
    ("tower-9", ">= 9**9**9", "a constant overflows", None),
    ("digits-third-2000", ">= (1/3)**2000", "more than 1,000 digits", None),
    ("digits-nested-power", ">= ((2/3)**1000)**1000", "more than 1,000 digits", None),
    ("digits-divisions", ">= (1/10**299)/10**299/10**299/10**299", "more than 1,000 digits", None),
    ("exponent-symbolic-base", ">= (2*N)**(10**8)", "the exponent 100,000,000", 1),
    ("exponent-of-n", ">= N**(10**8)", "the exponent 100,000,000", 1),
    ("exponent-small-base", ">= 0.1**(10**6)", "the exponent 1,000,000", 1),
    ("huge-base-symbolic-power", ">= (10**7)**N", "a huge base raised to a symbolic power", None),
    ("exp-overflow", ">= exp(10**6)", "undefined or overflows", None),
    ("log-of-zero", ">= log(0*N)", "is undefined", None),
    ("divide-by-symbolic-zero", ">= N/(N-N)", "is undefined", None),
    ("log-base-one", ">= log(N, 1)", "is undefined", None),
    ("root-of-negative", ">= sqrt(-N)", "is complex", None),
    ("divide-by-zero", ">= 1/0", "division by zero", None),
    ("float-literal-inf", ">= 1e309", "a constant reaches inf", None),
    ("power-overflow", ">= 2**1024", "a constant overflows", None),
    ("constant-above-max", ">= ceil(1e300)*10", "expected at most 1e+300", None),
    ("too-many-nodes", ">= " + "-" * 400 + "N", "nodes; expected at most 200", None),
    ("too-long", ">= " + "N+" * 300 + "N", "characters; expected at most 500", None),
    ("no-arguments", ">= min()", "min takes 2", None),
    ("too-many-arguments", ">= max(N, N, N, N, N, N, N, N, N)", "max takes 2", None),
    ("import", ">= __import__('os').system('touch PWNED')", "is not allowed", None),
    ("attribute", ">= N.__class__", "Attribute is not allowed", None),
    ("dunder-chain", ">= ().__class__.__bases__[0]", "is not allowed", None),
    ("exec", ">= exec('import os')", "unknown function 'exec'", None),
    ("open", ">= open('/etc/passwd')", "unknown function 'open'", None),
    ("unknown-function", ">= eval(N)", "unknown function 'eval'", None),
    ("lambda", ">= (lambda: 1)()", "calling anything but a whitelisted function", None),
    ("list", ">= [N][0]", "Subscript is not allowed", None),
    ("dict", ">= {1: N}", "Dict is not allowed", None),
    ("conditional", ">= N if N else R", "IfExp is not allowed", None),
    ("f-string", ">= f'{N}'", "JoinedStr is not allowed", None),
    ("statement", ">= N; import os", "is not valid syntax", None),
    ("matmul", ">= N @ R", "BinOp is not allowed", None),
    ("floordiv", ">= N // R", "BinOp is not allowed", None),
    ("compare", ">= N < R", "Compare is not allowed", None),
    ("bool-constant", ">= True", "the constant True is not allowed", None),
    ("complex-constant", ">= 1j", "the constant 1j is not allowed", None),
    ("bool-op", ">= N and R", "BoolOp is not allowed", None),
    ("unknown-symbol", ">= foo * N", "unknown symbol 'foo'", None),
    ("walrus", ">= (x := N)", "NamedExpr is not allowed", None),
    ("starred", ">= min(*N, N)", "Starred is not allowed", None),
    ("keyword", ">= log(N, base=2)", "a keyword argument is not allowed", None),
    ("empty-formula", ">=", "formula '=' is not valid syntax", None),
    ("no-operator", "=> N", "expected '<op> formula'", None),
]

_NON_FINITE = [
    # (id, base, old, new, phrase)
    ("lr-inf", TRAINING, "lr: 3e-3", "lr: .inf", "claims.0.optim.lr: expected a finite number"),
    ("lr-nan", TRAINING, "lr: 3e-3", "lr: .nan", "expected a finite number, got nan"),
    ("weight-decay-inf", TRAINING, "weight_decay: 0.0", "weight_decay: .inf", "weight_decay"),
    ("init-scale-inf", TRAINING, "init_scale: 1.0", "init_scale: .inf", "init_scale"),
    ("lr-overflowing-float", TRAINING, "lr: 3e-3", "lr: 1e400", "expected a finite number"),
    ("box-inf", FEASIBILITY, "min_margin: 0.001", "box: .inf", "claims.0.box: expected a finite"),
    ("min-margin-nan", FEASIBILITY, "min_margin: 0.001", "min_margin: .nan", "min_margin"),
    ("given-inf", BOUND, "code_dim: 8", "code_dim: .inf", "given.code_dim: expected a finite"),
    ("given-nan", BOUND, "code_dim: 8", "code_dim: .nan", "given.code_dim: expected a finite"),
    ("margin-field-inf", GOOD, "margin: 0.5}", "margin: .inf}", "construction.margin"),
    ("tol-inf", GOOD, "accuracy: 1.0", "accuracy: {value: 0, tol: .inf}", "tol: expected a finite"),
    ("tol-nan", GOOD, "accuracy: 1.0", "accuracy: {value: 1, tol: .nan}", "tol: expected a finite"),
    ("tol-negative", GOOD, "accuracy: 1.0", "accuracy: {value: 1, tol: -1}", "number >= 0"),
    ("value-nan", GOOD, "accuracy: 1.0", "accuracy: {value: .nan}", "value: expected a finite"),
    ("value-inf", GOOD, "accuracy: 1.0", "accuracy: {value: .inf, tol: 1}", "value: expected"),
    ("expect-nan", GOOD, "accuracy: 1.0", "accuracy: .nan", "expected a finite number"),
    ("expect-inf", GOOD, "accuracy: 1.0", "accuracy: -.inf", "expected a finite number"),
    (
        "sweep-nan",
        GOOD,
        "    expect:",
        "    sweep: {margin: [.nan]}\n    expect:",
        "sweep.margin.0",
    ),
]


def _cases() -> list[Case]:
    cases: list[Case] = []
    add = cases.append

    # --- formulas (defects 1 and 2) -------------------------------------------------------------
    for name, formula, phrase, defect in _FORMULAS:
        add(Case(f"formula-{name}", margin(formula), phrase, defect=defect))
    add(
        Case(
            "given-formula-bomb",
            replaced(BOUND, "code_dim: 8", 'code_dim: "(2/3)**(10**12)"'),
            "given.code_dim: formula '(2/3)**(10**12)': the exponent",
            defect=1,
        )
    )
    add(
        Case(
            "until-formula-bomb",
            replaced(
                GOOD,
                "    expect:",
                '    minimize: {field: code_dim, until: {margin: ">= (2/3)**(10**8)"}}\n'
                "    expect:",
            ),
            "minimize.until.margin",
            defect=1,
        )
    )
    add(Case("formula-huge-but-legal", margin(">= floor(10**300/7)"), "failed", cli=1, http=202))

    # --- control characters, encodings, integers (defect 2) -------------------------------------
    add(Case("nul-in-comment", _b(GOOD + "# a comment \x00 with a NUL\n"), "U+0000", defect=2))
    add(Case("nul-in-value", replaced(GOOD, "name: hostile", "name: host\x00ile"), "U+0000"))
    add(Case("bell-in-key", replaced(GOOD, "name: hostile", "na\x07me: hostile"), "U+0007"))
    add(Case("escape-char", _b(GOOD + "# \x1b[31m red\n"), "U+001B", defect=2))
    add(Case("not-utf8", GOOD.encode() + b"# \xff\xfe\n", "expected UTF-8"))
    add(Case("utf16", GOOD.encode("utf-16"), "expected UTF-8"))
    add(Case("utf8-bom", b"\xef\xbb\xbf" + GOOD.encode(), "passed", cli=0, http=202))
    big = "9" * 5000
    add(
        Case("int-5000-digits", replaced(GOOD, "seed: 0", f"seed: {big}"), "out of range", defect=2)
    )
    add(Case("int-2-pow-63", replaced(GOOD, "seed: 0", f"seed: {2**63}"), "out of range"))
    add(
        Case("int-negative-big", replaced(GOOD, "seed: 0", f"seed: {-(2**63) - 1}"), "out of range")
    )
    add(Case("int-hex-big", replaced(GOOD, "seed: 0", "seed: 0x" + "f" * 40), "out of range"))
    add(Case("int-sexagesimal", replaced(GOOD, "seed: 0", "seed: " + "1:" * 200 + "1"), "range"))
    add(Case("int-in-expect", replaced(GOOD, "accuracy: 1.0", f"accuracy: {big}"), "out of range"))
    add(
        Case(
            "int-in-sweep",
            replaced(GOOD, "    expect:", f"    sweep: {{N: [{big}]}}\n    expect:"),
            "out of range",
        )
    )

    # --- non-finite numbers (defect 3) and vacuous passes (defect 4) ----------------------------
    for name, base, old, new, phrase in _NON_FINITE:
        add(Case(f"non-finite-{name}", replaced(base, old, new), phrase, defect=3))
    sweep = "    sweep: {N: []}\n    expect:"
    add(Case("sweep-empty-list", replaced(GOOD, "    expect:", sweep), "sweep.N", defect=4))
    add(Case("sweep-empty", replaced(GOOD, "    expect:", "    sweep: {}\n    expect:"), "sweep"))
    add(Case("expect-empty", replaced(GOOD, '{accuracy: 1.0, margin: ">= 0.5"}', "{}"), "expects"))
    no_expect = GOOD.replace('    expect: {accuracy: 1.0, margin: ">= 0.5"}\n', "")
    add(Case("expect-missing", _b(no_expect), "expects nothing", defect=4))
    add(Case("claims-empty", _b(GOOD.split("claims:")[0] + "claims: []\n"), "at least 1 item"))
    big_sweep = "    sweep: {seed: [" + ", ".join(map(str, range(300))) + "]}\n    expect:"
    add(Case("sweep-over-limit", replaced(GOOD, "    expect:", big_sweep), "max_sweep_points"))

    # --- keys named, with lines and code points (defect 7) ---------------------------------------
    add(
        Case(
            "key-misspelt-entites",
            replaced(GOOD, "entities", "entites"),
            "unknown key 'entites' (did you mean 'entities'?)",
            defect=7,
        )
    )
    add(
        Case(
            "key-missing",
            replaced(GOOD, "entities: 32, ", ""),
            "required key 'entities' is missing",
            defect=7,
        )
    )
    add(
        Case(
            "key-cyrillic-a",
            replaced(GOOD, "name: hostile", "n\u0430me: hostile"),
            "U+0430 CYRILLIC SMALL LETTER A",
            defect=7,
        )
    )
    add(
        Case(
            "key-zero-width",
            replaced(GOOD, "name: hostile", "na\u200bme: hostile"),
            "U+200B ZERO WIDTH SPACE",
            defect=7,
        )
    )
    add(
        Case(
            "key-rtl-override",
            replaced(GOOD, "name: hostile", "na\u202eme: hostile"),
            "U+202E RIGHT-TO-LEFT OVERRIDE",
        )
    )
    add(Case("key-fullwidth", replaced(GOOD, "relations", "relat\uff49ons"), "U+FF49"))
    padded = "# padding\n" * 98 + GOOD.replace("entities", "entites")
    add(Case("line-100-is-no-emoji", _b(padded), ":100: instance.entites: unknown key"))
    add(
        Case(
            "key-nested-typo",
            replaced(GOOD, "codebook:", "codebok:"),
            "unknown key 'codebok' (did you mean 'codebook'?)",
        )
    )
    add(
        Case(
            "key-unknown-no-match",
            replaced(GOOD, "name: hostile", "name: hostile\nzzz: 1"),
            "unknown key 'zzz'; expected one of name",
        )
    )
    add(
        Case(
            "key-numeric", replaced(GOOD, "name: hostile", "name: hostile\n1: x"), "unknown key '1'"
        )
    )
    add(
        Case(
            "key-not-plain",
            replaced(GOOD, "name: hostile", "name: hostile\n? [a, b]\n: x"),
            "expected a plain key",
        )
    )
    add(
        Case(
            "check-cyrillic-o",
            replaced(GOOD, "check: construction", "check: c\u043enstruction"),
            "U+043E CYRILLIC SMALL LETTER O",
            defect=7,
        )
    )
    add(
        Case(
            "check-unknown",
            replaced(GOOD, "check: construction", "check: telepathy"),
            "unknown check 'telepathy'; expected one of construction",
        )
    )
    add(
        Case(
            "check-typo",
            replaced(GOOD, "check: construction", "check: constructoin"),
            "did you mean 'construction'?",
        )
    )
    add(
        Case(
            "check-missing",
            replaced(GOOD, "    check: construction\n", ""),
            "required key 'check' is missing",
        )
    )
    add(
        Case(
            "kind-unknown",
            replaced(GOOD, "kind: bijection", "kind: bijektion"),
            "unknown kind 'bijektion' (did you mean 'bijection'?)",
        )
    )
    add(
        Case(
            "measure-unknown",
            replaced(GOOD, "accuracy: 1.0", "acuracy: 1.0"),
            "expect.acuracy: unknown measure",
        )
    )
    add(
        Case(
            "type-wrong",
            replaced(GOOD, "entities: 32", "entities: many"),
            "instance.entities: Input should be a valid integer",
        )
    )
    add(
        Case(
            "value-below-min",
            replaced(GOOD, "entities: 32", "entities: 1"),
            "greater than or equal to 2",
        )
    )
    add(
        Case("relations-zero", replaced(GOOD, "relations: 2", "relations: 0"), "instance.relations")
    )
    add(Case("seed-negative", replaced(GOOD, "seed: 0", "seed: -1"), "instance.seed"))
    add(Case("code-dim-zero", replaced(GOOD, "code_dim: auto", "code_dim: 0"), "code_dim"))
    add(
        Case(
            "margin-above-one",
            replaced(GOOD, "margin: 0.5}", "margin: 1.5}"),
            "less than or equal to 1",
        )
    )
    add(
        Case(
            "hops-too-many",
            replaced(
                GOOD,
                "kind: bijection, entities: 32, relations: 2",
                "kind: multi_hop, entities: 32, relations: 2, hops: 65",
            ),
            "instance.hops",
        )
    )
    add(
        Case(
            "instance-null",
            replaced(GOOD, "{kind: bijection, entities: 32, relations: 2, seed: 0}", "null"),
            "instance",
        )
    )
    add(
        Case(
            "claims-string",
            _b(GOOD.split("claims:")[0] + "claims: hello\n"),
            "claims: Input should be a valid list",
        )
    )
    add(
        Case(
            "expect-string",
            replaced(GOOD, '{accuracy: 1.0, margin: ">= 0.5"}', "hello"),
            "expect: Input should be a valid dictionary",
        )
    )
    add(
        Case(
            "claim-id-duplicate",
            _b(GOOD + GOOD.split("claims:\n")[1]),
            "duplicate claim id 'exact'",
        )
    )
    add(
        Case(
            "transfer-unknown-from",
            _b(
                GOOD
                + "  - id: tr\n    check: transfer\n    from: nowhere\n"
                + "    expect: {accuracy: 1.0}\n"
            ),
            "refers to claim 'nowhere'",
        )
    )
    add(
        Case(
            "name-xss",
            replaced(GOOD, "name: hostile", "name: <script>alert(1)</script>"),
            "name: String should match pattern",
        )
    )
    add(
        Case(
            "id-path-traversal",
            replaced(GOOD, "id: exact", "id: ../../etc/passwd"),
            "claims.0.id: String should match pattern",
        )
    )
    add(
        Case(
            "name-too-long",
            replaced(GOOD, "name: hostile", "name: " + "a" * 1000),
            "of 1,000 characters",
        )
    )
    add(
        Case(
            "description-xss",
            replaced(
                GOOD,
                "name: hostile",
                'name: hostile\ndescription: "<img src=x onerror=alert(1)></pre><script>"',
            ),
            "passed",
            cli=0,
            http=202,
        )
    )
    add(
        Case(
            "name-unicode-lookalike",
            replaced(GOOD, "name: hostile", "name: h\u043estile"),
            "U+043E",
        )
    )

    # --- limits (refused before any work) ------------------------------------------------------
    add(Case("limit-entities", replaced(GOOD, "entities: 32", "entities: 2000000"), "max_entities"))
    add(Case("limit-steps", replaced(TRAINING, "steps: 10", "steps: 10000000"), "max_steps"))
    add(Case("limit-width", replaced(TRAINING, "d_model: 16", "d_model: 1000000"), "max_width"))
    add(Case("limit-code-dim", replaced(GOOD, "code_dim: auto", "code_dim: 5000"), "max_code_dim"))

    # --- YAML structure (held before; must keep holding) ---------------------------------------
    add(Case("alias-bomb", _b(ALIAS_BOMB), "alias"))
    add(Case("alias-recursive", _b("a: &a [*a]\n" + GOOD), "nested too deeply"))
    add(
        Case(
            "flow-nesting-10000",
            _b("name: [" + "[" * 10_000 + "]" * 10_001 + "\n"),
            "nests [ and {",
        )
    )
    add(Case("flow-nesting-65", _b("name: " + "[" * 65 + "]" * 65 + "\n"), "nests [ and { 65 deep"))
    deep = "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 300))  # 45 kB: under 64 kB
    add(Case("block-nesting-300", _b(deep), ":300: YAML nested too deeply", defect=7))
    deep = "a:\n" + "".join("  " * i + "b:\n" for i in range(1, 100))
    add(Case("block-nesting-100", _b(deep), ":100: YAML nested too deeply", defect=7))
    add(Case("sequence-nesting", _b("- " * 200 + "x\n"), "YAML nested too deeply"))
    add(
        Case(
            "duplicate-key", replaced(GOOD, "seed: 0}", "seed: 0, seed: 1}"), "duplicate key 'seed'"
        )
    )
    add(
        Case(
            "duplicate-top-key",
            _b(GOOD + "name: again\n"),
            "duplicate key 'name' (first at line 1)",
        )
    )
    add(Case("empty-document", b"", "empty document"))
    add(Case("comment-only", b"# nothing here\n", "empty document"))
    add(Case("top-level-list", b"- a\n- b\n", "expected a mapping"))
    add(Case("top-level-scalar", b"hello\n", "expected a mapping"))
    add(Case("two-documents", _b(GOOD + "---\nname: b\n"), "but found another document"))
    add(Case("tab-indent", replaced(GOOD, "  - id: exact", "\t- id: exact"), "malformed YAML"))
    add(
        Case(
            "unclosed-quote",
            replaced(GOOD, 'margin: ">= 0.5"', 'margin: ">= 0.5'),
            "malformed YAML",
        )
    )
    add(
        Case(
            "python-tag",
            replaced(
                GOOD, "name: hostile", "name: !!python/object/apply:os.system ['touch PWNED']"
            ),
            "could not determine a constructor",
        )
    )
    add(
        Case(
            "unknown-tag",
            replaced(GOOD, "name: hostile", "name: !foo bar"),
            "could not determine a constructor for the tag '!foo'",
        )
    )
    add(
        Case(
            "binary-tag",
            replaced(GOOD, "name: hostile", "name: !!binary aGVsbG8="),
            "name: Input should be a valid string",  # bytes are not text (strict types)
        )
    )
    add(Case("merge-key", _b("base: &b {x: 1}\n" + GOOD), "unknown key 'base'"))
    add(
        Case(
            "spec-over-max-bytes",
            _b(GOOD + "#" * 300_000 + "\n"),
            "max_spec_bytes",
            http=413,
            http_phrase="at most 65,536 bytes",
        )
    )

    # --- JSON bodies (defects 2 and 6) ---------------------------------------------------------
    add(Case("json-good", as_json(JSON_GOOD), "passed", cli=0, http=202, media="application/json"))
    dup = as_json(JSON_GOOD).replace(b'"name": "hostile-json"', b'"name": "a", "name": "b"')
    add(Case("json-duplicate-key", dup, "duplicate key 'name'", media="application/json", defect=6))
    dup = as_json(JSON_GOOD).replace(b'"seed": 0', b'"seed": 0, "seed": 1')
    add(
        Case(
            "json-duplicate-nested-key",
            dup,
            "duplicate key 'seed'",
            media="application/json",
            defect=6,
        )
    )
    add(
        Case(
            "json-nested-400",
            _nested_json(400),
            "nests [ and {",
            media="application/json",
            defect=2,
        )
    )
    add(Case("json-nested-70", _nested_json(70), "nests [ and {", media="application/json"))
    big_int = as_json(JSON_GOOD).replace(b'"seed": 0', f'"seed": {big}'.encode())
    add(Case("json-int-5000-digits", big_int, "out of range", media="application/json", defect=2))
    nan = as_json(JSON_GOOD).replace(b'"seed": 0', b'"seed": NaN')
    add(Case("json-nan", nan, "NaN", media="application/json", cli_phrase="instance.seed"))
    inf = as_json(JSON_GOOD).replace(b'"margin": 0.5', b'"margin": Infinity')
    add(Case("json-infinity", inf, "Infinity", media="application/json", cli_phrase="margin"))
    huge = as_json(JSON_GOOD).replace(b'"margin": 0.5', b'"margin": 1e400')
    add(Case("json-float-overflow", huge, "expected a finite number", media="application/json"))
    add(
        Case(
            "json-array",
            b"[1, 2]",
            "expected a JSON object",
            media="application/json",
            cli_phrase="expected a mapping",
        )
    )
    add(
        Case(
            "json-malformed",
            b'{"name": ',
            "expected JSON",
            media="application/json",
            cli_phrase="malformed YAML",
        )
    )
    tabs = json.dumps(JSON_GOOD, indent="\t").encode()
    add(
        Case(
            "json-tab-indented",
            tabs,
            "passed",
            cli=2,
            http=202,
            media="application/json",
            cli_phrase="malformed YAML",
        )
    )
    key = as_json(JSON_GOOD).replace(b'"entities"', b'"entites"')
    add(
        Case(
            "json-misspelt-key",
            key,
            "unknown key 'entites' (did you mean 'entities'?)",
            media="application/json",
        )
    )
    nul = as_json({**JSON_GOOD, "description": "a\u0000b"})
    add(Case("json-escaped-nul", nul, "passed", cli=0, http=202, media="application/json"))

    # --- HTTP: content types and sizes ---------------------------------------------------------
    text = _b(GOOD)
    add(
        Case(
            "type-text-plain", text, "expected Content-Type", cli=None, http=415, media="text/plain"
        )
    )
    add(Case("type-missing", text, "expected Content-Type", cli=None, http=415, media=""))
    add(
        Case(
            "type-form",
            b"a=1",
            "expected Content-Type",
            cli=None,
            http=415,
            media="application/x-www-form-urlencoded",
        )
    )
    add(
        Case(
            "type-multipart",
            text,
            "expected Content-Type",
            cli=None,
            http=415,
            media="multipart/form-data; boundary=x",
        )
    )
    add(Case("body-too-large", text + b"#" * 70_000, "at most 65,536 bytes", cli=None, http=413))
    add(
        Case(
            "reuse-not-bool",
            text,
            "reuse",
            cli=None,
            http=422,
            path="/v1/verifications?reuse=maybe",
        )
    )

    # --- HTTP: parameters beyond SQLite's integers (defect 2) and conformance (defect 8) -------
    add(
        get(
            "before-over-int64",
            f"/v1/verifications?before={2**63}",
            422,
            "9223372036854775807",
            defect=2,
        )
    )
    add(get("before-huge", "/v1/verifications?before=" + "9" * 400, 422, "before"))
    add(get("before-negative", "/v1/verifications?before=-1", 422, "before"))
    add(get("before-text", "/v1/verifications?before=abc", 422, "before"))
    add(get("limit-zero", "/v1/verifications?limit=0", 422, "limit"))
    add(get("limit-huge", "/v1/verifications?limit=10000", 422, "limit"))
    add(get("status-bogus", "/v1/verifications?status=bogus", 422, "status"))
    events = f"/v1/verifications/{JOB_PLACEHOLDER}/events"
    for name, value, defect in (
        ("over-int64", str(2**63), 2),
        ("null", "null", 8),
        ("negative", "-1", None),
    ):
        add(
            get(
                f"last-event-id-{name}",
                events,
                422,
                "Last-Event-ID",
                headers={"Last-Event-ID": value},
                defect=defect,
            )
        )
    add(get("id-uppercase", "/v1/verifications/" + "A" * 32, 400, "32 lowercase hex digits"))
    add(get("id-traversal", "/v1/verifications/..%2F..%2Fetc%2Fpasswd", 404, "no such resource"))
    add(get("id-semicolon", "/v1/verifications/..;rm", 400, "'..;rm'"))
    add(get("id-unknown", "/v1/verifications/" + "0" * 32, 404, "no verification with id"))
    add(
        get(
            "report-unknown", f"/v1/verifications/{'0' * 32}/report", 404, "no verification with id"
        )
    )
    add(get("route-unknown", "/v1/nope", 404, "no such resource"))
    add(
        Case(
            "method-patch-list",
            b"",
            "expected one of GET, POST",
            cli=None,
            http=405,
            method="PATCH",
            defect=8,
        )
    )
    add(
        Case(
            "method-put-job",
            b"",
            "expected one of DELETE, GET",
            cli=None,
            http=405,
            method="PUT",
            path=f"/v1/verifications/{'0' * 32}",
            defect=8,
        )
    )
    add(
        Case(
            "method-delete-healthz",
            b"",
            "expected one of GET",
            cli=None,
            http=405,
            method="DELETE",
            path="/healthz",
        )
    )
    add(
        Case(
            "cancel-finished",
            b"",
            "already",
            cli=None,
            http=409,
            method="DELETE",
            path=f"/v1/verifications/{JOB_PLACEHOLDER}",
        )
    )

    # --- HTTP: the token guards reads too (defect 9) -------------------------------------------
    for name, path in (
        ("list", "/v1/verifications"),
        ("job", f"/v1/verifications/{JOB_PLACEHOLDER}"),
        ("report", f"/v1/verifications/{JOB_PLACEHOLDER}/report"),
        ("events", f"/v1/verifications/{JOB_PLACEHOLDER}/events"),
        ("schema", "/v1/schema"),
        ("theorems", "/v1/theorems"),
        ("openapi", "/openapi.json"),
        ("docs", "/docs"),
    ):
        add(
            get(
                f"read-without-token-{name}",
                path,
                401,
                "expected Authorization: Bearer <token>",
                auth=False,
                defect=9,
            )
        )
    add(Case("post-without-token", text, "expected Authorization", cli=None, http=401, auth=False))
    for name, value in (
        ("bearer", "Bearer nope"),
        ("basic", "Basic dXNlcjpub3Bl"),
        ("basic-malformed", "Basic !!!"),
    ):
        add(
            get(
                f"wrong-token-{name}",
                "/v1/verifications",
                401,
                "a wrong or malformed token",
                auth=False,
                headers={"Authorization": value},
            )
        )
    basic = {"Authorization": BASIC_PLACEHOLDER}
    add(
        get(
            "basic-right-token",
            "/v1/verifications",
            200,
            '"items"',
            auth=False,
            headers=basic,
            defect=9,
        )
    )
    add(get("healthz-open", "/healthz", 200, '"status":"ok"', auth=False, defect=9))

    # --- CLI: paths and selections that verify nothing (defect 4) ------------------------------
    add(
        Case(
            "cli-no-such-path",
            b"",
            "no such file or folder",
            http=None,
            cli_args=("/nonexistent/spec.yaml",),
        )
    )
    add(
        Case(
            "cli-select-nothing",
            text,
            "-k selected no claim",
            cli=5,
            http=None,
            cli_args=("{file}", "-k", "no-such-claim"),
            defect=4,
        )
    )
    add(
        Case(
            "cli-empty-folder",
            b"",
            "no *.spec.yaml file was found",
            cli=5,
            http=None,
            cli_args=("{empty}",),
            defect=4,
        )
    )
    cases.extend(_round_three())
    return cases


MULTI_HOP = """\
name: hostile-multihop
instance: {kind: multi_hop, entities: 16, relations: 2, hops: 2, seed: 0}
claims:
  - id: m
    check: construction
    construction: {name: geometric, codebook: rademacher, code_dim: auto, margin: 0.5}
    expect: {accuracy: 1.0}
"""

# Round three: (id, body, phrase, item) -- refused by both doors (exit 2, HTTP 422) unless noted.
_ROUND_THREE_FORMULAS = [
    # item 1: a negative base to a fractional power crashed validation
    ("neg-base-half", ">= (-1)**0.5", "a constant is complex", 1),
    ("neg-base-third", ">= (-8)**(1/3)", "a constant is complex", 1),
    # item 3: logs of negative values, bad bases, and NFKC-folded identifiers
    ("log-of-minus-n", ">= log(-N)", "the log of -N, which is not positive", 3),
    ("log-base-zero", ">= log(N, 0)", "the log base 0 is undefined", 3),
    ("double-struck-n", ">= \u2115", "U+2115 DOUBLE-STRUCK CAPITAL N", 3),
    # new: the same holes, found elsewhere
    ("neg-symbolic-base-to-p", ">= (-N)**p", "a negative base to a power", None),
    ("neg-base-to-one-over-n", ">= (-2)**(1/N)", "a negative base to a power", None),
    ("log-one-minus-n", ">= log(1-N)", "the log of 1 - N, which is not positive", None),
    ("log2-of-minus-r", ">= log2(-R)", "the log of -R, which is not positive", None),
    ("ln-half-minus-n", ">= ln(0.5-N)", "which is not positive", None),
    ("log-negative-base", ">= log(N, -2)", "the log base -2 is undefined", None),
    ("log-base-computed-zero", ">= log(N, 1-1)", "the log base 0 is undefined", None),
    ("sqrt-minus-n-r", ">= sqrt(-N*R)", "is complex", None),
    ("fullwidth-digit", ">= N*\uff12", "U+FF12 FULLWIDTH DIGIT TWO", None),
    ("greek-capital-nu", ">= \u039d", "U+039D GREEK CAPITAL LETTER NU", None),
    ("zero-width-in-formula", ">= N\u200b*R", "U+200B ZERO WIDTH SPACE", None),
    ("mathematical-italic-n", ">= \U0001d441", "is not allowed; expected ASCII", None),
]


def _round_three() -> list[Case]:
    """Round three of the hostile review: the items it found, and more of each kind."""
    cases: list[Case] = []
    add = cases.append
    for name, formula, phrase, item in _ROUND_THREE_FORMULAS:
        add(Case(f"r3-formula-{name}", margin(formula), phrase, defect=item))
    add(
        Case(
            "r3-given-neg-base-half",
            replaced(BOUND, "code_dim: 8", 'code_dim: "(-2)**0.5"'),
            "given.code_dim: formula '(-2)**0.5': a constant is complex",
            defect=1,
        )
    )
    # item 2: sweeping what names the claim
    sweep = "    sweep: {%s}\n    expect:"
    for name, values in (
        ("id", "[a, b]"),
        ("check", "[construction, bound]"),
        ("expect.accuracy", "[1.0, 0.5]"),
        ("sweep", "[x]"),
        ("xfail", "[a, b]"),
    ):
        add(
            Case(
                f"r3-sweep-{name.replace('.', '-')}",
                replaced(GOOD, "    expect:", sweep % f"{name}: {values}"),
                f"{name}: cannot be swept",
                defect=2 if name == "id" else None,
            )
        )
    add(
        Case(
            "r3-sweep-string-for-integer",
            replaced(GOOD, "    expect:", sweep % 'N: ["32", "64"]'),
            "Input should be a valid integer",
        )
    )
    # item 3: finite numbers that overflow the arithmetic
    for name, base, old, new, phrase in (
        ("lr", TRAINING, "lr: 3e-3", "lr: 1e308", "optim.lr: Input should be less than or equal"),
        ("weight-decay", TRAINING, "weight_decay: 0.0", "weight_decay: 1e308", "weight_decay"),
        ("init-scale", TRAINING, "init_scale: 1.0", "init_scale: 1e308", "model.init_scale"),
        ("init-w-e", TRAINING, "init_scale: 1.0", "init: {W_E: 1e308}", "model.init.W_E"),
        ("box", FEASIBILITY, "min_margin: 0.001", "box: 1e308", "claims.0.box: Input should be"),
        ("given", BOUND, "code_dim: 8", "code_dim: 1e308", "given.code_dim: expected a number"),
        # new: one step past each bound, and the places the issue did not list
        ("init-w-u-1e4", TRAINING, "init_scale: 1.0", "init: {W_U: 1e4}", "model.init.W_U"),
        ("box-1e7", FEASIBILITY, "min_margin: 0.001", "box: 1e7", "claims.0.box"),
        ("given-negative", BOUND, "code_dim: 8", "code_dim: -1e300", "given.code_dim"),
        ("given-formula-huge", BOUND, "code_dim: 8", 'code_dim: "10**20"', "at the instance"),
        (
            "group-lr",
            TRAINING,
            "weight_decay: 0.0}",
            "weight_decay: 0.0, groups: {W_E: {lr: 1e308}}}",
            "groups.W_E.lr",
        ),
        (
            "lr-ladder",
            TRAINING,
            "    expect:",
            "    minimize: {field: d_model, until: {accuracy: 1.0}, lr_ladder: [1e308]}\n"
            "    expect:",
            "lr_ladder",
        ),
    ):
        add(Case(f"r3-overflow-{name}", replaced(base, old, new), phrase, defect=3))
    # item 10: integers are integers, in YAML and JSON alike
    for name, text, phrase in (
        ("string", 'entities: "32"', "instance.entities: Input should be a valid integer"),
        ("float", "entities: 32.0", "instance.entities: Input should be a valid integer"),
        ("underscore", "entities: 1_000", "expected a decimal integer such as 1000"),
        ("bool", "entities: true", "instance.entities: Input should be a valid integer"),
        ("hex", "entities: 0x20", "expected a decimal integer such as 32"),
        ("octal", "entities: 040", "expected a decimal integer such as 32"),
        ("sexagesimal", "entities: 1:30", "expected a decimal integer such as 90"),
        ("exponent", "entities: 3.2e1", "instance.entities: Input should be a valid integer"),
    ):
        add(Case(f"r3-int-{name}", replaced(GOOD, "entities: 32", text), phrase, defect=10))
    add(
        Case(
            "r3-int-hops-float",
            replaced(MULTI_HOP, "hops: 2", "hops: 2.0"),
            "instance.hops: Input should be a valid integer",
        )
    )
    add(
        Case(
            "r3-int-code-dim-string",
            replaced(GOOD, "code_dim: auto", 'code_dim: "8"'),
            "code_dim",
        )
    )
    add(
        Case(
            "r3-int-steps-exponent",
            replaced(TRAINING, "steps: 10", "steps: 1e3"),
            "optim.steps: Input should be a valid integer",
        )
    )
    for name, value in (("string", '"32"'), ("float", "32.0"), ("bool", "true")):
        body = as_json(JSON_GOOD).replace(b'"entities": 32', f'"entities": {value}'.encode())
        add(
            Case(
                f"r3-json-int-{name}",
                body,
                "instance.entities: Input should be a valid integer",
                media="application/json",
                defect=10,
            )
        )
    bom = b"\xef\xbb\xbf"
    add(
        Case(
            "r3-json-bom",
            bom + as_json(JSON_GOOD),
            "passed",
            cli=0,
            http=202,
            media="application/json",
            defect=10,
        )
    )
    add(
        Case(
            "r3-json-bom-misspelt-key",
            bom + as_json(JSON_GOOD).replace(b'"entities"', b'"entites"'),
            "unknown key 'entites' (did you mean 'entities'?)",
            media="application/json",
        )
    )
    # item 4: valid specs that would run for hours, refused by their estimated work
    huge = replaced(
        TRAINING, "entities: 32, relations: 2", "entities: 100000, relations: 1"
    ).decode()
    huge = huge.replace("d_mlp: 64", "d_mlp: 16384").replace("steps: 10", "steps: 100000")
    add(Case("r3-cost-huge-training", _b(huge), "over the limit max_job_flops", defect=4))
    many = replaced(TRAINING, "entities: 32, relations: 2", "entities: 4096, relations: 1").decode()
    many = many.replace("steps: 10", "steps: 100000").replace(
        "    expect:", f"    seeds: {list(range(16))}\n    expect:"
    )
    add(Case("r3-cost-16-replicates", _b(many), "max_job_flops", defect=4))
    # a P1 of 48,999 x 1,000 entries, just under max_lp_entries, passes every per-program
    # limit; it is one LP per target attribute (49,000 of them), refused by its estimated work
    lp = replaced(FEASIBILITY, "entities: 32, relations: 2", "entities: 49000, relations: 1")
    lp = lp.replace(b"code_dim: 8", b"code_dim: 999")
    add(Case("r3-cost-lp-49m", lp, "claim 'f' over its points and replicates", defect=4))
    add(
        Case(
            "r3-dry-run",
            _b(TRAINING),
            "flops",
            cli=0,
            http=200,
            cli_args=("--dry-run", "{file}"),
            path="/v1/verifications?dry_run=true",
            http_phrase='"dry_run":true',
            defect=4,
        )
    )
    add(
        Case(
            "r3-dry-run-over-limit",
            _b(huge),
            "over the limit max_job_flops",
            cli_args=("--dry-run", "{file}"),
            path="/v1/verifications?dry_run=true",
        )
    )
    job = "/v1/verifications/" + "0" * 32
    add(get("r3-id-trailing-newline", job + "%0A", 400, "32 lowercase hex digits", defect=10))
    add(get("r3-id-trailing-cr", job + "%0D", 400, "32 lowercase hex digits"))
    add(get("r3-id-report-trailing-newline", job + "%0A/report", 400, "32 lowercase hex digits"))
    return cases


CASES: list[Case] = _cases()

"""The lint gate on reason codes: every code the source uses is registered, every registered
code is used somewhere (unless reserved), and the file itself is well-formed. Reads the source
as an AST, so comments and docstrings neither count as uses nor hide one.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from brewslm.events import taxonomy

SRC = Path(__file__).resolve().parents[2] / "src" / "brewslm"
# Calls whose argument at this position is a reason code.
CODE_ARG = {"emit_event": 0, "emit": 0, "BrewError": 0, "InputError": 0, "NotFoundError": 0,
            "BlockedError": 0, "lookup": 0, "dropped": 1}
CODE_KEYWORDS = {"reason_code", "code", "cause"}


def _callee(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _code_arguments(tree: ast.AST) -> list[tuple[str, int]]:
    """(literal, line) for every string literal passed where a reason code is expected."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        pos = CODE_ARG.get(_callee(node) or "")
        args = [node.args[pos]] if pos is not None and len(node.args) > pos else []
        args += [kw.value for kw in node.keywords if kw.arg in CODE_KEYWORDS]
        found += [(a.value, a.lineno) for a in args
                  if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return found


def _string_literals(tree: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)}


def _sources() -> list[tuple[Path, ast.AST]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"))) for p in sorted(SRC.rglob("*.py"))]


def test_every_code_used_in_source_is_registered():
    unknown = [f"{path.relative_to(SRC)}:{line}: {code}"
               for path, tree in _sources() for code, line in _code_arguments(tree)
               if not taxonomy.is_known(code)]
    assert unknown == [], "codes used but not in taxonomy.yaml:\n" + "\n".join(unknown)


def test_every_registered_code_is_used_or_reserved():
    literals = set().union(*(_string_literals(tree) for _, tree in _sources()))
    unused = sorted(c.code for c in taxonomy.codes().values()
                    if not c.reserved and c.code not in literals)
    assert unused == [], f"codes in taxonomy.yaml that no source uses: {unused}"


def test_the_gate_sees_codes_in_every_position():
    tree = ast.parse("emit_event('a_code', 's')\nraise InputError('b_code', 'm')\n"
                     "ctx.emit('c_code', 's', cause='d_code')\nledger.dropped(rid, 'e_code')\n"
                     "f(reason_code='f_code')\n")
    assert sorted(c for c, _ in _code_arguments(tree)) == [
        "a_code", "b_code", "c_code", "d_code", "e_code", "f_code"]


def test_taxonomy_entries_are_complete_and_named_consistently():
    for code in taxonomy.codes().values():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", code.code), code.code
        assert code.severity in taxonomy.SEVERITIES
        assert code.stage and code.meaning.strip() and code.hint.strip(), code.code

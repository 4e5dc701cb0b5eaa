"""Compiles the model's matcher into a Python function, once per organization load.

Casbin's Python ``enforce`` parses the matcher string and walks it with an interpreter
on every call (about 50 µs of parsing alone). :func:`compile_matcher` turns the same
string, rewritten exactly as Casbin rewrites it (``&&`` → ``and``, ``r.sub`` → ``r_sub``),
into a Python function of the request and policy values, calling the ``g`` functions and
Casbin's function map it is given. Only boolean logic, ``==``/``!=`` comparisons, names,
string constants and calls to known functions are accepted; anything else raises
:class:`~orgauthz.errors.PolicyError`, and the engine refuses the model (it has no other
evaluator).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from orgauthz.errors import PolicyError

Matcher = Callable[..., bool]

_ALLOWED = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Call,
    ast.Name,
    ast.Load,
    ast.Constant,
)
ACCEPTED: Final = (
    "&&, ||, !, == and != over request and policy values, string constants and calls to the "
    "role definitions (g, g2, g3, g4, g5) and Casbin's functions"
)


def compile_matcher(
    matcher: str, r_tokens: list[str], p_tokens: list[str], functions: Mapping[str, Callable[..., Any]]
) -> Matcher:
    """``fn(*request_values, *policy_values) -> bool``.

    Raises :class:`PolicyError` (without file or line: the caller knows them) naming the
    first part of the matcher that is not plain (see :data:`ACCEPTED`).
    """
    expr = matcher.replace("&&", " and ").replace("||", " or ")
    expr = re.sub(r"!(?!=)", " not ", expr)
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as exc:
        raise PolicyError(f"the matcher is not an expression: {exc.msg}") from None
    params = [*r_tokens, *p_tokens]
    for parent in ast.walk(tree):
        for node in (parent, *ast.iter_child_nodes(parent)):
            if not isinstance(node, _ALLOWED):
                shown = node if isinstance(node, ast.expr) else parent
                raise PolicyError(f"the matcher cannot be compiled at {_shown(shown)} (accepted: {ACCEPTED})")
        if isinstance(parent, ast.Name) and parent.id not in params and parent.id not in functions:
            raise PolicyError(f"the matcher names {_shown(parent)}, neither a request or policy value nor a function")
        if isinstance(parent, ast.Call) and not (
            isinstance(parent.func, ast.Name) and parent.func.id in functions and not parent.keywords
        ):
            raise PolicyError(f"the matcher cannot be compiled at {_shown(parent)}: not a call of a known function")
        if isinstance(parent, ast.Constant) and not isinstance(parent.value, str):
            raise PolicyError(f"the matcher cannot be compiled at {_shown(parent)}: only string constants")
    source = f"lambda {', '.join(params)}: __truth__({ast.unparse(tree)})"
    code = compile(source, "<policies/model.conf [matchers]>", "eval")
    # Only names checked above can be reached; builtins are withheld.
    fn: Matcher = eval(code, {"__builtins__": {}, **functions, "__truth__": bool})  # noqa: S307
    return fn


def _shown(node: ast.AST) -> str:
    """The node as written in model.conf (``r.sub``, not the rewritten ``r_sub``), quoted."""
    return "`" + re.sub(r"\b([rp])_(\w+)", r"\1.\2", ast.unparse(node)) + "`"

"""Synthetic bugs: single-edit mutations of a correct function, by the kinds real bugs come in.

Repair training needs (faulty, good) pairs, and real bug-fix pairs are
scarce; breaking correct code and learning to undo it is the standard
substitute. The kinds follow HumanEvalPack's taxonomy of real bugs (notes:
repair.md), including deletions, which operator swaps never produce:

=============  ===========================================================
``operator``   ``<``/``<=``, ``>``/``>=``, ``<``/``>``, ``==``/``!=``,
               ``is``/``is not``, ``is``/``==``, ``in``/``not in``,
               ``+``/``-``, ``*``/``//``, ``//``/``/``, ``%``/``//``,
               ``+=``/``-=``, ``and``/``or``, a ``not`` dropped or added
``value``      an integer ±1, ``True``/``False``, a range argument, slice
               bound or index ±1
``variable``   a name read replaced by another name of the same function
``function``   ``min``/``max``, ``any``/``all``, ``sorted``/``reversed``,
               ``append``/``extend``, ``lower``/``upper``, ... (both ways)
``excess``     a statement repeated (an update, a call)
``missing``    a statement, an ``elif``/``else`` branch, one operand of
               ``and``/``or`` or one term of a ``+``/``-`` removed
=============  ===========================================================

:func:`mutations` lists every single-edit mutation of a function's source, in
a fixed order (document order, then rule order), each as a whole new source
that parses. Most kinds are their own inverse (a swap undoes itself, ±1
undoes ∓1, a deletion undoes a repetition), so :func:`mutations` of a buggy
function also enumerates the edits that may fix it: the no-model baseline of
``editseq eval repair``. Only missing logic has no enumerable inverse.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import libcst as cst
from libcst.metadata import ExpressionContext, ExpressionContextProvider, MetadataWrapper

__all__ = ["KINDS", "KIND_WEIGHTS", "Mutation", "mutations", "random_mutation"]

KINDS = ("operator", "value", "variable", "function", "excess", "missing")
#: HumanEvalPack's 164 real bugs by kind (value 44, missing 33, excess 31, operator 25, variable 23,
#: function 8): the mix :func:`random_mutation` draws from, so synthetic data looks like real bugs.
KIND_WEIGHTS = {"value": 44, "missing": 33, "excess": 31, "operator": 25, "variable": 23, "function": 8}

_COMPARE_SWAPS = [
    (cst.LessThan, cst.LessThanEqual), (cst.GreaterThan, cst.GreaterThanEqual), (cst.LessThan, cst.GreaterThan),
    (cst.LessThanEqual, cst.GreaterThanEqual), (cst.Equal, cst.NotEqual), (cst.Is, cst.IsNot),
    (cst.Is, cst.Equal), (cst.IsNot, cst.NotEqual), (cst.In, cst.NotIn),
]
_BINARY_SWAPS = [
    (cst.Add, cst.Subtract), (cst.Multiply, cst.FloorDivide), (cst.FloorDivide, cst.Divide),
    (cst.Modulo, cst.FloorDivide),
]
_AUGMENTED_SWAPS = [(cst.AddAssign, cst.SubtractAssign), (cst.MultiplyAssign, cst.FloorDivideAssign)]
_FUNCTION_SWAPS = [("min", "max"), ("any", "all"), ("sorted", "reversed"), ("sum", "len"), ("int", "round")]
_METHOD_SWAPS = [
    ("append", "extend"), ("lower", "upper"), ("startswith", "endswith"), ("lstrip", "rstrip"),
    ("isupper", "islower"), ("isdigit", "isalpha"), ("keys", "values"), ("index", "find"), ("pop", "remove"),
]
_OFF_BY_ONE_CALLS = frozenset({"range", "enumerate"})


@dataclass(frozen=True, slots=True)
class Mutation:
    """One single-edit mutation: its kind (:data:`KINDS`), what changed, and the whole new source."""

    kind: str
    detail: str
    source: str


def _partners(node: cst.CSTNode, pairs: Sequence[tuple[type, type]]) -> list[type]:
    out = []
    for a, b in pairs:
        if isinstance(node, a):
            out.append(b)
        elif isinstance(node, b):
            out.append(a)
    return out


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


def _plus_minus_one(node: cst.BaseExpression) -> list[tuple[str, cst.BaseExpression]]:
    """``node + 1`` and ``node - 1``, or the integer itself moved by one."""
    if isinstance(node, cst.Integer):
        value = node.evaluated_value
        return [(f"{value} -> {value + d}", cst.Integer(str(value + d))) for d in (1, -1) if value + d >= 0]
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus) and isinstance(
            node.expression, cst.Integer):
        value = -node.expression.evaluated_value
        return [(f"{value} -> {value + d}", cst.parse_expression(str(value + d))) for d in (1, -1)]
    text = _code(node)
    return [(f"{text} -> {text} {sign} 1", cst.BinaryOperation(
        left=node, operator=cst.Add() if sign == "+" else cst.Subtract(), right=cst.Integer("1")))
        for sign in ("+", "-")]


class _Sites(cst.CSTTransformer):
    """Walks a function; every possible edit gets the next number, and edit ``target`` is made.

    One class both counts (``target`` is ``None``) and applies, so the numbering is the same in both.
    """

    METADATA_DEPENDENCIES = (ExpressionContextProvider,)

    def __init__(self, names: Sequence[str], target: int | None = None) -> None:
        super().__init__()
        self.names = names
        self.target = target
        self.found: list[tuple[str, str]] = []
        self._in_range_args = 0

    def visit_Annotation(self, node: cst.Annotation) -> bool:
        return False  # ``List[str]`` -> ``List[str + 1]`` is no bug anyone makes

    def _offer(self, kind: str, detail: str, original: cst.CSTNode, new: cst.CSTNode) -> cst.CSTNode:
        number = len(self.found)
        self.found.append((kind, detail))
        return new if number == self.target else original

    def _offers(self, original, candidates: Iterable[tuple[str, str, cst.CSTNode]]):
        result = original
        for kind, detail, new in candidates:
            chosen = self._offer(kind, detail, original, new)
            if chosen is not original:
                result = chosen
        return result

    # -- operators -------------------------------------------------------------------------

    def leave_ComparisonTarget(self, original, updated):
        return self._offers(updated, (
            ("operator", f"{_code(updated.operator).strip()} -> {_code(new()).strip()}",
             updated.with_changes(operator=new())) for new in _partners(updated.operator, _COMPARE_SWAPS)))

    def leave_BinaryOperation(self, original, updated):
        result = self._offers(updated, (
            ("operator", f"{_code(updated.operator).strip()} -> {_code(new()).strip()}",
             updated.with_changes(operator=new())) for new in _partners(updated.operator, _BINARY_SWAPS)))
        if isinstance(updated.operator, (cst.Add, cst.Subtract)):  # missing logic: one term dropped
            result = self._offers(result if result is not updated else updated, (
                ("missing", f"dropped {side} term of {_code(updated).strip()}", part)
                for side, part in (("left", updated.left), ("right", updated.right))))
        return result

    def leave_AugAssign(self, original, updated):
        return self._offers(updated, (
            ("operator", f"{_code(updated.operator).strip()} -> {_code(new()).strip()}",
             updated.with_changes(operator=new())) for new in _partners(updated.operator, _AUGMENTED_SWAPS)))

    def leave_BooleanOperation(self, original, updated):
        swapped = cst.Or() if isinstance(updated.operator, cst.And) else cst.And()
        candidates = [("operator", f"{_code(updated.operator).strip()} -> {_code(swapped).strip()}",
                       updated.with_changes(operator=swapped))]
        candidates += [("missing", f"dropped {side} operand of {_code(updated.operator).strip()}", kept)
                       for side, kept in (("right", updated.left), ("left", updated.right))]
        for side in ("left", "right"):
            negated = _negated(getattr(updated, side))
            if negated is not None:
                candidates.append(("operator", f"added not to the {side} operand", updated.with_changes(
                    **{side: negated})))
        return self._offers(updated, candidates)

    def leave_UnaryOperation(self, original, updated):
        if isinstance(updated.operator, cst.Not):
            return self._offer("operator", "dropped not", updated, updated.expression)
        return updated

    # -- values ------------------------------------------------------------------------------

    def leave_Integer(self, original, updated):
        if self._in_range_args:
            return updated  # the range argument as a whole is offered by leave_Call
        return self._offers(updated, (("value", detail, new) for detail, new in _plus_minus_one(updated)))

    def leave_Name(self, original, updated):
        if updated.value in ("True", "False"):
            other = "False" if updated.value == "True" else "True"
            return self._offer("value", f"{updated.value} -> {other}", updated, cst.Name(other))
        context = self.get_metadata(ExpressionContextProvider, original, None)
        if context is not ExpressionContext.LOAD or updated.value not in self.names:
            return updated
        return self._offers(updated, (
            ("variable", f"{updated.value} -> {name}", updated.with_changes(value=name))
            for name in self.names if name != updated.value))

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Name) and node.func.value in _OFF_BY_ONE_CALLS:
            self._in_range_args += 1

    def leave_Call(self, original, updated):
        func = updated.func
        candidates = []
        if isinstance(func, cst.Name) and func.value in _OFF_BY_ONE_CALLS:
            self._in_range_args -= 1
            for i, arg in enumerate(updated.args):
                for detail, new in _plus_minus_one(arg.value):
                    args = list(updated.args)
                    args[i] = arg.with_changes(value=new)
                    candidates.append(("value", f"{func.value} argument {detail}", updated.with_changes(args=args)))
        if isinstance(func, cst.Name):
            for a, b in _FUNCTION_SWAPS:
                if func.value in (a, b):
                    other = b if func.value == a else a
                    candidates.append(("function", f"{func.value} -> {other}",
                                       updated.with_changes(func=func.with_changes(value=other))))
        elif isinstance(func, cst.Attribute):
            for a, b in _METHOD_SWAPS:
                if func.attr.value in (a, b):
                    other = b if func.attr.value == a else a
                    candidates.append(("function", f".{func.attr.value} -> .{other}", updated.with_changes(
                        func=func.with_changes(attr=func.attr.with_changes(value=other)))))
        return self._offers(updated, candidates)

    def leave_SubscriptElement(self, original, updated):
        slice_ = updated.slice
        candidates = []
        if isinstance(slice_, cst.Index) and not isinstance(slice_.value, (cst.Integer, cst.UnaryOperation)):
            candidates = [("value", f"index {detail}", updated.with_changes(slice=slice_.with_changes(value=new)))
                          for detail, new in _plus_minus_one(slice_.value)]
        elif isinstance(slice_, cst.Slice):
            for part in ("lower", "upper"):
                bound = getattr(slice_, part)
                if bound is None or isinstance(bound, (cst.Integer, cst.UnaryOperation)):
                    continue  # integers are offered by leave_Integer
                candidates += [("value", f"slice {part} {detail}",
                                updated.with_changes(slice=slice_.with_changes(**{part: new})))
                               for detail, new in _plus_minus_one(bound)]
        return self._offers(updated, candidates)

    # -- statements ----------------------------------------------------------------------------

    def leave_IndentedBlock(self, original, updated):
        body = list(updated.body)
        candidates = []
        for i, statement in enumerate(body):
            if _is_docstring(statement, i):
                continue
            text = _code(statement).strip().splitlines()[0]
            if len(body) - _has_docstring(body) > 1:
                candidates.append(("missing", f"deleted `{text}`",
                                   updated.with_changes(body=body[:i] + body[i + 1:])))
            if _repeatable(statement):
                candidates.append(("excess", f"repeated `{text}`",
                                   updated.with_changes(body=body[:i + 1] + [statement] + body[i + 1:])))
        return self._offers(updated, candidates)

    def leave_While(self, original, updated):
        negated = _negated(updated.test)
        return updated if negated is None else self._offer(
            "operator", "added not to the condition", updated, _with_test(updated, negated))

    def leave_If(self, original, updated):
        negated = _negated(updated.test)
        if negated is not None:
            updated = self._offer("operator", "added not to the condition", updated,
                                  _with_test(updated, negated))
        if updated.orelse is None:
            return updated
        branch = "elif" if isinstance(updated.orelse, cst.If) else "else"
        return self._offer("missing", f"deleted the {branch} branch", updated, updated.with_changes(orelse=None))


def _with_test(node: cst.If | cst.While, test: cst.BaseExpression) -> cst.If | cst.While:
    """``node`` with ``test``; ``if(x):`` becomes ``if not(x):`` with the space the keyword now needs."""
    field = "whitespace_before_test" if isinstance(node, cst.If) else "whitespace_after_while"
    if not getattr(node, field).value:
        return node.with_changes(test=test, **{field: cst.SimpleWhitespace(" ")})
    return node.with_changes(test=test)


def _negated(test: cst.BaseExpression) -> cst.BaseExpression | None:
    """``not test`` (parenthesised where precedence needs it); ``None`` for a test that is a ``not`` already."""
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return None  # dropping it is offered instead
    if isinstance(test, (cst.BooleanOperation, cst.IfExp, cst.Lambda, cst.NamedExpr)) and not test.lpar:
        test = test.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return cst.UnaryOperation(operator=cst.Not(), expression=test)


def _is_docstring(statement: cst.CSTNode, index: int) -> bool:
    return index == 0 and isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1 and \
        isinstance(statement.body[0], cst.Expr) and isinstance(statement.body[0].value,
                                                               (cst.SimpleString, cst.ConcatenatedString))


def _has_docstring(body: Sequence[cst.CSTNode]) -> bool:
    return bool(body) and _is_docstring(body[0], 0)


def _repeatable(statement: cst.CSTNode) -> bool:
    """An update or a call on its own line: repeating it changes what the function does."""
    return isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1 and (
        isinstance(statement.body[0], cst.AugAssign)
        or isinstance(statement.body[0], cst.Expr) and isinstance(statement.body[0].value, cst.Call))


def _function_names(module: cst.Module) -> list[str]:
    """Parameters and assigned names of the module's functions, in first-seen order."""
    names: dict[str, None] = {}

    class Names(cst.CSTVisitor):
        def visit_Param(self, node: cst.Param) -> None:
            names.setdefault(node.name.value)

        def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
            self._targets(node.target)

        def visit_For(self, node: cst.For) -> None:
            self._targets(node.target)

        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            self._targets(node.target)

        def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
            self._targets(node.target)

        def _targets(self, target: cst.BaseExpression) -> None:
            if isinstance(target, cst.Name):
                names.setdefault(target.value)
            elif isinstance(target, (cst.Tuple, cst.List)):
                for element in target.elements:
                    self._targets(element.value)

    module.visit(Names())
    names.pop("self", None)
    names.pop("cls", None)
    return list(names)


class _Mutator:
    """One parsed source: its numbered edit sites, and any one of them applied."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._wrapper = MetadataWrapper(cst.parse_module(source))
        self._names = _function_names(self._wrapper.module)
        counter = _Sites(self._names)
        self._wrapper.visit(counter)
        self.sites: list[tuple[str, str]] = counter.found

    def apply(self, number: int) -> str | None:
        """The source with edit ``number`` made, or ``None`` when it does not compile or changes nothing."""
        try:
            new = self._wrapper.visit(_Sites(self._names, number)).code
        except cst.CSTValidationError:  # e.g. `if(a) and b:` minus `(a)` would read `ifb`
            return None
        if new == self.source:
            return None
        with warnings.catch_warnings():  # "is" with a literal and the like: still a program, still a bug
            warnings.simplefilter("ignore", SyntaxWarning)
            try:
                compile(new, "<mutant>", "exec")
            except (SyntaxError, ValueError):
                return None
        return new


def _mutator(source: str) -> _Mutator | None:
    try:
        return _Mutator(source)
    except (cst.ParserSyntaxError, cst.CSTValidationError):  # a node libcst cannot rebuild: no mutations
        return None


def mutations(source: str, kinds: Iterable[str] = KINDS) -> list[Mutation]:
    """Every single-edit mutation of ``source`` (a function, or a module of functions) of ``kinds``.

    In a fixed order; only sources that compile and differ from ``source`` are
    kept, and each new source once. A source that does not parse has none.
    """
    wanted = set(kinds)
    unknown = wanted - set(KINDS)
    if unknown:
        raise ValueError(f"unknown mutation kinds: {', '.join(sorted(unknown))}")
    mutator = _mutator(source)
    if mutator is None:
        return []
    out, seen = [], set()
    for number, (kind, detail) in enumerate(mutator.sites):
        if kind not in wanted:
            continue
        new = mutator.apply(number)
        if new is not None and new not in seen:
            seen.add(new)
            out.append(Mutation(kind, detail, new))
    return out


def random_mutation(source: str, rng: random.Random, weights: dict[str, int] | None = None,
                    tries: int = 8) -> Mutation | None:
    """One mutation of ``source``: a kind drawn by ``weights`` (default :data:`KIND_WEIGHTS`), then a site.

    Only the drawn site is applied (cheap on long functions). Kinds the source
    offers no site for are never drawn; ``None`` when no draw in ``tries`` compiles.
    """
    mutator = _mutator(source)
    if mutator is None:
        return None
    by_kind: dict[str, list[int]] = {}
    for number, (kind, _detail) in enumerate(mutator.sites):
        by_kind.setdefault(kind, []).append(number)
    weights = {k: w for k, w in (weights or KIND_WEIGHTS).items() if by_kind.get(k)}
    for _ in range(tries if weights else 0):
        kind = rng.choices(list(weights), weights=list(weights.values()))[0]
        number = rng.choice(by_kind[kind])
        new = mutator.apply(number)
        if new is not None:
            return Mutation(kind, mutator.sites[number][1], new)
    return None

"""The two small languages Nuke evaluates in knob values, for the fake ``nuke`` module.

* TCL in string and file knobs: ``[value parent.cache_folder]``, ``[file dirname [value root.name]]``,
  ``[if {...} {return a} {return b}]``, ``[regsub ...]``, ``[string ...]``, ``[expr ...]``,
  ``[getenv X]``, ``[frame]`` and (through a hook) ``[python ...]``. A knob value is one
  double-quoted TCL word: ``[...]`` and backslashes are substituted, ``{...}`` inside a command keeps
  its text. Anything else (variables, unknown commands) raises :class:`TclError`, so a test never
  passes on a value Nuke would compute differently.
* Nuke expressions in numeric knobs (``{{parent.rendered ? parent.output + 1 : 0}}``): numbers,
  knob references, ``frame``, ``! - * / + < > <= >= == != && || ?:`` and parentheses.

Knob references are resolved by a :class:`Context` the fake binds to a node.
"""
from __future__ import annotations

import os
import re
from typing import Callable, List, Optional, Tuple, Union

Number = float
Operand = Union[float, str]


class TclError(Exception):
    """An expression this evaluator (and so, possibly, Nuke) cannot evaluate."""


class _Return(Exception):
    def __init__(self, value: str) -> None:
        Exception.__init__(self, value)
        self.value = value


class Context:
    """What an expression can see: knob text (TCL ``value``), knob numbers (expressions) and the frame."""

    frame: float = 1.0
    python: Optional[Callable[[str], str]] = None

    def knob_text(self, ref: str) -> str:
        raise TclError(f"unknown knob {ref}")

    def knob_number(self, ref: str) -> float:
        raise TclError(f"unknown knob {ref}")


# -- TCL ----------------------------------------------------------------------------------------------


def substitute(text: str, ctx: Context) -> str:
    """A knob's text as Nuke evaluates it: command and backslash substitution."""
    try:
        out, i = _subst(text, 0, ctx, stop="")
    except _Return as done:
        raise TclError(f"'return' outside a procedure in {text!r}") from done
    return out


def _matching(text: str, start: int, open_: str, close: str) -> int:
    """Index of the bracket closing the one at ``start`` (braces inside brackets nest too)."""
    depth, i = 0, start
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == open_:
            depth += 1
        elif ch == close:
            depth -= 1
            if depth == 0:
                return i
        elif open_ == "[" and ch == "{":
            i = _matching(text, i, "{", "}")
        i += 1
    raise TclError(f"missing {close!r} in {text!r}")


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def _subst(text: str, i: int, ctx: Context, stop: str) -> Tuple[str, int]:
    """Substitute from ``i`` until an unescaped character in ``stop`` (or the end)."""
    out: List[str] = []
    while i < len(text):
        ch = text[i]
        if stop and ch in stop:
            break
        if ch == "\\" and i + 1 < len(text):
            out.append(_ESCAPES.get(text[i + 1], text[i + 1]))
            i += 2
        elif ch == "[":
            end = _matching(text, i, "[", "]")
            out.append(evaluate(text[i + 1:end], ctx))
            i = end + 1
        elif ch == "$":
            raise TclError(f"TCL variables are not supported here: {text!r}")
        else:
            out.append(ch)
            i += 1
    return "".join(out), i


def _words(command: str, ctx: Context) -> List[str]:
    """One command's words, each substituted (``{...}`` words verbatim)."""
    words: List[str] = []
    i, n = 0, len(command)
    while i < n:
        while i < n and command[i] in " \t":
            i += 1
        if i >= n:
            break
        ch = command[i]
        if ch == "{":
            end = _matching(command, i, "{", "}")
            words.append(command[i + 1:end])
            i = end + 1
        elif ch == '"':
            word, i = _subst(command, i + 1, ctx, stop='"')
            if i >= n:
                raise TclError(f"unterminated quote in {command!r}")
            words.append(word)
            i += 1
        else:
            parts: List[str] = []
            while i < n and command[i] not in " \t":
                if command[i] == "[":
                    end = _matching(command, i, "[", "]")
                    parts.append(evaluate(command[i + 1:end], ctx))
                    i = end + 1
                elif command[i] == "\\" and i + 1 < n:
                    parts.append(_ESCAPES.get(command[i + 1], command[i + 1]))
                    i += 2
                elif command[i] == "$":
                    raise TclError(f"TCL variables are not supported here: {command!r}")
                else:
                    parts.append(command[i])
                    i += 1
            words.append("".join(parts))
    return words


def _commands(script: str) -> List[str]:
    """Split a script into commands at newlines and ';' outside brackets, braces and quotes."""
    found: List[str] = []
    current: List[str] = []
    i = 0
    while i < len(script):
        ch = script[i]
        if ch in "[{":
            end = _matching(script, i, ch, "]" if ch == "[" else "}")
            current.append(script[i:end + 1])
            i = end + 1
            continue
        if ch == '"':
            j = i + 1
            while j < len(script) and script[j] != '"':
                j += 2 if script[j] == "\\" else 1
            current.append(script[i:j + 1])
            i = j + 1
            continue
        if ch in "\n;":
            found.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    found.append("".join(current))
    return [c.strip() for c in found if c.strip()]


def evaluate(script: str, ctx: Context) -> str:
    """Run a TCL script (the inside of ``[...]``); its value is the last command's."""
    result = ""
    for command in _commands(script):
        words = _words(command, ctx)
        if not words:
            continue
        handler = _COMMANDS.get(words[0])
        if handler is None:
            raise TclError(f"unsupported TCL command {words[0]!r} in [{script}]")
        result = handler(words[1:], ctx)
    return result


def _cmd_value(args: List[str], ctx: Context) -> str:
    args = [a for a in args if not a.startswith("-")]
    if len(args) != 1:
        raise TclError(f"value takes one knob, not {args}")
    return ctx.knob_text(args[0])


def _tcl_dirname(path: str) -> str:
    stripped = path.rstrip("/")
    if not stripped:
        return "/" if path else "."
    if "/" not in stripped:
        return "."
    head = stripped.rsplit("/", 1)[0].rstrip("/")
    return head or "/"


def _tcl_tail(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _tcl_rootname(path: str) -> str:
    dot, slash = path.rfind("."), path.rfind("/")
    return path[:dot] if dot > slash else path


def _cmd_file(args: List[str], ctx: Context) -> str:
    if len(args) < 2:
        raise TclError(f"file needs a subcommand and a name: {args}")
    sub, name = args[0], args[1]
    if sub == "dirname":
        return _tcl_dirname(name)
    if sub == "tail":
        return _tcl_tail(name)
    if sub == "rootname":
        return _tcl_rootname(name)
    if sub == "extension":
        root = _tcl_rootname(name)
        return name[len(root):]
    if sub == "join":
        joined = ""
        for part in args[1:]:
            joined = part if part.startswith("/") or not joined else joined.rstrip("/") + "/" + part
        return joined
    raise TclError(f"unsupported: file {sub}")


def _cmd_if(args: List[str], ctx: Context) -> str:
    i = 0
    while i < len(args):
        condition = args[i]
        i += 1
        if i < len(args) and args[i] == "then":
            i += 1
        body = args[i]
        i += 1
        if _truth(expression(condition, ctx, tcl=True)):
            return _run_body(body, ctx)
        if i >= len(args):
            return ""
        if args[i] == "elseif":
            i += 1
            continue
        if args[i] == "else":
            i += 1
        return _run_body(args[i], ctx)
    return ""


def _run_body(body: str, ctx: Context) -> str:
    try:
        return evaluate(body, ctx)
    except _Return as done:
        return done.value


def _cmd_return(args: List[str], ctx: Context) -> str:
    raise _Return(args[-1] if args else "")


def _tcl_regex(pattern: str) -> str:
    """TCL's regular expressions as Python's (the common subset; classes like [:alpha:] refused)."""
    if "[:" in pattern or "(?" in pattern:
        raise TclError(f"unsupported regular expression {pattern!r}")
    return pattern


def _cmd_regsub(args: List[str], ctx: Context) -> str:
    flags, count, i = 0, 1, 0
    while i < len(args) and args[i].startswith("-"):
        if args[i] == "-nocase":
            flags |= re.IGNORECASE
        elif args[i] == "-all":
            count = 0
        elif args[i] == "--":
            i += 1
            break
        else:
            raise TclError(f"unsupported regsub option {args[i]}")
        i += 1
    rest = args[i:]
    if len(rest) != 3:
        raise TclError(f"regsub needs exp string subSpec (no variable), got {rest}")
    pattern, string, spec = rest
    replacement = re.sub(r"\\(\d)", r"\\g<\1>", spec.replace("&", r"\g<0>"))
    return re.sub(_tcl_regex(pattern), replacement, string, count=count, flags=flags)


def _cmd_string(args: List[str], ctx: Context) -> str:
    if not args:
        raise TclError("string needs a subcommand")
    sub, rest = args[0], args[1:]
    if sub == "trimright":
        return rest[0].rstrip(rest[1] if len(rest) > 1 else None)
    if sub == "trimleft":
        return rest[0].lstrip(rest[1] if len(rest) > 1 else None)
    if sub == "trim":
        return rest[0].strip(rest[1] if len(rest) > 1 else None)
    if sub == "tolower":
        return rest[0].lower()
    if sub == "toupper":
        return rest[0].upper()
    if sub == "length":
        return str(len(rest[0]))
    if sub == "equal":
        return "1" if rest[-2] == rest[-1] else "0"
    raise TclError(f"unsupported: string {sub}")


def _cmd_expr(args: List[str], ctx: Context) -> str:
    return format_value(expression(" ".join(args), ctx, tcl=True))


def _cmd_getenv(args: List[str], ctx: Context) -> str:
    return os.environ.get(args[0], args[1] if len(args) > 1 else "")


def _cmd_frame(args: List[str], ctx: Context) -> str:
    return format_value(ctx.frame)


def _cmd_format(args: List[str], ctx: Context) -> str:
    """``format`` with ``%s`` and ``%%`` only (anything else raises)."""
    spec, values = args[0], list(args[1:])
    pieces = re.split(r"(%.)", spec)
    out = []
    for piece in pieces:
        if piece == "%s":
            if not values:
                raise TclError(f"format {spec!r}: not enough arguments")
            out.append(values.pop(0))
        elif piece == "%%":
            out.append("%")
        elif piece.startswith("%") and len(piece) == 2:
            raise TclError(f"unsupported format conversion {piece!r}")
        else:
            out.append(piece)
    return "".join(out)


def _cmd_python(args: List[str], ctx: Context) -> str:
    code = " ".join(a for a in args if a != "-exec")
    if ctx.python is None:
        raise TclError("[python ...] is not available in this context")
    return ctx.python(code)


_COMMANDS = {
    "value": _cmd_value, "file": _cmd_file, "if": _cmd_if, "return": _cmd_return, "regsub": _cmd_regsub,
    "string": _cmd_string, "expr": _cmd_expr, "format": _cmd_format, "getenv": _cmd_getenv, "frame": _cmd_frame, "python": _cmd_python,
}


# -- expressions (TCL expr and Nuke's own) --------------------------------------------------------------

_OPERATORS = ("&&", "||", "==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "!", "?", ":", "(", ")")
_BINARY = [("||",), ("&&",), ("==", "!=", "eq", "ne"), ("<", ">", "<=", ">="), ("+", "-"), ("*", "/", "%")]


def format_value(value: Operand) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number(text: str) -> Optional[float]:
    try:
        return float(text)
    except ValueError:
        return None


def _truth(value: Operand) -> bool:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "on"):
            return True
        if lowered in ("false", "no", "off", ""):
            return False
        found = _number(lowered)
        if found is None:
            raise TclError(f"expected a boolean, got {value!r}")
        return found != 0
    return value != 0


class _Parser:
    """Precedence climbing over tokens; TCL mode reads braces and quotes as strings, Nuke mode reads
    dotted names as knob references."""

    def __init__(self, text: str, ctx: Context, tcl: bool) -> None:
        self.ctx = ctx
        self.tcl = tcl
        self.tokens = self._tokenize(text)
        self.pos = 0

    def _tokenize(self, text: str) -> List[Tuple[str, Operand]]:
        tokens: List[Tuple[str, Operand]] = []
        i = 0
        while i < len(text):
            ch = text[i]
            if ch in " \t\n":
                i += 1
            elif ch == "[":
                end = _matching(text, i, "[", "]")
                tokens.append(("value", evaluate(text[i + 1:end], self.ctx)))
                i = end + 1
            elif ch == "{" and self.tcl:
                end = _matching(text, i, "{", "}")
                tokens.append(("value", text[i + 1:end]))
                i = end + 1
            elif ch == '"':
                word, j = _subst(text, i + 1, self.ctx, stop='"')
                tokens.append(("value", word))
                i = j + 1
            elif ch.isdigit() or (ch == "." and i + 1 < len(text) and text[i + 1].isdigit()):
                m = re.match(r"\d*\.?\d+(?:[eE][-+]?\d+)?|\d+\.", text[i:])
                assert m is not None
                tokens.append(("value", float(m.group(0))))
                i += len(m.group(0))
            elif ch.isalpha() or ch == "_" or ch == "$":
                m = re.match(r"\$?[A-Za-z_][\w.]*", text[i:])
                assert m is not None
                word = m.group(0)
                i += len(word)
                if word in ("eq", "ne"):
                    tokens.append(("op", word))
                elif word in ("true", "false"):
                    tokens.append(("value", 1.0 if word == "true" else 0.0))
                elif self.tcl:
                    raise TclError(f"bare word {word!r} in a TCL expression")
                elif word == "frame" or word == "t":
                    tokens.append(("value", float(self.ctx.frame)))
                else:
                    tokens.append(("value", self.ctx.knob_number(word)))
            else:
                op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
                if op is None:
                    raise TclError(f"cannot read {text[i:]!r} in an expression")
                tokens.append(("op", op))
                i += len(op)
        return tokens

    def _peek(self) -> Optional[Tuple[str, Operand]]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take_op(self, ops: Tuple[str, ...]) -> Optional[str]:
        token = self._peek()
        if token is not None and token[0] == "op" and token[1] in ops:
            self.pos += 1
            return str(token[1])
        return None

    def parse(self) -> Operand:
        value = self._ternary()
        if self._peek() is not None:
            raise TclError(f"unexpected {self._peek()} in expression")
        return value

    def _ternary(self) -> Operand:
        condition = self._binary(0)
        if self._take_op(("?",)) is None:
            return condition
        yes = self._ternary()
        if self._take_op((":",)) is None:
            raise TclError("'?' without ':'")
        no = self._ternary()
        return yes if _truth(condition) else no

    def _binary(self, level: int) -> Operand:
        if level == len(_BINARY):
            return self._unary()
        left = self._binary(level + 1)
        while True:
            op = self._take_op(_BINARY[level])
            if op is None:
                return left
            right = self._binary(level + 1)
            left = _apply(op, left, right)

    def _unary(self) -> Operand:
        if self._take_op(("!",)):
            return 0.0 if _truth(self._unary()) else 1.0
        if self._take_op(("-",)):
            return -_as_number(self._unary())
        if self._take_op(("+",)):
            return _as_number(self._unary())
        if self._take_op(("(",)):
            value = self._ternary()
            if self._take_op((")",)) is None:
                raise TclError("missing ')'")
            return value
        token = self._peek()
        if token is None or token[0] != "value":
            raise TclError(f"expected a value, got {token}")
        self.pos += 1
        return token[1]


def _as_number(value: Operand) -> float:
    if isinstance(value, float):
        return value
    found = _number(value)
    if found is None:
        raise TclError(f"expected a number, got {value!r}")
    return found


def _apply(op: str, left: Operand, right: Operand) -> Operand:
    if op in ("&&", "||"):
        result = (_truth(left) and _truth(right)) if op == "&&" else (_truth(left) or _truth(right))
        return 1.0 if result else 0.0
    if op in ("eq", "ne"):
        same = format_value(left) == format_value(right)
        return 1.0 if same == (op == "eq") else 0.0
    numbers = (_number(left) if isinstance(left, str) else left, _number(right) if isinstance(right, str) else right)
    if op in ("==", "!=", "<", ">", "<=", ">="):
        a: Operand
        b: Operand
        if numbers[0] is not None and numbers[1] is not None:
            a, b = numbers[0], numbers[1]
        else:
            a, b = format_value(left), format_value(right)
        result = {"==": a == b, "!=": a != b, "<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]  # type: ignore[operator]
        return 1.0 if result else 0.0
    x, y = _as_number(left), _as_number(right)
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    if op == "/":
        return x / y
    return float(int(x) % int(y))


def expression(text: str, ctx: Context, tcl: bool = False) -> Operand:
    """Evaluate a TCL ``expr`` (``tcl=True``) or a Nuke expression."""
    return _Parser(text, ctx, tcl).parse()


def nuke_expression(text: str, ctx: Context) -> float:
    """A Nuke knob expression as a number (``{{...}}`` in a script, braces and quotes removed)."""
    return _as_number(expression(text, ctx, tcl=False))

"""Redacting credentials from what bench logs to MLflow (params, tags, the config and record artifacts).

MLflow params and tags are readable by everyone with access to the tracking server, and a trial's
config, environment or error message may carry a credential (a ``--set params.api_key=...``, a
tracking or DVC remote URL with ``user:password@``).  Everything :class:`~bench.tracking.mlflow_writer.
MlflowWriter` logs passes through :func:`redact` (structures) or :func:`redact_yaml` (the annotated
config text).

The rule, decided once here:

* A **key** is split into dotted components, and each component into words (at ``_``, ``-``, spaces
  and camelCase humps; lower-cased).  A key is secret when any component
  - contains a word from :data:`SECRET_WORDS` (``password``, ``passwd``, ``passphrase``, ``secret``,
    ``credential``, ``auth``, ``authorization``, ``apikey`` and their plurals), or
  - contains one of the word pairs :data:`SECRET_PAIRS` (``api key``, ``access key``, ``private key``), or
  - **ends** in the word ``token`` (``token``, ``auth_token``, ``hf_token``, ``accessToken``).
  Whole words only, so ``author``, ``tokenizer_size`` and ``passage`` are not secret.  ``token`` counts
  only as a component's last word because vision/language configs use it as a noun (``token_dim``,
  ``token_mixing``; the plural ``num_tokens`` never matches).
* A secret key's **value** becomes ``"***REDACTED***"``, whatever it is (string, number, list,
  mapping), except ``None``, booleans and the empty string (also as the strings ``"None"``, ``"True"``,
  ``"null"`` … that flattened params and YAML make of them), which cannot hold a credential and stay
  readable (``use_auth: true``).
* In every **string** (under any key, and in the YAML text), URLs lose their password
  (``https://user:pass@host`` -> ``https://user:***@host``; a user name alone, as in ``ssh://git@host``,
  is kept) and the values of query parameters whose name is secret by the key rule
  (``?access_token=abc`` -> ``?access_token=***``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***REDACTED***"
URL_MASK = "***"

SECRET_WORDS = frozenset({
    "password", "passwords", "passwd", "passphrase", "secret", "secrets", "credential", "credentials",
    "auth", "authorization", "apikey", "apikeys",
})
SECRET_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key")})
TOKEN_WORD = "token"

# camelCase humps ("apiKey" -> "api Key", "HTTPToken" -> "HTTP Token") before splitting on separators.
_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[_\-\s/]+")
# scheme://[userinfo@]rest-of-url, up to whitespace or a quote/bracket that ends it in text.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
_USERINFO = re.compile(r"^(?P<scheme>[^:]+://)(?P<user>[^:@/?#]*):(?P<password>[^@/?#]*)@")
_QUERY_PARAM = re.compile(r"(?P<sep>[?&;])(?P<name>[^=&;#]+)=(?P<value>[^&;#]*)")
# One line of block YAML as `bench config` writes it: indent, optional "- ", key, ":" and the rest.
_YAML_KEY = re.compile(r"^(?P<indent> *)(?P<dash>- )?(?P<key>[^\s:#'\"][^:#]*?|'[^']*'|\"[^\"]*\"):(?P<rest>(?: .*)?)$")


def words(component: str) -> list[str]:
    """The lower-cased words of one key component: ``"awsSecretAccess_key"`` -> aws, secret, access, key."""
    return [w.lower() for w in _SEPARATORS.split(_HUMP.sub(" ", component)) if w]


def is_secret_key(key: str) -> bool:
    """Whether a (possibly dotted) key names a credential, by the rule in the module docstring."""
    for component in str(key).split("."):
        ws = words(component)
        if not ws:
            continue
        if SECRET_WORDS.intersection(ws) or ws[-1] == TOKEN_WORD:
            return True
        if any(pair in SECRET_PAIRS for pair in zip(ws, ws[1:], strict=False)):
            return True
    return False


def redact_url(url: str) -> str:
    """One URL without its password and without the values of secret query parameters."""
    url = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{URL_MASK}@", url, count=1)

    def param(m: re.Match[str]) -> str:
        return f"{m['sep']}{m['name']}={URL_MASK}" if is_secret_key(m["name"]) else m[0]

    return _QUERY_PARAM.sub(param, url)


def redact_string(text: str) -> str:
    """``text`` with every URL in it passed through :func:`redact_url`."""
    return _URL.sub(lambda m: redact_url(m[0]), text)


# Values that cannot hold a credential, also as the strings flattened params turn them into.
_HARMLESS = frozenset({"", "None", "True", "False", "null", "true", "false", "~"})


def _secret_value(value: Any) -> Any:
    """What a secret key's value becomes: booleans, None and empty strings stay (no credential fits)."""
    harmless = value is None or isinstance(value, bool) or (isinstance(value, str) and value in _HARMLESS)
    return value if harmless else REDACTED


def redact(value: Any, key: str = "") -> Any:
    """A copy of ``value`` safe to log: secret keys' values replaced, credentials cut out of URLs.

    ``value`` may be a mapping (its keys are checked, recursively, joined with dots to ``key``), a
    list/tuple (its items inherit ``key``), a string, or any other scalar (returned as is).  The input
    is never modified.
    """
    if key and is_secret_key(key):
        return _secret_value(value)
    if isinstance(value, Mapping):
        return {k: redact(v, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        return redact_string(value)
    return value


def redact_yaml(text: str) -> str:
    """Block-style YAML text (``bench config``'s annotated config) with the same rule applied.

    Line based, so that the ``# source`` comments survive.  The dotted key of each ``key: value`` line
    comes from the enclosing keys' indentation; when it is secret the line becomes
    ``key: '***REDACTED***'`` (quoted: a bare ``*`` starts a YAML alias) and everything nested below it
    (a mapping, list items, a block scalar's text) is dropped, as :func:`redact` replaces the whole
    value, so the result is still valid YAML.  URLs anywhere are cut as in :func:`redact_string`.
    """
    out: list[str] = []
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing mappings
    dropping_below: int | None = None  # indent of a secret key whose nested lines are dropped
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        if dropping_below is not None:
            # Nested lines are deeper; a key's list items may sit at the key's own indent.
            if not stripped or indent > dropping_below or (indent == dropping_below and stripped.startswith("- ")):
                continue
            dropping_below = None
        m = _YAML_KEY.match(line)
        if m is None:
            out.append(redact_string(line))
            continue
        key_indent = indent + (2 if m["dash"] else 0)
        while stack and stack[-1][0] >= key_indent:
            stack.pop()
        key = m["key"].strip("'\"")
        dotted = ".".join([k for _, k in stack] + [key])
        value, comment = _split_comment(m["rest"])
        # An empty value opens a mapping or list below the key: secret as a whole.
        if is_secret_key(dotted) and (value.strip() == "" or value.strip() not in _HARMLESS):
            out.append(f"{m['indent']}{m['dash'] or ''}{m['key']}: '{REDACTED}'{comment}")
            dropping_below = key_indent
            continue
        if value.strip() == "":
            stack.append((key_indent, key))
        out.append(redact_string(line))
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def _split_comment(rest: str) -> tuple[str, str]:
    """``" value  # source"`` -> (``" value"``, ``"  # source"``); a ``#`` inside quotes is not a comment."""
    quote: str | None = None
    for i, ch in enumerate(rest):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or rest[i - 1] == " "):
            return rest[:i].rstrip(" "), "  " + rest[i:]
    return rest, ""

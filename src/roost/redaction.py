"""Redaction of sensitive values before a call's record leaves memory.

A :class:`Redactor` holds two kinds of rules:

- **Key rules** decide from a dictionary key (a tool parameter name, a key inside
  an output or metadata object) that the whole value under it is sensitive. Keys
  are compared after normalisation: the key is split into lower-case words at
  case changes, digits and any non-alphanumeric character, so ``cardNumber``,
  ``card_number``, ``Card-Number``, ``CARD_NUMBER`` and ``cardnumber`` all read as
  the words ``card number``. A rule matches when its words appear, contiguously,
  anywhere among the key's words (``customer_ssn``, ``x-api-key``,
  ``refreshToken``), or when the rule's words written together equal one of the
  key's words (``apikey``). Words must match whole: ``company`` is not ``pan`` and
  ``max_tokens`` is not ``token``. Values that are ``True``, ``False`` or ``None``
  are never redacted, because they cannot carry a secret and keys such as
  ``pin_verified`` are what a test wants to see.
- **Value rules** rewrite any string wherever it appears, even under a harmless
  key or in free text: payment card numbers (13-19 digits, optionally grouped by
  spaces or dashes, that pass the Luhn check), US social security numbers written
  ``AAA-GG-SSSS`` with a valid area and group, and ``Bearer`` credentials. Custom
  regular expressions and callables can be added.

Rules fail closed: when a custom rule raises, the value it was looking at is
replaced by the marker rather than passed through.

The recorder applies the redactor while it converts the finished call to JSON
(``roost.capture``), so redaction happens before any byte reaches the delivery
outbox, and before strings are truncated (a card number cut in half by a size cap
would otherwise escape the Luhn check). Transcript utterances are left alone
unless ``transcript=True``: a platform compares them with its own speech-to-text,
and masking them would count as recognition errors.

Written by hand because the logic is small and specific (key normalisation, Luhn
check, fail-closed custom rules); scrubbing libraries such as ``scrubadub`` pull
in NLP models an agent process must not load.

Example:
    >>> from roost.redaction import Redactor
    >>> r = Redactor(keys=["member_id"])
    >>> r.redact({"cardNumber": "4111 1111 1111 1111", "member-ID": 17, "ok": True})
    {'cardNumber': '[REDACTED]', 'member-ID': '[REDACTED]', 'ok': True}
    >>> r.scrub("my card is 4111-1111-1111-1111, thanks")
    'my card is [REDACTED], thanks'
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "DEFAULT_SENSITIVE_KEYS",
    "REDACTED",
    "KeyRule",
    "Redactor",
    "ValueRule",
    "key_words",
    "luhn_valid",
]

logger = logging.getLogger("roost")

REDACTED = "[REDACTED]"
"""Default marker that replaces a redacted value or a matched part of a string."""

KeyRule = Callable[[str], bool]
"""A custom key rule: gets the original key, returns True when it is sensitive."""

ValueRule = Callable[[str], str]
"""A custom value rule: gets a string, returns it with sensitive parts replaced."""

DEFAULT_SENSITIVE_KEYS: tuple[str, ...] = (
    # Payment cards (PCI DSS: PAN and sensitive authentication data).
    "pan",
    "primary account number",
    "card number",
    "card num",
    "card no",
    "cc number",
    "cc num",
    "credit card",
    "debit card",
    "cvv",
    "cvv2",
    "cvc",
    "cvc2",
    "csc",
    "card verification",
    "security code",
    "track data",
    # Government identifiers.
    "ssn",
    "social security",
    "tax id",
    "tin",
    "itin",
    "national id",
    "national insurance",
    "passport number",
    # Credentials and one-time codes.
    "password",
    "passwords",
    "passwd",
    "pwd",
    "passphrase",
    "passcode",
    "pin",
    "pin code",
    "otp",
    "mfa code",
    "verification code",
    "auth code",
    "security answer",
    "secret",
    "secrets",
    "credential",
    "credentials",
    "token",
    "api key",
    "access key",
    "private key",
    "secret key",
    "authorization",
    "auth",
    "bearer",
    "cookie",
    # Bank accounts.
    "account number",
    "account no",
    "acct number",
    "acct num",
    "acct no",
    "bank account",
    "iban",
    "routing number",
    "routing no",
    "aba",
    "sort code",
    "bsb",
)
"""Key rules applied unless ``Redactor(defaults=False)``; see the module docstring
for how keys are matched. ``routing`` and ``account`` alone are deliberately
absent: voice agents route calls and look accounts up by harmless ids."""

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

# 13-19 digits, optionally grouped by single spaces or dashes, not glued to other
# digits. The Luhn check below weeds out order numbers and phone numbers.
_CARD = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")
_SSN = re.compile(
    r"(?<![0-9-])(?!000|666|9[0-9]{2})[0-9]{3}-(?!00)[0-9]{2}-(?!0000)[0-9]{4}(?![0-9])"
)
_BEARER = re.compile(r"(?i)\bbearer\s+[a-z0-9._~+/-]+=*")

_KEY_CACHE_SIZE = 4096


def key_words(key: str) -> tuple[str, ...]:
    """Split a key into its lower-case words, the form key rules compare.

    Example:
        >>> key_words("x-API-Key")
        ('x', 'api', 'key')
        >>> key_words("cardNumber2")
        ('card', 'number', '2')
    """
    return tuple(word.lower() for word in _WORD.findall(key))


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn (mod 10) check of card numbers.

    Example:
        >>> luhn_valid("4111111111111111"), luhn_valid("4111111111111112")
        (True, False)
    """
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


class Redactor:
    """Decides which values are sensitive and replaces them with a marker.

    Args:
        keys: Extra key rules: strings (matched by words, like the defaults) or
            callables that get the original key and return True when sensitive.
        defaults: Include :data:`DEFAULT_SENSITIVE_KEYS`.
        allow_keys: Keys never redacted by key rules, matched by their words
            exactly (``allow_keys=["pin_attempts"]`` also allows ``pinAttempts``).
            Value rules still apply to strings under them.
        patterns: Extra regular expressions; every match inside any string is
            replaced by the marker.
        value_rules: Extra callables applied to every string.
        card_numbers: Replace Luhn-valid card numbers found in any string.
        ssn: Replace ``AAA-GG-SSSS`` social security numbers found in any string.
        bearer: Replace ``Bearer <credential>`` found in any string.
        transcript: Also apply value rules to transcript utterances.
        marker: The replacement text.

    Raises:
        TypeError: A key rule is neither a string nor a callable, or a value rule
            is not callable.
        re.error: A pattern is not a valid regular expression.

    Example:
        >>> Redactor().redact({"user": {"password": "hunter2", "name": "Ada"}})
        {'user': {'password': '[REDACTED]', 'name': 'Ada'}}
    """

    __slots__ = (
        "_allow",
        "_cache",
        "_compact",
        "_key_callables",
        "_rules",
        "_word_rules",
        "marker",
        "transcript",
    )

    def __init__(
        self,
        keys: Iterable[str | KeyRule] = (),
        *,
        defaults: bool = True,
        allow_keys: Iterable[str] = (),
        patterns: Iterable[str | re.Pattern[str]] = (),
        value_rules: Iterable[ValueRule] = (),
        card_numbers: bool = True,
        ssn: bool = True,
        bearer: bool = True,
        transcript: bool = False,
        marker: str = REDACTED,
    ) -> None:
        self.marker = marker
        """Text that replaces redacted values."""
        self.transcript = transcript
        """Whether transcript utterances are scrubbed by value rules."""
        word_rules: set[tuple[str, ...]] = set()
        self._key_callables: list[KeyRule] = []
        for rule in [*(DEFAULT_SENSITIVE_KEYS if defaults else ()), *keys]:
            if isinstance(rule, str):
                words = key_words(rule)
                if words:
                    word_rules.add(words)
            elif callable(rule):
                self._key_callables.append(rule)
            else:
                raise TypeError(f"key rule must be a string or a callable, got {rule!r}")
        self._word_rules = tuple(sorted(word_rules))
        self._compact = frozenset("".join(words) for words in word_rules)
        self._allow = frozenset(key_words(key) for key in allow_keys)
        self._cache: dict[str, bool] = {}
        # (shortest text a rule can match, rule): the built-in rules skip the many
        # short strings (ids, statuses) without running a regular expression.
        rules: list[tuple[int, ValueRule]] = []
        if card_numbers:
            rules.append((13, self._scrub_cards))
        if ssn:
            rules.append((11, functools.partial(self._substitute, _SSN)))
        if bearer:
            rules.append((8, functools.partial(self._substitute, _BEARER)))
        for pattern in patterns:
            compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
            rules.append((0, functools.partial(self._substitute, compiled)))
        for value_rule in value_rules:
            if not callable(value_rule):
                raise TypeError(f"value rule must be callable, got {value_rule!r}")
            rules.append((0, value_rule))
        self._rules = tuple(rules)

    @classmethod
    def disabled(cls) -> Redactor:
        """A redactor with no rules at all: every value passes unchanged.

        Example:
            >>> Redactor.disabled().redact({"password": "hunter2"})
            {'password': 'hunter2'}
        """
        return cls(defaults=False, card_numbers=False, ssn=False, bearer=False)

    @property
    def active(self) -> bool:
        """Whether any rule is configured (False for :meth:`disabled`)."""
        return bool(self._word_rules or self._key_callables or self._rules)

    def is_sensitive_key(self, key: str) -> bool:
        """Whether the value under ``key`` must be redacted.

        Example:
            >>> r = Redactor()
            >>> r.is_sensitive_key("routingNumber"), r.is_sensitive_key("routing")
            (True, False)
        """
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        result = self._match_key(key)
        if len(self._cache) >= _KEY_CACHE_SIZE:
            # Keys are usually a small fixed vocabulary; a flood of distinct keys
            # (data used as keys) just restarts the cache instead of growing it.
            self._cache.clear()
        self._cache[key] = result
        return result

    def scrub(self, text: str) -> str:
        """Apply every value rule to ``text``.

        A value rule that raises makes the whole string the marker (fail closed).

        Example:
            >>> Redactor().scrub("SSN 123-45-6789 on file")
            'SSN [REDACTED] on file'
        """
        for shortest, rule in self._rules:
            if len(text) < shortest:
                continue
            try:
                result: object = rule(text)
            except Exception as exc:
                logger.warning("roost: a redaction value rule raised %r; value masked", exc)
                return self.marker
            if not isinstance(result, str):
                logger.warning("roost: a redaction value rule returned a non-string; masked")
                return self.marker
            text = result
        return text

    def redact(self, value: Any) -> Any:
        """Return a redacted copy of a JSON-like value (dicts, lists, strings...).

        Dictionaries and lists are copied; other values are returned as they are
        (strings scrubbed). For arbitrary Python objects convert first with
        :func:`roost.capture.to_jsonable`, which redacts while converting.

        Example:
            >>> Redactor().redact([{"api_key": "sk-1"}, "Bearer abc.def"])
            [{'api_key': '[REDACTED]'}, '[REDACTED]']
        """
        return self._redact(value, 0)

    # -- internals ---------------------------------------------------------------

    def _redact(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self.scrub(value) if self._rules else value
        if depth > 64:
            return value
        if isinstance(value, Mapping):
            out: dict[Any, Any] = {}
            for key, item in value.items():
                if (
                    isinstance(key, str)
                    and item is not None
                    and not isinstance(item, bool)
                    and self.is_sensitive_key(key)
                ):
                    out[key] = self.marker
                else:
                    out[key] = self._redact(item, depth + 1)
            return out
        if isinstance(value, list | tuple):
            return [self._redact(item, depth + 1) for item in value]
        return value

    def _match_key(self, key: str) -> bool:
        words = key_words(key)
        if words in self._allow:
            return False
        for predicate in self._key_callables:
            try:
                if predicate(key):
                    return True
            except Exception as exc:
                logger.warning("roost: a redaction key rule raised %r on %r; masked", exc, key)
                return True
        if not words:
            return False
        if any(word in self._compact for word in words):
            return True
        if "".join(words) in self._compact:
            return True
        count = len(words)
        for rule in self._word_rules:
            size = len(rule)
            if size > count:
                continue
            for start in range(count - size + 1):
                if words[start : start + size] == rule:
                    return True
        return False

    def _substitute(self, pattern: re.Pattern[str], text: str) -> str:
        return pattern.sub(self.marker, text)

    def _scrub_cards(self, text: str) -> str:
        return _CARD.sub(self._card_match, text)

    def _card_match(self, match: re.Match[str]) -> str:
        digits = match.group().replace(" ", "").replace("-", "")
        return self.marker if luhn_valid(digits) else match.group()

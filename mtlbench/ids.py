"""Job ids, a contract with every stored result: a job's id is the hash of its resolved config, as the config was
first spelt. A change that trains nothing differently (a rename, a new setting at a default that reproduces the old
behaviour) registers here how to spell a config as before, so that every existing job keeps its id; a change to
what a job trains changes the config, hence the id. Methods, models and tracks register their rules with
``spelt_as_before``; this module imports nothing of theirs.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

# Config keys renamed after job ids were first issued. A job's id hashes its config as the key was first
# spelt, so a rename (a change that trains nothing differently) keeps every stored result's id.
FIRST_SPELLING: dict[tuple[str, ...], str] = {
    ("method", "supervision"): "allocation",  # the recipe axis of STA/ISTA, named "allocation" until 0.2
    ("purchase",): "allocation",  # a budget job's allocator, costs and estimates, named "allocation" until 0.2
}


SpellingRule = Callable[[dict[str, Any]], dict[str, Any]]
SPELLING_RULES: list[SpellingRule] = []


def spelt_as_before(rule: SpellingRule) -> SpellingRule:
    """Register a rule for ``job_id``: given a config (a copy it may change), return the config a job that
    trains identically had before a setting was added or a default changed (e.g. drop a new key whose value
    reproduces the old behaviour). A job whose training a change leaves alone thus keeps its id; a job whose
    training it changes gets a new one. Each rule must be exact: it may only rewrite configs whose training
    the change did not alter."""
    SPELLING_RULES.append(rule)
    return rule


def first_spelling(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` as its job would have been spelt when ids were first issued: renamed keys under their first
    names, and each registered spelling rule applied."""
    spelt = json.loads(json.dumps(config))  # a deep copy the rules may change
    for path, old in FIRST_SPELLING.items():
        *parents, key = path
        node = spelt
        for parent in parents:
            if not isinstance(node.get(parent), dict):
                break
            node[parent] = node = dict(node[parent])
        else:
            if key in node:
                node[old] = node.pop(key)
    for rule in SPELLING_RULES:
        spelt = rule(spelt)
    return spelt


def job_id(config: dict[str, Any]) -> str:
    """The first 12 hex digits of the SHA-256 of the config's canonical JSON (sorted keys, first spelling)."""
    return hashlib.sha256(json.dumps(first_spelling(config), sort_keys=True).encode()).hexdigest()[:12]

"""Policy evaluation speed on a 500-rule policy, against a plain fnmatch loop in the same run.

Run: ``.venv/bin/python bench/policy.py`` (``--quick`` for a smoke run).

Scenario A has glob matchers only (action, resource, environment), so the baseline, a Python
loop calling :func:`fnmatch.fnmatchcase` over the rules in order, gives the same answers; the
bench checks that it does for every request. Scenario B makes 5 % of the rules carry a CEL
condition, which the baseline cannot express; it is timed against the same baseline.
"""

from __future__ import annotations

import argparse
import fnmatch
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

# This file is bench/policy.py; drop its folder from the path so `import policy` finds the
# package, not this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from policy import Policy, parse_policy  # noqa: E402
from signoff.models import AgentRequest  # noqa: E402

NAMESPACES = [f"svc{i:02d}" for i in range(50)]
VERBS = ["read", "write", "export", "delete", "grant", "apply", "update", "restart", "scale", "sync"]
ENVS = ["prod", "staging", "dev"]
DIRECTORY = {
    "people": [
        {"email": f"user{i}@example.com", "groups": ["dba", "secops", "admins", "platform"][i % 4: i % 4 + 1]}
        for i in range(12)
    ],
    "agents": [{"id": "agent:bench", "owner": "user0@example.com"}],
}


def make_rules(count: int, rng: random.Random, cel_share: float) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for i in range(count):
        ns = rng.choice(NAMESPACES)
        shape = rng.random()
        if shape < 0.6:
            action = f"{ns}.{rng.choice(VERBS)}"
        elif shape < 0.9:
            action = f"{ns}.*"
        else:
            action = f"*.{rng.choice(VERBS)}"
        match: dict[str, Any] = {"action": action}
        if rng.random() < 0.5:
            match["environment"] = rng.choice(ENVS)
        if rng.random() < 0.3:
            match["resource"] = f"{rng.choice(['table', 'role', 'stack'])}/{rng.choice('abcdefgh')}*"
        rule: dict[str, Any] = {"id": f"r{i}", "match": match,
                                "require": {"approvers": f"1 of {rng.choice(['dba', 'secops', 'platform'])}"}}
        if rng.random() < cel_share:
            rule["when"] = f"has(params.rows) && params.rows > {rng.randint(0, 1000)}"
        rules.append(rule)
    return rules


def make_requests(count: int, rng: random.Random) -> list[AgentRequest]:
    out = []
    for i in range(count):
        ns = rng.choice([*NAMESPACES, "other", "legacy"])
        params = {"rows": rng.randint(0, 2000)} if rng.random() < 0.7 else {}
        out.append(AgentRequest(
            id=f"b{i}", action=f"{ns}.{rng.choice(VERBS)}",
            resource=f"{rng.choice(['table', 'role', 'stack'])}/{rng.choice('abcdefghijk')}{i}",
            requester="agent:bench", params=params,
            context={"environment": rng.choice(ENVS)},
        ))
    return out


def fnmatch_loop(rules: list[dict[str, Any]]) -> Callable[[AgentRequest], str]:
    """The baseline: every rule in order, fnmatchcase on each field it names."""
    table = [(r["id"], r["match"].get("action"), r["match"].get("resource"), r["match"].get("environment"))
             for r in rules]

    def first(req: AgentRequest) -> str:
        env = req.context.get("environment")
        for rule_id, action, resource, environment in table:
            if action is not None and not fnmatch.fnmatchcase(req.action, action):
                continue
            if resource is not None and not fnmatch.fnmatchcase(req.resource, resource):
                continue
            if environment is not None and (env is None or not fnmatch.fnmatchcase(env, environment)):
                continue
            return rule_id
        return "default"

    return first


def rates(
    fns: dict[str, Callable[[AgentRequest], Any]], requests: list[AgentRequest], repeat: int
) -> dict[str, float]:
    """Best-of-``repeat`` evaluations per second over all ``requests``, for each function.

    The functions take turns within each round, so a busy neighbour on a shared machine slows
    all of them alike instead of skewing one.
    """
    best = dict.fromkeys(fns, 0.0)
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            for req in requests:
                fn(req)
            best[name] = max(best[name], len(requests) / (time.perf_counter() - start))
    return best


def build(rules: list[dict[str, Any]]) -> tuple[Policy, float]:
    text = yaml.safe_dump({"version": 1, "directory": DIRECTORY, "rules": rules}, sort_keys=False)
    start = time.perf_counter()
    policy = parse_policy(text, "bench.yaml")
    return policy, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=500)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.repeat = 200, 1
    rng = random.Random(7)
    requests = make_requests(args.requests, rng)

    print(f"policy bench: {args.rules} rules, {args.requests} requests, best of {args.repeat}")
    for name, share in (("A: globs only", 0.0), ("B: 5% CEL conditions", 0.05)):
        rules = make_rules(args.rules, random.Random(11), share)
        policy, load_seconds = build(rules)
        baseline = fnmatch_loop(rules)
        if share == 0.0:
            wrong = [r.id for r in requests if policy.evaluate(r).rule_id != baseline(r)]
            assert not wrong, f"engine and baseline disagree on {wrong[:5]}"
        matched = statistics.mean(policy.evaluate(r).rule_id != "default" for r in requests)
        got = rates(
            {
                "base": baseline,
                "full": policy.evaluate,
                "bare": lambda r, p=policy: p.evaluate(r, explain_limit=0),
            },
            requests,
            args.repeat,
        )
        base, full, bare = got["base"], got["full"], got["bare"]
        print(f"\n{name} (load {load_seconds * 1000:.0f} ms; {matched:.0%} of requests match a rule)")
        print(f"  baseline fnmatch loop           {base:>9,.0f} req/s   1.00x")
        print(f"  policy.evaluate()               {full:>9,.0f} req/s   {full / base:.2f}x")
        print(f"  policy.evaluate(explain_limit=0){bare:>9,.0f} req/s   {bare / base:.2f}x")


if __name__ == "__main__":
    main()

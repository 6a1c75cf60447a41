"""Benchmark the tool repository: import throughput and near-duplicate detection.

1. Import throughput: a generated 10,000-entry function-doc collection (Python-style
   types, nested objects, tuples, enums) through `import_function_docs` + the repository,
   against the physical floor of just parsing the same file with `json`.
2. Near-duplicate detection on a planted set: tools for 40 objects x 4 actions, plus one
   paraphrase (synonym verb, reworded description, renamed parameters) for each of 120
   of them. Precision counts every pair flagged in the whole pool (anything but a planted
   paraphrase is a false positive); recall counts the planted pairs found. Side by side:
   embeddings with the action and interface gates (ours), embeddings alone, and a
   word-set Jaccard baseline (what MinHash estimates).

    python bench/tool_registry.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tool_registry.dedup import find_near_duplicates, tool_text
from tool_registry.importers.function_docs import import_function_docs
from tool_registry.repository import ToolRepository
from tool_registry.spec import Provenance, ToolSpec

OBJECTS = [
    "calendar_event",
    "invoice",
    "support_ticket",
    "playlist",
    "shipment",
    "thermostat_schedule",
    "stock_watchlist",
    "flight_booking",
    "hotel_reservation",
    "patient_appointment",
    "bank_transfer",
    "user_account",
    "blog_post",
    "product_review",
    "cart_item",
    "meeting_room",
    "train_ticket",
    "expense_report",
    "recipe",
    "workout_plan",
    "parking_permit",
    "library_loan",
    "insurance_claim",
    "job_posting",
    "course_enrollment",
    "robot_task",
    "sensor_alert",
    "delivery_route",
    "tax_return",
    "warehouse_order",
    "pet_profile",
    "subscription",
    "contact_card",
    "git_branch",
    "dns_record",
    "lab_sample",
    "rental_car",
    "gift_card",
    "podcast_episode",
    "vaccination_record",
]
ACTION_WORDS = {
    "read": (["get"], ["fetch", "retrieve", "lookup"]),
    "create": (["create"], ["add", "register", "new"]),
    "delete": (["delete"], ["remove", "erase"]),
    "update": (["update"], ["modify", "edit", "change"]),
}
TEMPLATES = {
    "read": (
        "Get the details of a {o} by its identifier.",
        "Returns the stored information about the {o} with the given id.",
    ),
    "create": (
        "Create a new {o} with the given fields.",
        "Adds a {o} built from the provided values and returns it.",
    ),
    "delete": (
        "Delete the {o} with the given identifier.",
        "Removes a {o}, identified by its id, permanently.",
    ),
    "update": (
        "Update fields of an existing {o}.",
        "Changes the stored values of a {o} that already exists.",
    ),
}


def params(kind: str, obj: str, variant: bool) -> dict:
    key = f"{obj}_id" if not variant else "identifier"
    props = {
        "read": {key: {"type": "string"}},
        "delete": {key: {"type": "string"}},
        "create": {
            ("title" if variant else "name"): {"type": "string"},
            ("notes" if variant else "details"): {"type": "string"},
            ("when" if variant else "date"): {"type": "string"},
        },
        "update": {
            key: {"type": "string"},
            ("changes" if variant else "fields"): {"type": "object"},
        },
    }[kind]
    return {"type": "object", "properties": props, "required": list(props)[:1]}


def planted(rng: random.Random) -> tuple[list[ToolSpec], set[frozenset[str]]]:
    base, pairs = [], set()
    for obj in OBJECTS:
        words = obj.replace("_", " ")
        for kind, (verbs, _) in ACTION_WORDS.items():
            base.append(
                (
                    kind,
                    obj,
                    ToolSpec(
                        name=f"{verbs[0]}_{obj}",
                        description=TEMPLATES[kind][0].format(o=words),
                        parameters=params(kind, obj, False),
                        provenance=Provenance(source="synthetic"),
                    ),
                )
            )
    tools = [spec for _, _, spec in base]
    for kind, obj, spec in rng.sample(base, 120):
        verb = rng.choice(ACTION_WORDS[kind][1])
        words = obj.replace("_", " ")
        twin = ToolSpec(
            name=f"{verb}_{obj}",
            description=TEMPLATES[kind][1].format(o=words),
            parameters=params(kind, obj, True),
            provenance=Provenance(source="synthetic"),
        )
        tools.append(twin)
        pairs.add(frozenset((spec.id, twin.id)))
    return tools, pairs


def shingle_jaccard_pairs(tools: list[ToolSpec], threshold: float) -> set[frozenset[str]]:
    """Baseline (what MinHash estimates): Jaccard of the word sets of the same text."""

    def shingles(text: str) -> set[str]:
        w = text.lower().replace(".", " ").split()
        return set(w)

    sets = [shingles(tool_text(t)) for t in tools]
    found = set()
    for i in range(len(tools)):
        for j in range(i + 1, len(tools)):
            union = len(sets[i] | sets[j])
            if union and len(sets[i] & sets[j]) / union >= threshold:
                found.add(frozenset((tools[i].id, tools[j].id)))
    return found


def precision_recall(found: set[frozenset[str]], truth: set[frozenset[str]]) -> tuple[float, float]:
    hits = len(found & truth)
    return (hits / len(found) if found else 0.0), hits / len(truth)


def dedup_rows() -> list[tuple[str, float, float]]:
    tools, truth = planted(random.Random(7))
    ours = {frozenset((p.a, p.b)) for p in find_near_duplicates(tools)}
    plain = {frozenset((p.a, p.b)) for p in find_near_duplicates(tools, gates=False)}
    rows = [
        (
            "embeddings (text + subject) + action/interface gates (ours)",
            *precision_recall(ours, truth),
        ),
        ("the same embeddings, no gates", *precision_recall(plain, truth)),
    ]
    best = max(
        (
            (*precision_recall(shingle_jaccard_pairs(tools, t), truth), t)
            for t in (0.1, 0.2, 0.3, 0.5)
        ),
        key=lambda r: 2 * r[0] * r[1] / (r[0] + r[1] or 1),
    )
    rows.append((f"word-set Jaccard >= {best[2]} (best F1 of 4 thresholds)", best[0], best[1]))
    return rows


def function_docs(n: int, rng: random.Random) -> list[dict]:
    kinds = ["int", "float", "str", "bool", "dict", "list", "tuple", "any"]
    out = []
    for i in range(n):
        props = {}
        for j in range(rng.randint(1, 6)):
            kind = rng.choice(kinds)
            prop: dict = {"type": kind, "description": f"argument {j}"}
            if kind == "list":
                prop["items"] = {"type": rng.choice(["int", "str", "float"])}
            if kind == "tuple":
                prop["items"] = ["float", "float"]
            if kind == "dict":
                prop["properties"] = {
                    "x": {"type": "int"},
                    "y": {"type": "str", "enum": ["a", "b"]},
                }
            props[f"arg_{j}"] = prop
        out.append(
            {
                "name": f"module{i % 97}.function_{i}",
                "description": f"Function number {i}.",
                "parameters": {"type": "dict", "properties": props, "required": ["arg_0"]},
            }
        )
    return out


def import_rows(n: int) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "docs.jsonl"
        path.write_text("\n".join(json.dumps(e) for e in function_docs(n, random.Random(1))) + "\n")
        started = time.perf_counter()
        for line in path.read_text().splitlines():
            json.loads(line)
        parse_s = time.perf_counter() - started
        started = time.perf_counter()
        report = import_function_docs(path)
        repo = ToolRepository()
        repo.add(report.specs)
        repo.save(Path(tmp) / "tools.jsonl")
        import_s = time.perf_counter() - started
    return n / import_s, n / parse_s, len(repo)


def scripted_generator(request: dict) -> str:
    """Per domain: three new tools, one with an invalid name, one repeat of a shared tool."""
    import re

    prompt = request["messages"][-1]["content"]
    category = re.search(r"Category: ([^\n]+?) —", prompt).group(1)  # type: ignore[union-attr]
    if "Domain:" not in prompt:
        areas = ["bookings", "payments", "inventory", "maintenance", "analytics", "compliance"]
        first = sum(map(ord, category)) % len(areas)
        names = [f"{category} {areas[(first + 3 * n) % len(areas)]}" for n in range(2)]
        return json.dumps({"domains": [{"name": n, "description": "d"} for n in names]})
    domain = re.search(r"Domain: ([^\n]+?) —", prompt).group(1)  # type: ignore[union-attr]
    slug = re.sub(r"\W+", "_", domain).strip("_")

    def tool(name: str, description: str) -> dict:
        return {
            "name": name,
            "description": description,
            "side_effect": "read",
            "returns": "ok",
            "parameters": [
                {"name": "query", "type": "string", "description": "q", "required": True}
            ],
        }

    return json.dumps(
        {
            "tools": [
                tool(f"list_{slug}_records", f"List the records of {domain}."),
                tool(f"open_{slug}_case", f"Open a new case in {domain}."),
                tool(f"close_{slug}_case", f"Close a case in {domain}."),
                tool("bad name!", "invalid"),
                tool("convert_currency", "Convert an amount between two currencies."),
            ]
        }
    )


def evolution_yield(categories: int) -> dict:
    import asyncio

    from llm import ChatClient
    from llm.testing import ScriptedEndpoint
    from tool_registry.evolution import Evolution, EvolveConfig

    async def run(registry: Path) -> dict:
        config = EvolveConfig(categories=categories, domains_per_category=2, tools_per_domain=5)
        server = ScriptedEndpoint(scripted_generator, latency_s=0.05)
        async with server, ChatClient(server.endpoint()) as client:
            started = time.perf_counter()
            report = await Evolution(config, client, registry).run()
            return {**report.model_dump(), "seconds": time.perf_counter() - started}

    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(run(Path(tmp) / "tools.jsonl"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smaller import run")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON last")
    args = parser.parse_args()
    n = 2_000 if args.quick else 10_000
    import_rate, parse_rate, imported = import_rows(n)
    rows = dedup_rows()
    evo = evolution_yield(3 if args.quick else 10)
    table = Table(title="tool repository" + (" (--quick)" if args.quick else ""))
    for column in ("measure", "value", "side by side", "target"):
        table.add_column(column)
    table.add_row(
        f"import {n} function docs (tools/s)",
        f"{import_rate:,.0f}",
        f"json.loads alone: {parse_rate:,.0f}/s; {imported} imported",
        "",
    )
    for label, precision, recall in rows:
        table.add_row(
            f"near-dup: {label}",
            f"P {precision:.3f} / R {recall:.3f}",
            "120 planted pairs in 280 tools",
            ">= 0.90 both" if "ours" in label else "",
        )
    per_call = evo["added"] / evo["calls"]
    table.add_row(
        "evolution: valid, non-duplicate tools per LLM call",
        f"{per_call:.2f}",
        f"{evo['calls']} calls, {evo['proposed']} proposed, {evo['added']} kept, rejected "
        f"{evo['rejected']}, {evo['seconds']:.1f} s",
        "",
    )
    Console(width=140).print(table)
    if args.json:
        print(
            json.dumps(
                {
                    "import_tools_per_s": round(import_rate, 1),
                    "dedup_precision": round(rows[0][1], 4),
                    "dedup_recall": round(rows[0][2], 4),
                    "evolution_valid_tools_per_call": round(per_call, 3),
                }
            )
        )


if __name__ == "__main__":
    main()

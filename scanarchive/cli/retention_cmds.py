"""Verbs for retention: client facts, presets in force, review and approval, legal holds, purge."""

from __future__ import annotations

import argparse
import json
from datetime import date

from scanarchive.archive.layout import Archive
from scanarchive.cli.common import add_passphrase_file, client_code, iso_date, open_archive
from scanarchive.cli.passphrase import get_passphrase
from scanarchive.crypto.keys import Identity
from scanarchive.errors import UsageError
from scanarchive.retention import approvals, clients, holds, purge, review
from scanarchive.retention.policy import decide
from scanarchive.retention.presets import load_presets

FACT_FLAGS = {
    "born": "date_of_birth",
    "terminated": "termination",
    "died": "date_of_death",
    "last_entry": "last_entry",
    "last_service": "last_service",
}
FACT_HELP = {
    "born": "date of birth, YYYY-MM-DD ('' clears it)",
    "terminated": "the day therapy ended or the client was discharged, YYYY-MM-DD ('' clears it)",
    "died": "date of death, YYYY-MM-DD ('' clears it)",
    "last_entry": "the last entry in the client's record, if later than the latest note, YYYY-MM-DD ('' clears it)",
    "last_service": "the last service to the client, if later than the latest note, YYYY-MM-DD ('' clears it)",
}
CODE_HELP = "the client's code (the practice's pseudonym, not a name)"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    client = sub.add_parser("client", parents=[common], help="clients' retention facts (codes and dates only)")
    verbs = client.add_subparsers(dest="client_command", required=True, metavar="ACTION")
    for verb, helptext in (("add", "add a client"), ("set", "change a client's facts ('' clears one)")):
        v = verbs.add_parser(verb, parents=[common], help=helptext)
        v.add_argument("code", type=client_code, help=CODE_HELP)
        for flag, fact in FACT_FLAGS.items():
            v.add_argument(
                f"--{flag.replace('_', '-')}", dest=fact, type=_date_or_clear, metavar="DATE", help=FACT_HELP[flag]
            )
        add_passphrase_file(v)
        v.set_defaults(func=cmd_client_save, create=verb == "add")
    v = verbs.add_parser("show", parents=[common], help="a client's facts and when each record may be destroyed")
    v.add_argument("code", type=client_code, help=CODE_HELP)
    v.set_defaults(func=cmd_client_show)
    v = verbs.add_parser("list", parents=[common], help="every client code")
    v.set_defaults(func=cmd_client_list)

    ret = sub.add_parser("retention", parents=[common], help="retention rules, review and approval")
    verbs = ret.add_subparsers(dest="retention_command", required=True, metavar="ACTION")
    v = verbs.add_parser("presets", parents=[common], help="the shipped rules, with their status and citation")
    v.set_defaults(func=cmd_presets)
    v = verbs.add_parser("use", parents=[common], help="put these presets in force (replaces the list)")
    v.add_argument(
        "presets", nargs="+", metavar="PRESET", help="preset ids, as 'scanarchive retention presets' lists them"
    )
    v.add_argument("--allow-unconfirmed", action="store_true", help="also accept presets marked unconfirmed")
    add_passphrase_file(v)
    v.set_defaults(func=cmd_use)
    v = verbs.add_parser("approval", parents=[common], help="how destruction is approved: required or automatic")
    v.add_argument(
        "mode",
        choices=("required", "automatic"),
        help="required: a person approves each destruction (the default); automatic: purge destroys what is due",
    )
    add_passphrase_file(v)
    v.set_defaults(func=cmd_approval)
    v = verbs.add_parser(
        "re-sign", parents=[common], help="sign every decision as it stands now (after checking them all)"
    )
    add_passphrase_file(v)
    v.set_defaults(func=cmd_re_sign)
    v = verbs.add_parser("due", parents=[common], help="records due for destruction, and why")
    v.add_argument("--json", action="store_true", help="print one JSON document")
    v.set_defaults(func=cmd_due)
    v = verbs.add_parser("approve", parents=[common], help="approve the destruction of due records")
    v.add_argument("records", nargs="*", metavar="RECORD", help="ids of due records (or their first 8+ characters)")
    v.add_argument("--all-due", action="store_true", help="approve every record that is due today")
    v.add_argument("--by", required=True, metavar="NAME", help="who approves (kept in the certificate)")
    add_passphrase_file(v)
    v.set_defaults(func=cmd_approve)

    hold = sub.add_parser("hold", parents=[common], help="legal holds: nothing held is ever destroyed")
    verbs = hold.add_subparsers(dest="hold_command", required=True, metavar="ACTION")
    v = verbs.add_parser("place", parents=[common], help="place a named hold on a client or a record")
    v.add_argument(
        "name", help="a name for the hold, e.g. subpoena-17 (letters, digits, '.', '_', ':', '-'; no client names)"
    )
    target = v.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--client", type=client_code, metavar="CODE", help="hold every note of this client (the client's code)"
    )
    target.add_argument("--record", metavar="RECORD", help="hold this one record (its id, or its first 8+ characters)")
    v.add_argument("--reason", required=True, help="why (e.g. 'subpoena received'); sealed, no clinical content")
    add_passphrase_file(v)
    v.set_defaults(func=cmd_hold_place)
    v = verbs.add_parser("release", parents=[common], help="release a hold")
    v.add_argument("name", help="the hold's name, as 'scanarchive hold list' shows it")
    add_passphrase_file(v)
    v.set_defaults(func=cmd_hold_release)
    v = verbs.add_parser("list", parents=[common], help="holds in place, with their (sealed) reasons")
    add_passphrase_file(v)
    v.set_defaults(func=cmd_hold_list)

    p = sub.add_parser(
        "purge",
        parents=[common],
        help="destroy records that are due, approved and not on hold (needs no passphrase)",
        description="Meant to run unattended (config/systemd/scanarchive-purge.timer). Each destroyed record "
        "gets a certificate in certificates/; its key is deleted, so backup copies become unreadable.",
    )
    p.add_argument("--dry-run", action="store_true", help="explain, for every record, why it is kept or destroyed")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--today", type=iso_date, help=argparse.SUPPRESS)  # for tests and what-if reviews
    p.set_defaults(func=cmd_purge)


def _date_or_clear(text: str) -> str:
    return "" if text == "" else iso_date(text)


def _today(args: argparse.Namespace) -> date:
    value = getattr(args, "today", None)
    return date.fromisoformat(value) if value else date.today()


def _unlock(args: argparse.Namespace, archive: Archive) -> Identity:
    """Decisions are signed: they need the passphrase (docs/format.md §15.5)."""
    return archive.unlock(get_passphrase(args.passphrase_file))


def cmd_client_save(args: argparse.Namespace) -> int:
    facts = {fact: getattr(args, fact) for fact in FACT_FLAGS.values() if getattr(args, fact) is not None}
    with open_archive(args) as archive:
        if not args.create:
            clients.get(archive.catalog, args.code)  # a mistyped code is refused before the passphrase is asked
        clients.save(archive, args.code, facts, create=args.create, identity=_unlock(args, archive))
    print(f"Client {args.code} {'added' if args.create else 'updated'}; retention dates follow the new facts.")
    return 0


def cmd_client_show(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        client = clients.get(archive.catalog, args.code)
        presets = review.presets_in_force(archive) if archive.config.retention.presets else []
        records = [r for r in archive.catalog.records() if r.client_code == args.code]
        facts = client.facts()
        print(f"Client {client.code}")
        for name in clients.FACTS:
            recorded = client.recorded.get(name)
            shown = recorded or (
                f"{client.latest_session} (latest session)"
                if name in ("last_entry", "last_service") and client.latest_session
                else "not recorded"
            )
            print(f"  {name.replace('_', ' '):<14} {shown}")
        for record in records:
            session = date.fromisoformat(record.session_date) if record.session_date else None
            decision = decide(facts, session, record.record_class, presets, date.today())  # type: ignore[arg-type]
            print(f"record {record.id}  {record.session_date or 'no date'}  {record.record_class}")
            print("  " + decision.explain().replace("\n", "\n  "))
    return 0


def cmd_client_list(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        for code in clients.codes(archive.catalog):
            print(code)
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        in_force = set(archive.config.retention.presets)
    for preset in sorted(load_presets().values(), key=lambda p: p.id):
        mark = "*" if preset.id in in_force else " "
        print(f"{mark} {preset.id:<24} {preset.status:<11} {preset.name} — {preset.citation}")
    print("* = in force. Unconfirmed presets need checking against the official text before use.")
    return 0


def cmd_use(args: argparse.Namespace) -> int:
    review.choose_presets(args.presets, allow_unconfirmed=args.allow_unconfirmed)  # checked before the archive opens
    with open_archive(args) as archive:
        chosen = review.use_presets(
            archive, args.presets, allow_unconfirmed=args.allow_unconfirmed, identity=_unlock(args, archive)
        )
    for preset in chosen:
        warning = "  (UNCONFIRMED: check it)" if not preset.confirmed else ""
        print(f"In force: {preset.name} — {preset.citation}{warning}")
    print("A record is kept until the latest date any of these gives.")
    return 0


def cmd_approval(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        review.set_approval(archive, args.mode, identity=_unlock(args, archive))
    if args.mode == "automatic":
        print("Approval: automatic. The scheduled purge destroys every record that is due and not on hold.")
    else:
        print("Approval: required. A record is destroyed only once approved ('scanarchive retention approve').")
    return 0


def cmd_re_sign(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        review.re_sign(archive, identity=_unlock(args, archive))
    print("Every hold, approval, client fact and retention setting is now signed as it stands, and the catalog")
    print("as it is now is the newest state verify compares with.")
    return 0


def _reviews(args: argparse.Namespace) -> tuple[list[review.Review], str]:
    with open_archive(args) as archive:
        review.require_rules(archive)  # with no rules, "no record is due" would be a false all-clear
        presets = review.presets_in_force(archive)
        return review.review_all(archive, _today(args), presets), archive.config.retention.approval


def cmd_due(args: argparse.Namespace) -> int:
    reviews, _ = _reviews(args)
    due = [r for r in reviews if r.due]
    if args.json:
        doc = [
            {
                "record_id": r.record.id,
                "client_code": r.record.client_code,
                "session_date": r.record.session_date,
                "record_class": r.record.record_class,
                "destroy_after": str(r.decision.destroy_after),
                "controlling_preset": r.decision.controlling.id if r.decision.controlling else None,
                "held_by": [h.name for h in r.holds],
                "approved_by": r.approved_by,
            }
            for r in due
        ]
        print(json.dumps({"due": doc, "count": len(doc)}, indent=2))
        return 0
    if not due:
        print("No record is due for destruction.")
        return 0
    for r in due:
        state = "ON HOLD" if r.holds else ("approved" if r.approved_by else "needs approval")
        print(f"{r.record.id}  {r.record.client_code}  {r.record.session_date}  {state}")
        print("  " + r.decision.explain().splitlines()[0])
    print(f"{len(due)} record(s) due. Approve with: scanarchive retention approve RECORD… --by NAME")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    if bool(args.records) == bool(args.all_due):
        raise UsageError("name the records to approve, or give --all-due")
    with open_archive(args) as archive:
        wanted = approvals.approve(
            archive,
            None if args.all_due else args.records,
            by=args.by,
            today=date.today(),
            identity=_unlock(args, archive),
        )
    held = sum(1 for r in wanted if r.holds)
    print(f"Approved {len(wanted)} record(s) for destruction by {args.by}.")
    if held:
        print(f"{held} of them are on legal hold: they stay until the hold is released.")
    return 0


def cmd_hold_place(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        placed = holds.place(
            archive, args.name, args.reason, client=args.client, record=args.record, identity=_unlock(args, archive)
        )
    what = f"client {placed.client_code}" if placed.client_code else f"record {placed.record_id}"
    print(f"Hold '{placed.name}' placed on {what}. Nothing it covers can be destroyed until it is released.")
    return 0


def cmd_hold_release(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        holds.release(archive, args.name, identity=_unlock(args, archive))
    print(f"Hold '{args.name}' released. Records it covered follow their retention rules again.")
    return 0


def cmd_hold_list(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        placed = holds.active(archive.catalog)
        identity = _unlock(args, archive) if placed else None
    if not placed:
        print("No legal holds are in place.")
    for h in placed:
        what = f"client {h.client_code}" if h.client_code else f"record {h.record_id}"
        reason = holds.reason_of(identity, h) if identity is not None else ""
        print(f"{h.name}: {what} — {reason} (placed {h.placed_at} by {h.placed_by})")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    with open_archive(args) as archive:
        done = purge.run(archive, _today(args), dry_run=bool(args.dry_run))
    verdicts = done.plan.verdicts
    destroyed = done.destroyed
    if args.json:
        doc = [{"record_id": v.review.record.id, "destroy": v.go, "reason": v.why} for v in verdicts]
        print(
            json.dumps(
                {"dry_run": args.dry_run, "records": doc, "destroyed": [d.record_id for d in destroyed]}, indent=2
            )
        )
        return 0
    for v in verdicts:
        action = ("would destroy" if args.dry_run else "destroyed") if v.go else "kept"
        print(f"{v.review.record.id}  {action:<13} {v.why}")
    if args.dry_run:
        print(f"Dry run: {sum(1 for v in verdicts if v.go)} record(s) would be destroyed; nothing was changed.")
    else:
        print(f"{len(destroyed)} record(s) destroyed; certificates are in {archive.root / 'certificates'}.")
    return 0

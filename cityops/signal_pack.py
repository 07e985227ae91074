"""What one issuing act sends and leaves on record (issue 18 items 1, 3, 4, 5).

``cityops issue`` checks the act (:mod:`cityops.issuing`); this module turns it into

- the CAP 1.2 message that is sent (``cap.xml``): ``sent`` = the issue time; identifier and
  sender by GB/T 35965.1; ``Alert`` for the first signal of a hazard, ``Update`` (referencing
  the issued messages in force) when signals of that hazard are in force, ``Cancel`` when the
  act lifts the last one; the message states the whole hazard after the act (every unit in
  force, one ``<info>`` per level), so a consumer never has to merge messages;
- the public texts (``message_zh.txt``, ``sms_zh.txt``, ``wechat_zh.txt``, English with
  ``--lang en``), the forwardable card (``card_zh.png``) and the dispatcher's list
  (``dissemination.csv``, UTF-8 with BOM for Excel, Beijing time);
- the ledger records of the act (signals and the message, one transaction).

The pack is built in a stage folder beside its place, the ledger written, then the folder
renamed into place: a failure leaves neither a half-written pack nor a record without texts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from cityops import cap, fsio, ledger
from cityops.errors import DataFileError, InputError
from cityops.report.public_message import SignalAct, full_text, issued_zh, sms_text, wechat_text
from cityops.rules.table import level_names
from cityops.text import person_csv
from cityops.timeutil import iso_utc, parse_utc

__all__ = ["PACK_KIND", "default_pack_folder", "write_pack"]

PACK_KIND = "signal"
BEIJING = pd.Timedelta(hours=8)


def default_pack_folder(db: Path, identifier: str) -> Path:
    """``<ledger folder>/issued/<identifier>``: the pack sits beside the record it belongs to."""
    return Path(db).resolve().parent / "issued" / identifier


def _rule_texts(ruleset: str | None, hazard: str) -> dict[int, str]:
    from cityops.rules.table import load_rule_table

    try:
        rules = load_rule_table(ruleset or "national").hazards[hazard]
    except (DataFileError, InputError, KeyError, OSError):
        return {}
    return {int(r.level): r.text_zh for r in rules.levels}


def _guidance(hazard: str, level: int):
    from cityops.response.guidelines import guidance

    return guidance(hazard, level) if level else None


def _plan_actions(juris, hazard: str, level: int) -> tuple[str, ...]:
    """The plan's own public actions for a hazard and level, where it has them: its "四停"
    measures (stop classes, work, business, transport), which the public must know; empty
    when the jurisdiction has no plan."""
    from cityops.response.plan import load_plan

    try:
        plan = load_plan(juris.path)
    except (DataFileError, InputError, OSError):
        return ()
    out = [f"（本旗预案）{m.text_zh}" for m in plan.measures
           if m.four_stop and m.applies(hazard, level)]  # fmt: skip
    return tuple(dict.fromkeys(out))


def _state_after(before: list[dict], plans: list[dict]) -> list[dict]:
    """The signals of the hazard in force after the act (unit → record)."""
    acted = {p["town_code"] for p in plans}
    state = {s["town_code"]: s for s in before if s["town_code"] not in acted}
    for p in plans:
        if p["action"] != "lift":
            state[p["town_code"]] = p
    return [state[c] for c in sorted(state)]


def _alert(juris, hazard, names, state, *, ident, sender, issued_at, status, msg_type, refs,
           note, rule_texts, lang):  # fmt: skip
    """The CAP message of the act (see module docstring)."""
    if msg_type == "Cancel":
        ids = [r.split(",")[1] for r in refs]
        sents = [r.split(",")[2] for r in refs]
        return cap.cancel_alert(
            hazard, ids, sents, code=str(juris.code), sent=issued_at, status=status,
            sender=sender, hazard_name_zh=names[0], identifier=ident, note=note,
        )  # fmt: skip
    alert = cap._alert_head(ident, sender, issued_at, status, msg_type,
                            references=" ".join(refs) or None, note=note)  # fmt: skip
    rows = pd.DataFrame(
        [
            {
                "town_code": s["town_code"],
                "town_name": juris.unit(s["town_code"]).name_zh,
                "level": int(s["level"]),
                "onset_utc": s.get("valid_from_utc") or "",
                "end_utc": s.get("valid_to_utc") or "",
                "hazard_name_zh": names[0],
                "hazard_name_en": names[1],
                "probability": s.get("probability", ""),
            }
            for s in state
        ]
    )
    zh_name, en_name = cap.sender_names(juris)

    def content_of(level, group, language):
        starts = [parse_utc(v) for v in group["onset_utc"] if v]
        lead = (min(starts) - issued_at) / pd.Timedelta("1h") if starts else None
        g = _guidance(hazard, level)
        instructions = () if g is None else (g.guidance_zh if language == "zh" else g.guidance_en)
        return cap.InfoContent(
            sender_name=zh_name if language == "zh" else en_name,
            rule_text=rule_texts.get(level, "") if language == "zh" else "",
            instructions=tuple(instructions),
            certainty=cap.certainty_for_probability(group["probability"]),
            lead_hours=lead,
            prefix=("【演练】" if language == "zh" else "[EXERCISE] ")
            if status == "Exercise"
            else "",
        )

    for info in cap._infos(juris, hazard, rows, lang, content_of, issued_at):
        alert.append(info)
    return alert


def _act(juris, hazard, names, plans, state, *, ident, issued_at, exercise, rule_texts):
    """The public-text view of the act (one level: the highest the act sets)."""
    acted = [p for p in plans]
    level = max(int(p["level"]) for p in acted)
    action = "lift" if level == 0 else ("update" if any(
        p["action"] == "update" for p in acted) else "issue")  # fmt: skip
    units = [juris.unit(p["town_code"]) for p in acted]
    acted_codes = {p["town_code"] for p in acted}
    by_level: dict[int, list[str]] = {}
    for s in state:
        if s["town_code"] not in acted_codes:
            by_level.setdefault(int(s["level"]), []).append(juris.unit(s["town_code"]).name_zh)
    others = [
        f"{'、'.join(units)}{names[0]}{level_names()[lv]['name_zh']}预警信号"
        for lv, units in sorted(by_level.items(), reverse=True)
    ]
    starts = [parse_utc(p["valid_from_utc"]) for p in acted if p.get("valid_from_utc")]
    ends = [parse_utc(p["valid_to_utc"]) for p in acted if p.get("valid_to_utc")]
    g = _guidance(hazard, level)
    plan_actions = _plan_actions(juris, hazard, level) if level else ()
    zh_name, en_name = cap.sender_names(juris)
    return SignalAct(
        issuer_zh=zh_name,
        issuer_en=en_name,
        hazard=hazard,
        hazard_zh=names[0],
        hazard_en=names[1],
        level=level,
        action=action,
        issued_utc=issued_at,
        towns_zh=tuple(u.name_zh for u in units),
        towns_en=tuple(u.name_en or u.code for u in units),
        valid_from_utc=min(starts) if starts and level else None,
        valid_to_utc=max(ends) if ends and level else None,
        criterion_zh=rule_texts.get(level, ""),
        key_zh=g.key_zh if g else "",
        key_en=g.key_en if g else "",
        guidance_zh=(*(g.guidance_zh if g else ()), *plan_actions),
        guidance_en=g.guidance_en if g else (),
        guidance_source=g.source if g else "",
        identifier=ident,
        exercise=exercise,
        others_zh=tuple(others),
        previous_level=max(
            (int(p.get("previous_level") or 0) for p in acted if p["action"] == "update"), default=0
        ),
        lifted_level=max((int(p.get("lifted_level") or 0) for p in acted), default=0),
    )


def _card(act: SignalAct, path: Path, lang: str) -> None:
    from cityops.report.public_message import issued_en, span_en, span_zh
    from cityops.report.signal_card import SignalCard, render_signal_card

    render_signal_card(
        SignalCard(
            hazard_name_zh=act.hazard_zh,
            hazard_name_en=act.hazard_en,
            level=act.level,
            issuer_zh=act.issuer_zh,
            issuer_en=act.issuer_en,
            issued_bjt=issued_zh(act.issued_utc),
            issued_bjt_en=issued_en(act.issued_utc),
            valid_bjt=span_zh(act.valid_from_utc, act.valid_to_utc),
            valid_bjt_en=span_en(act.valid_from_utc, act.valid_to_utc),
            action_zh={"issue": "发布", "update": "更新", "lift": "解除"}[act.action],
            action_en={"issue": "issued", "update": "updated", "lift": "lifted"}[act.action],
            towns_zh=act.towns_zh,
            towns_en=act.towns_en,
            guidance_zh=tuple(act.guidance_zh[:4]) if act.action != "lift" else (),
            guidance_en=tuple(act.guidance_en[:4]) if act.action != "lift" else (),
            identifier=act.identifier,
            exercise=act.exercise,
            lifted_level=act.lifted_level,
            in_force_zh=act.others_zh,
        ),
        path,
        lang=lang,
    )


def _dissemination(juris, plans, ident, issued_at) -> pd.DataFrame:
    from cityops.geo.exposure import load_assets
    from cityops.geo.summary import _asset_hazards
    from cityops.response.dissemination import signal_dissemination
    from cityops.response.plan import load_plan

    try:
        plan = load_plan(juris.path)
    except (DataFileError, InputError, OSError):
        plan = None
    try:
        assets = load_assets(juris) if (juris.path / "assets.csv").exists() else None
    except (DataFileError, InputError):
        assets = None
    records = [{**p, "town_name": juris.unit(p["town_code"]).name_zh} for p in plans]
    return signal_dissemination(
        records,
        message=ident,
        status=plans[0]["status"],
        issued_bjt=f"{issued_at + BEIJING:%Y-%m-%d %H:%M}",
        plan=plan,
        assets=assets,
        hazards_of_asset=_asset_hazards(),
    )


def write_pack(conn, plans: list[dict], *, juris, hazard: str, table: pd.DataFrame,
               issued_at: pd.Timestamp, status: str, by: str, note: str, out, lang: str,
               db_path: Path, ruleset: str | None = None) -> list[dict]:  # fmt: skip
    """Build the act's message and pack, record the act, and put the pack in place.

    Returns the ledger records written (one per unit), each with ``cap_identifier`` and
    ``pack`` (the folder).
    """
    if lang not in ("zh", "en", "both"):
        raise InputError(f"--lang {lang!r}: expected zh, en or both")
    rows = table[table["hazard"] == hazard]
    names = (
        str(rows["hazard_name_zh"].iloc[0] or hazard) if "hazard_name_zh" in rows else hazard,
        str(rows["hazard_name_en"].iloc[0] or hazard) if "hazard_name_en" in rows else hazard,
    )
    before = ledger.live_signals(conn, hazard, status=status)
    state = _state_after(before, plans)
    entry = f"{cap.sender_code(juris.code)}_{issued_at + BEIJING:%Y%m%d%H%M%S}"
    ident = cap.gbt_identifier(juris.code, issued_at, ledger.message_sequence(conn, entry))
    # Each unit's record is named by the message that carried it.
    plans = [{**p, "identifier": f"{ident}-{p['town_code']}"} for p in plans]
    sender = cap.sender_code(juris.code)
    sent_of = {
        r["identifier"]: r["sent_utc"]
        for r in conn.execute("SELECT identifier, sent_utc FROM cap_alerts").fetchall()
    }
    refs = sorted({
        f"{sender},{s['cap_identifier']},{cap.cap_time(sent_of[s['cap_identifier']])}"
        for s in before if s.get("cap_identifier") in sent_of
    })  # fmt: skip
    msg_type = "Cancel" if not state else ("Update" if refs else "Alert")
    exercise = status == "Exercise"
    rule_texts = _rule_texts(ruleset, hazard)
    signed = f"签发：{by}" + (f"；{note}" if note else "")
    if exercise:
        signed = "演练（Exercise）；" + signed
    # A lift of signals that no message carried (recorded before messages were kept) has
    # nothing to Cancel: the lift is recorded and its texts written, without a CAP file.
    alert = None if (msg_type == "Cancel" and not refs) else _alert(
        juris, hazard, names, state, ident=ident, sender=sender, issued_at=issued_at,
        status=status, msg_type=msg_type, refs=refs, note=signed, rule_texts=rule_texts,
        lang=lang,
    )  # fmt: skip
    act = _act(juris, hazard, names, plans, state, ident=ident, issued_at=issued_at,
               exercise=exercise, rule_texts=rule_texts)  # fmt: skip
    target = Path(out) if out is not None else default_pack_folder(db_path, ident)
    if target.exists() or target.is_symlink():
        raise InputError(f"{target}: already exists; a pack is never written over")
    if target.parent.exists() and not target.parent.is_dir():
        raise InputError(f"--out {target}: {target.parent} is not a folder")
    stage = fsio.make_stage(target)
    try:
        if alert is not None:
            fsio.write_bytes(stage / "cap.xml", cap._serialize(alert))
        for language in ("zh", "en") if lang in ("en", "both") else ("zh",):
            fsio.write_text(stage / f"message_{language}.txt", full_text(act, lang=language))
            fsio.write_text(stage / f"sms_{language}.txt", sms_text(act, lang=language) + "\n")
            fsio.write_text(stage / f"wechat_{language}.txt", wechat_text(act, lang=language))
            _card(act, stage / f"card_{language}.png", language)
        dis = _dissemination(juris, plans, ident, issued_at)
        # Excel opens UTF-8 CSV correctly only with a byte-order mark.
        fsio.write_bytes(stage / "dissemination.csv", b"\xef\xbb\xbf" + person_csv(dis).encode())
        records = [{**p, "cap_identifier": ident} for p in plans]
        summary = {
            "message": ident,
            "msg_type": msg_type if alert is not None else "",
            "status": status,
            "issued_utc": iso_utc(issued_at),
            "issued_bjt": issued_zh(issued_at),
            "issuer": by,
            "hazard": hazard,
            "signals": [{k: r.get(k) for k in ledger.SIGNAL_COLUMNS if k in r} for r in records],
            "in_force_after": [s["town_code"] for s in state],
        }
        fsio.write_text(stage / "signal.json", json.dumps(summary, ensure_ascii=False, indent=1))
        message = {
            "identifier": ident,
            "hazard": hazard,
            "msg_type": msg_type,
            "references": refs,
            "run_issued_utc": plans[0].get("run_issued_utc"),
            "sent_utc": issued_at,
            "status": status,
        }
        # The record is the act: it goes first, in one transaction (a concurrent act of the
        # same second loses here and leaves nothing but its own stage, removed below).
        written = ledger.record_signals(
            conn, records, message=message if alert is not None else None
        )
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    try:
        fsio.publish_folder(stage, target, PACK_KIND)
    except (OSError, InputError) as err:
        raise InputError(
            f"{target}: the act is recorded in the ledger but its pack could not be put in "
            f"place ({err}); the pack is at {stage}"
        ) from None
    return [{**w, "pack": str(target)} for w in written]

"""``signoff mask [FILE]``: mask a JSON document (or, with ``--text``, plain text) and print
``{"masked": …, "findings": [...]}``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click


def _load_profile(name: str | None, policy: str | None) -> Any:
    # The masking engine (and PyYAML) are the server extra's, imported when the command runs.
    from signoff.masking.profile import DEFAULT_PROFILE, MaskingConfig

    path = policy or os.environ.get("SIGNOFF_POLICY")
    if path and Path(path).exists():
        import yaml  # with the masking profile above: only when the command runs

        data = yaml.safe_load(Path(path).read_text()) or {}
        config = MaskingConfig.model_validate(data.get("masking") or {})
        try:
            return config.profile(name or "default")
        except KeyError as exc:
            raise click.BadParameter(str(exc.args[0]), param_hint="--profile") from exc
    if name and name != "default":
        raise click.BadParameter(
            f"no masking profile {name!r} (no policy file: pass --policy or set SIGNOFF_POLICY)",
            param_hint="--profile",
        )
    return DEFAULT_PROFILE


@click.command(name="mask", help="Mask a JSON document or text with the default profile.")
@click.argument("file", type=click.File("r", encoding="utf-8"), default="-", required=False)
@click.option("--text", "as_text", is_flag=True, help="Treat the input as plain text, not JSON.")
@click.option("--profile", "profile_name", default=None, help="Masking profile from the policy file.")
@click.option("--viewer", "viewers", multiple=True, help="Viewer group (repeatable); decides who sees partial values.")
@click.option("--policy", type=click.Path(dir_okay=False), default=None, help="Policy file (default: $SIGNOFF_POLICY).")
@click.option("--key", envvar="SIGNOFF_MASKING_KEY", default=None, help="HMAC key for pseudonyms (default: $SIGNOFF_MASKING_KEY, else random).")
@click.option("--no-ner", is_flag=True, help="Do not load spaCy.")
@click.option("--summary", "show_summary", is_flag=True, help="Also print the one-line summary to stderr.")
def mask(file: Any, as_text: bool, profile_name: str | None, viewers: tuple[str, ...], policy: str | None, key: str | None, no_ner: bool, show_summary: bool) -> None:
    from signoff.masking.engine import Masker  # the server extra: when the command runs

    raw = file.read()
    profile = _load_profile(profile_name, policy)
    masker = Masker(key=key, ner=not no_ner)
    if as_text:
        result = masker.mask_text(raw, profile=profile, viewer_groups=viewers)
    else:
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise click.UsageError(f"input is not JSON ({exc}); use --text for plain text") from exc
        result = masker.mask(doc, profile=profile, viewer_groups=viewers)
    out = {
        "masked": result.masked,
        "findings": [
            {k: f.to_dict()[k] for k in ("detector", "entity", "path", "start", "end", "strategy", "confidence")}
            for f in result.findings
        ],
    }
    click.echo(json.dumps(out, ensure_ascii=False, indent=2))
    if show_summary:
        click.echo(result.summary(), err=True)
    sys.stdout.flush()

"""Shared environment for the config tests."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
BAD = HERE / "bad"
GOOD = HERE / "good"
REPO = HERE.parent.parent

# Every variable the corpus and the good configs name, except the ones a
# fixture leaves unset on purpose (RUNPOD_API_KEY_RESEARCH, SLACK_WEBHOOK_URL_OPS, …).
ENV: dict[str, str] = {
    "RUNPOD_API_KEY": "rpa_DEFAULTKEY0000000000000000",
    "RUNPOD_API_KEY_PROD": "rpa_PRODKEY00000000000000000000",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX",
    "SLACK_BOT_TOKEN": "xoxb-1111-2222-slacktokenvalue",
    "WEBHOOK_SECRET": "whsec_c2VjcmV0c2VjcmV0c2VjcmV0",
    "WEBHOOK_SECRET_OLD": "whsec_b2xkb2xkb2xkb2xkb2xkb2xk",
}

GOOD_ENV: dict[str, str] = {
    **ENV,
    "RUNPOD_API_KEY_RESEARCH": "rpa_RESEARCHKEY0000000000000000",
    "HOOK_TOKEN": "hooktoken-12345",
}

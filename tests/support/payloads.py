"""What the contract's webhook payload of a budget alert carries (contract:
"Webhook payload"): the keys every threshold and forecast body has."""

PAYLOAD_KEYS = frozenset(
    {
        "id",
        "kind",
        "account",
        "budget",
        "group",
        "window",
        "spend_usd",
        "limit_usd",
        "percent",
        "threshold_percent",
        "forecast_usd",
        "fired_at",
    }
)

"""Webhooks: notifications of job outcomes and monitor alerts, posted to registered endpoints.

outbox (written in the causing transaction) → delivery (a loop, once across
replicas, at least once, in order per job) → signing (Standard Webhooks) and
formats (standard, slack). The store's transitions write to the outbox through
`webapp.store.moves`; the API and the dashboard page are in `webapp.server`.
"""

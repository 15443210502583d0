"""The store: the database, its models and schema checks, and the statements that
move a job (`transitions`, the single writer of status). A transition announces
what it did through `moves`; webhooks, metrics and wake-ups listen there, so the
store imports none of them and nothing of the web layer."""

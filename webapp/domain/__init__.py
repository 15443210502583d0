"""The vocabulary of Jobwarden: statuses and their edges, attempt outcomes, actors,
limits and the backoff rule. Defined once here and imported everywhere; these
modules import nothing else of the app (an import-linter contract keeps it so),
so the worker, the store and the web layer all speak the same words."""

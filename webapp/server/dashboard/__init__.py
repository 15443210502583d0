"""The server-rendered dashboard: jobs table, job page with its recovery card, health
page (`views`), the webhooks page (`webhooks`), the schedules page (`schedules`), the
queues page (`queues`) and the alert rules (`alerts`)."""

from . import alerts, audit, queues, schedules, views, webhooks

BLUEPRINTS = (views.bp, webhooks.bp, schedules.bp, queues.bp, audit.bp, alerts.bp)

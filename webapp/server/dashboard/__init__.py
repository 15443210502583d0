"""The server-rendered dashboard: jobs table, job page with its recovery card, health
page (`views`), the webhooks page (`webhooks`) and the queues page (`queues`)."""

from . import queues, views, webhooks

BLUEPRINTS = (views.bp, webhooks.bp, queues.bp)

"""The server-rendered dashboard: jobs table, job page with its recovery card, health
page (`views`), and the webhooks page (`webhooks`)."""

from . import views, webhooks

BLUEPRINTS = (views.bp, webhooks.bp)

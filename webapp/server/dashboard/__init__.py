"""The server-rendered dashboard: jobs table, job page with its recovery card, health
page (`views`), the webhooks page (`webhooks`) and the schedules page (`schedules`)."""

from . import schedules, views, webhooks

BLUEPRINTS = (views.bp, webhooks.bp, schedules.bp)

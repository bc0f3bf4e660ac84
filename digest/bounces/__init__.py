"""Bounces, complaints, auto-replies and unsubscribe requests: VERP senders, the classifier
of bounce-mailbox messages, the mailbox readers and provider webhook verification, and their
wiring: the policy that acts on a classified report (`policy`), the reading of the configured
mailbox (`process`) and the per-day health figures and alerts (`health`).

The reading half (verp, events, parts, classify, text_bounces, mailbox, webhooks) imports
nothing of the project but `digest.errors`; only the wiring reads the config and the store.
"""

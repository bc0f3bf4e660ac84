"""Bounces, complaints, auto-replies and unsubscribe requests: VERP senders, the classifier
of bounce-mailbox messages, the mailbox readers and provider webhook verification.

Self-contained: imports nothing of the project but `digest.errors`; the store, the CLI and
the web app record and act on the Reports this package produces.
"""

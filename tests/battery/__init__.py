"""The fault battery: real workers, a real SMTP server, crashes and hostile input.

Every scenario ends with ``invariants.check``: what the SMTP server received
against what the database recorded (nothing lost, nothing twice unless flagged,
no dangling claim, nothing to a blocked client or outside the send window).
"""

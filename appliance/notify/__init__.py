"""Notifications: what a technician is told when jobs and rooms end (issue 14).

Pure parts here (events, payloads, webhook signatures, the retry schedule); delivery
over HTTP and SMTP in :mod:`appliance.notify.deliver`.
"""

"""Live delivery (docs/live.md, design D9): commit notifications fanned out to streams and long polls.

A commit only *wakes* waiters; what they send is always read through the normal keyset path, so a lost or
duplicated notification can delay an answer but never lose or repeat an object.
"""

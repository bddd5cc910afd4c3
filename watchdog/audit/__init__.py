"""The audit trail: a hash chain of every violation and notice change and rule-set load.

`chain` (canonical entries, hashing, appending in the caller's transaction), `hooks`
(where changes enter it), `verify` (walking it), `export` (JSON Lines), `cli`.
"""

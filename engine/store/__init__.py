"""The persistent history of classified samples: predictions, reviews, sign-offs and the audit
trail (SQLite, embedded).
"""

"""The business rules, shared by the API and the admin pages.

Services know the database, not HTTP: they take plain values, commit their
own transactions and raise `app.errors.DomainError`s.
"""

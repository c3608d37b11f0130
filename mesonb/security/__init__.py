"""Who may call a daemon, and what they may do: credentials, ACLs, executor tokens.

- :mod:`.credentials`: principals and secrets from a Mesos credentials file;
- :mod:`.acls`: Mesos's local authorizer over its ACL file format;
- :mod:`.tokens`: HMAC-signed per-container executor tokens.
"""

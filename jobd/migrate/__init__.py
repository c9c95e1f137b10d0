"""``jobd import``: job files from a crontab or a systemd timer, with a list of what could not
be carried over (docs/migrating.md)."""

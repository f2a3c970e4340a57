"""Email: what a message says (`content`, `wording`), times in the reader's zone (`times`), the
calendar file (`ics`) and the MIME message put together for SMTP (`compose`)."""

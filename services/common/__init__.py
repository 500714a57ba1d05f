"""What both services share: settings, the database, commands, outbox and inbox, the app."""

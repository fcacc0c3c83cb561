"""The lifecycle of a person's data: strangers, corrections, retention, forgetting, audit."""

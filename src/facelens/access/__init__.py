"""Who may call facelens' server: API keys and AWS access keys with their roles, on disk."""

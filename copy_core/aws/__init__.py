"""AWS credentials and clients, denied requests explained, and retry counting."""

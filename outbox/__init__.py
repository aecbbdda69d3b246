"""outboxkit's write side: events, their envelope, and publishing them in the caller's transaction."""

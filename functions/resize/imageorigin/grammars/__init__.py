"""URL grammars, peers of one another: each reads its dialect into the request model and never re-normalises it."""
